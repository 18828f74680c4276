"""Every ``st.session_state`` key of the UI, declared in one place.

The annotator's name and the project also live in the URL's query parameters, so a page
reload (or a bookmark) keeps them.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

ANNOTATOR = "annotator"
"""Name of the person labeling (str)."""
PROJECT = "project"
"""Name of the chosen project (str)."""
LABELING = "labeling_session"
"""app.services.labeling.LabelingSession for (project, annotator), or absent."""
PAIR = "pair"
"""The pair on screen (app.services.labeling.Pair), or absent to fetch the next one."""
ACK = "ack"
"""Acknowledgement of the last action, shown above the next pair (str)."""
REFUSED = "refused"
"""Why the last answer was not stored (too soon, or answered already elsewhere), shown once (str)."""
SERVED_AT = "served_at"
"""time.monotonic() when the pair on screen (or the "nothing left" screen) was served (float)."""
UNDONE = "undone"
"""The label the last Undo removed (app.services.labeling.Undone): its pair comes back as first seen."""
RNG = "rng"
"""numpy Generator that randomises the side order for this browser session."""
SHOW_REWARD = "show_reward"
"""Whether the labeling page plots the active reward model's per-step prediction (bool)."""
NAME_INPUT = "annotator_name_input"
"""Widget key of the name field."""
NAME_PROBLEM = "name_problem"
"""Why the name typed on the projects page was not taken, shown once (str)."""
PROJECT_RADIO = "project_radio"
"""Widget key of the project choice on the projects page."""
IMPORT_FILE = "import_file"
"""Widget key of the file uploader of text pairs (CSV or JSON Lines) on the projects page."""
IMPORT_NAME = "import_project_name"
"""Widget key of the name of the text project an import goes into."""
IMPORT_REPORT = "import_report"
"""Outcome of the last import: (succeeded, message, problems), shown once on the projects page."""


def answer_key(choice: str, query_id: int) -> str:
    """Widget key of an answer button (left, right, equal, cant_tell, skip) on the labeling
    page: it names the pair the button answers, so a press meant for a pair that has left the
    screen cannot count for the next one."""
    return f"answer-{choice}-{query_id}"


_URL_KEYS = (ANNOTATOR, PROJECT)


def init() -> None:
    """Restore the annotator and project from the URL on a fresh session."""
    for key in _URL_KEYS:
        if key not in st.session_state and st.query_params.get(key):
            st.session_state[key] = st.query_params[key]


def get(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)


def _identity_changed() -> None:
    """Who labels which project changed: the labeling session and its pair are stale."""
    st.session_state.pop(LABELING, None)
    st.session_state.pop(PAIR, None)


def set_persistent(key: str, value: str) -> None:
    """Set a value that survives reloads (session state and URL)."""
    st.session_state[key] = value
    st.query_params[key] = value
    _identity_changed()


def forget(key: str) -> None:
    """Drop a value from the session state and the URL (e.g. an invalid name from a link)."""
    st.session_state.pop(key, None)
    st.query_params.pop(key, None)
    _identity_changed()


def url_params() -> dict[str, str]:
    """Query parameters that carry the identity to another page."""
    return {k: st.session_state[k] for k in _URL_KEYS if st.session_state.get(k)}
