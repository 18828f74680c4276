"""Fixtures of the label-store tests: an empty store, and projects with pairs but no files."""

from __future__ import annotations

import itertools

import pytest

from db.engine import make_engine, session_scope
from db.models import Item, Project, ProjectKind, Query


def seed_project(engine, *, n_items: int = 10, n_queries: int = 20, labels_per_query: int = 1, name: str = "p") -> int:
    """A trajectory project whose queries pair items; returns the project id."""
    with session_scope(engine, write=True) as session:
        project = Project(
            name=name, kind=ProjectKind.trajectory, env_id="CartPole-v1", labels_per_query=labels_per_query
        )
        session.add(project)
        session.flush()
        items = [Item(project_id=project.id, start=i, length=5, true_return=float(i)) for i in range(n_items)]
        session.add_all(items)
        session.flush()
        pairs = list(itertools.islice(itertools.combinations(items, 2), n_queries))
        assert len(pairs) == n_queries, "not enough items for that many pairs"
        session.add_all(Query(project_id=project.id, item_a_id=a.id, item_b_id=b.id) for a, b in pairs)
        return project.id


@pytest.fixture
def db_url(database_url):
    """Every store test runs on SQLite and on PostgreSQL (tests/conftest.py)."""
    return database_url


@pytest.fixture
def store(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()
