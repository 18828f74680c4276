"""The label store: migrations, SQLite settings, constraints."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from db.engine import current_revision, head_revision, make_engine, session_scope, sqlite_url
from db.models import Annotator, Choice, Item, Label, Project, ProjectKind, Query


@pytest.fixture
def engine(tmp_path):
    return make_engine(sqlite_url(tmp_path / "store.db"))


def _project_with_query(session) -> tuple[Project, Query, Annotator]:
    project = Project(name="p", kind=ProjectKind.trajectory, env_id="CartPole-v1")
    session.add(project)
    session.flush()
    a, b = Item(project_id=project.id, start=0, length=5), Item(project_id=project.id, start=5, length=5)
    session.add_all([a, b])
    session.flush()
    query = Query(project_id=project.id, item_a_id=a.id, item_b_id=b.id)
    annotator = Annotator(name="ann")
    session.add_all([query, annotator])
    session.flush()
    return project, query, annotator


def test_migrations_create_every_table_at_head(engine):
    tables = set(inspect(engine).get_table_names())
    assert {"project", "annotator", "trajectory", "item", "query", "claim", "label", "alembic_version"} <= tables
    assert current_revision(engine) == head_revision() is not None


def test_migrating_twice_is_a_no_op(tmp_path):
    url = sqlite_url(tmp_path / "twice.db")
    engine = make_engine(url)
    with session_scope(engine, write=True) as session:
        session.add(Annotator(name="kept"))
    from db import engine as engine_module

    engine_module._migrated.clear()  # force a second real upgrade in this process
    again = make_engine(url)
    with session_scope(again) as session:
        assert session.scalar(text("SELECT count(*) FROM annotator")) == 1
    assert current_revision(again) == head_revision()


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_busy_timeout(engine):
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_one_label_per_query_and_annotator(engine):
    with pytest.raises(IntegrityError, match="UNIQUE"), session_scope(engine, write=True) as session:
        _, query, annotator = _project_with_query(session)
        session.add(Label(query_id=query.id, annotator_id=annotator.id, choice=Choice.left, pref=1.0, swapped=False))
        session.flush()
        session.add(Label(query_id=query.id, annotator_id=annotator.id, choice=Choice.right, pref=0.0, swapped=False))


def test_foreign_keys_are_enforced(engine):
    with pytest.raises(IntegrityError, match="FOREIGN KEY"), session_scope(engine, write=True) as session:
        session.add(Label(query_id=999, annotator_id=999, choice=Choice.left, pref=1.0, swapped=False))


def test_pref_must_be_a_preference_probability(engine):
    with pytest.raises(IntegrityError, match="pref_values"), session_scope(engine, write=True) as session:
        _, query, annotator = _project_with_query(session)
        session.add(Label(query_id=query.id, annotator_id=annotator.id, choice=Choice.left, pref=0.7, swapped=False))


def test_query_pairs_are_ordered_and_unique(engine):
    with pytest.raises(IntegrityError, match="ordered_pair"), session_scope(engine, write=True) as session:
        project, query, _ = _project_with_query(session)
        session.add(Query(project_id=project.id, item_a_id=query.item_b_id, item_b_id=query.item_a_id))


def test_failed_unit_of_work_leaves_the_store_as_it_was(engine):
    with pytest.raises(RuntimeError), session_scope(engine, write=True) as session:
        session.add(Annotator(name="ghost"))
        session.flush()
        raise RuntimeError("boom")
    with session_scope(engine) as session:
        assert session.scalar(text("SELECT count(*) FROM annotator")) == 0


def test_migrations_at_head_match_the_models(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from db.models import Base

    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_the_answered_count_of_a_query_follows_its_labels(engine):
    with session_scope(engine, write=True) as session:
        _project, query, annotator = _project_with_query(session)
        other = Annotator(name="other")
        session.add(other)
        session.flush()
        session.add(Label(query_id=query.id, annotator_id=annotator.id, choice=Choice.left, pref=1.0, swapped=False))
        session.add(Label(query_id=query.id, annotator_id=other.id, choice=Choice.skip, pref=None, swapped=False))
        session.flush()
        session.refresh(query)
        assert query.answered == 1  # a skip is no answer
        session.delete(session.scalars(select(Label).where(Label.annotator_id == annotator.id)).one())
        session.flush()
        session.refresh(query)
        assert query.answered == 0


def test_the_teams_migration_downgrades_and_upgrades_again_keeping_labels(tmp_path):
    from alembic import command

    from db.engine import _alembic_config

    url = sqlite_url(tmp_path / "down.db")
    engine = make_engine(url)
    with session_scope(engine, write=True) as session:
        _project, query, annotator = _project_with_query(session)
        session.add(Label(query_id=query.id, annotator_id=annotator.id, choice=Choice.left, pref=1.0, swapped=False))
    cfg = _alembic_config()
    with engine.connect() as conn:
        # batch mode copies tables: foreign keys off outside the transaction, as upgrade() does
        conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")
        with conn.begin():
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
            assert "membership" not in inspect(conn).get_table_names()
            command.upgrade(cfg, "head")
    with session_scope(engine) as session:
        assert session.scalar(text("SELECT answered FROM query")) == 1  # recounted from the labels
        assert session.scalar(text("SELECT answer_count FROM project")) == 1
        assert session.scalar(text("SELECT count(*) FROM label")) == 1
