"""Every error a person can cause ends the real `rlhf` process with one line, never a traceback.

Each test runs the CLI as a separate process (``python -m app.cli``), as a person would, and
checks: exit status 1 (2 for a wrong command line), one non-empty line on stderr, no
``Traceback``, and a store left exactly as it was (the SQLite file's bytes, or no data folder
at all). Root ignores file permissions through its capabilities, so when the tests run as
root the read-only cases run the CLI without CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and
CAP_FOWNER: still uid 0 (the Python install stays reachable), but bound by the permission
bits like any user.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from db.engine import head_revision

# every test runs the CLI in a new process (torch and all): minutes in all, so not in `make test-fast`
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2-secret"
#: The capabilities that let root ignore permission bits (linux/capability.h) and prctl's
#: PR_CAPBSET_DROP: dropped from the bounding set, they are gone after exec.
PERMISSION_CAPABILITIES = {"CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3}
PR_CAPBSET_DROP = 24


def _bound_by_permissions() -> None:
    """In the child, before exec: give up what lets root write to read-only files."""
    libc = ctypes.CDLL(None, use_errno=True)
    for name, number in PERMISSION_CAPABILITIES.items():
        if libc.prctl(PR_CAPBSET_DROP, number, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"cannot drop {name} for a read-only test")


def rlhf(
    *args: str,
    env: dict[str, str] | None = None,
    unprivileged: bool = False,
    umask: int | None = None,
    launcher: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``rlhf ARGS`` in a fresh process; ``unprivileged``: bound by permission bits even as root."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RLHF_")}
    command = [sys.executable, "-c", launcher, *args] if launcher else [sys.executable, "-m", "app.cli", *args]
    drop = unprivileged and os.geteuid() == 0

    def preexec() -> None:
        if umask is not None:
            os.umask(umask)
        if drop:
            _bound_by_permissions()

    return subprocess.run(
        command,
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec,
    )


def one_error_line(result: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The single ``Error: ...`` line of a failed run (asserting there is exactly one and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if status == 2:  # click's usage errors print the usage first
        lines = [line for line in lines if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def counts(data: Path) -> list[tuple[str, int, int, int]]:
    result = rlhf("--data-dir", str(data), "status", "--json")
    assert result.returncode == 0, result.stderr
    return [(p["name"], p["items"], p["queries"], p["labels"]) for p in json.loads(result.stdout)["projects"]]


@pytest.fixture
def tmp(tmp_path: Path) -> Iterator[Path]:
    """An empty folder for the test; folders a test made read-only are writable again after it."""
    folder = tmp_path / "t"
    folder.mkdir()
    yield folder
    for part in [folder, *folder.rglob("*")]:
        if part.is_dir() and not part.is_symlink():
            part.chmod(0o755)


@pytest.fixture
def store(tmp: Path) -> Path:
    """A data folder with a migrated, empty label store."""
    data = tmp / "data"
    assert rlhf("--data-dir", str(data), "status").returncode == 0
    return data


# --- the command line itself ---------------------------------------------------------------


def test_version_names_the_installed_package() -> None:
    result = rlhf("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"rlhf, version {version('rlhf-studio')}"


def test_a_wrong_command_line_is_a_usage_error_with_status_2(tmp: Path) -> None:
    line = one_error_line(rlhf("--data-dir", str(tmp / "d"), "status", "--no-such-option"), status=2)
    assert "No such option" in line
    assert not (tmp / "d").exists()


def test_debug_lets_the_traceback_through(tmp: Path) -> None:
    env = {"RLHF_DATABASE_URL": "not a url"}
    plain = rlhf("--data-dir", str(tmp / "d"), "status", env=env)
    assert "is not a database URL" in one_error_line(plain)
    for run in (
        rlhf("--debug", "--data-dir", str(tmp / "d"), "status", env=env),
        rlhf("--data-dir", str(tmp / "d"), "status", env={**env, "RLHF_DEBUG": "1"}),
    ):
        assert run.returncode == 1
        assert "Traceback (most recent call last)" in run.stderr
        assert "StoreAccessError: RLHF_DATABASE_URL is not a database URL" in run.stderr


BUGGY = (
    "import sys, app.services.projects as projects\n"
    "def broken(studio): raise TypeError('boom in our own code')\n"
    "projects.project_summaries = broken\n"
    "from app.cli import cli\n"
    "cli(sys.argv[1:], prog_name='rlhf')\n"
)


def test_a_bug_is_one_line_that_says_so_and_debug_shows_it(tmp: Path) -> None:
    line = one_error_line(rlhf("--data-dir", str(tmp / "d"), "status", launcher=BUGGY))
    assert line == (
        "Error: internal error (TypeError: boom in our own code); this is a bug: rerun with --debug for the traceback"
    )
    debug = rlhf("--debug", "--data-dir", str(tmp / "d"), "status", launcher=BUGGY)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr and "in broken" in debug.stderr


# --- the data folder -------------------------------------------------------------------------


def test_a_data_folder_below_a_file_is_refused(tmp: Path) -> None:
    afile = tmp / "afile"
    afile.write_text("not a folder\n")
    line = one_error_line(rlhf("--data-dir", str(afile / "sub"), "status"))
    assert line == (
        f"Error: the data folder {afile / 'sub'} cannot be created: {afile} is a file, not a folder; "
        "choose another data folder (--data-dir or RLHF_DATA_DIR)"
    )
    line = one_error_line(rlhf("status", env={"RLHF_DATA_DIR": str(afile)}))
    assert f"the data folder {afile} is a file, not a folder" in line
    assert afile.read_text() == "not a folder\n" and listing(tmp) == ["afile"]


WRITABLE_PROBE = (
    "import sys, pathlib\n"
    "folder = pathlib.Path(sys.argv[2])\n"
    "try:\n"
    "    (folder / 'probe').write_text('x')\n"
    "except PermissionError:\n"
    "    print(False)\n"
    "else:\n"
    "    print(True)\n"
)


def test_a_read_only_data_folder_is_refused(store: Path) -> None:
    before, files = digest(store / "rlhf.db"), listing(store)
    store.chmod(0o555)
    probe = rlhf("--data-dir", str(store), "status", unprivileged=True, launcher=WRITABLE_PROBE)
    assert probe.stdout.strip() == "False", probe.stderr  # the mechanism works: permissions apply
    line = one_error_line(rlhf("--data-dir", str(store), "status", unprivileged=True))
    assert line.startswith(f"Error: the data folder {store} is read-only for this user; make it writable")
    line = one_error_line(rlhf("--data-dir", str(store / "new"), "status", unprivileged=True))
    assert f"cannot create the data folder {store / 'new'}: {store} is read-only" in line
    store.chmod(0o755)
    assert digest(store / "rlhf.db") == before and listing(store) == files


def test_a_read_only_database_file_is_refused(store: Path) -> None:
    db = store / "rlhf.db"
    before, files = digest(db), listing(store)
    store.chmod(0o777)  # the folder is writable (also for nobody); the file is not
    db.chmod(0o444)
    line = one_error_line(rlhf("--data-dir", str(store), "status", unprivileged=True))
    assert line.startswith(f"Error: the database file {db} is read-only; make it writable")
    assert digest(db) == before and listing(store) == files


def test_sqlite_refusing_to_write_is_said_in_one_line(store: Path) -> None:
    # SQLite's own "attempt to write a readonly database", from a connection opened read-only
    db = store / "rlhf.db"
    before = digest(db)
    url = f"sqlite:///file:{db}?mode=ro&uri=true"
    pairs = store.parent / "pairs.jsonl"
    pairs.write_text(GOOD[0] + "\n")
    run = rlhf("--data-dir", str(store), "import", "--project", "chat", str(pairs), env={"RLHF_DATABASE_URL": url})
    line = one_error_line(run)
    assert "is read-only (SQLite: attempt to write a readonly database); make it writable" in line
    assert digest(db) == before


# --- the database URL and the database file --------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


URL_CASES = {
    "garbage": (
        f"not a url {SECRET}",
        "Error: RLHF_DATABASE_URL is not a database URL; use e.g. sqlite:////absolute/path/rlhf.db or "
        "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE",
    ),
    "unknown-dialect": (
        f"nosuchdb://user:{SECRET}@localhost/x",
        "Error: RLHF_DATABASE_URL names an unknown kind of database ('nosuchdb'); use e.g.",
    ),
    "memory": (
        "sqlite:///:memory:",
        "Error: RLHF_DATABASE_URL names an in-memory SQLite database, which would keep no label after the "
        "command ends; name a file",
    ),
    "psycopg2-missing": (
        f"postgresql+psycopg2://user:{SECRET}@127.0.0.1/rlhf",
        "Error: RLHF_DATABASE_URL asks for the PostgreSQL driver 'psycopg2', which is not installed (no module "
        "'psycopg2'): install the supported one with pip install 'rlhf-studio[postgres]' (psycopg 3)",
    ),
}


@pytest.mark.parametrize("case", list(URL_CASES))
def test_a_database_url_that_cannot_work_is_one_line_and_creates_nothing(tmp: Path, case: str) -> None:
    if case == "psycopg2-missing":
        assert subprocess.run([sys.executable, "-c", "import psycopg2"], capture_output=True).returncode != 0
    url, expected = URL_CASES[case]
    line = one_error_line(rlhf("--data-dir", str(tmp / "data"), "status", env={"RLHF_DATABASE_URL": url}))
    assert line.startswith(expected), line
    assert SECRET not in line
    assert listing(tmp) == []  # not even the data folder


PSYCOPG_ABSENT = (
    "import sys\n"
    "sys.modules['psycopg'] = None  # as if the postgres extra were not installed\n"
    "from app.cli import cli\n"
    "cli(sys.argv[1:], prog_name='rlhf')\n"
)


def test_postgresql_without_its_driver_says_which_extra_to_install(tmp: Path) -> None:
    url = f"postgresql://user:{SECRET}@127.0.0.1:5432/rlhf"  # plain postgresql:// means psycopg 3
    run = rlhf("--data-dir", str(tmp / "data"), "status", env={"RLHF_DATABASE_URL": url}, launcher=PSYCOPG_ABSENT)
    assert one_error_line(run) == (
        "Error: PostgreSQL needs its driver, psycopg, which is not installed: "
        "pip install 'rlhf-studio[postgres]' (psycopg 3)"
    )
    assert listing(tmp) == []


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "postgresql"])
def test_postgresql_without_a_server_says_where_it_looked(tmp: Path, scheme: str) -> None:
    import psycopg  # noqa: F401  (the driver is there; only the server is missing)

    port = _free_port()
    url = f"{scheme}://user:{SECRET}@127.0.0.1:{port}/rlhf"
    line = one_error_line(rlhf("--data-dir", str(tmp / "data"), "status", env={"RLHF_DATABASE_URL": url}))
    assert line == (
        f"Error: cannot connect to the database at 127.0.0.1:{port} (connection refused); "
        "start the server or fix RLHF_DATABASE_URL"
    )
    assert listing(tmp) == []


def test_a_file_that_is_not_a_database_stays_byte_identical(tmp: Path) -> None:
    data = tmp / "data"
    data.mkdir()
    db = data / "rlhf.db"
    db.write_bytes(b"my notes, not a database\n" * 200)
    before = digest(db)
    line = one_error_line(rlhf("--data-dir", str(data), "status"))
    assert line == (
        f"Error: {db} is not an SQLite database (SQLite: file is not a database); move the file away, or "
        "choose another data folder (--data-dir or RLHF_DATA_DIR) or RLHF_DATABASE_URL"
    )
    assert digest(db) == before and listing(data) == ["rlhf.db"]


def test_a_schema_newer_than_this_code_names_both_revisions(store: Path) -> None:
    db = store / "rlhf.db"
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    con.close()
    before = digest(db)
    line = one_error_line(rlhf("--data-dir", str(store), "status"))
    assert line == (
        "Error: the label store is at schema revision 9999_from_the_future, newer than this rlhf-studio "
        f"(newest known: {head_revision()}); upgrade rlhf-studio (pip install -U rlhf-studio)"
    )
    assert digest(db) == before


# --- import files ----------------------------------------------------------------------------

GOOD = [
    json.dumps({"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."}),
    json.dumps({"prompt": "2 + 2?", "chosen": "4", "rejected": "5"}),
]


@pytest.mark.parametrize(
    ("line3", "problem"),
    [
        (
            b'{"prompt": "deep", "chosen": ' + b"[" * 100_000 + b', "rejected": "x"}',
            "line 3 of pairs.jsonl: JSON nested too deeply",
        ),
        (
            b'{"prompt": "q", "chosen": "a\\ud800b", "rejected": "c"}',
            "line 3 of pairs.jsonl: field 'chosen' holds a lone surrogate ('\\ud800' at character 2)",
        ),
        (
            b'{"prompt": "q", "chosen": "a\xed\xa0\x80b", "rejected": "c"}',
            "line 3 of pairs.jsonl: not UTF-8 text (byte ",
        ),
        (  # SQLite would store it; PostgreSQL cannot: refused on both, with the line
            b'{"prompt": "q", "chosen": "a\\u0000b", "rejected": "c"}',
            "line 3 of pairs.jsonl: field 'chosen' holds a NUL character (U+0000 at character 2); remove it",
        ),
    ],
    ids=["nested-too-deeply", "lone-surrogate-escape", "invalid-utf8", "nul-character"],
)
def test_a_bad_line_of_an_import_file_is_named_and_nothing_is_imported(store: Path, line3: bytes, problem: str) -> None:
    first = store.parent / "first.jsonl"
    first.write_text(GOOD[0] + "\n")
    assert rlhf("--data-dir", str(store), "import", "--project", "chat", str(first)).returncode == 0
    db, before = store / "rlhf.db", counts(store)
    digest_before = digest(db)
    bad = store.parent / "pairs.jsonl"
    bad.write_bytes("\n".join(GOOD).encode() + b"\n" + line3 + b"\n")
    line = one_error_line(rlhf("--data-dir", str(store), "import", "--project", "chat", str(bad)))
    assert line.startswith("Error: pairs.jsonl: 1 problem, nothing imported; fix the file and import it again: ")
    assert problem in line
    assert digest(db) == digest_before and counts(store) == before


# --- export ----------------------------------------------------------------------------------

FORMULAS = [
    {"prompt": "=1+1", "chosen": "+SUM(A1:A9)", "rejected": "-2"},
    {"prompt": "@cmd", "chosen": "\tindented", "rejected": "\rreturn"},
    {"prompt": "plain?", "chosen": "a = b", "rejected": "x-y"},
]


@pytest.fixture
def text_store(store: Path) -> Path:
    """The store with a text project "chat" of three labeled pairs whose texts look like formulas."""
    source = store.parent / "formulas.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in FORMULAS))
    assert rlhf("--data-dir", str(store), "import", "--project", "chat", str(source)).returncode == 0
    return store


def _export(store: Path, out: Path, *more: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return rlhf("--data-dir", str(store), "export", "--project", "chat", "-o", str(out), *more, **kwargs)


def _device_node(folder: Path) -> Path:
    """A character device node like /dev/null (made here when we may; else /dev/null itself,
    which an unprivileged run could not replace anyway)."""
    node = folder / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        assert os.geteuid() != 0
        return Path("/dev/null")
    return node


def test_export_refuses_fifos_devices_and_folders_and_writes_nothing(text_store: Path) -> None:
    out = text_store.parent / "out"
    out.mkdir()
    fifo = out / "pipe.jsonl"
    os.mkfifo(fifo)
    line = one_error_line(_export(text_store, fifo))
    assert line == (
        f"Error: {fifo} is a named pipe (FIFO); export writes regular files only and never replaces anything "
        "else: choose a file path"
    )
    assert stat.S_ISFIFO(fifo.lstat().st_mode)

    node = _device_node(out)
    line = one_error_line(_export(text_store, node))
    assert line.startswith(f"Error: {node} is a character device; export writes regular files only")
    assert stat.S_ISCHR(node.lstat().st_mode)

    link = out / "to-null.jsonl"
    link.symlink_to(node)
    line = one_error_line(_export(text_store, link))
    assert f"{node} (the target of the symlink {link}) is a character device" in line
    assert link.is_symlink() and stat.S_ISCHR(node.lstat().st_mode)

    (out / "prefs.ties.jsonl").mkdir()  # the ties file cannot be written: neither file is
    line = one_error_line(_export(text_store, out / "prefs.jsonl"))
    assert f"{out / 'prefs.ties.jsonl'} is a folder" in line
    assert not (out / "prefs.jsonl").exists()

    line = one_error_line(_export(text_store, text_store / "rlhf.db"))
    assert "is the label store's database; choose another file" in line
    assert sorted(p.name for p in out.iterdir()) == ["null", "pipe.jsonl", "prefs.ties.jsonl", "to-null.jsonl"]


def test_export_writes_through_a_symlink_to_its_target(text_store: Path) -> None:
    out = text_store.parent / "out"
    out.mkdir()
    target = out / "real.jsonl"
    target.write_text("old\n")
    link = out / "link.jsonl"
    link.symlink_to(target.name)
    dangling = out / "dangling.jsonl"
    dangling.symlink_to("made-by-export.jsonl")
    for path in (link, dangling):
        result = _export(text_store, path)
        assert result.returncode == 0, result.stderr
        assert path.is_symlink()
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    # JSONL stays verbatim
    assert exported == [{**row, "annotator": "import", "adjudication": "none"} for row in FORMULAS]
    assert (out / "made-by-export.jsonl").read_text() == target.read_text()


def test_export_files_follow_the_umask_and_a_replaced_file_keeps_its_mode(text_store: Path) -> None:
    out = text_store.parent / "out"
    out.mkdir()
    result = _export(text_store, out / "new.csv", umask=0o027)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((out / "new.csv").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "new.ties.csv").stat().st_mode) == 0o640
    kept = out / "kept.jsonl"
    kept.write_text("old\n")
    kept.chmod(0o604)
    assert _export(text_store, kept, umask=0o077).returncode == 0
    assert stat.S_IMODE(kept.stat().st_mode) == 0o604 and kept.read_text() != "old\n"
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_csv_export_keeps_spreadsheets_from_running_formulas(text_store: Path) -> None:
    import csv

    out = text_store.parent / "prefs.csv"
    result = _export(text_store, out)
    assert result.returncode == 0, result.stderr
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    who = {"annotator": "import", "adjudication": "none"}
    assert sorted(rows, key=lambda r: r["prompt"]) == [
        {"prompt": "'=1+1", "chosen": "'+SUM(A1:A9)", "rejected": "'-2", **who},
        {"prompt": "'@cmd", "chosen": "'\tindented", "rejected": "'\rreturn", **who},
        {"prompt": "plain?", "chosen": "a = b", "rejected": "x-y", **who},
    ]


def test_an_import_file_that_is_not_a_regular_file_is_refused_without_waiting(store: Path) -> None:
    fifo = store.parent / "pairs.jsonl"
    os.mkfifo(fifo)  # reading it would wait forever for a writer
    line = one_error_line(rlhf("--data-dir", str(store), "import", "--project", "chat", str(fifo)))
    assert line.endswith(f"{fifo} is not a regular file; import reads CSV or JSON Lines files")
    assert counts(store) == []


def test_store_errors_carry_a_message_without_server_paths_for_the_app(tmp: Path) -> None:
    from db.engine import StoreAccessError, make_engine, sqlite_url

    db = tmp / "rlhf.db"
    db.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreAccessError) as caught:
        make_engine(sqlite_url(db))
    assert str(db) in str(caught.value)
    assert str(tmp) not in caught.value.public and "not an SQLite database" in caught.value.public


@pytest.mark.parametrize("tables", [["project"], ["notes", "people"]], ids=["clashing-table", "other-tables"])
def test_another_programs_sqlite_database_is_refused_and_left_alone(tmp: Path, tables: list[str]) -> None:
    db = tmp / "theirs.db"
    con = sqlite3.connect(db)
    for table in tables:
        con.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, text TEXT)")
        con.execute(f"INSERT INTO {table} (text) VALUES ('keep me')")
    con.commit()
    con.close()
    before = digest(db)
    line = one_error_line(rlhf("--data-dir", str(tmp / "data"), "status", env={"RLHF_DATABASE_URL": f"sqlite:///{db}"}))
    assert "holds tables of another program" in line and tables[0] in line and "choose another" in line
    assert digest(db) == before


@pytest.mark.parametrize(
    ("args", "status", "words"),
    [
        (("import", "--project", "t", "--seed", "-1", "x.jsonl"), 2, "-1 is not in the range x>=0"),
        (("app", "--port", "99999"), 2, "99999 is not in the range 1<=x<=65535"),
    ],
    ids=["negative-seed", "port-out-of-range"],
)
def test_out_of_range_numbers_are_usage_errors(tmp: Path, args: tuple[str, ...], status: int, words: str) -> None:
    (tmp / "x.jsonl").write_text('{"prompt": "p", "response_a": "a", "response_b": "b"}\n')
    line = one_error_line(rlhf("--data-dir", str(tmp / "data"), *args), status=status)
    assert words in line


def test_a_port_in_use_is_one_line_before_the_server_starts(store: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(rlhf("--data-dir", str(store), "app", "--host", "127.0.0.1", "--port", str(port)))
    assert line.startswith(f"Error: cannot listen on 127.0.0.1:{port} (") and "choose another --port" in line


def test_a_data_folder_in_an_unknown_home_is_one_line(tmp: Path) -> None:
    line = one_error_line(rlhf("--data-dir", "~no-such-user-rlhf/data", "status"))
    assert "the data folder ~no-such-user-rlhf/data cannot be found" in line


def test_a_classifier_csv_that_is_not_utf8_is_named(tmp: Path) -> None:
    csv_file = tmp / "latin1.csv"
    csv_file.write_bytes("text,label\ncaf\xe9 au lait,good\n".encode("latin-1"))
    line = one_error_line(rlhf("--data-dir", str(tmp / "data"), "train-classifier", "--data", str(csv_file)))
    assert f"{csv_file} is not UTF-8 text" in line and "save it as UTF-8" in line
