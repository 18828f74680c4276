"""A small CartPole project for the reward-model tests (built once per test module)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from app.config import Settings, Studio

PROJECT = "cp"
ENV_ID = "CartPole-v1"


def studio_for(data_dir: Path) -> Studio:
    return Studio(Settings.from_env(data_dir))


def build(data_dir: Path, *, n_segments: int = 40, n_queries: int = 120, oracle_labels: int = 0) -> Path:
    """Create project "cp" on CartPole in ``data_dir`` (clips rendered), optionally oracle-labeled."""
    from app.services.demo import create_demo_project
    from app.services.synthetic import label_synthetic

    studio = studio_for(data_dir)
    result = create_demo_project(studio, PROJECT, ENV_ID, n_segments=n_segments, n_queries=n_queries, workers=1)
    assert result.created
    if oracle_labels:
        done = label_synthetic(studio, PROJECT, "oracle", oracle_labels)
        assert done.labeled == oracle_labels
    studio.engine.dispose()
    return data_dir


def copy(template: Path, dest: Path) -> Path:
    """A private copy of a built data folder (tests that write get one)."""
    shutil.copytree(template, dest)
    return dest


def rows(data_dir: Path, sql: str, *args: object) -> list[tuple]:
    """Rows of a read-only SQL query against the data folder's database."""
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
