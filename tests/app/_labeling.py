"""Helpers of the labeling-page tests: the answer buttons of the pair on screen."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app.ui.state import answer_key

ANSWERS = ("left", "right", "equal", "cant_tell")


def answer_button(at: AppTest, choice: str):
    """The button that answers ``choice`` (or ``skip``) for the pair on screen."""
    return at.button(key=answer_key(choice, at.session_state["pair"].query_id))


def answer_keys(at: AppTest, choices: tuple[str, ...] = ANSWERS) -> list[str]:
    """Widget keys of the answer buttons of the pair on screen."""
    return [answer_key(c, at.session_state["pair"].query_id) for c in choices]
