"""Classifiers page: transfer learning three ways (frozen features, LoRA, full fine-tuning).

Choose a dataset and a mode, train (here, with a progress bar: small datasets take seconds
to a minute), and read the held-out accuracy and the confusion matrix.
"""

from __future__ import annotations

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app.services import classifiers
from app.ui import state
from app.ui.resources import get_studio
from rlhf_core.errors import StudioError

state.init()
studio = get_studio()
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
RESULT = "classifier_result"
"""session_state key: the last run's result (dict) with its dataset and mode."""

dataset = st.radio(
    "Dataset", list(DATASETS), format_func=lambda k: DATASETS[k][1], key="classifier_dataset", horizontal=True
)
kind = DATASETS[dataset][0]
path: Path | None = None
if dataset in ("text-file", "image-folder"):
    typed = st.text_input("Path on the server", key="classifier_path", placeholder="/data/reviews.csv")
    path = Path(typed).expanduser() if typed.strip() else None
left, right = st.columns([3, 1], vertical_alignment="bottom")
mode = left.radio("Mode", list(MODES), format_func=MODES.get, key="classifier_mode", horizontal=True)
epochs = right.number_input("Epochs", min_value=1, max_value=50, value=5, key="classifier_epochs")

if st.button("Train", icon=":material/model_training:", type="primary", key="classifier_train"):
    if dataset in ("text-file", "image-folder") and path is None:
        st.warning("Enter the path of your dataset first.")
    else:
        bar = st.progress(0.0, text="loading the backbone...")

        def on_step(done: int, total: int, metrics: dict[str, float]) -> None:
            bar.progress(done / total, text=f"step {done}/{total} · loss {metrics.get('loss', float('nan')):.3f}")

        try:
            result = classifiers.train_classifier(studio, kind, mode, path=path, epochs=int(epochs), on_step=on_step)
        except (LookupError, ValueError, OSError, StudioError) as exc:
            bar.empty()
            st.error(str(exc))
        else:
            bar.empty()
            st.session_state[RESULT] = {"dataset": DATASETS[dataset][1], **result.to_json()}

r = st.session_state.get(RESULT)
if r is None:
    st.stop()
st.subheader(f"{r['dataset']} · {MODES[r['mode']]}")
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
