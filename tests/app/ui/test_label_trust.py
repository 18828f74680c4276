"""The labeling page stores exactly what a person saw and said (AppTest, real label store):
no answer counts before its pair could be looked at, a second tab never hears "Saved" for an
answer that was not stored, and names from the URL are shown as text."""

from __future__ import annotations

import re
import sqlite3
import string
import time
from pathlib import Path

import pytest
from _labeling import answer_button
from _markdown import shown
from streamlit.testing.v1 import AppTest

from app.services import labeling
from app.services.labeling import Pair

LABEL = Path(__file__).resolve().parents[3] / "app" / "ui" / "views" / "label.py"
MAIN = LABEL.parents[1] / "main.py"
TIMEOUT = 30


def _labels(data_dir: Path) -> list[tuple]:
    con = sqlite3.connect(data_dir / "rlhf.db")
    try:
        return con.execute(
            "SELECT label.query_id, annotator.name, label.choice, label.shown_at, label.answered_at FROM label "
            "JOIN annotator ON annotator.id = label.annotator_id ORDER BY label.id"
        ).fetchall()
    finally:
        con.close()


def _open(*, annotator: str = "tester", url: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(LABEL), default_timeout=TIMEOUT)
    if url is None:
        at.session_state["project"] = "demo"
        at.session_state["annotator"] = annotator
    else:
        at.query_params.update(url)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _pair(at: AppTest) -> Pair:
    pair = at.session_state["pair"]
    assert isinstance(pair, Pair)
    return pair


def _all_messages(at: AppTest) -> list[str]:
    return [shown(str(e.value)) for e in [*at.caption, *at.success, *at.warning, *at.error, *at.toast]]


def test_an_answer_sooner_than_the_minimum_viewing_time_is_refused_and_stores_nothing(
    fresh_demo: Path, studio_env
) -> None:
    studio_env(fresh_demo)
    assert labeling.MIN_VIEW_SECONDS == 0.5
    at = _open()
    first = _pair(at)

    answer_button(at, "left").click().run()  # at once: a press nobody can have meant for this pair

    assert _labels(fresh_demo) == []
    assert _pair(at).query_id == first.query_id  # the same pair stays on screen
    [warning] = at.warning
    assert shown(warning.value).startswith("Not stored: that answer came ")
    assert "too soon" in warning.value
    assert not any("Saved" in m for m in _all_messages(at))

    time.sleep(labeling.MIN_VIEW_SECONDS)
    answer_button(at, "left").click().run()
    [(query_id, _, choice, shown_at, answered_at)] = _labels(fresh_demo)
    assert (query_id, choice) == (first.query_id, "left")
    assert any(m.startswith("Saved: left better") for m in _all_messages(at))
    # the viewing time is recorded with the label, and it is at least the minimum
    seconds = (_parse(answered_at) - _parse(shown_at)).total_seconds()
    assert labeling.MIN_VIEW_SECONDS <= seconds < 30


def _parse(value: str):
    from datetime import datetime

    return datetime.fromisoformat(value)


@pytest.mark.usefixtures("instant_answers")
def test_two_tabs_of_one_annotator_store_one_answer_and_the_second_is_told(fresh_demo: Path, studio_env) -> None:
    studio_env(fresh_demo)
    tab1, tab2 = _open(), _open()
    pair = _pair(tab1)
    assert _pair(tab2).query_id == pair.query_id  # the annotator's live claim: the same pair in both

    answer_button(tab1, "left").click().run()
    assert any(m.startswith("Saved: left better") for m in _all_messages(tab1))
    answer_button(tab2, "right").click().run()
    assert not tab2.exception

    labels = _labels(fresh_demo)
    assert [(q, choice) for q, _, choice, _, _ in labels] == [(pair.query_id, "left")]
    messages = _all_messages(tab2)
    assert not any("Saved" in m for m in messages), messages
    [warning] = tab2.warning
    text = shown(warning.value)
    assert text.startswith(f"Not stored: you had already answered pair #{pair.query_id} (left better")
    assert "another tab" in text
    assert _pair(tab2).query_id != pair.query_id  # and it goes on with the next pair


def test_a_double_press_of_undo_undoes_one_label_and_a_quick_correction_counts(fresh_demo: Path, studio_env) -> None:
    studio_env(fresh_demo)
    at = _open()
    answered = []
    for _ in range(2):
        time.sleep(labeling.MIN_VIEW_SECONDS)
        answered.append(_pair(at).query_id)
        answer_button(at, "left").click().run()
    assert [q for q, *_ in _labels(fresh_demo)] == answered

    time.sleep(labeling.MIN_VIEW_SECONDS)
    answer_button(at, "undo").click().run()  # undo the second label: its pair comes back
    assert [q for q, *_ in _labels(fresh_demo)] == answered[:1]
    assert _pair(at).query_id == answered[1]
    answer_button(at, "undo").click().run()  # the second press of a double press: refused
    assert not at.exception
    assert [q for q, *_ in _labels(fresh_demo)] == answered[:1]
    assert any(shown(w.value).startswith("Not undone") for w in at.warning)

    answer_button(at, "right").click().run()  # a correction at once: the pair was watched before
    assert [(q, c) for q, _, c, _, _ in _labels(fresh_demo)] == [(answered[0], "left"), (answered[1], "right")]


@pytest.mark.usefixtures("instant_answers")
def test_a_store_that_fails_is_said_on_the_page_and_nothing_is_acknowledged(
    fresh_demo: Path, studio_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from db import repo
    from db.engine import StoreAccessError

    studio_env(fresh_demo)
    at = _open()
    pair = _pair(at)

    def read_only(*args, **kwargs):
        raise StoreAccessError(
            f"the database {fresh_demo}/rlhf.db is read-only; make it writable", public="the label store is read-only"
        )

    monkeypatch.setattr(repo, "record_label", read_only)
    answer_button(at, "left").click().run()
    assert not at.exception
    assert _labels(fresh_demo) == [] and _pair(at).query_id == pair.query_id
    messages = _all_messages(at)
    assert "Not stored: the label store is read-only" in messages
    assert not any("Saved" in m or str(fresh_demo) in m for m in messages)


MARKUP_NAME = "![p](http://127.0.0.1:9/x.png) **bold** <b>b</b> :red[x] :smile: $x^2$"


def test_names_from_the_url_are_shown_as_text(fresh_demo: Path, studio_env) -> None:
    studio_env(fresh_demo)
    at = _open(url={"project": "demo", "annotator": MARKUP_NAME})
    [header] = at.subheader
    assert shown(header.value) == f"demo · labeling as {MARKUP_NAME}"
    _assert_inert(header.value)


def _assert_inert(markdown: str) -> None:
    """Nothing in ``markdown`` that Markdown or Streamlit interprets: every ASCII punctuation
    character is backslash-escaped, and no colon is followed by a word (``:smile:``, ``:red[``)."""
    bare = re.sub(r"\\[" + re.escape(string.punctuation) + "]", "", markdown)
    assert not set(bare) & set(string.punctuation), bare
    assert not re.search(r":(\\)?[\w+-]", markdown), markdown


@pytest.mark.parametrize(
    ("annotator", "problem"),
    [
        ("   ", "cannot be empty"),
        ("x" * 101, "at most 100 characters"),
        ("bob\u202eevil", "control or invisible characters"),
        ("teacher:oracle", "reserved"),
        ("Import", "reserved"),
    ],
    ids=["blank", "too-long", "bidi-override", "teacher", "import"],
)
def test_an_unusable_annotator_in_the_url_is_explained_and_the_name_asked_again(
    fresh_demo: Path, studio_env, annotator: str, problem: str
) -> None:
    studio_env(fresh_demo)
    at = _open(url={"project": "demo", "annotator": annotator})
    [error] = at.error
    assert problem in shown(error.value)
    assert shown(error.value).startswith("The name in the address cannot be used")
    assert at.text_input[0].label.startswith("Your name")
    assert "pair" not in at.session_state and _labels(fresh_demo) == []

    at.text_input[0].input("carol").run()  # a good name lets the person go on
    assert not at.exception
    assert at.session_state["annotator"] == "carol"
    assert _pair(at) is not None


def test_a_project_name_from_the_url_that_is_too_long_is_a_message(fresh_demo: Path, studio_env) -> None:
    studio_env(fresh_demo)
    at = AppTest.from_file(str(MAIN), default_timeout=TIMEOUT)  # the whole app, for its Projects link
    at.query_params.update({"project": "p" * 10_000, "annotator": "alice"})
    at.switch_page("views/label.py").run()
    assert not at.exception, [e.value for e in at.exception]
    [error] = at.error
    assert "at most 100 characters" in shown(error.value)
    assert len(at.subheader) == 0 and _labels(fresh_demo) == []


def test_the_projects_page_refuses_a_reserved_name_and_shows_names_as_text(demo_data_dir: Path, studio_env) -> None:
    studio_env(demo_data_dir)
    at = AppTest.from_file(str(MAIN), default_timeout=TIMEOUT)  # the projects page, in the whole app
    at.run()
    at.text_input(key="annotator_name_input").input("teacher:oracle").run()
    assert not at.exception
    assert "annotator" not in at.session_state or not at.session_state["annotator"]
    assert any("reserved" in shown(e.value) for e in at.error)

    at.text_input(key="annotator_name_input").input(MARKUP_NAME).run()
    assert at.session_state["annotator"] == MARKUP_NAME
    [link] = at.page_link
    label = link.proto.label
    prefix = "Start labeling **demo** as **"
    assert label.startswith(prefix) and label.endswith("**")
    name = label[len(prefix) : -2]
    assert shown(name) == MARKUP_NAME
    _assert_inert(name)
