"""The Classifiers page as it first opens: its widgets, and nothing of its source shown as text."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from app.ui import state

PAGE = Path(__file__).resolve().parents[3] / "app" / "ui" / "views" / "classifiers.py"


def test_the_page_opens_with_its_choices_and_shows_no_stray_docstring(tmp_path: Path, studio_env) -> None:
    studio_env(tmp_path / "data")
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Classifiers"
    assert at.radio(key=state.CLASSIFIER_DATASET).value == "sentiment"
    assert at.radio(key=state.CLASSIFIER_MODE).value == "frozen"
    # a bare string under a module constant is rendered by Streamlit's magic: none may reach the page
    shown = [m.value for m in at.markdown] + [c.value for c in at.caption]
    assert not any("session_state" in text for text in shown), shown
