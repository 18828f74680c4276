"""Shared fixtures: small demo projects in temporary data folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings, Studio

DEMO_ENV = "MiniGrid-Empty-Random-6x6-v0"


def make_demo(data_dir: Path, *, n_segments: int, n_queries: int, name: str = "demo") -> Path:
    """Create project ``name`` in ``data_dir`` and return the data folder."""
    from app.services.demo import create_demo_project

    studio = Studio(Settings.from_env(data_dir))
    result = create_demo_project(studio, name, DEMO_ENV, n_segments=n_segments, n_queries=n_queries, workers=1)
    assert result.created
    studio.engine.dispose()
    return data_dir


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with project "demo" (12 items, 10 queries), shared: do not label in it."""
    return make_demo(tmp_path_factory.mktemp("demo-data"), n_segments=12, n_queries=10)


@pytest.fixture
def fresh_demo(tmp_path: Path) -> Path:
    """A data folder of its own with project "demo" (6 items, 5 queries), for tests that label."""
    return make_demo(tmp_path / "data", n_segments=6, n_queries=5)


@pytest.fixture
def studio_env(monkeypatch: pytest.MonkeyPatch):
    """Point the app at a data folder through the environment, as ``rlhf app`` does."""

    def point(data_dir: Path) -> Path:
        monkeypatch.setenv("RLHF_DATA_DIR", str(data_dir))
        monkeypatch.delenv("RLHF_DATABASE_URL", raising=False)
        return data_dir

    return point


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throw-away PostgreSQL server for the session (see tests/postgres.py)."""
    from tests import postgres

    cluster = postgres.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty label store, once on a SQLite file and once on a PostgreSQL server
    (`make test` runs both; `make test-fast` SQLite only)."""
    from db.engine import sqlite_url

    if request.param == "sqlite":
        folder = tmp_path / "sqlite-store"  # its own folder: a test may list the files it wrote in tmp_path
        folder.mkdir()
        return sqlite_url(folder / "store.db")
    return request.getfixturevalue("postgres_cluster").new_database()
