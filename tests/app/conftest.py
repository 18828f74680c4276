"""Fixtures of the app tests."""

from __future__ import annotations

import pytest

from app.services import labeling


@pytest.fixture
def instant_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTest clicks as soon as a pair is served; a person cannot. Tests that are not about
    the minimum viewing time turn it off (the page runs in this process, so the patch holds)."""
    monkeypatch.setattr(labeling, "MIN_VIEW_SECONDS", 0.0)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def template_store(request: pytest.FixtureRequest) -> str | None:
    """Where a module's template data folder keeps its label store: None for the folder's SQLite
    file, else an empty database on the tests' PostgreSQL server (`_cartpole.on_postgres` fills
    it; copies of the folder get copies of it). Modules that take it run every test on both
    stores (`make test`; `make test-fast` SQLite only)."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_cluster").new_database()
