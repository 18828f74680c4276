"""Team page: how much the annotators of a project agree, the pairs they dispute, and rulings."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app.errors import USER_ERRORS
from app.services.agreement import Agreement, adjudicate, agreement, agreement_state, pair_view, with_current_rulings
from app.services.projects import project_summaries
from app.ui import auth, display, state
from app.ui.resources import get_studio

studio = get_studio()
user = auth.user(studio)
st.title("Team")
st.caption(
    "Krippendorff's alpha (nominal, can't-tell as missing) over pairs answered by two or more people; "
    "Cohen's kappa for every two annotators; each person's agreement with the others' majority, with gold "
    "pairs and with the active reward model."
)

projects = [r["name"] for r in project_summaries(studio) if user.can_view(r["name"])]
if not projects:
    st.info("No project of yours yet.")
    st.stop()
current = state.get(state.PROJECT)
project = st.selectbox(
    "Project",
    projects,
    index=projects.index(current) if current in projects else 0,
    key=state.TEAM_PROJECT,
)


def _rule(query_id: int, answer: str | None) -> None:
    """on_click: an admin's ruling on a disputed pair (training uses it instead of the labels)."""
    if not auth.still_admin(studio):
        return
    try:
        adjudicate(studio, project, query_id, answer, by=user.name if user.id else None)
    except USER_ERRORS as exc:
        st.session_state[state.TEAM_MSG] = (False, display.public(studio, exc))
    else:
        said = "withdrawn" if answer is None else f"'{answer.upper() if answer != 'equal' else 'equal'}'"
        st.session_state[state.TEAM_MSG] = (True, f"Pair {query_id}: ruling {said}.")


@st.cache_data(max_entries=32, show_spinner=False)
def _agreement(_studio, database_url: str, project: str, store_state: tuple) -> Agreement:  # noqa: ANN001
    """The report, kept (for every session of this server) until the project's answers, gold
    pairs, labels per pair or active model change: a ruling, a project switch or a second
    admin's visit then cost a query, not a recomputation."""
    return agreement(_studio, project, disputed=10)


with st.spinner("Computing agreement..."):
    report = with_current_rulings(
        studio, _agreement(studio, studio.settings.database_url, project, agreement_state(studio, project))
    )

cols = st.columns(4)
cols[0].metric("Krippendorff's alpha", "n/a" if report.alpha is None else f"{report.alpha:.3f}")
cols[1].metric("Pairs answered by 2+", report.pairs_with_several)
cols[2].metric("Labels per pair", report.labels_per_pair)
cols[3].metric("Annotators", len(report.annotators))
for note in report.notes:
    st.info(display.md(note))

if report.annotators:
    people = pd.DataFrame(
        [
            {
                "annotator": a.annotator,
                "labels": a.labels,
                "with majority": a.with_majority,
                "majority pairs": a.majority_pairs,
                "with gold": a.with_gold,
                "gold pairs": a.gold_pairs,
                "with model": a.with_model,
                "tie rate": a.tie_rate,
                "can't-tell rate": a.cant_tell_rate,
                "median s / label": a.median_seconds,
            }
            for a in report.annotators
        ]
    )
    st.subheader("Annotators")
    share = st.column_config.NumberColumn(format="%.2f")
    st.dataframe(
        people,
        hide_index=True,
        width="stretch",
        column_config={c: share for c in ("with majority", "with gold", "with model", "tie rate", "can't-tell rate")}
        | {"median s / label": st.column_config.NumberColumn(format="%.1f")},
    )
    long = people.melt(
        id_vars="annotator", value_vars=["with majority", "with gold", "with model"], var_name="agreement with"
    ).dropna()
    if not long.empty:
        st.altair_chart(
            alt.Chart(long)
            .mark_bar()
            .encode(
                x=alt.X("annotator:N", title=None),
                xOffset="agreement with:N",
                y=alt.Y("value:Q", title="share of answers that agree", scale=alt.Scale(domain=[0, 1])),
                color=alt.Color("agreement with:N"),
                tooltip=["annotator", "agreement with", alt.Tooltip("value:Q", format=".2f")],
            )
            .properties(height=260),
            width="stretch",
        )

if report.kappas:
    st.subheader("Cohen's kappa, annotator by annotator")
    kappa = pd.DataFrame([{"a": k.a, "b": k.b, "kappa": k.kappa, "pairs": k.shared} for k in report.kappas])
    st.dataframe(
        kappa, hide_index=True, width="stretch", column_config={"kappa": st.column_config.NumberColumn(format="%.2f")}
    )

if not user.is_admin:  # the answers to open pairs are not shown to people who may be served them
    st.stop()
st.subheader("Most disputed pairs")
if message := st.session_state.pop(state.TEAM_MSG, None):
    (st.success if message[0] else st.error)(display.md(message[1]))
if not report.disputed:
    st.caption("No pair has different answers yet.")
for d in report.disputed:
    answers = ", ".join(f"{name}: {answer}" for name, answer in d.answers.items())
    ruling = f" · ruled {d.ruling}" if d.ruling else ""
    with st.expander(display.md(f"pair {d.query_id} · {answers}{ruling}")):
        view = pair_view(studio, project, d.query_id)
        if view.prompt is not None:
            st.text(view.prompt)
            left, right = st.columns(2)
            left.caption("A")
            left.text(view.text_a or "")
            right.caption("B")
            right.text(view.text_b or "")
        elif view.clip is not None:
            st.image(str(view.clip), caption="A (left) and B (right)")
        if user.is_admin:
            buttons = st.columns(4)
            for col, (label, answer) in zip(
                buttons,
                (("A is better", "a"), ("B is better", "b"), ("Equal", "equal"), ("Withdraw ruling", None)),
                strict=True,
            ):
                col.button(label, key=f"rule-{d.query_id}-{answer}", on_click=_rule, args=(d.query_id, answer))
