"""Use case: the loop of Christiano et al. (2017), run for people or for a scripted teacher.

A *round* retrains the reward model on every label so far, trains a policy on it, and
queues pairs cut from that policy's fresh rollouts (served before older pairs), so the
next labels land where the policy goes now. As in rl-teacher, one policy learns throughout: a
round's DQN starts from the last round's network, which is also a candidate for the kept
checkpoint, scored on the new reward. A round is all or nothing: cancelled or
failed part-way, it withdraws the reward model it registered and reactivates the one that
was active, so the store is as it was before the round.

*Autopilot* (rl-teacher's mode): with ``every`` set on a project, a round starts in the
background whenever that many labels have arrived since the active reward model was
trained (:func:`app.services.autopilot.autopilot_due`; the app checks after each label it
stores). ``rlhf loop``
runs rounds in the foreground with a scripted teacher labelling between them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from app.config import Studio
from app.services.autopilot import labels_since_round
from app.services.model_registry import StageProgress, TrainingError
from app.services.policies import describe_start, rollouts_to_queries, train_policy
from app.services.reward_kinds import REWARD_KINDS, describe_accuracy
from app.services.rewards import train_reward_model
from app.services.synthetic import label_synthetic
from db import repo
from db.engine import session_scope
from db.models import PolicyRecord, Project, ProjectKind, RewardModelRecord
from rlhf_core.callbacks import TrainingCancelledError
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.kinds import CNN_LORA, ENSEMBLE, LINEAR

#: Episodes of the policy turned into new pairs each round.
ROLLOUT_EPISODES = 8


@dataclass(frozen=True)
class RoundResult:
    """What one round made and measured."""

    round: int
    labels: int
    reward_version: int
    reward_val_accuracy: float | None
    policy_version: int
    success_rate: float | None
    true_return_mean: float
    learned_return_mean: float | None
    new_pairs: int
    seconds: float
    policy_start: str | None = None
    """Where the policy's kept network started, in words (:func:`describe_start`)."""
    policy_restart: dict[str, Any] | None = None
    """Where the continued policy fell short and one was trained from scratch too: which was kept."""
    reward_val_pairs: int | None = None
    """How many held-out pairs the reward model's accuracy rests on."""
    reward_val_ci95: list[float] | None = None
    """The accuracy's 95% interval."""

    def describe_accuracy(self) -> str:
        return describe_round_accuracy(self.to_json())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def describe_round_accuracy(result: dict[str, Any]) -> str:
    """A round's (:meth:`RoundResult.to_json`) held-out accuracy with the pairs it rests on and its
    interval, and 'label more' below the minimum (:func:`describe_accuracy`)."""
    return describe_accuracy(
        {
            "val_accuracy": result.get("reward_val_accuracy"),
            "val_pairs": result.get("reward_val_pairs"),
            "val_accuracy_ci95": result.get("reward_val_ci95"),
        }
    )


def _no() -> bool:
    return False


#: The reward kinds a round retrains as the active model was trained (the others: the defaults).
_CLIP_KINDS = (LINEAR, ENSEMBLE, CNN_LORA)


def reward_choices(record: RewardModelRecord | None) -> dict[str, Any]:
    """How a round trains its reward model: as the project's active one was trained (its kind,
    encoder, state-action input, form, options and annotator filters: what the user chose on
    the Train page or the command line, and kept active), so the loop does not swap a chosen
    model for the defaults. The defaults where no clip model is active."""
    if record is None or record.kind not in _CLIP_KINDS:
        return {}
    m = record.metrics or {}
    # options this version of the studio still takes for the kind (an old model's may be gone)
    config = {k: v for k, v in (record.config or {}).items() if k in REWARD_KINDS[record.kind].options}
    return {
        "kind": record.kind,
        "encoder": m.get("encoder"),
        "actions": bool(m.get("state_action")),
        "form": m.get("reward_form"),
        "config": config or None,
        "min_agreement": m.get("min_agreement"),
        "weight_by_agreement": bool(m.get("weighted_by_agreement")),
    }


def policy_choices(records: list[PolicyRecord]) -> dict[str, Any]:
    """How a round trains its policy: with the algorithm and environment steps of the project's
    newest policy trained on a learned reward (the Policy page's or ``train-policy``'s choice;
    e.g. more steps for a larger room), so a round does not fall back to the preset's length.
    The defaults where none was."""
    learned = [r for r in records if r.reward == "model"]
    if not learned:
        return {}
    config = max(learned, key=lambda r: r.version).config or {}
    out: dict[str, Any] = {}
    if config.get("algo"):
        out["algo"] = config["algo"]
    if config.get("total_steps"):
        out["steps"] = int(config["total_steps"])
    return out


def run_round(
    studio: Studio,
    project_name: str,
    *,
    number: int = 1,
    seed: int = 0,
    steps: int | None = None,
    on_progress: StageProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
    job_id: int | None = None,
    warm_start: bool = True,
) -> RoundResult:
    """Retrain the reward model as the active one was trained (:func:`reward_choices`; the
    defaults where none is active), train a policy on it as the newest one was
    (:func:`policy_choices`; ``steps`` environment steps where given), queue its clips."""
    progress = on_progress or (lambda stage, done, total: None)
    stop = should_stop or _no
    start = time.perf_counter()
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        if project.kind is not ProjectKind.trajectory:
            raise TrainingError(f"project {project_name!r} holds text; the loop trains policies on clip projects")
        before = repo.active_reward_model(session, project.id)
        previous = None if before is None else before.version
        chosen_reward = reward_choices(before)
        chosen_policy = policy_choices(repo.policies(session, project.id))
        if steps is not None:
            chosen_policy["steps"] = steps
        priorities = {q.id: q.priority for q in repo.unlabeled_queries(session, project.id)}  # a new model reorders
    if job_id is not None:  # should the worker die midway, the expiry puts this version back
        with session_scope(studio.engine, write=True) as session:
            repo.note_reward_before(session, job_id, previous)
    reward = train_reward_model(
        studio,
        project_name,
        **chosen_reward,
        seed=seed,
        on_progress=lambda stage, done, total: progress(f"reward {stage}", done, total),
        should_stop=stop,
        job_id=job_id,
    )
    policy_version: int | None = None
    try:
        policy = train_policy(
            studio,
            project_name,
            str(reward.version),  # this round's model, even if another job activated a newer one meanwhile
            **chosen_policy,
            seed=seed,
            warm_start="previous" if warm_start else None,
            on_progress=lambda stage, done, total: progress(f"policy {stage}", done, total),
            should_stop=stop,
            job_id=job_id,
        )
        policy_version = policy.version
        if stop():
            raise TrainingCancelledError("stopped before the policy's clips were queued")
        queued = rollouts_to_queries(
            studio,
            project_name,
            policy.version,
            episodes=ROLLOUT_EPISODES,
            seed=seed,
            on_progress=lambda stage, done, total: progress(f"clips {stage}", done, total),
            should_stop=stop,
            job_id=job_id,
        )
    except BaseException:
        _withdraw_round(studio, project, reward.version, previous, policy_version, priorities)
        raise
    m = policy.metrics
    return RoundResult(
        round=number,
        labels=int(reward.metrics.get("n_labels") or 0),
        reward_version=reward.version,
        reward_val_accuracy=reward.metrics.get("val_accuracy"),
        policy_version=policy.version,
        success_rate=m.get("success_rate"),
        true_return_mean=float(m["true_return_mean"]),
        learned_return_mean=m.get("learned_return_mean"),
        new_pairs=queued.queries,
        seconds=round(time.perf_counter() - start, 1),
        policy_start=describe_start(m),
        policy_restart=m.get("restart"),
        reward_val_pairs=reward.metrics.get("val_pairs"),
        reward_val_ci95=reward.metrics.get("val_accuracy_ci95"),
    )


def _withdraw_round(
    studio: Studio,
    project: Project,
    version: int,
    previous: int | None,
    policy_version: int | None,
    priorities: dict[int, float],
) -> None:
    """Undo a round's reward model (and the order it gave the pending pairs) and its policy (its
    clips are queued last, in one transaction: they never need undoing)."""
    with session_scope(studio.engine, write=True) as session:
        path, was_active = repo.withdraw_reward_model(session, project.id, version, previous)
        paths = [path]
        if policy_version is not None:
            paths.append(repo.withdraw_policy(session, project.id, policy_version))
        active = repo.active_reward_model(session, project.id)
        if was_active or (None if active is None else active.version) == previous:
            # the model before the round is active again (here, or set back by the expiry of a
            # round declared dead): its pair order too. Else a newer model ordered them: it stands
            repo.restore_query_priorities(session, priorities)
    for path in paths:
        shutil.rmtree(studio.path(path), ignore_errors=True)


def run_loop(
    studio: Studio,
    project_name: str,
    *,
    rounds: int,
    labels_per_round: int,
    teacher: str | None = "oracle",
    first_labels: int | None = None,
    seed: int = 0,
    steps: int | None = None,
    on_progress: StageProgress | None = None,
    on_round: Callable[[RoundResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    warm_start: bool = True,
    poll: float = 5.0,
) -> list[RoundResult]:
    """``rounds`` rounds; before each, ``teacher`` labels ``labels_per_round`` pending pairs
    (``first_labels`` before the first). ``teacher`` None: people label between rounds, in the
    app: each round after the first waits until ``labels_per_round`` labels have arrived since
    the last one (the first round, for ``first_labels`` where given), polling every ``poll``
    seconds, with progress (stage 'waiting for labels') and a stop between polls."""
    if rounds < 1 or labels_per_round < 1:
        raise InvalidInputError("--rounds and --labels-per-round must be at least 1")
    results: list[RoundResult] = []
    for r in range(rounds):
        want = first_labels if (r == 0 and first_labels is not None) else labels_per_round
        if teacher is not None:
            label_synthetic(studio, project_name, teacher, want, seed=seed + r)
        elif r > 0 or first_labels is not None:
            _wait_for_labels(studio, project_name, want, on_progress, should_stop, poll)
        result = run_round(
            studio,
            project_name,
            number=r + 1,
            seed=seed + r,
            steps=steps,
            on_progress=on_progress,
            should_stop=should_stop,
            warm_start=warm_start,
        )
        results.append(result)
        if on_round is not None:
            on_round(result)
    return results


def _wait_for_labels(
    studio: Studio,
    project_name: str,
    want: int,
    on_progress: StageProgress | None,
    should_stop: Callable[[], bool] | None,
    poll: float,
) -> None:
    """Wait until ``want`` labels (a side or equal) have arrived since the active reward model
    was trained (people label in the app meanwhile)."""
    while True:
        since, _ = labels_since_round(studio, project_name)
        if on_progress is not None:
            on_progress("waiting for labels", min(since, want), want)
        if since >= want:
            return
        if should_stop is not None and should_stop():
            raise TrainingCancelledError("stopped while waiting for labels")
        time.sleep(poll)
