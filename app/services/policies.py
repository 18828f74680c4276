"""Use cases of policies: train a DQN on the learned reward, inspect it, label where it goes.

Training mirrors reward training: the checkpoint is written to a fresh folder first and one
transaction registers it, so a crash or a cancel leaves the registry as it was. The reward
is the project's active reward model, a given version, or the environment's true reward
(the baseline). Whatever the policy trained on, it is evaluated on the true reward (and on
success where the environment defines it).

:func:`rollouts_to_queries` closes the loop of Christiano et al. (2017): the policy's
latest behaviour becomes new clips and pairs, served first, so people label exactly where
the policy goes now, and a reward the policy has learned to exploit gets corrected there.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from safetensors import SafetensorError

from app.config import Studio
from app.services.artifacts import staged_folder
from app.services.clip_data import project_data
from app.services.clips import render_clips
from app.services.episodes import both_orders, store_episode
from app.services.model_registry import StageProgress, TrainingError, load_model, require_job_running
from db import repo
from db.engine import session_scope
from db.models import PolicyRecord, Project, RewardModelRecord
from db.repo import NewTrajectory
from rlhf_core.backbones.registry import canonical_name, get_encoder
from rlhf_core.callbacks import StopFn, TrainingCancelledError
from rlhf_core.envs.behaviours import Behaviour, random_action
from rlhf_core.envs.clips import side_by_side_gif
from rlhf_core.envs.episodes import (
    Episode,
    choose_segment_starts,
    rollout,
)
from rlhf_core.envs.registry import EnvInfo, env_info, make_env, success_fn
from rlhf_core.errors import InvalidInputError
from rlhf_core.policy.dqn import DQNAgent, DQNResult, Featurize, preset_for, vector_features
from rlhf_core.policy.sb3 import SB3_ALGOS, SB3Agent, is_sb3_checkpoint, make_training_env, sb3_preset
from rlhf_core.rewards.kinds import PERSONAL
from rlhf_core.rewards.learned import LearnedReward
from rlhf_core.rewards.teachers import with_teacher_reward

#: Encoder of pixel policies when neither the caller nor the reward model names one.
DEFAULT_ENCODER = "efficientnet-lite0"
#: Rewards a policy can train on without a reward model: the environment's own, and what the
#: scripted teacher judges by (``rlhf_core.rewards.teachers``; the oracle's progress reward on MiniGrid).
#: Both are baselines: they tell whether the task, and the teacher, can teach the policy at all.
BASELINE_REWARDS = ("true", "teacher")
#: Greedy episodes of the final evaluation.
FINAL_EVAL_EPISODES = 20
#: First episode seed of the final evaluation: apart from the evaluations during training
#: (seeds 10,000 on), on which the kept network was chosen, so the final numbers are not
#: scored on episodes the choice already saw.
FINAL_EVAL_SEED = 20_000


@dataclass(frozen=True)
class PolicyResult:
    """A registered checkpoint and what it measured."""

    version: int
    metrics: dict[str, Any]
    curve: list[dict[str, Any]]


def _resolve_reward(session: Any, project: Project, reward: str) -> RewardModelRecord | None:
    """'true' or 'teacher' -> None; 'active' -> the active model; a number -> that reward model version."""
    record = _resolve_any_reward(session, project, reward)
    if record is not None and record.kind == PERSONAL:
        raise TrainingError(
            f"reward model v{record.version} is a personal one (a reward per annotator); a policy learns one "
            f"reward: train a pooled model (rlhf train-reward --project {project.name} --kind ensemble) or "
            "name one's version with --reward N"
        )
    return record


def _resolve_any_reward(session: Any, project: Project, reward: str) -> RewardModelRecord | None:
    if reward in BASELINE_REWARDS:
        return None
    if reward == "active":
        record = repo.active_reward_model(session, project.id)
        if record is None:
            raise TrainingError(
                f"project {project.name!r} has no active reward model: train one first (`rlhf train-reward` or "
                "the Train page), or train on the environment's reward with --reward true"
            )
        return record
    try:
        version = int(reward)
    except ValueError:
        raise TrainingError(
            f"reward must be 'active', 'true', 'teacher' or a reward model version number, got {reward!r}"
        ) from None
    return repo.reward_model_by_version(session, project.id, version)


def learned_reward(studio: Studio, project_name: str, reward: str = "active") -> LearnedReward:
    """A project's reward model (the active one, or a version number as a string) as the policies
    see it: normalised on the project's clips (the ones people label, the policy's among them).
    Wrap an environment in it for another RL library (``rlhf_core.rewards.wrapper``)."""
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        record = _resolve_reward(session, project, reward)
    if record is None:
        raise TrainingError(f"{reward!r} is not a reward model: name 'active' or a version number")
    return LearnedReward(load_model(studio, record), reference=project_data(studio, project).segments)


def _featurizer(info: EnvInfo, encoder: str | None) -> tuple[Featurize, int, str | None]:
    if not info.pixels:
        return vector_features, int(np.prod(info.obs_shape)), None
    name = canonical_name(encoder or DEFAULT_ENCODER)
    enc = get_encoder(name)
    return enc.encode, enc.features_dim, name


#: Policy algorithms: the studio's DQN (discrete actions) and stable-baselines3's (rlhf_core.policy.sb3).
ALGOS = ("dqn", *SB3_ALGOS)


def default_algo(info: EnvInfo) -> str:
    """The studio's DQN for discrete actions, SAC for continuous ones."""
    return "sac" if info.continuous else "dqn"


#: What each algorithm is, for the pages.
ALGO_LABELS = {
    "dqn": "DQN (the studio's; discrete actions)",
    "sac": "SAC (stable-baselines3; continuous actions)",
    "ppo": "PPO (stable-baselines3)",
    "td3": "TD3 (stable-baselines3; continuous actions)",
    "a2c": "A2C (stable-baselines3)",
}


def algo_options(env_id: str) -> list[str]:
    """The algorithms that can train on ``env_id``, its default first."""
    info = env_info(env_id)
    usable = []
    for algo in ALGOS:
        try:
            _check_algo(algo, info)
        except TrainingError:
            continue
        usable.append(algo)
    first = default_algo(info)
    return [first, *(a for a in usable if a != first)]


def _check_algo(algo: str, info: EnvInfo) -> None:
    if algo not in ALGOS:
        raise TrainingError(f"unknown algorithm {algo!r}; use one of: {', '.join(ALGOS)}")
    space = "box" if info.continuous else "discrete"
    if algo == "dqn" and info.continuous:
        raise TrainingError(
            f"{info.env_id} has continuous actions; DQN chooses among discrete ones: use --algo sac (or ppo)"
        )
    if algo != "dqn" and space not in SB3_ALGOS[algo]:
        raise TrainingError(f"{algo.upper()} needs continuous actions; {info.env_id} has discrete ones: use dqn or ppo")
    if algo != "dqn" and info.pixels:
        raise TrainingError(
            f"{algo.upper()} trains here on vector observations; {info.env_id} has pixels: use --algo dqn, whose "
            "CNN features are pretrained and frozen"
        )


def train_policy(
    studio: Studio,
    project_name: str,
    reward: str = "active",
    *,
    steps: int | None = None,
    encoder: str | None = None,
    config: dict[str, Any] | None = None,
    seed: int = 0,
    algo: str | None = None,
    warm_start: int | str | None = None,
    on_progress: StageProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
    job_id: int | None = None,
) -> PolicyResult:
    """Train a policy on a project's environment and register the checkpoint: the studio's DQN
    (``algo`` 'dqn', the default for discrete actions) or stable-baselines3's SAC (the default
    for continuous actions), PPO, TD3 or A2C on the same learned reward.

    ``warm_start``: a DQN checkpoint's version to start from (its network, on the same encoder), or
    "previous": the newest DQN trained on one of the project's reward models with this run's
    encoder, if any (what the loop does each round, as rl-teacher trains one policy throughout
    while the reward model changes under it). The start is also a candidate for the kept network,
    scored on this run's reward like every evaluation, so a round keeps the last round's network
    where the new reward scores nothing trained since higher. Where nothing trained since scores
    as well as the start, a policy is trained from scratch too and the better of the two is kept
    (``metrics["restart"]``): a start can sit where the new reward's optimum is out of reach."""
    progress = on_progress or (lambda stage, done, total: None)
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        if not project.env_id:
            raise TrainingError(f"project {project_name!r} has no environment; policies train on trajectory projects")
        record = _resolve_reward(session, project, reward)
        start: PolicyRecord | None = None
        previous: list[PolicyRecord] = []
        if warm_start == "previous":
            previous = repo.policies(session, project.id)
        elif warm_start is not None:
            start = repo.get_policy(session, project.id, int(warm_start))
    env_id = project.env_id
    info = env_info(env_id)
    algo = algo or default_algo(info)
    _check_algo(algo, info)
    if start is not None and algo != "dqn":
        raise TrainingError(f"warm starts are for the studio's DQN, not {algo}")
    try:
        if algo == "dqn":
            base: Any = preset_for(env_id)
        else:
            base = sb3_preset(env_id, algo)
        cfg = base.replace(seed=seed, **(config or {}), **({"total_steps": steps} if steps is not None else {}))
    except (TypeError, InvalidInputError) as exc:
        raise TrainingError(f"bad policy setting: {exc}") from exc
    progress("load", 0, 1)
    reward_fn: LearnedReward | None = None
    absorbing = 0.0
    if record is not None:
        model = load_model(studio, record)
        reward_fn = LearnedReward(model, reference=project_data(studio, project).segments)
        if encoder is None and model.spec.encoder:
            encoder = model.spec.encoder  # share the reward model's cached features
    featurize, feature_dim, encoder_name = _featurizer(info, encoder)
    candidates = _previous_policies(previous, encoder_name) if algo == "dqn" else []

    def make_train_env() -> gym.Env:
        env = make_env(env_id, render=False)
        return with_teacher_reward(env_id, env) if reward == "teacher" else env  # evaluation stays on the true reward

    env: Any = make_train_env() if algo == "dqn" else make_training_env(make_train_env, cfg, reward_fn)
    eval_env = make_env(env_id, render=False)
    if reward_fn is not None:
        example, _ = eval_env.reset(seed=seed)
        absorbing = reward_fn.absorbing_reward(example)
    progress("load", 1, 1)
    succeeded = success_fn(env_id)
    stats = get_encoder(encoder_name).stats if encoder_name else None
    hits0, misses0 = (stats.hits, stats.misses) if stats else (0, 0)
    agent: Any
    restart: dict[str, Any] | None = None
    try:
        if algo == "dqn":
            agent = DQNAgent(cfg, feature_dim, info.n_actions, featurize)
            if start is not None:
                agent.warm_start(_start_weights(studio, start, agent, encoder_name))
            for candidate in candidates:  # "previous": the newest checkpoint that can start this network
                try:
                    agent.warm_start(_start_weights(studio, candidate, agent, encoder_name))
                except TrainingError:
                    continue
                start = candidate
                break

            def learn(trainee: DQNAgent, stage: str, from_start: bool) -> DQNResult:
                return trainee.learn(
                    env,
                    reward_fn=reward_fn,
                    absorbing_reward=absorbing,
                    on_step=lambda done, total, metrics: progress(stage, done, total),
                    should_stop=should_stop,
                    eval_env=eval_env,
                    success_fn=succeeded,
                    # the teacher's reward is not what the evaluations measure: keep its last network
                    select_by=None if reward == "teacher" else "auto",
                    start_is_candidate=from_start,
                )

            result = learn(agent, "train" if start is None else "continue", start is not None)
            if start is not None and _continuing_fell_short(result):
                # every evaluation since the start scored below it on this reward: the start's network
                # may sit where this reward's optimum is out of reach (a CartPole policy that never
                # balanced kept itself round after round). Train one from scratch too; keep the better
                fresh = DQNAgent(cfg, feature_dim, info.n_actions, featurize)
                fresh_result = learn(fresh, "restart", False)
                restart = {"start": start.version, "score": result.chosen_by, **_restart_choice(result, fresh_result)}
                if restart["kept"] == "fresh":
                    agent, result, start, other = fresh, fresh_result, None, result
                else:
                    other = fresh_result
                restart["other_train_seconds"] = round(other.seconds, 2)  # the run not kept
        else:
            agent = SB3Agent.build(cfg, env)
            result = agent.learn(
                on_step=lambda done, total, metrics: progress("train", done, total),
                should_stop=should_stop,
                eval_env=eval_env,
                reward_fn=reward_fn,
                success_fn=succeeded,
            )
        progress("evaluate", 0, 1)
        final = agent.evaluate(
            eval_env, FINAL_EVAL_EPISODES, FINAL_EVAL_SEED, reward_fn=reward_fn, success_fn=succeeded
        )
        progress("evaluate", 1, 1)
        if should_stop is not None and should_stop():
            raise TrainingCancelledError("stopped while evaluating")
    finally:
        env.close()
        eval_env.close()
    metrics: dict[str, Any] = {
        **final.summary(),
        "algo": algo,
        "env_steps": result.env_steps,
        "env_steps_per_second": round(result.env_steps_per_second, 1),
        "train_seconds": round(result.seconds, 2),
        "gradient_steps": result.gradient_steps,
        "chosen_step": result.chosen_step,
        "warm_start": None if start is None else start.version,
        **({} if restart is None else {"restart": restart}),
        "labels_used": record.label_count if record is not None else 0,
        "reward": reward if record is None else f"model v{record.version}",
        "episodes": len(result.episode_returns),
    }
    if stats is not None:  # this call's lookups only (both runs', where a restart trained two)
        hits, misses = stats.hits - hits0, stats.misses - misses0
        metrics["encoder_cache_hit_rate"] = round(hits / (hits + misses), 4) if hits + misses else None
    with staged_folder(
        studio.settings.data_dir / "policies" / f"project-{project.id}",
        lambda tmp: agent.save(tmp, {"env_id": env_id, "encoder": encoder_name, "absorbing_reward": absorbing}),
    ) as folder:
        with session_scope(studio.engine, write=True) as session:
            require_job_running(session, job_id)
            saved = repo.register_policy(
                session,
                project.id,
                reward=reward if record is None else "model",
                reward_model_id=None if record is None else record.id,
                encoder=encoder_name,
                config={"algo": algo, **cfg.to_dict()},
                label_count=metrics["labels_used"],
                metrics=metrics,
                curve=result.curve,
                path=studio.relative(folder),
                job_id=job_id,
            )
            version = saved.version
    return PolicyResult(version, metrics, result.curve)


def _continuing_fell_short(result: DQNResult) -> bool:
    """Did a warm-started run keep its start because nothing trained since scored as well on its reward?"""
    return result.chosen_step == 0 and result.chosen_score is not None


def _restart_choice(continued: DQNResult, fresh: DQNResult) -> dict[str, Any]:
    """Which of a continued run (that kept its start) and a fresh one to keep: the higher score on the
    reward both trained on (what every evaluation is chosen by); a tie keeps the continued run's network."""
    assert continued.chosen_score is not None
    won = fresh.chosen_score is not None and fresh.chosen_score > continued.chosen_score
    return {
        "kept": "fresh" if won else "start",
        "start_score": round(continued.chosen_score, 4),
        "fresh_score": None if fresh.chosen_score is None else round(fresh.chosen_score, 4),
    }


_SCORES = {"discounted_learned_return_mean": "discounted learned return", "true_return_mean": "true return"}


def describe_start(metrics: dict[str, Any]) -> str | None:
    """Where a policy's kept network started, in words (None: from scratch, as asked)."""
    r = metrics.get("restart")
    if r is not None:
        kept = "the fresh one" if r["kept"] == "fresh" else f"policy {r['start']}'s network"
        score = _SCORES.get(r.get("score", ""), "score")
        return (
            f"continuing from policy {r['start']}, every evaluation scored below it on this reward, so a policy "
            f"was trained from scratch too ({score} {r['fresh_score']} against {r['start_score']}): kept {kept}"
        )
    if metrics.get("warm_start") is not None:
        return f"continued policy {metrics['warm_start']}"
    return None


def parse_warm_start(value: str | int | None, reward: str) -> int | str | None:
    """A warm start as the CLI and the Policy page name it -> :func:`train_policy`'s ``warm_start``:
    'auto' (the default) is 'previous' when the reward is a reward model's, else none; 'previous';
    'none'; or a policy version."""
    if value is None or value == "none":
        return None
    if value == "auto":
        return None if reward in BASELINE_REWARDS else "previous"
    if value == "previous":
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"warm start must be auto, previous, none or a policy version number, got {value!r}"
        ) from None


def _previous_policies(records: list[PolicyRecord], encoder: str | None) -> list[PolicyRecord]:
    """The DQN checkpoints trained on one of the project's reward models with ``encoder``, newest first."""
    return [
        r
        for r in records
        if r.reward == "model" and (r.config or {}).get("algo", "dqn") == "dqn" and r.encoder == encoder
    ]


def _start_weights(studio: Studio, start: PolicyRecord, agent: DQNAgent, encoder: str | None) -> dict[str, Any]:
    """A checkpoint's online network, checked to fit ``agent`` (a DQN on the same encoder, same network shape)."""
    folder = studio.path(start.path)
    if is_sb3_checkpoint(folder):
        algo = (start.config or {}).get("algo", "an SB3 algorithm")
        raise TrainingError(
            f"policy v{start.version} is a {algo.upper()} policy and cannot start a DQN; train from scratch "
            "(--warm-start none, or untick 'Continue from the last policy' on the Policy page)"
        )
    if start.encoder != encoder:
        raise TrainingError(
            f"policy v{start.version} was trained on the encoder {start.encoder or 'of vectors'}, this run uses "
            f"{encoder or 'vectors'}; choose that encoder, or train from scratch (--warm-start none)"
        )
    try:
        state = DQNAgent.saved_network(folder)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:  # missing or damaged
        raise TrainingError(f"policy v{start.version}'s checkpoint cannot be read ({exc}); train from scratch") from exc
    mine = agent.q.state_dict()
    if state.keys() != mine.keys() or any(state[k].shape != mine[k].shape for k in mine):
        raise TrainingError(
            f"policy v{start.version}'s network has another shape than this run's; "
            "train from scratch (--warm-start none)"
        )
    return state


# --- inspecting a checkpoint -------------------------------------------------------------------


def policy_registry(studio: Studio, project_name: str) -> list[dict[str, Any]]:
    """Every checkpoint of a project, newest first, with its metrics and training curve."""
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        records = repo.policies(session, project.id)
        versions = {r.id: r.version for r in repo.reward_models(session, project.id)}
    return [
        {
            "version": r.version,
            "algo": (r.config or {}).get("algo", "dqn"),
            "reward": r.reward
            if r.reward in BASELINE_REWARDS
            else f"model v{versions.get(r.reward_model_id or -1, '?')}",
            "labels_used": r.label_count,
            "true_return_mean": r.metrics.get("true_return_mean"),
            "success_rate": r.metrics.get("success_rate"),
            "learned_return_mean": r.metrics.get("learned_return_mean"),
            "env_steps": r.metrics.get("env_steps"),
            "env_steps_per_second": r.metrics.get("env_steps_per_second"),
            "encoder": r.encoder,
            "created_at": r.created_at,
            "curve": r.curve,
        }
        for r in records
    ]


def _checkpoint(
    studio: Studio, project_name: str, version: int | None
) -> tuple[Project, PolicyRecord, RewardModelRecord | None, Any]:
    """The project, a checkpoint's record, the active reward model's record (one read) and the
    agent (a DQNAgent, or an SB3Agent)."""
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        record = repo.get_policy(session, project.id, version)
        active = repo.active_reward_model(session, project.id)
    folder = studio.path(record.path)
    if is_sb3_checkpoint(folder):
        return project, record, active, SB3Agent.load(folder)
    featurize, _, _ = _featurizer(env_info(project.env_id or ""), record.encoder)
    return project, record, active, DQNAgent.load(folder, featurize)


def load_agent(studio: Studio, project_name: str, version: int | None = None) -> tuple[PolicyRecord, Any]:
    """A checkpoint's record and its agent (the newest checkpoint when ``version`` is None)."""
    _, record, _, agent = _checkpoint(studio, project_name, version)
    return record, agent


def policy_behaviour(agent: Any, name: str, epsilon: float = 0.0) -> Behaviour:
    """The checkpoint as a behaviour (greedy, or epsilon-greedy for variety: a random action
    with probability ``epsilon``)."""

    def act(env: gym.Env, obs: np.ndarray, rng: np.random.Generator) -> Any:
        if epsilon > 0 and rng.random() < epsilon:
            return random_action(env, obs, rng)
        return agent.act(obs)

    return Behaviour(name, act)


@dataclass(frozen=True)
class Showcase:
    """One episode of the policy beside one of a random policy, from the same start."""

    gif: bytes
    policy_return: float
    random_return: float
    policy_success: bool | None
    random_success: bool | None
    predicted_rewards: np.ndarray | None
    """The active reward model's per-step reward along the policy's episode (None without a model)."""
    true_rewards: np.ndarray
    reward_model_version: int | None


def _pad(frames: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    valid = np.arange(length) < len(frames)
    idx = np.minimum(np.arange(length), len(frames) - 1)
    return frames[idx], valid


def showcase(studio: Studio, project_name: str, version: int | None = None, *, seed: int = 0) -> Showcase:
    """Roll out a checkpoint and a random policy from the same start; clip them side by side."""
    project, record, active, agent = _checkpoint(studio, project_name, version)
    env_id = project.env_id or ""
    info = env_info(env_id)
    max_steps = 10 * info.segment_length(1.5)
    mine = rollout(
        env_id,
        policy_behaviour(agent, f"policy v{record.version}"),
        seed=seed,
        rng=np.random.default_rng(seed),
        max_steps=max_steps,
    )
    rand = rollout(
        env_id, Behaviour("random", random_action), seed=seed, rng=np.random.default_rng(seed), max_steps=max_steps
    )
    assert mine.frames is not None and rand.frames is not None
    length = max(len(mine.frames), len(rand.frames))
    left, left_valid = _pad(mine.frames, length)
    right, right_valid = _pad(rand.frames, length)
    gif = side_by_side_gif(left, left_valid, right, right_valid, fps=info.render_fps)
    succeeded = success_fn(env_id)

    def success(ep: Episode) -> bool | None:
        return None if succeeded is None else succeeded(ep.terminated, float(ep.rewards[-1]), {})

    predicted, model_version = None, None
    if active is not None:
        learned = LearnedReward(load_model(studio, active))
        predicted = learned.raw(mine.obs[:-1], mine.obs[1:], actions=mine.actions)
        model_version = active.version
    return Showcase(
        gif,
        mine.true_return,
        rand.true_return,
        success(mine),
        success(rand),
        predicted,
        mine.rewards,
        model_version,
    )


# --- labeling where the policy goes -------------------------------------------------------------


@dataclass(frozen=True)
class NewQueries:
    """What :func:`rollouts_to_queries` added."""

    episodes: int
    segments: int
    queries: int


def rollouts_to_queries(
    studio: Studio,
    project_name: str,
    version: int | None = None,
    *,
    episodes: int = 4,
    pairs_per_segment: int = 2,
    epsilon: float = 0.05,
    seed: int | None = None,
    on_progress: StageProgress | None = None,
    should_stop: StopFn | None = None,
    job_id: int | None = None,
) -> NewQueries:
    """Turn a checkpoint's fresh rollouts into clips and new pairs, served before older ones.

    Each new segment is paired with another new one and with existing segments of the
    project, so the reward model learns how the policy's behaviour compares with what people
    already judged. Files first, rows in one transaction: a failure or a stop (``should_stop``,
    asked after each episode and before the rows are written) adds nothing, nor does the
    job ``job_id`` once it no longer runs.
    """
    if episodes < 1 or pairs_per_segment < 1:
        raise InvalidInputError("episodes and pairs_per_segment must be at least 1")
    progress = on_progress or (lambda stage, done, total: None)
    project, record, _, agent = _checkpoint(studio, project_name, version)
    with session_scope(studio.engine) as session:
        existing = [(item.id, item.clip_file) for item, _ in repo.project_items(session, project.id) if item.clip_file]
        top = repo.top_priority(session, project.id)
    env_id = project.env_id or ""
    info = env_info(env_id)
    length = int(project.config.get("segment_length") or info.segment_length(1.5))
    rng = np.random.default_rng(seed)
    behaviour = policy_behaviour(agent, f"policy v{record.version}", epsilon)
    batch = uuid.uuid4().hex[:12]
    folder = studio.settings.data_dir / "rollouts" / f"project-{project.id}" / batch
    rows: list[NewTrajectory] = []
    rendered: list[Path] = []
    try:
        for k in range(episodes):
            episode_seed = int(rng.integers(1 << 30))
            ep = rollout(env_id, behaviour, seed=episode_seed, rng=rng, max_steps=3 * length)
            starts = choose_segment_starts(ep.length, length, 2, rng, terminated=ep.terminated)
            # Frame files are named after the batch: a batch-unique stem never reuses an old clip's name.
            rows.append(store_episode(ep, folder, studio.settings.data_dir, f"{batch}_{k:05d}", starts, length))
            progress("rollouts", k + 1, episodes)
            if should_stop is not None and should_stop():
                raise TrainingCancelledError("stopped while rolling out the policy's clips")
        new_frames = [seg.clip_file for row in rows for seg in row.segments]
        pairs = _pairs_for(len(new_frames), len(existing), pairs_per_segment, rng)

        def frames_of(key: int) -> str:  # keys < 0 are new items: -1 - index
            return new_frames[-1 - key] if key < 0 else existing[key][1]

        # clips are named after the items' frame files: render before any row exists
        # (some land in older items' clip folders)
        clip_pairs = [(frames_of(a), frames_of(b)) for a, b in pairs]
        jobs = both_orders(studio, clip_pairs, info.render_fps)
        rendered = [job.out for job in jobs]  # known before rendering: a failure removes them all
        render_clips(jobs, 1, progress)
        if should_stop is not None and should_stop():
            raise TrainingCancelledError("stopped before the policy's clips were queued")
        with session_scope(studio.engine, write=True) as session:
            require_job_running(session, job_id)
            new_ids = [i for ids in repo.add_trajectories(session, project.id, rows) for i in ids]

            def id_of(key: int) -> int:
                return new_ids[-1 - key] if key < 0 else existing[key][0]

            queries = repo.add_queries(
                session, project.id, [(id_of(a), id_of(b)) for a, b in pairs], "policy", [top + 1.0] * len(pairs)
            )
            added = NewQueries(episodes, len(new_ids), len(queries))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        for path in rendered:
            path.unlink(missing_ok=True)
        raise
    return added


def _pairs_for(n_new: int, n_existing: int, per_segment: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Pairs of keys (new item i is ``-1 - i``, existing item j is ``j``): each new segment with
    another new one (a ring in random order), then with ``per_segment - 1`` random existing ones."""
    chosen: list[tuple[int, int]] = []
    seen: set[frozenset[int]] = set()

    def add(a: int, b: int) -> None:
        if a != b and frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            chosen.append((a, b))

    order = rng.permutation(n_new)
    if n_new > 1:
        for i in range(n_new):
            add(-1 - int(order[i]), -1 - int(order[(i + 1) % n_new]))
    for i in range(n_new):
        if n_existing:
            for j in rng.choice(n_existing, size=min(per_segment - 1, n_existing), replace=False):
                add(-1 - i, int(j))
    return chosen


def default_steps(env_id: str, algo: str | None = None) -> int:
    """Environment steps a policy trains for unless told otherwise (the preset of ``env_id`` for
    ``algo``, by default the default algorithm's)."""
    algo = algo or default_algo(env_info(env_id))
    return preset_for(env_id).total_steps if algo == "dqn" else sb3_preset(env_id, algo).total_steps
