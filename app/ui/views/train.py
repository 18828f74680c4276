"""Train page: retrain the reward model in one click, watch or cancel it, read its plots."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app import jobs
from app.services import rewards
from app.services.encoders import encoder_options
from app.ui import display, state
from app.ui.job_panel import job_panel
from app.ui.resources import current_project, get_studio
from db import repo
from db.engine import session_scope
from db.models import ProjectKind
from rlhf_core.metrics import MIN_HELD_OUT

state.init()
studio = get_studio()
project = current_project(studio)
with session_scope(studio.engine) as session:
    n_prefs = len(repo.comparisons(session, project.id))

st.title(f"Reward model · {display.md(project.name)}")
st.caption(f"{n_prefs} labels with a preference (left, right or equal); can't tell and skips are not trained on.")

is_text = project.kind is ProjectKind.text
KINDS = (
    {"text-lora": "MiniLM + LoRA (query/value adapters and a score head; the base model stays frozen)"}
    if is_text
    else {
        "ensemble": "Neural ensemble (bagged, per-step MLP; frozen CNN features for pixels)",
        "bt": "Linear Bradley-Terry (logistic regression, CV-tuned)",
        **(
            {"cnn-lora": "CNN + LoRA (reward head on a LoRA-adapted EfficientNet-Lite0; slower, pixels only)"}
            if project.config.get("pixels")
            else {}
        ),
    }
)


FORMS = {
    "potential": "Potential: r = Φ(s') − Φ(s) + c, a rise of a learned score (default; no loop of steps earns "
    "anything, so a policy cannot farm it by circling)",
    "transition": "Transition: any function of the step (can express 'being here is good', and can be farmed)",
}


def _start(kind: str) -> None:
    params = {"project": project.name, "kind": kind}
    if st.session_state.get("train_actions") and kind in ("ensemble", "bt"):
        params["actions"] = True  # a state-action reward
    if not is_text:
        params["form"] = "transition" if kind == "cnn-lora" else st.session_state.get("train_form", "potential")
        if project.config.get("pixels") and kind != "cnn-lora":
            params["encoder"] = st.session_state.get("train_encoder", "efficientnet-lite0")
    try:
        jobs.submit(studio, project.id, "train-reward", params)
    except jobs.JobError as exc:
        st.session_state["train_error"] = str(exc)


left, right = st.columns([3, 1], vertical_alignment="bottom")
kind = left.radio("Model", list(KINDS), format_func=KINDS.get, horizontal=True, key="train_kind")
if not is_text:
    left.checkbox(
        "The reward also sees the action taken (state-action, r(s, a, s'))",
        key="train_actions",
        disabled=kind == "cnn-lora",
        help="For preferences about how the agent acts, not only where it goes. bt and ensemble only.",
    )
    left.selectbox(
        "Reward form",
        list(FORMS),
        format_func=FORMS.get,
        key="train_form",
        disabled=kind == "cnn-lora",
        help="cnn-lora learns transition rewards only.",
    )
    if project.config.get("pixels"):
        options = encoder_options(studio)
        left.selectbox(
            "Frozen encoder of the frames",
            [o.name for o in options],
            format_func={o.name: o.label for o in options}.get,
            key="train_encoder",
            disabled=kind == "cnn-lora",
            help="ImageNet EfficientNet-Lite0, or a CNN trained on a source task (`rlhf train-encoder`, saved "
            "under encoders/ in the data folder); ResNet where torchvision and its weights are present. "
            "Policies trained on this reward reuse it.",
        )
latest = jobs.latest(studio, project.id, "train-reward")
right.button(
    "Retrain",
    icon=":material/model_training:",
    type="primary",
    on_click=_start,
    args=(kind,),
    disabled=latest is not None and latest.active,
    width="stretch",
    key="retrain",
)
if error := st.session_state.pop("train_error", None):
    display.error(studio, error)


versions = rewards.registry(studio, project.name)  # read once; the page reruns when a job ends


job_panel(
    studio,
    project.id,
    "train-reward",
    live=latest is not None and latest.active,
    empty=None if versions else "No training yet. Click Retrain.",
    succeeded=lambda job: (
        f"Job #{job.id}: version {job.result.get('version')} ({job.result.get('kind')}) is active · "
        f"held-out accuracy {rewards.describe_accuracy(job.result)} · {job.result.get('n_labels')} labels"
    ),
    cancelled="the active model is unchanged.",
)

if not versions:
    st.stop()

st.subheader("Versions")
table = pd.DataFrame([{k: v for k, v in r.items() if k != "metrics"} for r in versions])
st.dataframe(table, hide_index=True, width="stretch")
active = next((r for r in versions if r["active"]), versions[0])


def _activate() -> None:
    rewards.activate(studio, project.name, int(st.session_state["activate_version"]))


c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
c1.selectbox("Version", [r["version"] for r in versions], key="activate_version")
c2.button("Make active", on_click=_activate, key="activate")

m = active["metrics"]
st.subheader(f"Version {active['version']} ({active['kind']})")
cols = st.columns(5)
few = m.get("val_pairs") is not None and m["val_pairs"] < MIN_HELD_OUT
cols[0].metric(
    "Held-out accuracy",
    "too few pairs" if few or m.get("val_accuracy") is None else f"{m['val_accuracy']:.3f}",
    None if few or not m.get("val_accuracy_ci95") else "95%: {:.2f}-{:.2f}".format(*m["val_accuracy_ci95"]),
    delta_color="off",
    delta_arrow="off",
)
cols[1].metric("Log loss", "n/a" if m.get("log_loss") is None else f"{m['log_loss']:.3f}")
if active["kind"] == "text-lora":
    cols[2].metric("Trainable", f"{m.get('trainable_fraction', 0):.2%} of {m.get('backbone', 'the backbone')}")
    cols[3].metric("Labels", m.get("n_labels"))
    cols[4].metric(
        "Fit", f"{m.get('fit_seconds', 0):.1f} s", f"{m.get('pairs_per_s', 0):.1f} pairs/s", delta_color="off"
    )
else:
    cols[2].metric(
        f"Spearman vs {m.get('teacher_reward', 'true')} return",
        "n/a" if m.get("spearman_true") is None else f"{m['spearman_true']:.3f}",
    )
    cols[3].metric("Labels", m.get("n_labels"))
    cols[4].metric("Fit", f"{m.get('fit_seconds', 0):.1f} s")

if few or m.get("val_accuracy") is None:
    st.info(
        f"Held-out accuracy: {rewards.describe_accuracy(m)}. The model is trained on the rest; "
        f"with {MIN_HELD_OUT} or more held-out pairs that prefer a side (about {5 * MIN_HELD_OUT} labels in all) "
        "the number above means something.",
        icon=":material/info:",
    )
else:
    st.caption(f"Held-out accuracy {rewards.describe_accuracy(m)}.")

plots = st.columns(2)
if m.get("calibration"):
    cal = pd.DataFrame(m["calibration"])
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]}))
        .mark_line(strokeDash=[4, 4], color="gray")
        .encode(x="x", y="y")
    )
    points = (
        alt.Chart(cal)
        .mark_line(point=True)
        .encode(
            x=alt.X("mean_predicted", title="predicted P(A preferred)", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("observed", title="observed frequency", scale=alt.Scale(domain=[0, 1])),
            tooltip=["mean_predicted", "observed", "count"],
        )
    )
    plots[0].altair_chart(
        (diagonal + points).properties(title="Calibration (held-out pairs)", height=300), width="stretch"
    )
curve = pd.DataFrame(m.get("learning_curve") or [])
history = pd.DataFrame(
    [
        {"n_labels": r["labels"], "val_accuracy": r["val_accuracy"], "series": "trained versions"}
        for r in versions
        if r["val_accuracy"] is not None
    ]
)
if not curve.empty:
    curve["series"] = "linear BT on first n labels"
both = pd.concat([curve, history], ignore_index=True)
if not both.empty:
    plots[1].altair_chart(
        alt.Chart(both)
        .mark_line(point=True)
        .encode(
            x=alt.X("n_labels", title="labels"),
            y=alt.Y("val_accuracy", title="held-out accuracy", scale=alt.Scale(zero=False)),
            color="series",
        )
        .properties(title="Accuracy against the number of labels", height=300),
        width="stretch",
    )

if is_text:
    from app.ui.text_scoring import rank_responses_section

    rank_responses_section(studio, project.name)
    st.stop()

found = rewards.active_model(studio, project.id)
if found is not None:
    data = rewards.project_data(studio, project)
    predicted = found[1].segment_returns(data.segments)
    scatter = pd.DataFrame({"teacher return": data.teacher_returns, "predicted return": predicted})
    st.altair_chart(
        alt.Chart(scatter)
        .mark_circle(opacity=0.5)
        .encode(x="teacher return", y="predicted return")
        .properties(
            title=f"Predicted against teacher ({m.get('teacher_reward', 'true')}) return, every segment", height=320
        ),
        width="stretch",
    )
