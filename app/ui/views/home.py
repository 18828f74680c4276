"""Projects page: who you are, which project, how far each one is."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.services.projects import project_summaries
from app.ui import state
from app.ui.resources import get_studio

state.init()
studio = get_studio()
st.title("rlhf-studio")
st.caption("Compare pairs of clips; every answer lands in the label store at once and teaches a reward model.")


def _set_name() -> None:
    name = (st.session_state.get(state.NAME_INPUT) or "").strip()
    if name:
        state.set_persistent(state.ANNOTATOR, name)


st.text_input(
    "Your name (labels are recorded under it)",
    value=state.get(state.ANNOTATOR, ""),
    key=state.NAME_INPUT,
    on_change=_set_name,
    max_chars=100,
    placeholder="e.g. alice, then press Enter",
)

rows = project_summaries(studio)
if not rows:
    st.info(f"No projects in `{studio.settings.data_dir}` yet. Create one with `rlhf demo`, then reload.")
    st.stop()

names = [r["name"] for r in rows]
current = state.get(state.PROJECT)
choice = st.radio(
    "Project", names, index=names.index(current) if current in names else 0, horizontal=True, key="project_radio"
)
if choice != current:
    state.set_persistent(state.PROJECT, choice)

table = pd.DataFrame(rows).rename(columns={"env_id": "environment", "labeled_queries": "labeled pairs"})
st.dataframe(
    table[["name", "kind", "environment", "items", "queries", "labeled pairs", "labels"]],
    hide_index=True,
    width="stretch",
)

if state.get(state.ANNOTATOR):
    st.page_link(
        "views/label.py",
        label=f"Start labeling **{choice}** as **{state.get(state.ANNOTATOR)}**",
        icon=":material/compare:",
        query_params=state.url_params(),
    )
else:
    st.warning("Enter your name above to start labeling.")
