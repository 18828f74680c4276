"""The reward model registry: versions of a project's reward model, saved, registered, loaded, activated.

Shared by every kind (:mod:`app.services.rewards` for trajectories, :mod:`app.services.text_rewards`
for text): a fitted model is written to a fresh folder first, then one transaction registers
it as the active version, so a failed or cancelled fit leaves the store as it was. Light to
import: torch loads only when a model does.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.config import Studio
from app.services import reward_kinds
from app.services.artifacts import staged_folder
from db import repo
from db.engine import session_scope
from db.models import RewardModelRecord
from rlhf_core.callbacks import ProgressFn, StopFn, TrainingCancelledError
from rlhf_core.distributed import is_main
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.kinds import PERSONAL, TEXT_LORA

logger = logging.getLogger(__name__)

#: Stage-aware progress callback: (stage, done, total).
StageProgress = Callable[[str, int, int], None]


class TrainingError(InvalidInputError):
    """Training cannot start (too few labels, unknown kind...); the message says what to do."""


def label_hash(comparisons: list[repo.Comparison]) -> str:
    """Fingerprint of the labels a model was trained on (ids and preferences)."""
    digest = hashlib.sha256()
    for c in comparisons:
        digest.update(f"{c.label_id}:{c.pref};".encode())
    return digest.hexdigest()


def split_train_val(
    n: int, val_fraction: float, rng: np.random.Generator, keys: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Random disjoint train and validation indices (validation gets at least 1 when n >= 5).

    With ``keys`` (:func:`pair_key`, one per label) the pairs are drawn, not the labels: every
    label of a pair falls on the same side, so no pair is scored that was trained on. The pairs
    are numbered in the order they first appear, so with one label per pair the split is the
    same as without keys."""
    if keys is None:
        keys = list(range(n))
    pairs = list(dict.fromkeys(keys))  # distinct, in order of first appearance
    order = rng.permutation(len(pairs))
    n_val = int(round(len(pairs) * val_fraction)) if n >= 5 else 0
    held = {pairs[i] for i in order[:n_val]}
    is_val = np.fromiter((k in held for k in keys), dtype=bool, count=n)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def pair_key(comparison: repo.Comparison) -> int:
    """The pair a comparison answers, whichever way round it was shown: its two items' ids,
    the lower one first. Every label of a pair (k annotators, a ruling on it) has the same key."""
    low, high = sorted((comparison.item_a_id, comparison.item_b_id))
    return (low << 32) ^ high  # stable_split folds it to 64 bits


def stable_split(keys: list[int], val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices that keep every pair on its side for good: the labels of a
    pair (``keys``: :func:`pair_key`) are held out when a hash of the key (Fibonacci hashing)
    falls below ``val_fraction``. So the k labels of a pair and a ruling on it stay together
    (no pair is scored that was trained on), and later versions hold out the same pairs plus
    their share of the new ones: a model continued from an earlier version
    (:meth:`rlhf_core.rewards.ensemble.EnsembleBT.continue_from`) is never scored on a pair
    that version trained on. At least one pair is held out from 5 labels on."""
    n = len(keys)
    if n < 5 or val_fraction <= 0:
        return np.arange(n), np.arange(0)
    words = np.array([k & 0xFFFF_FFFF_FFFF_FFFF for k in keys], dtype=np.uint64)
    u = (words * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)  # wraps modulo 2**64 by design
    position = u.astype(np.float64) / 2.0**53  # in [0, 1)
    held = position < val_fraction
    if not held.any():
        held = position == position.min()
    return np.flatnonzero(~held), np.flatnonzero(held)


def comparison_weights(comparisons: list[repo.Comparison], weights: dict[int, float] | None) -> np.ndarray | None:
    """Each comparison's weight: its annotator's (a ruling, with no annotator, weighs 1); None
    when no weights are given."""
    if weights is None:
        return None
    return np.array([1.0 if c.annotator_id is None else weights.get(c.annotator_id, 1.0) for c in comparisons])


@dataclass(frozen=True)
class TrainResult:
    """A registered reward model version and its metrics."""

    version: int
    kind: str
    metrics: dict[str, Any]


def fit_and_register(
    studio: Studio,
    project_id: int,
    kind: str,
    model: Any,
    config: dict[str, Any] | None,
    labels: list[repo.Comparison],
    *,
    fit: Callable[[ProgressFn, StopFn], dict[str, Any]],
    evaluate: Callable[[dict[str, Any], float], dict[str, Any]],
    progress: StageProgress,
    should_stop: StopFn,
    job_id: int | None,
    priorities: Callable[[], dict[int, float]] | None = None,
    notes: dict[str, Any] | None = None,
) -> TrainResult:
    """The one training skeleton of every reward model kind: fit, stop if asked, evaluate, stop if
    asked, then register (with new query ``priorities``, computed before the write lock).
    ``notes`` join the metrics (e.g. which annotators' labels were left out).

    ``fit(on_step, should_stop)`` fits ``model`` and returns what the fit reports;
    ``evaluate(fit_report, fit_seconds)`` returns the metrics to record. A cancel at any point
    before registration leaves the store as it was.
    """
    from rlhf_core.threads import AdaptiveThreads  # torch: only once a model trains

    # the fit's steps choose its thread count (fewer where another job computes on the cores),
    # unless the model's own config fixes one; the evaluation runs on the count the fit settled on
    fixed = (config or {}).get("num_threads")
    with AdaptiveThreads((int(fixed),) if fixed else None) as threads:
        started = time.perf_counter()
        report = fit(threads.ticking(lambda done, total, metrics: progress("fit", done, total)), should_stop)
        fit_seconds = time.perf_counter() - started
        if should_stop():
            raise TrainingCancelledError("stopped after fitting")
        threads.settle()
        progress("evaluate", 0, 1)
        metrics = {**evaluate(report, fit_seconds), **(notes or {})}
        progress("evaluate", 1, 1)
    logger.info("%s fit: %s", kind, threads.chooser.summary("unit"))
    if should_stop():  # a cancel asked for after the fit still leaves the active model in place
        raise TrainingCancelledError("stopped while evaluating")
    if not is_main():  # a data-parallel helper process: the main one registers the (identical) model
        return TrainResult(0, kind, metrics)
    ranked = priorities() if priorities is not None else None
    version = register_version(studio, project_id, kind, model, config, labels, metrics, job_id, ranked)
    return TrainResult(version, kind, metrics)


def require_job_running(session: Any, job_id: int | None) -> None:  # a db Session
    """Inside a registering transaction: refuse to register the work of a job that no longer
    runs (cancelled, or declared dead while its worker was stalled), so the project never
    changes after the job's row says it did not."""
    if job_id is not None and not repo.may_register(session, job_id):
        raise TrainingCancelledError(
            f"job #{job_id} is no longer running (cancelled, or declared dead when its worker stopped "
            "reporting): what it made is not registered"
        )


def register_version(
    studio: Studio,
    project_id: int,
    kind: str,
    model: Any,
    config: dict[str, Any] | None,
    labels: list[repo.Comparison],
    metrics: dict[str, Any],
    job_id: int | None,
    priorities: dict[int, float] | None = None,
) -> int:
    """Save a trained model and register it as the project's active version, in one transaction
    that also applies new query ``priorities``; returns the version. The saved model is kept in
    the process's model cache, so the next prediction need not load it again."""
    with staged_folder(studio.settings.data_dir / "models" / f"project-{project_id}", model.save) as folder:
        with session_scope(studio.engine, write=True) as session:
            require_job_running(session, job_id)
            record = repo.register_reward_model(
                session,
                project_id,
                kind=kind,
                config=config or {},
                label_count=len(labels),
                label_hash=label_hash(labels),
                metrics=metrics,
                path=studio.relative(folder),
                job_id=job_id,
            )
            repo.set_query_priorities(session, project_id, priorities or {})
            version = record.version
    _cache_model(str(folder), model)
    return version


_models: OrderedDict[str, Any] = OrderedDict()
_models_lock = threading.Lock()
_MAX_MODELS = 4


def _cache_model(path: str, model: Any) -> None:
    with _models_lock:
        _models[path] = model
        _models.move_to_end(path)
        while len(_models) > _MAX_MODELS:
            _models.popitem(last=False)


def load_model(studio: Studio, record: RewardModelRecord) -> Any:
    """A registered model, loaded once per process (the few most recently used are kept).

    A trajectory model is a :class:`RewardModel`; a ``text-lora`` one a ``TextRewardModel``.
    """
    path = str(studio.path(record.path))
    with _models_lock:
        if path in _models:
            _models.move_to_end(path)
            return _models[path]
    if record.kind == TEXT_LORA:
        from rlhf_core.rewards.text import TextRewardModel

        model: Any = TextRewardModel.load(Path(path))
    elif record.kind == PERSONAL:
        from rlhf_core.rewards.personal import PersonalRewardModel

        model = PersonalRewardModel.load(Path(path))
    else:
        from rlhf_core.rewards.models import load_reward_model

        model = load_reward_model(Path(path))
    _cache_model(path, model)
    return model


def active_model(studio: Studio, project_id: int) -> tuple[RewardModelRecord, Any] | None:
    """The project's active model record and the loaded model, or None."""
    with session_scope(studio.engine) as session:
        record = repo.active_reward_model(session, project_id)
    if record is None:
        return None
    return record, load_model(studio, record)


def registry(studio: Studio, project_name: str) -> list[dict[str, Any]]:
    """Every version of a project's reward model, newest first, with its headline metrics."""
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        records = repo.reward_models(session, project.id)
    return [
        {
            "version": r.version,
            "kind": r.kind,
            "active": r.active,
            "labels": r.label_count,
            "val_accuracy": r.metrics.get("val_accuracy"),
            "log_loss": r.metrics.get("log_loss"),
            "spearman_teacher": reward_kinds.spearman_teacher(r.metrics),
            "fit_seconds": r.metrics.get("fit_seconds"),
            "created_at": r.created_at,
            "label_hash": r.label_hash[:12],
            "metrics": r.metrics,
        }
        for r in records
    ]


def activate(studio: Studio, project_name: str, version: int) -> None:
    """Make an older (or newer) version the active model."""
    with session_scope(studio.engine, write=True) as session:
        project = repo.get_project(session, project_name)
        repo.activate_reward_model(session, project.id, version)
