"""Classifiers page: transfer learning three ways (frozen features, LoRA, full fine-tuning).

Choose a dataset and a mode, train (a background job with progress and Cancel; its result,
accuracy and confusion matrix, is kept in the job's row), and read the held-out accuracy
and the confusion matrix.
"""

from __future__ import annotations

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app.errors import USER_ERRORS
from app.services import classifiers, jobs
from app.ui import auth, display, state
from app.ui.job_panel import job_panel
from app.ui.lora_options import lora_inputs, lora_values
from app.ui.resources import get_studio
from db.models import JobStatus

state.init()
studio = get_studio()
auth.require_admin(studio)
st.title("Classifiers")
st.caption(
    "Adapt a pretrained backbone to a new task: MiniLM for text, EfficientNet-Lite0 for images. "
    "Frozen trains a new linear head on fixed features; LoRA adds low-rank adapters (PEFT) and trains them "
    "with the head; full fine-tunes every weight."
)

DATASETS = {
    "sentiment": ("text", "Sentiment reviews (text, 200 packaged lines)"),
    "shapes": ("image", "Shapes (images drawn by code: circle, square, triangle, cross)"),
    "text-file": ("text", "My CSV of text,label"),
    "image-folder": ("image", "My image folder (one sub-folder per class)"),
}
MODES = {
    "frozen": "Frozen features + linear head",
    "lora": "LoRA adapters + head",
    "full": "Full fine-tuning",
}
JOB_KIND = "train-classifier"
LORA = "clf-lora"
TRY_ID, TRY_TEXT, TRY_FILES, TRY_RESULT = "clf-try-id", "clf-try-text", "clf-try-files", "clf-try-result"

dataset = st.radio(
    "Dataset", list(DATASETS), format_func=lambda k: DATASETS[k][1], key=state.CLASSIFIER_DATASET, horizontal=True
)
kind = DATASETS[dataset][0]
path: Path | None = None
if dataset in ("text-file", "image-folder"):
    typed = st.text_input("Path on the server", key=state.CLASSIFIER_PATH, placeholder="/data/reviews.csv")
    path = Path(typed).expanduser() if typed.strip() else None
left, right = st.columns([3, 1], vertical_alignment="bottom")
mode = left.radio("Mode", list(MODES), format_func=MODES.get, key=state.CLASSIFIER_MODE, horizontal=True)
epochs = right.number_input("Epochs", min_value=1, max_value=50, value=5, key=state.CLASSIFIER_EPOCHS)
if mode == "lora":
    lora_inputs(LORA, placeholder="query,value" if kind == "text" else "pointwise convolutions")


def _start() -> None:
    if not auth.still_admin(studio):
        return
    # Read the widgets' current values: a callback runs before the page script, so module
    # variables still hold the previous run's values.
    chosen = st.session_state[state.CLASSIFIER_DATASET]
    typed = str(st.session_state.get(state.CLASSIFIER_PATH) or "").strip()
    given = Path(typed).expanduser() if typed else None
    if chosen in ("text-file", "image-folder") and (given is None or not given.exists()):
        st.session_state[state.CLASSIFIER_ERROR] = (
            "Enter the path of an existing dataset first." if given is None else f"{given} not found"
        )
        return
    params = {
        "kind": DATASETS[chosen][0],
        "mode": st.session_state[state.CLASSIFIER_MODE],
        "path": str(given) if given and chosen in ("text-file", "image-folder") else None,
        "epochs": int(st.session_state[state.CLASSIFIER_EPOCHS]),
        "dataset": DATASETS[chosen][1],
    }
    if params["mode"] == "lora":
        params["lora"] = {"target_modules": None, **lora_values(LORA)}
    try:
        jobs.submit(studio, None, JOB_KIND, params)
    except jobs.JobError as exc:
        st.session_state[state.CLASSIFIER_ERROR] = str(exc)


latest = jobs.latest(studio, None, JOB_KIND)
st.button(
    "Train",
    icon=":material/model_training:",
    type="primary",
    key=state.CLASSIFIER_TRAIN,
    on_click=_start,
    disabled=latest is not None and latest.active,
)
if error := st.session_state.pop(state.CLASSIFIER_ERROR, None):
    display.warning(studio, error)


def _succeeded(job: jobs.JobView) -> str:
    r = job.result or {}
    mode = MODES.get(r.get("mode", ""), "")
    kept = f" · kept as classifier #{r['id']}" if r.get("id") is not None else ""
    return f"Job #{job.id}: {display.md(r.get('dataset'))} · {mode} · accuracy {r.get('accuracy'):.3f}{kept}"


job_panel(
    studio,
    None,
    JOB_KIND,
    live=latest is not None and latest.active,
    empty=None,
    succeeded=_succeeded,
    cancelled="nothing was kept.",
)


def _try() -> None:
    """on_click: classify what the user typed or uploaded with the chosen classifier."""
    chosen = st.session_state.get(TRY_ID)
    if chosen is None:
        return
    try:
        if registered[chosen]["kind"] == "text":
            lines = [t.strip() for t in str(st.session_state.get(TRY_TEXT) or "").splitlines() if t.strip()]
            found = classifiers.predict(studio, chosen, lines)
        else:
            uploads = st.session_state.get(TRY_FILES) or []
            found = classifiers.predict_image_files(studio, chosen, [(u.name, u.getvalue()) for u in uploads])
        st.session_state[TRY_RESULT] = (True, found)
    except USER_ERRORS as exc:
        st.session_state[TRY_RESULT] = (False, display.public(studio, exc))


registered = {row["id"]: row for row in classifiers.list_classifiers(studio)}
if registered:
    with st.expander("Try a classifier", icon=":material/science:", expanded=TRY_RESULT in st.session_state):
        choice = st.selectbox(
            "Classifier",
            list(registered),
            key=TRY_ID,
            format_func=lambda i: (
                f"#{i} · {registered[i]['kind']} · {registered[i]['mode']} · "
                f"accuracy {registered[i]['accuracy']:.3f} · {', '.join(registered[i]['classes'])}"
            ),
        )
        if registered[choice]["kind"] == "text":
            st.text_area("Texts, one per line", key=TRY_TEXT, placeholder="The food was lovely.\nNever again.")
        else:
            st.file_uploader(
                "Images", type=["png", "jpg", "jpeg", "bmp", "webp"], accept_multiple_files=True, key=TRY_FILES
            )
        st.button("Classify", icon=":material/play_arrow:", on_click=_try)
        if TRY_RESULT in st.session_state:
            ok, found = st.session_state.pop(TRY_RESULT)
            if not ok:
                display.warning(studio, found)
            elif found:
                table = pd.DataFrame([{"input": p.input, "class": p.label, **p.probabilities} for p in found])
                st.dataframe(
                    table,
                    hide_index=True,
                    width="stretch",
                    column_config={
                        name: st.column_config.ProgressColumn(name, min_value=0.0, max_value=1.0, format="%.3f")
                        for name in found[0].probabilities
                    },
                )

r = latest.result if latest is not None and latest.status is JobStatus.succeeded else None
if r is None:
    st.stop()
st.subheader(f"{display.md(r.get('dataset', ''))} · {MODES[r['mode']]}")
cols = st.columns(4)
cols[0].metric("Held-out accuracy", f"{r['accuracy']:.3f}")
cols[1].metric(
    "Trainable parameters", f"{r['trainable_params']:,}", f"{r['trainable_fraction']:.2%}", delta_color="off"
)
cols[2].metric("Examples", f"{r['n_train']} + {r['n_val']}", "train + held out", delta_color="off")
cols[3].metric("Training", f"{r['train_seconds']:.1f} s")
names = r["class_names"]
cells = pd.DataFrame(
    [
        {"true": names[i], "predicted": names[j], "count": count}
        for i, row in enumerate(r["confusion"])
        for j, count in enumerate(row)
    ]
)
base = alt.Chart(cells).encode(
    x=alt.X("predicted:N", sort=names, title="predicted class"),
    y=alt.Y("true:N", sort=names, title="true class"),
)
heat = base.mark_rect().encode(color=alt.Color("count:Q", scale=alt.Scale(scheme="blues"), legend=None))
labels = base.mark_text(fontSize=14).encode(text="count:Q")
st.altair_chart((heat + labels).properties(title="Confusion matrix (held-out examples)", height=300), width="stretch")
if r.get("history"):
    st.line_chart(pd.DataFrame({"training loss": r["history"]}), x_label="epoch", height=200)
