"""Train page section of text projects: rank responses to a prompt by the active reward model."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.config import Studio
from app.errors import USER_ERRORS
from app.services.personal import score_texts
from app.services.text_rewards import score_responses
from app.ui import display

PROMPT_KEY, RESPONSES_KEY, SCORE_KEY, SCORE_AS_KEY = "rank_prompt", "rank_responses", "rank_score", "rank_as"
EVERYONE = "everyone (the population's taste)"


def rank_responses_section(studio: Studio, project_name: str, annotators: list[str] | None = None) -> None:
    """Prompt and responses in, the responses ranked by reward out; with a personal model
    (``annotators``), as the chosen annotator would rank them."""
    st.subheader("Rank responses")
    st.caption("Score responses to a prompt with the active text reward model; the best comes first.")
    whom = None
    if annotators is not None:
        chosen = st.selectbox("Score as", [EVERYONE, *annotators], key=SCORE_AS_KEY, format_func=display.md)
        whom = None if chosen == EVERYONE else chosen
    prompt = st.text_input("Prompt", key=PROMPT_KEY, placeholder="Write a positive review.")
    text = st.text_area(
        "Responses, one per line", key=RESPONSES_KEY, placeholder="Great food and friendly staff.\nCold soup."
    )
    if not st.button("Score", icon=":material/sort:", key=SCORE_KEY):
        return
    responses = [line.strip() for line in text.splitlines() if line.strip()]
    if not responses:
        st.warning("Enter at least one response, one per line.")
        return
    try:
        with st.spinner("Scoring..."):
            if annotators is not None:
                version, ranked = score_texts(studio, project_name, prompt, responses, whom)
            else:
                result = score_responses(studio, project_name, prompt, responses)
                version, ranked = result.version, result.ranked
    except USER_ERRORS as exc:
        display.error(studio, exc)
        return
    table = pd.DataFrame([{"rank": i + 1, "reward": round(s, 3), "response": r} for i, (r, s) in enumerate(ranked)])
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(f"Scored by version {version}" + (f", as {whom} would." if whom else "."))
