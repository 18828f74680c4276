"""Train page section of text projects: rank responses to a prompt by the active reward model."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.config import Studio
from app.errors import USER_ERRORS
from app.services.text_rewards import score_responses
from app.ui import display

PROMPT_KEY, RESPONSES_KEY, SCORE_KEY = "rank_prompt", "rank_responses", "rank_score"


def rank_responses_section(studio: Studio, project_name: str) -> None:
    """Prompt and responses in, the responses ranked by reward out."""
    st.subheader("Rank responses")
    st.caption("Score responses to a prompt with the active text reward model; the best comes first.")
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
            result = score_responses(studio, project_name, prompt, responses)
    except USER_ERRORS as exc:
        display.error(studio, exc)
        return
    table = pd.DataFrame(
        [{"rank": i + 1, "reward": round(s, 3), "response": r} for i, (r, s) in enumerate(result.ranked)]
    )
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(f"Scored by version {result.version}.")
