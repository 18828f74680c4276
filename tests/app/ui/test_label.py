"""AppTest tests of the labeling page (app/ui/views/label.py) against a real label store."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from _labeling import answer_button, answer_keys
from streamlit.testing.v1 import AppTest

from app.config import Settings, Studio
from app.services import labeling
from app.services.labeling import LabelingSession, Pair
from db.models import Choice

LABEL = Path(__file__).resolve().parents[3] / "app" / "ui" / "views" / "label.py"
TIMEOUT = 30
pytestmark = pytest.mark.usefixtures("instant_answers")


def _labels(data_dir: Path) -> list[tuple]:
    """Every label row: (query_id, annotator, choice, pref, swapped)."""
    con = sqlite3.connect(data_dir / "rlhf.db")
    try:
        return con.execute(
            "SELECT label.query_id, annotator.name, label.choice, label.pref, label.swapped "
            "FROM label JOIN annotator ON annotator.id = label.annotator_id ORDER BY label.id"
        ).fetchall()
    finally:
        con.close()


def _seed_for(swapped: bool) -> int:
    """A seed whose generator makes the first pair shown swapped (or not)."""
    return next(s for s in range(100) if (np.random.default_rng(s).random() < 0.5) == swapped)


def _open(data_dir: Path, *, rng_seed: int | None = None) -> AppTest:
    at = AppTest.from_file(str(LABEL), default_timeout=TIMEOUT)
    at.session_state["project"] = "demo"
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
    assert at.caption[-1].value == f"pair #{pair.query_id}"
    return pair


def test_page_shows_clip_and_four_answers(demo_data_dir: Path, studio_env) -> None:
    studio_env(demo_data_dir)
    at = _open(demo_data_dir)

    assert at.subheader[0].value == "demo · labeling as tester"
    assert len(at.error) == 0
    assert len(at.image) == 1
    pair = _pair(at)
    assert pair.clip is not None and pair.clip.is_file()
    assert pair.clip.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
    [project] = (demo_data_dir / "projects").glob("demo-*")
    assert pair.clip.is_relative_to(project / "clips")
    assert at.image[0].value[0].endswith(".gif")
    labels = {b.key: b.label for b in at.button}
    assert [labels[k] for k in answer_keys(at)] == ["Left better", "Right better", "Equal", "Can't tell"]
    assert not any(at.button(key=k).disabled for k in answer_keys(at))
    assert labels[answer_keys(at, ("skip",))[0]] == "Skip" and labels[answer_keys(at, ("undo",))[0]] == "Undo"
    assert "0 of 10 pairs labeled" in at.get("progress")[0].proto.text
    assert _labels(demo_data_dir) == []  # showing a pair stores no label


@pytest.mark.parametrize("swapped", [False, True], ids=["in-order", "swapped"])
def test_left_better_stores_one_label_and_shows_next_pair(fresh_demo: Path, studio_env, swapped: bool) -> None:
    studio_env(fresh_demo)
    at = _open(fresh_demo, rng_seed=_seed_for(swapped))
    first = _pair(at)
    assert first.swapped is swapped

    answer_button(at, "left").click().run()
    _no_exception(at)

    assert _labels(fresh_demo) == [(first.query_id, "tester", "left", 0.0 if swapped else 1.0, int(swapped))]
    second = _pair(at)
    assert second.query_id != first.query_id
    assert len(at.image) == 1
    assert any("Saved: left better" in c.value for c in at.caption)
    assert "1 of 5 pairs labeled" in at.get("progress")[0].proto.text


def test_undo_removes_label_and_brings_pair_back(fresh_demo: Path, studio_env) -> None:
    studio_env(fresh_demo)
    at = _open(fresh_demo)
    first = _pair(at)
    answer_button(at, "left").click().run()
    _no_exception(at)
    assert len(_labels(fresh_demo)) == 1
    assert _pair(at).query_id != first.query_id

    answer_button(at, "undo").click().run()
    _no_exception(at)

    assert _labels(fresh_demo) == []
    back = _pair(at)
    assert back.query_id == first.query_id
    assert back.swapped == first.swapped  # same side order as before
    assert any("Undone" in c.value for c in at.caption)

    # undoing with nothing left to undo changes nothing
    answer_button(at, "undo").click().run()
    _no_exception(at)
    assert _labels(fresh_demo) == []
    assert any("Nothing to undo" in c.value for c in at.caption)


def test_skip_records_skip_without_preference(fresh_demo: Path, studio_env) -> None:
    studio_env(fresh_demo)
    at = _open(fresh_demo)
    first = _pair(at)

    answer_button(at, "skip").click().run()
    _no_exception(at)

    assert _labels(fresh_demo) == [(first.query_id, "tester", "skip", None, int(first.swapped))]
    assert _pair(at).query_id != first.query_id
    assert "0 of 5 pairs labeled" in at.get("progress")[0].proto.text  # skips do not count


def test_missing_clip_shows_error_and_skip_still_works(fresh_demo: Path, studio_env) -> None:
    studio_env(fresh_demo)
    [project] = (fresh_demo / "projects").glob("demo-*")
    frames = list((project / "items").glob("*.npz"))
    assert frames and (project / "clips").is_dir()
    for path in frames:
        path.unlink()
    shutil.rmtree(project / "clips")

    at = _open(fresh_demo)

    first = _pair(at)
    assert first.clip is None
    assert len(at.image) == 0
    assert len(at.error) == 1
    message = at.error[0].value
    assert "Skip" in message
    assert "missing" in message
    assert all(at.button(key=k).disabled for k in answer_keys(at))
    assert not answer_button(at, "skip").disabled

    answer_button(at, "skip").click().run()
    _no_exception(at)
    assert _labels(fresh_demo) == [(first.query_id, "tester", "skip", None, int(first.swapped))]
    second = _pair(at)
    assert second.query_id != first.query_id
    assert len(at.error) == 1 and "Skip" in at.error[0].value


def test_double_submit_stores_one_label(fresh_demo: Path, studio_env) -> None:
    studio_env(fresh_demo)
    at = _open(fresh_demo)
    first = _pair(at)
    ls = at.session_state["labeling_session"]
    assert isinstance(ls, LabelingSession)

    answer_button(at, "left").click().run()
    _no_exception(at)
    rows = _labels(fresh_demo)
    assert len(rows) == 1

    # The same pair answered again (a second press that arrives late, a retry): the first answer stands.
    studio = Studio(Settings.from_env(fresh_demo))
    again = labeling.submit_label(studio, ls, first, Choice.right)
    studio.engine.dispose()
    assert again.created is False
    assert _labels(fresh_demo) == rows
    assert rows[0][2] == "left"

    # and the page goes on with the next pair, still one label
    at.run()
    _no_exception(at)
    assert _pair(at).query_id != first.query_id
    assert _labels(fresh_demo) == rows
