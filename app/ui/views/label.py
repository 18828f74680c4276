"""Labeling page: two clips (or two responses to a prompt) side by side, four answers on the
keyboard, undo, progress.

Text is shown with ``st.text``, never as Markdown or HTML: responses come from imported
files, and markup in them must be seen, not run.
"""

from __future__ import annotations

import math
import time

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from app.errors import USER_ERRORS
from app.services import autopilot, jobs, labeling
from app.services.labeling import LabelingSession
from app.ui import auth, display, state
from app.ui.resources import get_studio
from db import names
from db.errors import InvalidNameError, NotFoundError
from db.models import Choice, ProjectKind
from db.names import MAX_NAME_LENGTH

ANSWERS = (
    (Choice.left, "Left better", "1"),
    (Choice.right, "Right better", "2"),
    (Choice.equal, "Equal", "3"),
    (Choice.cant_tell, "Can't tell", "4"),
)
SAID = {
    Choice.left: "left better",
    Choice.right: "right better",
    Choice.equal: "equal",
    Choice.cant_tell: "can't tell",
    Choice.skip: "skipped",
}

#: A held key repeats (about every 30-50 ms): each repeat would answer the next pair as soon as
#: it has been shown long enough. This page-wide listener drops repeated key presses before
#: Streamlit's shortcuts see them, outside text fields (where holding a key should work).
#: A constant of ours, never built from input: the only script the studio runs in the page.
NO_KEY_REPEAT = """<script>
if (!window.rlhfNoKeyRepeat) {
  window.rlhfNoKeyRepeat = true;
  window.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target && (/^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName) || target.isContentEditable);
    if (event.repeat && !typing) {
      event.stopImmediatePropagation();
      event.preventDefault();
    }
  }, true);
}
</script>"""

#: Height (pixels) of the scrolling boxes that hold a prompt and a response at most.
PROMPT_MAX_HEIGHT = 200
RESPONSE_MAX_HEIGHT = 420

state.init()
studio = get_studio()
user = auth.user(studio)  # with accounts, the annotator is the account


def _ask_name(problem: str | None = None) -> str:
    """The name field; stops the page until a valid name is entered."""
    if problem:
        display.error(studio, problem)
    name = st.text_input(
        "Your name (labels are recorded under it)",
        max_chars=MAX_NAME_LENGTH,
        placeholder="type your name and press Enter",
    )
    if not name.strip():
        st.stop()
    try:
        name = names.annotator_name(name)
    except InvalidNameError as exc:
        display.error(studio, exc)
        st.stop()
    state.set_persistent(state.ANNOTATOR, name)
    return name


def _session() -> LabelingSession | None:
    """The labeling session for the chosen project and annotator, asking for what is missing.

    Both names may come from the URL: an invalid one is reported as text, and the page asks
    for the name again (or points to the Projects page) instead of failing.
    """
    ls = state.get(state.LABELING)
    if ls is not None and user.can_label(ls.project_name) and (not user.id or ls.annotator_name == user.name):
        return ls  # (an account labels as itself: a session left by whoever was logged in before is dropped)
    project, annotator = state.get(state.PROJECT), state.get(state.ANNOTATOR)
    if annotator is not None:
        try:
            annotator = names.annotator_name(annotator)
        except InvalidNameError as exc:
            state.forget(state.ANNOTATOR)
            annotator = _ask_name(f"The name in the address cannot be used: {exc}")
    if not annotator:
        annotator = _ask_name()
    if not project:
        st.info("Choose a project first.")
        st.page_link("views/home.py", label="Projects", icon=":material/home:")
        st.stop()
    if not user.can_label(project):
        st.error(
            "You cannot label this project: it is not one of yours, or your role labels nothing. "
            "An admin adds you: `rlhf users join NAME --project P`.",
            icon=":material/block:",
        )
        st.page_link("views/home.py", label="Projects", icon=":material/home:")
        st.stop()
    try:
        ls = labeling.open_session(studio, project, annotator)
    except (InvalidNameError, NotFoundError) as exc:
        display.error(studio, exc)
        st.page_link("views/home.py", label="Projects", icon=":material/home:")
        st.stop()
    st.session_state[state.LABELING] = ls
    return ls


def _rng() -> np.random.Generator:
    if state.RNG not in st.session_state:
        st.session_state[state.RNG] = np.random.default_rng()
    return st.session_state[state.RNG]


def _login_holds(ls: LabelingSession, refused: str) -> bool:
    """In an answer's or Undo's callback: whether the login still lets this tab label
    (:func:`auth.may_still_label`); a store that cannot say refuses the press with ``refused``."""
    try:
        return auth.may_still_label(studio, ls)
    except USER_ERRORS as exc:  # the store cannot say (read-only, server gone): nothing was saved
        st.session_state[state.REFUSED] = f"{refused}: {display.public(studio, exc)}"
        return False


def _answer(query_id: int, choice: Choice) -> None:
    """on_click: store the answer for the pair that was on screen when it was pressed.

    The button carries the id of its pair (and its key names it), so a press that was meant
    for a pair no longer on screen stores nothing. The service refuses an answer that came
    too soon after its pair appeared, and stores nothing for a pair this annotator already
    answered (another tab): the page then says so, never "Saved".
    """
    pair, ls = state.get(state.PAIR), state.get(state.LABELING)
    if pair is None or ls is None or pair.query_id != query_id:
        return  # a press that arrived after its pair left the screen: that pair is answered already
    if not _login_holds(ls, "Not stored"):
        return  # the login ended since the page was loaded: store nothing (the panel then leaves)
    try:
        recorded = labeling.submit_label(studio, ls, pair, choice)
    except labeling.AnswerTooSoonError as exc:
        st.session_state[state.REFUSED] = str(exc)
        return  # the same pair stays on screen
    except USER_ERRORS as exc:  # the store cannot take it (read-only, server gone): nothing was saved
        st.session_state[state.REFUSED] = f"Not stored: {display.public(studio, exc)}"
        return
    if recorded.created:
        st.session_state[state.ACK] = f"Saved: {SAID[choice]} (label #{recorded.label_id})"
        if ls.kind is ProjectKind.trajectory:
            _autopilot(ls)
    else:
        st.session_state[state.REFUSED] = (
            f"Not stored: you had already answered pair #{pair.query_id} ({SAID[recorded.choice]}, "
            f"label #{recorded.label_id}), perhaps in another tab; that answer stands. Here is the next pair."
        )
    st.session_state.pop(state.PAIR, None)


def _autopilot(ls: LabelingSession) -> None:
    """Start the project's autopilot round in the background when enough labels have arrived
    (never holds up labeling: a round already running, or a store that cannot say, waits)."""
    try:
        if autopilot.autopilot_due(studio, ls.project_name):
            job_id = jobs.submit(studio, ls.project_id, "loop-round", {"project": ls.project_name})
            st.session_state[state.ACK] += (
                f" · Autopilot: round started (job #{job_id}; retraining the reward model and the policy; "
                "the Policy page shows its progress)"
            )
    except (jobs.JobError, *USER_ERRORS):
        return


def _undo(query_id: int | None) -> None:
    """on_click: remove the last label, if the press was meant for the screen that is shown.

    Like the answers, Undo names the pair on screen (None: the "nothing left" screen), and a
    press sooner than the minimum viewing time after that screen appeared is a second press
    of a double press: it would undo one more label, so it is refused.
    """
    ls, pair = state.get(state.LABELING), state.get(state.PAIR)
    if ls is None or (pair.query_id if pair is not None else None) != query_id:
        return
    if not _login_holds(ls, "Not undone"):
        return
    if time.monotonic() - state.get(state.SERVED_AT, 0.0) < labeling.MIN_VIEW_SECONDS:
        st.session_state[state.REFUSED] = "Not undone: that press came right after this screen appeared (twice?)."
        return
    try:
        undone = labeling.undo_last(studio, ls)
    except USER_ERRORS as exc:
        st.session_state[state.REFUSED] = f"Not undone: {display.public(studio, exc)}"
        return
    st.session_state[state.ACK] = "Undone: that pair is back" if undone else "Nothing to undo"
    st.session_state[state.UNDONE] = undone
    st.session_state.pop(state.PAIR, None)


def _reward_chart(ls: LabelingSession, pair: labeling.Pair) -> None:
    """The active reward model's per-step prediction for both clips, under them."""
    predicted = labeling.predicted_rewards(studio, ls, pair)
    if predicted is None:
        st.caption("No reward model yet: train one on the Train page to see its predictions here.")
        return
    rows = [
        {"step": t, "side": side, "reward": float(r)}
        for side, steps in (("left", predicted["left"]), ("right", predicted["right"]))
        for t, r in enumerate(steps)
    ]
    chart = (
        alt.Chart(pd.DataFrame(rows))
        .mark_line(point=True)
        .encode(
            x=alt.X("step:Q", title="step of the clip"),
            y=alt.Y("reward:Q", title=f"predicted reward (model v{predicted['version']})"),
            color=alt.Color("side:N", scale=alt.Scale(domain=["left", "right"], range=["#1f77b4", "#d62728"])),
        )
    )
    st.altair_chart(chart.properties(height=180, width=760))


def _box_height(texts: tuple[str, ...], chars_per_line: int, most: int) -> int:
    """A box height that fits the longest of ``texts`` up to ``most`` pixels (then it scrolls)."""
    lines = max(sum(max(1, math.ceil(len(line) / chars_per_line)) for line in text.split("\n")) for text in texts)
    return int(min(most, max(60, 24 * lines + 34)))


def _show_texts(texts: labeling.PairTexts) -> None:
    """The prompt above the two responses, as plain text in scrolling boxes."""
    st.markdown("**Prompt**")
    with st.container(height=_box_height((texts.prompt,), 110, PROMPT_MAX_HEIGHT), border=True, key=state.PROMPT_BOX):
        st.text(texts.prompt)
    height = _box_height((texts.left, texts.right), 55, RESPONSE_MAX_HEIGHT)
    left, right = st.columns(2)
    for col, title, text, side in ((left, "◀ Left", texts.left, "left"), (right, "Right ▶", texts.right, "right")):
        col.markdown(f"**{title}**")
        with col.container(height=height, border=True, key=f"response-{side}"):
            st.text(text)


def _show_clip(ls: LabelingSession, pair: labeling.Pair) -> None:
    """The side-by-side clip, and the reward model's prediction under it when asked."""
    if pair.clip is None:
        display.error(studio, pair.clip_error or "This clip cannot be shown.")
        return
    st.image(str(pair.clip), width=760)
    left, right = st.columns(2, width=760)
    left.markdown("**◀ Left**")
    right.markdown("<div style='text-align:right'><b>Right ▶</b></div>", unsafe_allow_html=True)
    if st.session_state.get(state.SHOW_REWARD):
        _reward_chart(ls, pair)


@st.fragment
def labeling_panel(ls: LabelingSession) -> None:
    """The part that changes with each label; a label reruns only this (so it checks the login
    again: the page's check ran when the page loaded)."""
    try:
        if not auth.may_still_label(studio, ls):
            auth.end_labeling()
        progress = labeling.progress(studio, ls)
    except USER_ERRORS as exc:
        display.error(studio, exc)
        return
    total = max(progress.total_queries, 1)
    st.progress(
        progress.labeled_queries / total,
        text=f"{progress.labeled_queries} of {progress.total_queries} pairs labeled · "
        f"you: {progress.my_labels} labels · {progress.labels_per_minute:.1f} per minute",
    )
    ack = st.session_state.pop(state.ACK, None)
    refused = st.session_state.pop(state.REFUSED, None)
    if refused:
        st.warning(display.md(refused), icon=":material/block:")
    pair = state.get(state.PAIR)
    if pair is None:
        try:
            pair = labeling.next_pair(studio, ls, rng=_rng(), undone=st.session_state.pop(state.UNDONE, None))
        except USER_ERRORS as exc:
            display.error(studio, exc)
            return
        st.session_state[state.SERVED_AT] = time.monotonic()
        if pair is None:
            if ack:
                st.success(ack)
            st.success("Nothing left to label here for now. Thank you!")
            st.button(
                "Undo last label",
                key=f"undo-after-{progress.my_labels}",
                icon=":material/undo:",
                shortcut="U",
                on_click=_undo,
                args=(None,),
            )
            return
        st.session_state[state.PAIR] = pair
    if ack:
        st.toast(ack, icon=":material/check_circle:")
        st.caption(f":material/check_circle: {ack}")
    if pair.texts is not None:
        _show_texts(pair.texts)
    else:
        _show_clip(ls, pair)
    cols = st.columns(len(ANSWERS) + 2, width=900)
    for col, (choice, text, key) in zip(cols, ANSWERS, strict=False):
        col.button(
            text,
            key=state.answer_key(choice, pair.query_id),
            shortcut=key,
            on_click=_answer,
            args=(pair.query_id, choice),
            disabled=not pair.viewable,
            type="primary",
            width="stretch",
        )
    cols[-2].button(
        "Skip",
        key=state.answer_key(Choice.skip, pair.query_id),
        shortcut="S",
        on_click=_answer,
        args=(pair.query_id, Choice.skip),
        width="stretch",
    )
    cols[-1].button(
        "Undo",
        key=state.answer_key("undo", pair.query_id),
        icon=":material/undo:",
        shortcut="U",
        on_click=_undo,
        args=(pair.query_id,),
        width="stretch",
    )
    st.caption(f"pair #{pair.query_id}")


ls = _session()
assert ls is not None
st.html(NO_KEY_REPEAT, unsafe_allow_javascript=True)
title, guide = st.columns([4, 1], vertical_alignment="bottom")
title.subheader(display.md(f"{ls.project_name} · labeling as {ls.annotator_name}"))
with guide.popover("Guidelines", icon=":material/menu_book:", width="stretch"):
    st.markdown(ls.guidelines or "_This project has no guidelines yet._")
if ls.kind is ProjectKind.trajectory:
    st.toggle("Show the reward model's prediction under the clips", key=state.SHOW_REWARD)
labeling_panel(ls)
