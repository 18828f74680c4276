"""Process-wide resources of the UI, cached across reruns and sessions."""

from __future__ import annotations

import streamlit as st

from app.config import Settings, Studio
from app.errors import USER_ERRORS
from app.services import projects
from app.ui import display, state
from db.errors import InvalidNameError, NotFoundError
from db.models import Project


@st.cache_resource(show_spinner=False)
def _studio(data_dir: str | None, database_url: str | None) -> Studio:
    studio = Studio(Settings.from_env(data_dir, database_url))
    studio.engine  # noqa: B018  (migrate once, before the first page renders)
    return studio


def get_studio() -> Studio:
    """The studio for the settings in the environment (one per data folder and database).

    A label store that cannot be used (read-only, not a database, server down) stops the
    page with its message, without server paths; the next page load tries again.
    """
    try:
        settings = Settings.from_env()
        return _studio(str(settings.data_dir), settings.database_url)
    except USER_ERRORS as exc:
        st.error(display.md(getattr(exc, "public", "the label store cannot be used")), icon=":material/error:")
        st.stop()
    raise AssertionError("unreachable: st.stop() ends the script")


def current_project(studio: Studio) -> Project:
    """The project chosen on the Projects page; without one (or if it is gone) the page stops
    with a pointer to the Projects page or the reason."""
    name = state.get(state.PROJECT)
    if not name:
        st.info("Choose a project on the Projects page first.")
        st.page_link("views/home.py", label="Projects", icon=":material/home:")
        st.stop()
    try:
        return projects.get_project(studio, name)
    except (NotFoundError, InvalidNameError) as exc:
        display.error(studio, exc)
        st.page_link("views/home.py", label="Projects", icon=":material/home:")
        st.stop()
    raise AssertionError("unreachable: st.stop() ends the script")
