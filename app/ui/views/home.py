"""Projects page: who you are, which project, how far each one is; import text pairs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.errors import USER_ERRORS
from app.services.jobs import queue as job_queue
from app.services.pref_datasets import import_parquet_bytes
from app.services.projects import MAX_GOLD_RATE, project_summaries, update_settings
from app.services.text_data import FORMATS, ImportFileError, describe_import, import_text_pairs
from app.ui import auth, display, state
from app.ui.resources import get_studio
from db import names
from db.errors import InvalidNameError
from db.names import MAX_NAME_LENGTH

state.init()
studio = get_studio()
user = auth.user(studio)
accounts_on = bool(user.id)
st.title("rlhf-studio")
st.caption("Compare pairs of clips or texts; every answer lands in the label store at once and teaches a reward model.")


def _set_name() -> None:
    """on_change: take the typed name if it is a valid annotator name, else say why not."""
    typed = st.session_state.get(state.NAME_INPUT) or ""
    if not typed.strip():
        return
    try:
        state.set_persistent(state.ANNOTATOR, names.annotator_name(typed))
    except InvalidNameError as exc:
        st.session_state[state.NAME_PROBLEM] = str(exc)


def _import() -> None:
    """on_click: import the uploaded file into the named text project, all or nothing."""
    if not auth.still_admin(studio):
        return
    upload = st.session_state.get(state.IMPORT_FILE)
    name = (st.session_state.get(state.IMPORT_NAME) or "").strip()
    if upload is None:
        st.session_state[state.IMPORT_REPORT] = (False, "Choose a CSV or JSONL file first.", ())
        return
    try:
        if upload.name.lower().endswith(".parquet"):
            result = import_parquet_bytes(studio, name, upload.getvalue(), upload.name)
        else:
            result = import_text_pairs(studio, name, upload.getvalue(), upload.name)
    except ImportFileError as exc:
        count = "1 problem" if exc.total == 1 else f"{exc.total} problems"
        report = (False, f"The file has {count}; nothing was imported. Fix them and upload it again.", exc.problems)
    except USER_ERRORS as exc:
        report = (False, display.public(studio, exc), ())
    else:
        report = (True, describe_import(result), ())
        state.set_persistent(state.PROJECT, result.project)
        st.session_state.pop(state.PROJECT_RADIO, None)  # the choice follows the imported project
    st.session_state[state.IMPORT_REPORT] = report


def import_section(rows: list[dict]) -> None:
    """Create or extend a text project from an uploaded file of prompt/response pairs."""
    report = st.session_state.pop(state.IMPORT_REPORT, None)
    current = state.get(state.PROJECT)
    text_projects = [r["name"] for r in rows if r["kind"] == "text"]
    st.session_state.setdefault(state.IMPORT_NAME, current if current in text_projects else "text")
    with st.expander(
        "Import text pairs (CSV, JSONL or Parquet)", icon=":material/upload_file:", expanded=report is not None
    ):
        st.markdown(
            "One pair per line, with the fields `prompt, response_a, response_b` (pairs to label) or "
            "`prompt, chosen, rejected` (pairs already labeled, recorded under the annotator `import`). "
            "Parquet files may also hold TRL's conversational rows (lists of role/content messages). "
            "Every line is checked first: a file with a bad line imports nothing. Importing a file again "
            "adds nothing twice."
        )
        st.text_input("Text project (created if it does not exist)", key=state.IMPORT_NAME, max_chars=100)
        st.file_uploader("File", type=[ext.lstrip(".") for ext in FORMATS] + ["parquet"], key=state.IMPORT_FILE)
        st.button("Import", key=state.IMPORT_BUTTON, icon=":material/upload:", on_click=_import)
        if report is not None:
            succeeded, message, problems = report
            if succeeded:
                st.success("Imported.", icon=":material/check_circle:")
                st.text(message)  # names from the file: plain text, never Markdown
            else:
                display.error(studio, message)
                if problems:
                    st.code("\n".join(problems), language=None)


def _save_settings(project: str) -> None:
    """on_click: change how the chosen project is labeled (admins)."""
    if not auth.still_admin(studio):
        return
    try:
        settings = update_settings(
            studio,
            project,
            labels_per_pair=int(st.session_state[state.SETTINGS_K]),
            gold_rate=float(st.session_state[state.SETTINGS_GOLD]),
        )
    except USER_ERRORS as exc:
        st.session_state[state.SETTINGS_MSG] = (False, display.public(studio, exc))
    else:
        st.session_state[state.SETTINGS_MSG] = (
            True,
            f"{settings['labels_per_pair']} label(s) per pair, gold rate {settings['gold_rate']:.2f}",
        )


def settings_section(row: dict) -> None:
    """Labels per pair and the gold rate of the chosen project (admins only)."""
    message = st.session_state.pop(state.SETTINGS_MSG, None)
    with st.expander("Labeling settings", icon=":material/tune:", expanded=message is not None):
        st.number_input(
            "Labels per pair (distinct annotators who answer each pair)",
            min_value=1,
            max_value=20,
            value=int(row["labels_per_query"]),
            key=state.SETTINGS_K,
            help="Each pair is served to this many different people, never twice to one; half-answered pairs "
            "are finished before new ones start. 2 or more lets the Team page measure agreement.",
        )
        st.slider(
            "Gold rate (share of served pairs that are gold pairs with a known answer)",
            min_value=0.0,
            max_value=MAX_GOLD_RATE,
            value=float(row.get("gold_rate", 0.0)),
            step=0.05,
            key=state.SETTINGS_GOLD,
        )
        st.button("Save settings", icon=":material/save:", on_click=_save_settings, args=(row["name"],))
        if message is not None:
            (st.success if message[0] else st.error)(display.md(message[1]))


if accounts_on:
    st.markdown(f"Labels are recorded under your account, **{display.md(user.name)}**.")
else:
    st.text_input(
        "Your name (labels are recorded under it)",
        value=state.get(state.ANNOTATOR, ""),
        key=state.NAME_INPUT,
        on_change=_set_name,
        max_chars=MAX_NAME_LENGTH,
        placeholder="e.g. alice, then press Enter",
    )
    if problem := st.session_state.pop(state.NAME_PROBLEM, None):
        display.error(studio, problem)

rows = [r for r in project_summaries(studio) if user.can_view(r["name"])]
if not rows:
    if user.is_admin:
        st.info(
            "No projects in the data folder yet. Create one with `rlhf demo` (clips) or "
            "`rlhf demo-text` (texts), then reload; or import text pairs below."
        )
        import_section(rows)
    else:
        st.info("You are not a member of any project yet; an admin adds you: `rlhf users join NAME --project P`.")
    st.stop()

project_names = [r["name"] for r in rows]
current = state.get(state.PROJECT)
choice = st.radio(
    "Project",
    project_names,
    index=project_names.index(current) if current in project_names else 0,
    horizontal=True,
    key=state.PROJECT_RADIO,
    format_func=display.md,  # names are data: shown as text
)
if choice != current:
    state.set_persistent(state.PROJECT, choice)

table = pd.DataFrame(rows).rename(
    columns={"env_id": "environment", "labeled_queries": "labeled pairs", "labels_per_query": "labels per pair"}
)
st.dataframe(
    table[["name", "kind", "environment", "items", "queries", "labeled pairs", "labels", "labels per pair"]],
    hide_index=True,
    width="stretch",
)

if not user.can_label(choice):
    st.info("Your role sees this project's progress and agreement (Team page) and labels nothing.")
elif state.get(state.ANNOTATOR):
    st.page_link(
        "views/label.py",
        label=f"Start labeling **{display.md(choice)}** as **{display.md(state.get(state.ANNOTATOR))}**",
        icon=":material/compare:",
        query_params=state.url_params(),
    )
else:
    st.warning("Enter your name above to start labeling.")

if user.is_admin:
    settings_section(next(r for r in rows if r["name"] == choice))
    import_section(rows)
    jobs_now = job_queue(studio)
    if jobs_now.running or jobs_now.queued:
        st.subheader("Jobs")
        st.caption(
            f"{jobs_now.workers} worker(s) alive; "
            + (
                f"the app runs at most {jobs_now.max_jobs} jobs at once (RLHF_MAX_JOBS), the rest wait in line."
                if jobs_now.app_starts_workers
                else "jobs wait for `rlhf worker` processes (RLHF_WORKERS=external)."
            )
        )
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "job": j.id,
                        "kind": j.kind,
                        "status": j.status.value,
                        "progress": j.progress,
                        "message": j.message,
                    }
                    for j in jobs_now.running + jobs_now.queued
                ]
            ),
            hide_index=True,
            width="stretch",
            column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)},
        )
