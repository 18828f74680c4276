"""Process-wide resources of the UI, cached across reruns and sessions."""

from __future__ import annotations

import streamlit as st

from app.config import Settings, Studio


@st.cache_resource(show_spinner=False)
def _studio(data_dir: str | None, database_url: str | None) -> Studio:
    studio = Studio(Settings.from_env(data_dir, database_url))
    studio.engine  # noqa: B018  (migrate once, before the first page renders)
    return studio


def get_studio() -> Studio:
    """The studio for the settings in the environment (one per data folder and database)."""
    settings = Settings.from_env()
    return _studio(str(settings.data_dir), settings.database_url)
