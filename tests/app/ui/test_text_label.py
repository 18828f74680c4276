"""AppTest tests of text projects in the app: the labeling page shows raw text, answers and undo
store labels, and the projects page imports files of text pairs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from _labeling import answer_button, answer_keys
from _markdown import shown
from streamlit.testing.v1 import AppTest

from app.config import Settings, Studio
from app.services.labeling import Pair
from app.services.text_data import import_text_pairs

UI = Path(__file__).resolve().parents[3] / "app" / "ui"
LABEL = UI / "views" / "label.py"
HOME = UI / "views" / "home.py"
TIMEOUT = 30
pytestmark = pytest.mark.usefixtures("instant_answers")
SCRIPT = "<b>bold</b><script>alert(1)</script>"
PAIRS = [
    {"prompt": "# How do I make text *bold* on a web page?", "response_a": SCRIPT, "response_b": "Use **strong**."},
    {"prompt": "2 + 2?", "response_a": "4", "response_b": "5"},
    {"prompt": "Capital of Peru?", "response_a": "Lima.", "response_b": "Cusco.\n" * 80},
]


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture
def text_project(tmp_path: Path, studio_env) -> Path:
    """A data folder with text project "chat" of three pairs, pointed at by the environment."""
    data_dir = studio_env(tmp_path / "data")
    studio = Studio(Settings.from_env(data_dir))
    import_text_pairs(studio, "chat", _jsonl(PAIRS), "pairs.jsonl")
    studio.engine.dispose()
    return data_dir


def _query(data_dir: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(data_dir / "rlhf.db")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _labels(data_dir: Path) -> list[tuple]:
    """Every label row: (query_id, annotator, choice, pref, swapped)."""
    return _query(
        data_dir,
        "SELECT label.query_id, annotator.name, label.choice, label.pref, label.swapped "
        "FROM label JOIN annotator ON annotator.id = label.annotator_id ORDER BY label.id",
    )


def _seed_for_first(query_swapped: bool) -> int:
    """A seed whose generator shows the first pair swapped (or not)."""
    return next(s for s in range(100) if (np.random.default_rng(s).random() < 0.5) == query_swapped)


def _open(*, rng_seed: int | None = None) -> AppTest:
    at = AppTest.from_file(str(LABEL), default_timeout=TIMEOUT)
    at.session_state["project"] = "chat"
    at.session_state["annotator"] = "tester"
    if rng_seed is not None:
        at.session_state["rng"] = np.random.default_rng(rng_seed)
    at.run()
    _no_exception(at)
    return at


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _pair(at: AppTest) -> Pair:
    pair = at.session_state["pair"]
    assert isinstance(pair, Pair)
    assert pair.texts is not None and pair.clip is None
    assert at.caption[-1].value == f"pair #{pair.query_id}"
    return pair


def _texts_shown(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


def _rendered(at: AppTest) -> list[str]:
    """Everything shown through Markdown or HTML (where markup would be rendered), except the
    page's own key-repeat script (a constant; ``test_browser`` checks what it does)."""
    elements = [*at.markdown, *at.caption, *at.get("html"), *at.success, *at.info, *at.error, *at.toast]
    shown = [str(getattr(e, "value", getattr(e, "proto", ""))) for e in elements]
    return [r for r in shown if "rlhfNoKeyRepeat" not in r]


def test_html_and_markdown_in_a_pair_are_shown_as_text(text_project: Path) -> None:
    at = _open()
    # serve pairs until the one with HTML is on screen (skipping the others)
    for _ in range(len(PAIRS)):
        pair = _pair(at)
        if pair.texts.prompt == PAIRS[0]["prompt"]:
            break
        answer_button(at, "skip").click().run()
        _no_exception(at)
    else:
        pytest.fail("the pair with HTML was never served")

    shown = _texts_shown(at)
    assert shown[0] == PAIRS[0]["prompt"]  # the prompt first, then left and right
    assert sorted(shown[1:3]) == sorted([SCRIPT, "Use **strong**."])
    assert shown[1:3] == [pair.texts.left, pair.texts.right]
    assert not any("<script>" in r or "alert(1)" in r for r in _rendered(at))
    assert not any("**strong**" in r or "*bold*" in r for r in _rendered(at))
    assert len(at.image) == 0 and len(at.toggle) == 0  # no clip, no reward-chart toggle
    assert len(at.error) == 0
    assert not any(at.button(key=k).disabled for k in answer_keys(at, ("left", "right", "equal")))
    shortcuts = {b.key: b.proto.shortcut for b in at.button}
    keys = answer_keys(at, ("left", "right", "equal", "cant_tell", "skip", "undo"))
    assert [shortcuts[k].upper() for k in keys] == ["1", "2", "3", "4", "S", "U"]


@pytest.mark.parametrize("swapped", [False, True], ids=["in-order", "swapped"])
def test_an_answer_stores_the_preference_of_item_a(text_project: Path, swapped: bool) -> None:
    at = _open(rng_seed=_seed_for_first(swapped))
    first = _pair(at)
    assert first.swapped is swapped
    [(item_a, item_b)] = _query(text_project, f"SELECT item_a_id, item_b_id FROM query WHERE id = {first.query_id}")
    assert (first.left_item_id, first.right_item_id) == ((item_b, item_a) if swapped else (item_a, item_b))
    [(left_text,)] = _query(text_project, f"SELECT text FROM item WHERE id = {first.left_item_id}")
    assert first.texts.left == left_text

    answer_button(at, "left").click().run()
    _no_exception(at)

    # committed before the page acknowledges it
    assert _labels(text_project) == [(first.query_id, "tester", "left", 0.0 if swapped else 1.0, int(swapped))]
    assert any("Saved: left better" in c.value for c in at.caption)
    second = _pair(at)
    assert second.query_id != first.query_id
    assert "1 of 3 pairs labeled" in at.get("progress")[0].proto.text

    answer_button(at, "equal").click().run()
    _no_exception(at)
    assert _labels(text_project)[-1][2:4] == ("equal", 0.5)


def test_undo_brings_the_pair_back_in_the_same_order(text_project: Path) -> None:
    at = _open()
    first = _pair(at)
    answer_button(at, "right").click().run()
    _no_exception(at)
    assert len(_labels(text_project)) == 1

    answer_button(at, "undo").click().run()
    _no_exception(at)

    assert _labels(text_project) == []
    back = _pair(at)
    assert (back.query_id, back.swapped, back.texts) == (first.query_id, first.swapped, first.texts)
    assert any("Undone" in c.value for c in at.caption)


def test_after_the_last_pair_the_page_says_so(text_project: Path) -> None:
    at = _open()
    for _ in PAIRS:
        _pair(at)
        answer_button(at, "cant_tell").click().run()
        _no_exception(at)
    assert "pair" not in at.session_state
    assert any("Nothing left to label" in s.value for s in at.success)
    assert [row[2:4] for row in _labels(text_project)] == [("cant_tell", None)] * 3


# --- the projects page imports -----------------------------------------------------------------


def _home() -> AppTest:
    at = AppTest.from_file(str(HOME), default_timeout=TIMEOUT)
    at.run()
    _no_exception(at)
    return at


def test_projects_page_imports_a_file_into_a_new_text_project(tmp_path: Path, studio_env) -> None:
    data_dir = studio_env(tmp_path / "data")
    at = _home()
    assert len(at.dataframe) == 0  # no projects yet, but the import is offered
    assert at.text_input(key="import_project_name").value == "text"

    at.text_input(key="import_project_name").input("chat")
    at.file_uploader(key="import_file").upload("pairs.jsonl", _jsonl(PAIRS), "application/jsonl")
    at.button(key="import").click().run()
    _no_exception(at)

    assert [s.value for s in at.success] == ["Imported."]
    assert any("pairs.jsonl -> text project 'chat' (created): 3 pairs read" in t for t in _texts_shown(at))
    table = at.dataframe[0].value
    assert table.iloc[0]["name"] == "chat" and table.iloc[0]["kind"] == "text"
    assert int(table.iloc[0]["queries"]) == 3
    assert at.session_state["project"] == "chat" and at.radio(key="project_radio").value == "chat"
    assert _query(data_dir, "SELECT COUNT(*) FROM item WHERE trajectory_id IS NULL") == [(6,)]


def test_projects_page_shows_every_bad_line_and_imports_nothing(text_project: Path) -> None:
    before = _query(text_project, "SELECT (SELECT COUNT(*) FROM item), (SELECT COUNT(*) FROM query)")
    at = _home()
    assert at.text_input(key="import_project_name").value == "chat"  # the chosen project, a text one
    bad = b'{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q2", "chosen": ""}\nnot json\n'
    at.file_uploader(key="import_file").upload("bad.jsonl", bad, "application/jsonl")
    at.button(key="import").click().run()
    _no_exception(at)

    assert [shown(e.value) for e in at.error] == [
        "The file has 3 problems; nothing was imported. Fix them and upload it again."
    ]
    assert at.code[0].value.splitlines() == [
        "line 2 of bad.jsonl: field 'chosen' is empty",
        "line 2 of bad.jsonl: field 'rejected' is missing",
        "line 3 of bad.jsonl: invalid JSON (Expecting value at column 1)",
    ]
    assert _query(text_project, "SELECT (SELECT COUNT(*) FROM item), (SELECT COUNT(*) FROM query)") == before
    assert _query(text_project, "SELECT COUNT(*) FROM label") == [(0,)]
