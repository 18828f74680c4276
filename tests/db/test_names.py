"""One rule for project and annotator names (db.names), enforced on every write path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from db import names, repo
from db.engine import session_scope
from db.errors import InvalidNameError
from db.models import Annotator, Project, ProjectKind

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "cannot be empty"),
        (" \t ", "cannot be empty"),
        ("x" * 101, "at most 100 characters, got 101"),
        ("a\x00b", "U+0000 at character 2"),
        ("line\nbreak", "U+000A at character 5"),
        ("right\u202eleft", "U+202E at character 6"),
        ("zero\u200bwidth", "U+200B at character 5"),
        ("\ud800", "U+D800 at character 1"),
        (None, "must be text"),
    ],
    ids=["empty", "blank", "too-long", "nul", "newline", "bidi-override", "zero-width", "lone-surrogate", "none"],
)
def test_bad_names_are_refused_with_the_rule_they_break(name: object, problem: str) -> None:
    for check in (names.project_name, names.annotator_name):
        with pytest.raises(InvalidNameError) as caught:
            check(name)
        assert problem in str(caught.value)
        assert isinstance(caught.value, ValueError)  # callers that catch ValueError still do


def test_good_names_are_stripped_and_nfc_normalised() -> None:
    decomposed = "Zoe\u0308 & co. <team> ![x](y)"  # markup is allowed: names are shown as text
    assert names.project_name(f"  {decomposed}  ") == "Zoë & co. <team> ![x](y)"
    assert names.annotator_name("x" * 100) == "x" * 100
    assert names.annotator_name("日本語の名前") == "日本語の名前"


@pytest.mark.parametrize("name", ["import", "IMPORT", "teacher:oracle", "Teacher:anything"])
def test_the_studios_own_annotator_names_are_reserved_for_it(name: str) -> None:
    with pytest.raises(InvalidNameError, match="reserved"):
        names.annotator_name(name)
    assert names.annotator_name(name, reserved_ok=True) == name


def test_every_write_path_applies_the_rule(store) -> None:
    with session_scope(store, write=True) as session:
        with pytest.raises(InvalidNameError):
            session.add(Project(name="", kind=ProjectKind.text))
        with pytest.raises(InvalidNameError):
            session.add(Annotator(name="a\x07"))
        with pytest.raises(InvalidNameError, match="reserved"):
            repo.get_or_create_annotator(session, "teacher:oracle")
        assert repo.get_or_create_annotator(session, "teacher:oracle", role="teacher").name == "teacher:oracle"
        assert repo.get_or_create_annotator(session, "  alice ").name == "alice"
        with pytest.raises(InvalidNameError, match="at most 100"):
            repo.get_project(session, "p" * 10_000)
    with session_scope(store) as session:
        assert [a.name for a in session.query(Annotator).order_by(Annotator.id)] == ["teacher:oracle", "alice"]
        assert session.query(Project).count() == 0


@pytest.mark.slow  # runs the CLI in new processes
@pytest.mark.parametrize(
    ("name", "problem"),
    [("", "cannot be empty"), ("p" * 10_000, "at most 100 characters"), ("a\x1bb", "U+001B")],
    ids=["empty", "10000-chars", "escape"],
)
def test_rlhf_demo_refuses_a_bad_project_name_in_one_line_and_creates_nothing(
    tmp_path: Path, name: str, problem: str
) -> None:
    data = tmp_path / "data"
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "--data-dir", str(data), "demo", "--project", name, "--segments", "4"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    assert not (data / "projects").exists()  # no rollouts, no clips


def test_names_stored_before_the_rule_stay_reachable_under_their_own_name(store) -> None:
    with session_scope(store, write=True) as session:
        session.add(Project(name="demo", kind=ProjectKind.text))
    from sqlalchemy import text

    with store.begin() as con:  # plain SQL, as an older version stored them: not stripped
        con.execute(text("INSERT INTO project (name, kind, config, guidelines, labels_per_query, created_at) "
                         "VALUES ('demo ', 'text', '{}', '', 1, '2026-01-01')"))  # fmt: skip
        con.execute(text("INSERT INTO annotator (name, role, created_at) VALUES ('bob ', 'annotator', '2026-01-01')"))
    with session_scope(store, write=True) as session:
        legacy, plain = repo.get_project(session, "demo "), repo.get_project(session, "demo")
        assert (legacy.name, plain.name) == ("demo ", "demo") and legacy.id != plain.id
        assert repo.get_or_create_annotator(session, "bob ").name == "bob "  # the old annotator, not a new one
        assert session.query(Annotator).count() == 1
