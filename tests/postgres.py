"""A throw-away PostgreSQL server for the tests: Debian's ``postgresql`` binaries, a cluster in
a temporary folder, listening on 127.0.0.1 on a free port, started once per test session and
removed at its end. Run as root, the server runs as the unprivileged ``postgres`` user (or
``nobody``): PostgreSQL refuses to run as root. ``make test`` installs the package
(scripts/setup_postgres.sh); without it the PostgreSQL tests fail, saying how to install it.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

INSTALL = "apt-get install postgresql (or run `make test`, which installs it)"
_counter = itertools.count()


def pg_bin() -> Path | None:
    """Folder of the newest installed PostgreSQL server binaries."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    """A running throw-away server."""

    root: Path
    port: int
    bin: Path
    user: str | None

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://rlhf@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=rlhf dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://rlhf@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(self.bin / "pg_ctl", "-D", self.root / "data", "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _connect_url(url: str, dbname: str | None = None) -> str:
    """psycopg's connection string for a SQLAlchemy URL of the test server."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return f"host={parsed.host} port={parsed.port} user={parsed.username} dbname={dbname or parsed.database}"


def copy_database(url: str) -> str:
    """A new database with the contents of ``url``'s (PostgreSQL copies a template database
    file by file); its SQLAlchemy URL. Connections to the source are ended first: it is a
template, which tests only copy."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = f"t{os.getpid()}_{next(_counter)}"
    with psycopg.connect(_connect_url(url, "postgres"), autocommit=True) as conn:
        # a pooled connection the template's builder left idle would block the copy
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (parsed.database,),
        )
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{parsed.database}"')
    return parsed.set(database=name).render_as_string(hide_password=False)


def rows(url: str, sql: str, *args: object) -> list[tuple]:
    """Rows of a read-only query with sqlite3's ``?`` placeholders; json columns as text, as
    SQLite gives them."""
    import psycopg
    from psycopg.types.json import set_json_loads

    with psycopg.connect(_connect_url(url)) as conn:
        set_json_loads(lambda text: text, conn)
        return [tuple(row) for row in conn.execute(sql.replace("?", "%s"), args).fetchall()]


def start() -> Cluster:
    """Initialise and start a cluster (fsync off: a test server need not survive a power cut)."""
    binaries = pg_bin()
    if binaries is None:
        raise RuntimeError(f"PostgreSQL's server binaries are not installed: {INSTALL}")
    user = None
    if os.geteuid() == 0:
        user = "postgres" if _has_user("postgres") else "nobody"
    root = Path(tempfile.mkdtemp(prefix="rlhf-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(root, _free_port(), binaries, user)
    try:
        cluster._run(
            binaries / "initdb", "-D", root / "data", "-U", "rlhf", "--auth=trust", "-E", "UTF8", "--no-sync",
            "--no-instructions",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k {root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        cluster._run(binaries / "pg_ctl", "-D", root / "data", "-o", options, "-l", root / "server.log", "-w", "start")
    except subprocess.CalledProcessError as exc:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr or exc.stdout}\n{log[-2000:]}") from exc
    return cluster


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
