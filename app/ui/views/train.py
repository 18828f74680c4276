"""Train page: retrain the reward model in one click, watch or cancel it, read its plots."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app.services import jobs, model_registry, projects, reward_kinds, rewards
from app.services.encoders import encoder_options
from app.services.reward_kinds import MIN_HELD_OUT, PERSONAL, POTENTIAL, REWARD_KINDS, TRANSITION
from app.ui import auth, display, state
from app.ui.job_panel import job_panel
from app.ui.lora_options import lora_inputs, lora_values
from app.ui.resources import current_project, get_studio
from db.models import ProjectKind

state.init()
studio = get_studio()
auth.require_admin(studio)
project = current_project(studio)
n_prefs = projects.preference_count(studio, project.id)

st.title(f"Reward model · {display.md(project.name)}")
st.caption(f"{n_prefs} labels with a preference (left, right or equal); can't tell and skips are not trained on.")

is_text = project.kind is ProjectKind.text
KINDS = {n: k.title for n, k in reward_kinds.kinds_for(is_text, bool(project.config.get("pixels"))).items()}

LORA = "rm-lora"

FORMS = {
    POTENTIAL: "Potential: r = Φ(s') − Φ(s) + c, a rise of a learned score (the default for discrete actions; no "
    "loop of steps earns anything, so a policy cannot farm it by circling)",
    TRANSITION: "Transition: any function of the step (the default for continuous control: it can express 'being "
    "here is good', such as a pendulum held upright; it can be farmed)",
}


def _start(kind: str) -> None:
    if not auth.still_admin(studio):
        return
    params = {"project": project.name, "kind": kind}
    info = REWARD_KINDS[kind]
    if st.session_state.get(state.TRAIN_ACTIONS) and info.takes_actions:
        params["actions"] = True  # a state-action reward
    if not is_text and info.forms:
        forms = info.forms
        chosen = st.session_state.get(state.TRAIN_FORM, rewards.default_form(project.env_id or "", kind))
        params["form"] = chosen if len(forms) > 1 else forms[0]
        if project.config.get("pixels") and not info.pixels_only:
            params["encoder"] = st.session_state.get(state.TRAIN_ENCODER, "efficientnet-lite0")
    if kind == "text-lora":
        params["config"] = lora_values(LORA)
    if st.session_state.get(state.TRAIN_FRESH) and info.continues:
        params["fresh"] = True
    if minimum := float(st.session_state.get(state.TRAIN_MIN_AGREEMENT) or 0.0):
        params["min_agreement"] = minimum
    if st.session_state.get(state.TRAIN_WEIGHTED) and kind != PERSONAL:
        params["weight_by_agreement"] = True
    try:
        jobs.submit(studio, project.id, "train-reward", params)
    except jobs.JobError as exc:
        st.session_state[state.TRAIN_ERROR] = str(exc)


left, right = st.columns([3, 1], vertical_alignment="bottom")
kind = left.radio("Model", list(KINDS), format_func=KINDS.get, horizontal=True, key=state.TRAIN_KIND)
if not is_text:
    left.checkbox(
        "The reward also sees the action taken (state-action, r(s, a, s'))",
        key=state.TRAIN_ACTIONS,
        disabled=not REWARD_KINDS[kind].takes_actions,
        help="For preferences about how the agent acts, not only where it goes. "
        + " and ".join(k for k, v in REWARD_KINDS.items() if v.takes_actions)
        + " only.",
    )
    left.selectbox(
        "Reward form",
        list(FORMS),
        index=list(FORMS).index(rewards.default_form(project.env_id or "", kind)),
        format_func=FORMS.get,
        key=state.TRAIN_FORM,
        disabled=len(REWARD_KINDS[kind].forms) < 2,
        help="cnn-lora learns transition rewards only.",
    )
    if project.config.get("pixels"):
        options = encoder_options(studio)
        left.selectbox(
            "Frozen encoder of the frames",
            [o.name for o in options],
            format_func={o.name: o.label for o in options}.get,
            key=state.TRAIN_ENCODER,
            disabled=REWARD_KINDS[kind].pixels_only,
            help="ImageNet EfficientNet-Lite0, or a CNN trained on a source task (`rlhf train-encoder`, saved "
            "under encoders/ in the data folder); ResNet where torchvision and its weights are present. "
            "Policies trained on this reward reuse it.",
        )
    left.checkbox(
        "Start from scratch",
        key=state.TRAIN_FRESH,
        disabled=not REWARD_KINDS[kind].continues,
        help="By default the ensemble continues training the active model (when it has the same inputs), as "
        "rl-teacher does: where new labels say nothing it keeps what it learned, instead of guessing anew "
        "each time. Held-out pairs stay held out from version to version, with all their labels.",
    )
if kind == "text-lora":
    with left.expander("LoRA options", icon=":material/tune:"):
        lora_inputs(LORA)
with left.expander("Annotators", icon=":material/groups:"):
    st.number_input(
        "Leave out annotators whose agreement with the majority is below",
        min_value=0.0,
        max_value=1.0,
        step=0.05,
        key=state.TRAIN_MIN_AGREEMENT,
        help="0 keeps everyone. Agreement is each person's share of answers that match the majority of the others "
        "on pairs several people answered (the Team page); those who share no pair with anyone are kept.",
    )
    st.checkbox(
        "Weight each annotator's labels by their agreement",
        key=state.TRAIN_WEIGHTED,
        disabled=kind == PERSONAL,
        help="Careful annotators count more; a personal model learns each person's own taste instead.",
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
    key=state.RETRAIN,
)
if error := st.session_state.pop(state.TRAIN_ERROR, None):
    display.error(studio, error)


versions = model_registry.registry(studio, project.name)  # read once; the page reruns when a job ends


job_panel(
    studio,
    project.id,
    "train-reward",
    live=latest is not None and latest.active,
    empty=None if versions else "No training yet. Click Retrain.",
    succeeded=lambda job: (
        f"Job #{job.id}: version {job.result.get('version')} ({job.result.get('kind')}) is active · "
        f"held-out accuracy {reward_kinds.describe_accuracy(job.result)} · {job.result.get('n_labels')} labels"
        + (
            f" · continued from version {job.result['continued_from']}"
            if job.result.get("continued_from") is not None
            else ""
        )
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
    if not auth.still_admin(studio):
        return
    model_registry.activate(studio, project.name, int(st.session_state[state.ACTIVATE_VERSION]))


c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
c1.selectbox("Version", [r["version"] for r in versions], key=state.ACTIVATE_VERSION)
c2.button("Make active", on_click=_activate, key=state.ACTIVATE)

m = active["metrics"]
st.subheader(f"Version {active['version']} ({active['kind']})")
cols = st.columns(5)
for col, h in zip(cols, reward_kinds.headlines(active["kind"], m), strict=True):
    col.metric(h.label, h.value, h.detail, delta_color="off", delta_arrow="off")
few = reward_kinds.few_held_out(m)
if m.get("per_annotator"):
    st.caption("Each annotator's held-out labels, predicted with their own taste and with the pooled model:")
    per = pd.DataFrame(
        [
            {"annotator": name, "own taste": v["personal"], "pooled": v["pooled"], "held-out labels": v["held_out"]}
            for name, v in m["per_annotator"].items()
        ]
    )
    st.bar_chart(per.set_index("annotator")[["own taste", "pooled"]], stack=False, y_label="held-out accuracy",
                 height=240)  # fmt: skip

if few:
    st.info(
        f"Held-out accuracy: {reward_kinds.describe_accuracy(m)}. The model is trained on the rest; "
        f"with {MIN_HELD_OUT} or more held-out pairs that prefer a side (about {5 * MIN_HELD_OUT} labels in all) "
        "the number above means something.",
        icon=":material/info:",
    )
else:
    st.caption(f"Held-out accuracy {reward_kinds.describe_accuracy(m)}.")

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

    rank_responses_section(studio, project.name, m.get("annotators") if active["kind"] == "personal" else None)
    st.stop()

returns = rewards.predicted_and_teacher_returns(studio, project)
if returns is not None:
    predicted, teacher = returns
    scatter = pd.DataFrame({"teacher return": teacher, "predicted return": predicted})
    st.altair_chart(
        alt.Chart(scatter)
        .mark_circle(opacity=0.5)
        .encode(x="teacher return", y="predicted return")
        .properties(
            title=f"Predicted against teacher ({m.get('teacher_reward', 'true')}) return, every segment", height=320
        ),
        width="stretch",
    )
