"""A small CartPole project for the reward-model tests (built once per test module).

A data folder's label store is the SQLite file in it, or, for a copy made by `on_postgres`,
a database on the tests' PostgreSQL server, named in the folder's ``store-url.txt`` (a test
convention: the studio itself takes the URL from ``RLHF_DATABASE_URL``, which `env` sets for
the subprocesses a test starts)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from app.config import DATA_DIR_ENV, DATABASE_URL_ENV, Settings, Studio

PROJECT = "cp"
ENV_ID = "CartPole-v1"
STORE_URL_FILE = "store-url.txt"


def store_url(data_dir: Path) -> str | None:
    """The PostgreSQL URL of the folder's store, or None where it is the folder's SQLite file."""
    marker = Path(data_dir) / STORE_URL_FILE
    return marker.read_text().strip() if marker.exists() else None


def studio_for(data_dir: Path) -> Studio:
    return Studio(Settings.from_env(data_dir, database_url=store_url(data_dir)))


def env(data_dir: Path) -> dict[str, str]:
    """This process's environment, pointed at the data folder and its store (for `rlhf` and workers)."""
    out = {**os.environ, DATA_DIR_ENV: str(data_dir)}
    out.pop(DATABASE_URL_ENV, None)
    url = store_url(data_dir)
    if url is not None:
        out[DATABASE_URL_ENV] = url
    return out


def build(
    data_dir: Path,
    *,
    n_segments: int = 40,
    n_queries: int = 120,
    oracle_labels: int = 0,
    clips: bool = False,
) -> Path:
    """Create project "cp" on CartPole in ``data_dir`` (SQLite), optionally oracle-labeled. The pairs' clips
    are rendered when first shown, as after a deleted clip file (three quarters of the time
    to build a project went into rendering them ahead), unless ``clips``."""
    from app.services.demo import create_demo_project
    from app.services.synthetic import label_synthetic

    studio = studio_for(data_dir)
    result = create_demo_project(
        studio, PROJECT, ENV_ID, n_segments=n_segments, n_queries=n_queries, workers=1, render_clips=clips
    )
    assert result.created
    if oracle_labels:
        done = label_synthetic(studio, PROJECT, "oracle", oracle_labels)
        assert done.labeled == oracle_labels
    studio.engine.dispose()
    return data_dir


def copy(template: Path, dest: Path) -> Path:
    """A private copy of a built data folder (tests that write get one), its store copied too."""
    shutil.copytree(template, dest)
    url = store_url(template)
    if url is not None:
        from tests import postgres

        (dest / STORE_URL_FILE).write_text(postgres.copy_database(url))
    return dest


def on_postgres(template: Path, dest: Path, database_url: str) -> Path:
    """A copy of a data folder built on SQLite whose store is the empty PostgreSQL database
    ``database_url``, holding the same rows (ids included), so a module's PostgreSQL runs need
    not render and label their project a second time."""
    from sqlalchemy import delete, func, insert, select, text

    from db.engine import make_engine, sqlite_url
    from db.models import Base

    if store_url(template) is not None:
        raise ValueError(f"{template} is not a SQLite data folder")
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns("rlhf.db", "rlhf.db-*"))
    (dest / STORE_URL_FILE).write_text(database_url)
    source, target = make_engine(sqlite_url(template / "rlhf.db")), make_engine(database_url)  # target: migrated
    try:
        tables = Base.metadata.sorted_tables
        with source.connect() as src, target.begin() as dst:
            for table in reversed(tables):  # rows the schema's migrations may have seeded
                dst.execute(delete(table))
            for table in tables:
                rows = [dict(r._mapping) for r in src.execute(select(table))]
                if rows:
                    dst.execute(insert(table), rows)
            quote = dst.dialect.identifier_preparer.quote
            for table in tables:
                if "id" in table.c and table.c.id.primary_key:
                    top = dst.execute(select(func.max(table.c.id))).scalar()
                    if top is not None:  # the next id after the copied ones
                        dst.execute(
                            text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :top)"),
                            {"t": quote(table.name), "top": top},
                        )
    finally:
        source.dispose()
        target.dispose()
    return dest


def rows(data_dir: Path, sql: str, *args: object) -> list[tuple]:
    """Rows of a read-only SQL query (``?`` placeholders) against the data folder's store.
    JSON columns come back as text from either store."""
    url = store_url(data_dir)
    if url is not None:
        from tests import postgres

        return postgres.rows(url, sql, *args)
    con = sqlite3.connect(data_dir / "rlhf.db")
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def model_folders(data_dir: Path) -> list[str]:
    """Every folder under <data>/models, relative to the data folder."""
    root = data_dir / "models"
    if not root.exists():
        return []
    return sorted(p.relative_to(data_dir).as_posix() for p in root.glob("*/*"))
