"""Policy page: train a policy (the studio's DQN, or SAC / PPO from stable-baselines3) on the
learned reward, watch it next to a random policy, and send its latest behaviour back to the
labeling queue."""

from __future__ import annotations

import json

import altair as alt
import gymnasium as gym
import pandas as pd
import streamlit as st

from app.errors import USER_ERRORS
from app.services import autopilot, jobs, loop, model_registry, policies
from app.services.encoders import encoder_options
from app.services.model_registry import TrainingError
from app.ui import auth, display, policy_hints, state
from app.ui.job_panel import job_panel
from app.ui.resources import current_project, get_studio

state.init()
studio = get_studio()
auth.require_admin(studio)
project = current_project(studio)
versions = model_registry.registry(studio, project.name)
model_versions = [r["version"] for r in versions]
active_version = next((r["version"] for r in versions if r["active"]), None)

if not project.env_id:
    st.info("Policies train on environments; this is a text project. Use the Train page for its reward model.")
    st.stop()

st.title(f"Policy · {display.md(project.name)}")
st.caption(
    "A policy (DQN for discrete actions, SAC for continuous ones) learns from the reward your labels taught "
    "and is judged on the environment's true reward. "
    "Watch it next to a random policy; where it goes wrong, send its clips to the Label page."
)

REWARDS = {
    "active": "Active reward model",
    "true": "True reward (baseline)",
    "teacher": "Scripted teacher's reward (baseline)",
}
REWARDS.update({str(v): f"Reward model v{v}" for v in model_versions})


def _start() -> None:
    if not auth.still_admin(studio):
        return
    # The widgets' current values (a callback runs before the script, so locals would be stale).
    reward, steps = st.session_state[state.POLICY_REWARD], int(st.session_state[state.POLICY_STEPS])
    params = {"project": project.name, "reward": reward, "steps": steps, "algo": st.session_state[state.POLICY_ALGO]}
    if (encoder := st.session_state.get(state.POLICY_ENCODER, SAME)) != SAME:
        params["encoder"] = encoder
    params["warm_start"] = "auto" if st.session_state.get(state.POLICY_WARM, True) else "none"
    try:
        jobs.submit(studio, project.id, "train-policy", params)
    except jobs.JobError as exc:
        st.session_state[state.POLICY_ERROR] = str(exc)


def _algo_changed() -> None:  # each algorithm has its own preset length
    st.session_state[state.POLICY_STEPS] = policies.default_steps(project.env_id, st.session_state[state.POLICY_ALGO])


c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
default_reward = "active" if active_version is not None else "true"
reward = c1.selectbox(
    "Reward",
    list(REWARDS),
    index=list(REWARDS).index(default_reward),
    format_func=REWARDS.get,
    key=state.POLICY_REWARD,
)
algos = policies.algo_options(project.env_id)
algo = c1.selectbox(
    "Algorithm",
    algos,
    format_func=policies.ALGO_LABELS.get,
    key=state.POLICY_ALGO,
    on_change=_algo_changed,
    help="The studio's DQN for discrete actions; stable-baselines3's SAC for continuous ones (or PPO, TD3, "
    "A2C), all on the same learned reward, normalised the same way.",
)
steps = c2.number_input(
    "Environment steps",
    min_value=1_000,
    max_value=1_000_000,
    value=policies.default_steps(project.env_id, algo),
    step=1_000,
    key=state.POLICY_STEPS,
)
SAME = "same"
if project.config.get("pixels"):
    options = encoder_options(studio)
    labels = {SAME: "Same as the reward model (shares its feature cache)", **{o.name: o.label for o in options}}
    c1.selectbox(
        "Frozen encoder of the Q-network's frames",
        list(labels),
        format_func=labels.get,
        key=state.POLICY_ENCODER,
        help="The DQN's features: by default the reward model's encoder (EfficientNet-Lite0 for the baselines).",
    )
if algo == "dqn":
    c1.checkbox(
        "Continue from the last policy",
        value=True,
        key=state.POLICY_WARM,
        help="On a reward model, start from the newest DQN trained on one (same encoder), as rl-teacher trains one "
        "policy throughout: the new reward model refines what the last policy learned, and that policy is kept "
        "where nothing trained now scores higher on the new reward. The baselines always start from scratch.",
    )
latest = jobs.latest(studio, project.id, "train-policy")
c3.button(
    "Train policy",
    icon=":material/smart_toy:",
    type="primary",
    on_click=_start,
    disabled=(latest is not None and latest.active) or (reward == "active" and active_version is None),
    width="stretch",
    key=state.POLICY_TRAIN,
)
if reward == "active" and active_version is None:
    st.caption("No active reward model yet: train one on the Train page, or pick the true reward.")
if error := st.session_state.pop(state.POLICY_ERROR, None):
    display.error(studio, error)

checkpoints = policies.policy_registry(studio, project.name)


def _set_autopilot() -> None:
    if not auth.still_admin(studio):
        return
    on, every = st.session_state[state.AUTOPILOT_ON], int(st.session_state[state.AUTOPILOT_EVERY])
    try:
        autopilot.set_autopilot(studio, project.name, every if on else None)
    except USER_ERRORS as exc:
        st.session_state[state.POLICY_ERROR] = str(exc)


def _round_now() -> None:
    if not auth.still_admin(studio):
        return
    try:
        jobs.submit(studio, project.id, "loop-round", {"project": project.name})
    except jobs.JobError as exc:
        st.session_state[state.POLICY_ERROR] = str(exc)


with st.container(border=True):
    every = autopilot.autopilot_every(project)
    since, _ = autopilot.labels_since_round(studio, project.name)
    a1, a2, a3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    a1.toggle(
        "Autopilot: retrain after every K labels",
        value=every is not None,
        key=state.AUTOPILOT_ON,
        on_change=_set_autopilot,
        help="As rl-teacher runs: every K new labels, retrain the reward model, retrain the policy on it "
        "and queue its new clips first on the Label page, in the background.",
    )
    a2.number_input(
        "K (labels per round)",
        min_value=1,
        max_value=10_000,
        value=every or autopilot.DEFAULT_EVERY,
        key=state.AUTOPILOT_EVERY,
        on_change=_set_autopilot,
    )
    round_job = jobs.latest(studio, project.id, "loop-round")
    a3.button(
        "Run a round now",
        icon=":material/autorenew:",
        on_click=_round_now,
        disabled=round_job is not None and round_job.active,
        width="stretch",
        key=state.ROUND_NOW,
    )
    if every is not None:
        st.caption(f"{since} labels since the last round; the next round starts after {max(every - since, 0)} more.")
    else:
        st.caption(f"{since} labels since the reward model was last trained.")

    def _round_done(job: jobs.JobView) -> str:
        r = job.result or {}
        success = "" if r.get("success_rate") is None else f" · success {r['success_rate']:.0%}"
        started = "" if r.get("policy_start") is None else f" ({r['policy_start']})"
        return (
            f"Round (job #{job.id}): reward model v{r.get('reward_version')} on {r.get('labels')} labels, held-out "
            f"accuracy {loop.describe_round_accuracy(r)} · "
            f"policy v{r.get('policy_version')}{success}{started} · {r.get('new_pairs')} new pairs queued for labeling"
        )

    job_panel(
        studio,
        project.id,
        "loop-round",
        live=round_job is not None and round_job.active,
        empty=None,
        succeeded=_round_done,
        cancelled="the round was withdrawn: the active reward model is unchanged, no checkpoint or pairs were added.",
    )


def _succeeded(job: jobs.JobView) -> str:
    r = job.result or {}
    success = "" if r.get("success_rate") is None else f" · success {r['success_rate']:.0%}"
    started = policies.describe_start(r)
    return (
        f"Job #{job.id}: policy v{r.get('version')} ({str(r.get('algo', 'dqn')).upper()}) · "
        f"true return {r.get('true_return_mean'):.2f}{success} · "
        f"{r.get('env_steps_per_second')} steps/s" + ("" if started is None else f" · {started}")
    )


job_panel(
    studio,
    project.id,
    "train-policy",
    live=latest is not None and latest.active,
    empty=None if checkpoints else "No policy yet. Click Train policy.",
    succeeded=_succeeded,
    cancelled="no checkpoint was added.",
)

if not checkpoints:
    st.stop()

st.subheader("Checkpoints")
table = pd.DataFrame([{k: v for k, v in r.items() if k != "curve"} for r in checkpoints])
st.dataframe(table, hide_index=True, width="stretch")
version = st.selectbox("Checkpoint", [r["version"] for r in checkpoints], key=state.POLICY_VERSION)
chosen = next(r for r in checkpoints if r["version"] == version)

AXIS_TITLES = {
    policy_hints.SUCCESS: "success rate",
    policy_hints.TRUE: "true return",
    policy_hints.LEARNED: "learned return",
}
SERIES = {  # the legend: what each line measures
    policy_hints.SUCCESS: "success rate (did the task, 0-1)",
    policy_hints.TRUE: "true return (the environment's reward)",
    policy_hints.LEARNED: "learned return (your reward model)",
}
COLORS = {policy_hints.SUCCESS: "#2ca02c", policy_hints.TRUE: "#2ca02c", policy_hints.LEARNED: "#d62728"}


def _true_return_goal(env_id: str) -> float | None:
    """The environment's own 'solved' return (CartPole-v1: 475), where it declares one."""
    try:
        return gym.spec(env_id).reward_threshold
    except gym.error.Error:
        return None


def _curve_chart(curve: pd.DataFrame, measure: str) -> alt.TopLevelMixin:
    """The task measure on the left axis and the learned return on its own right axis, so their
    divergence shows (on one axis a 0-1 success rate lies flat under a return in the hundreds)."""
    learned = policy_hints.LEARNED
    columns = [measure] + ([learned] if learned in curve and curve[learned].notna().any() else [])
    colors = alt.Scale(domain=[SERIES[c] for c in columns], range=[COLORS[c] for c in columns])
    legend = alt.Legend(orient="bottom", labelLimit=0)
    tooltip = [alt.Tooltip("step:Q", title="environment steps")] + [
        alt.Tooltip(f"{c}:Q", title=AXIS_TITLES[c], format=".2f")
        for c in AXIS_TITLES
        if c in curve and curve[c].notna().any()  # the true return stays in view beside a success rate
    ]
    base = alt.Chart(curve).encode(x=alt.X("step:Q", title="environment steps"), tooltip=tooltip)

    def line(column: str, orient: str) -> alt.Chart:
        scale = alt.Scale(domain=[0, 1]) if column == policy_hints.SUCCESS else alt.Scale(zero=True)
        axis = alt.Axis(orient=orient, titleColor=COLORS[column])
        return (
            base.transform_filter(f"isValid(datum['{column}'])")
            .transform_calculate(series=json.dumps(SERIES[column]))
            .mark_line(point=True)
            .encode(
                y=alt.Y(f"{column}:Q", title=AXIS_TITLES[column], axis=axis, scale=scale),
                color=alt.Color("series:N", scale=colors, title=None, legend=legend),
            )
        )

    left = line(measure, "left")
    if len(columns) == 1:
        return left.properties(title=f"Greedy evaluation during training: {AXIS_TITLES[measure]}", height=320)
    title = alt.TitleParams(
        "Greedy evaluation during training",
        subtitle=f"left axis: {AXIS_TITLES[measure]} · right axis: {AXIS_TITLES[learned]} (each on its own scale)",
    )
    return alt.layer(left, line(learned, "right")).resolve_scale(y="independent").properties(title=title, height=320)


curve_rows = chosen["curve"] or []
curve = pd.DataFrame(curve_rows)
if not curve.empty and "step" in curve:
    measure = policy_hints.task_measure(curve_rows)
    if measure in curve:
        st.altair_chart(_curve_chart(curve, measure), width="stretch")
    hacking = policy_hints.reward_hacking(curve_rows, true_return_goal=_true_return_goal(project.env_id))
    if hacking is not None:
        done = "success" if hacking.measure == policy_hints.SUCCESS else "true return"
        fmt = ".0%" if hacking.measure == policy_hints.SUCCESS else ".2f"
        st.warning(
            f"**Reward hacking:** the learned return rose ({hacking.learned_before:.2f} → "
            f"{hacking.learned_after:.2f}) while {done} did not ({hacking.measure_before:{fmt}} → "
            f"{hacking.measure_after:{fmt}}). The policy found a way to collect your reward model's reward without "
            "doing the task, so the reward model needs labels on what this policy does. What to do: watch the clip "
            "below; click **Add the policy's rollouts to the labeling queue**; label those pairs on the Label page; "
            "retrain the reward model on the Train page; then train the policy again here.",
            icon=":material/warning:",
        )

st.subheader("Watch it")
w1, w2 = st.columns([1, 3], vertical_alignment="bottom")
seed = int(w1.number_input("Start seed", min_value=0, value=0, step=1, key=state.POLICY_SEED))


@st.cache_data(show_spinner="Rolling out…", max_entries=16)
def _showcase(data_dir: str, project: str, version: int, seed: int, reward_version: int | None) -> policies.Showcase:
    return policies.showcase(studio, project, version, seed=seed)  # reward_version: in the key only


try:
    show = _showcase(str(studio.settings.data_dir), project.name, int(version), seed, active_version)
except (*USER_ERRORS, TrainingError) as exc:
    display.error(studio, exc)
    st.stop()
st.image(show.gif, caption=f"left: policy v{version} · right: random policy (same start)")


def _outcome(ret: float, success: bool | None) -> str:
    return f"{ret:.2f}" + ("" if success is None else (" · reached the goal" if success else " · did not succeed"))


m1, m2 = st.columns(2)
m1.metric("Policy: true return", _outcome(show.policy_return, show.policy_success))
m2.metric("Random: true return", _outcome(show.random_return, show.random_success))
if show.predicted_rewards is not None:
    steps_df = pd.DataFrame(
        {
            "step": range(len(show.predicted_rewards)),
            f"predicted (model v{show.reward_model_version})": show.predicted_rewards,
            "true": show.true_rewards,
        }
    ).melt(id_vars="step", var_name="reward", value_name="value")
    st.altair_chart(
        alt.Chart(steps_df)
        .mark_line()
        .encode(
            x=alt.X("step:Q", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("value", title="per-step reward"),
            color=alt.Color("reward", title=None),
        )
        .properties(title="Reward along the policy's episode", height=220),
        width="stretch",
    )

st.subheader("Label where the policy goes")
st.caption(
    "Rolls out this checkpoint and adds its clips as new pairs (against each other and against clips already "
    "judged), served first on the Label page."
)


def _to_queries(version: int) -> None:
    if not auth.still_admin(studio):
        return
    try:
        added = policies.rollouts_to_queries(studio, project.name, version, episodes=4)
    except (*USER_ERRORS, TrainingError) as exc:
        st.session_state[state.POLICY_QUERIES_MSG] = ("error", display.public(studio, exc))
        return
    st.session_state[state.POLICY_QUERIES_MSG] = (
        "ok",
        f"Added {added.queries} pairs from {added.segments} clips of {added.episodes} episodes.",
    )


st.button(
    "Add the policy's rollouts to the labeling queue",
    icon=":material/playlist_add:",
    on_click=_to_queries,
    args=(int(version),),
    key=state.POLICY_TO_QUERIES,
)
if msg := st.session_state.pop(state.POLICY_QUERIES_MSG, None):
    (st.success if msg[0] == "ok" else st.error)(
        display.md(msg[1] + (" Label them on the Label page." if msg[0] == "ok" else ""))
    )
