"""Personalised reward models (``--kind personal``): whose taste it is changes the ranking.

The model (:class:`rlhf_core.rewards.personal.PersonalRewardModel`) scores an item for one
annotator, r_u(x) = (w + d_u) . phi(x). It trains on every label with who gave it, on text
projects (frozen MiniLM features of prompt and response, plus surface statistics) and clip
projects (each segment's mean step features, the inputs the other clip models use). The
held-out split keeps each annotator's share and holds out whole pairs (all of a pair's
labels on one side), and the metrics report each annotator's held-out accuracy next to that
of a pooled model of the same features (every label as if one person gave it: what the
other kinds learn).

A person who joins later is fitted from their own labels without retraining the rest
(:func:`personalize`): a new version with their taste added.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from app.config import Studio
from app.services.model_registry import (
    StageProgress,
    TrainingError,
    TrainResult,
    fit_and_register,
    load_model,
    pair_key,
    register_version,
)
from db import repo
from db.engine import session_scope
from db.models import Project, ProjectKind
from rlhf_core.callbacks import StopFn
from rlhf_core.errors import InvalidInputError, StudioError
from rlhf_core.rewards.kinds import PERSONAL
from rlhf_core.rewards.metrics import held_out_metrics, preference_accuracy
from rlhf_core.rewards.personal import SURFACE_FEATURES, PersonalConfig, PersonalRewardModel, text_features

MIN_PER_ANNOTATOR_HELD_OUT = 5
"""Fewest held-out labels of an annotator for their accuracy to be reported."""

_features: OrderedDict[tuple[str, int, str], dict[int, np.ndarray]] = OrderedDict()
_features_lock = threading.Lock()


def _text_item_features(studio: Studio, project: Project, item_ids: list[int]) -> np.ndarray:
    """Content features of text items, computed once per item and process."""
    key = (studio.settings.database_url, project.id, "text")
    with _features_lock:
        known = _features.setdefault(key, {})
        _features.move_to_end(key)
        while len(_features) > 4:
            _features.popitem(last=False)
    missing = sorted({i for i in item_ids if i not in known})
    if missing:
        with session_scope(studio.engine) as session:
            items = repo.items_by_id(session, missing)
        computed = text_features([items[i].prompt or "" for i in missing], [items[i].text or "" for i in missing])
        with _features_lock:
            known.update(zip(missing, computed, strict=True))
    return np.stack([known[i] for i in item_ids]) if item_ids else np.zeros((0, 384 + len(SURFACE_FEATURES)))


def _clip_item_features(studio: Studio, project: Project, item_ids: list[int], encoder: str | None) -> np.ndarray:
    """Each segment's mean per-step inputs (its features, their changes; frozen CNN features for pixels)."""
    from app.services.clip_data import project_data
    from rlhf_core.rewards.preferences import FeatureSpec, step_inputs

    data = project_data(studio, project)
    rows = data.rows(item_ids)
    segments = data.segments.subset(rows)
    spec = FeatureSpec.for_segments(segments, encoder, None, "transition")
    steps = step_inputs(spec, segments)  # (M, L, D)
    valid = segments.valid[..., None].astype(np.float32)
    return (steps * valid).sum(1) / np.maximum(valid.sum(1), 1.0)


def item_features(studio: Studio, project: Project, item_ids: list[int], encoder: str | None = None) -> np.ndarray:
    """Content features (N, D) of a project's items, for the personal model."""
    if project.kind is ProjectKind.text:
        return _text_item_features(studio, project, item_ids)
    return _clip_item_features(studio, project, item_ids, encoder)


def _passthrough(project: Project) -> int:
    return len(SURFACE_FEATURES) if project.kind is ProjectKind.text else 0


def train_personal(
    studio: Studio,
    project: Project,
    labels: list[repo.Comparison],
    *,
    config: dict[str, Any] | None,
    val_fraction: float,
    seed: int,
    progress: StageProgress,
    should_stop: StopFn,
    job_id: int | None,
    encoder: str | None = None,
    notes: dict[str, Any] | None = None,
) -> TrainResult:
    """Fit a personal model on a project's labels and register it as the active version."""
    labels = [c for c in labels if c.annotator_id is not None]  # a ruling belongs to no one (none come here)
    with session_scope(studio.engine) as session:
        names = repo.annotator_names(session, sorted({c.annotator_id for c in labels}))
    if len(names) < 2:
        raise TrainingError(
            "a personal reward model learns how annotators differ, and this project's labels come from "
            f"{len(names)} annotator(s); have two or more people label it (or train --kind "
            f"{'text-lora' if project.kind is ProjectKind.text else 'ensemble'})"
        )
    try:
        cfg = PersonalConfig(seed=seed, **(config or {}))
    except TypeError as exc:
        raise TrainingError(f"bad option for a personal model: {exc}") from exc
    except InvalidInputError as exc:
        raise TrainingError(str(exc)) from exc
    progress("load", 0, 1)
    ids_a, ids_b = [c.item_a_id for c in labels], [c.item_b_id for c in labels]
    unique = sorted(set(ids_a) | set(ids_b))
    feats = item_features(studio, project, unique, encoder)
    row = {item: r for r, item in enumerate(unique)}
    xa, xb = feats[[row[i] for i in ids_a]], feats[[row[i] for i in ids_b]]
    who = np.array([names[c.annotator_id] for c in labels])
    pref = np.array([c.pref for c in labels], dtype=np.float64)
    progress("load", 1, 1)
    rng = np.random.default_rng(seed)
    keys = [pair_key(c) for c in labels]
    train_idx, val_idx = _split_by_annotator(who, keys, val_fraction, rng)
    model = PersonalRewardModel(feats.shape[1], cfg, passthrough=_passthrough(project))
    model.meta = {"project_kind": project.kind.value, "encoder": encoder}

    def fit(on_step: Any, stop: StopFn) -> dict[str, Any]:
        return model.fit(
            xa[train_idx],
            xb[train_idx],
            list(who[train_idx]),
            pref[train_idx],
            on_step=lambda done, total: on_step(done, total, {}),
            should_stop=stop,
        )

    def measure(fitted: dict[str, Any], fit_seconds: float) -> dict[str, Any]:
        p = model.predict_pref(xa[val_idx], xb[val_idx], list(who[val_idx]))
        metrics = held_out_metrics(p, pref[val_idx], [keys[i] for i in val_idx])
        pooled = PersonalRewardModel(feats.shape[1], cfg, passthrough=_passthrough(project))
        pooled.fit(xa[train_idx], xb[train_idx], ["everyone"] * len(train_idx), pref[train_idx])
        p_pooled = pooled.predict_pref(xa[val_idx], xb[val_idx], ["everyone"] * len(val_idx))
        per = {}
        for name in sorted(set(who)):
            mine = who[val_idx] == name
            if int(np.count_nonzero(pref[val_idx][mine] != 0.5)) >= MIN_PER_ANNOTATOR_HELD_OUT:
                per[name] = {
                    "personal": _accuracy(p[mine], pref[val_idx][mine]),
                    "pooled": _accuracy(p_pooled[mine], pref[val_idx][mine]),
                    "held_out": int(np.count_nonzero(mine)),
                }
        metrics.update(
            pooled_val_accuracy=_accuracy(p_pooled, pref[val_idx]),
            per_annotator=per,
            annotators=model.annotators,
            n_labels=len(labels),
            n_train=len(train_idx),
            n_val=len(val_idx),
            fit_seconds=round(fit_seconds, 3),
            rank=cfg.rank,
        )
        return metrics

    return fit_and_register(
        studio,
        project.id,
        PERSONAL,
        model,
        config,
        labels,
        fit=fit,
        evaluate=measure,
        notes=notes,
        progress=progress,
        should_stop=should_stop,
        job_id=job_id,
    )


def _accuracy(p: np.ndarray, pref: np.ndarray) -> float | None:
    value = preference_accuracy(p, pref)
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def _split_by_annotator(
    who: np.ndarray, keys: list[int], val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices that hold out ``val_fraction`` of each annotator's labels,
    drawn by pair (``keys``: :func:`pair_key`, one per label): every label of a pair falls on
    one side, so no annotator is scored on a pair the model trained on through another
    annotator's label. Annotators are taken in order; each draws from their pairs that no one
    before them decided, until their share is held out (counting the labels they gave on pairs
    already held). With one label per pair it is a per-annotator random split of the labels."""
    side: dict[int, bool] = {}
    for name in sorted(set(who)):
        idx = np.flatnonzero(who == name)
        target = int(round(len(idx) * val_fraction)) if len(idx) >= 5 else 0
        held = sum(side.get(keys[i], False) for i in idx)
        count: dict[int, int] = {}
        for i in idx:
            if keys[i] not in side:
                count[keys[i]] = count.get(keys[i], 0) + 1  # in order of first appearance
        undecided = list(count)
        for j in rng.permutation(len(undecided)):
            key = undecided[j]
            side[key] = held < target
            held += count[key] if side[key] else 0
    is_val = np.fromiter((side[k] for k in keys), dtype=bool, count=len(keys))
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


class NoPersonalModelError(StudioError):
    """The project's active reward model is not a personal one."""


def _active_personal(studio: Studio, project_name: str) -> tuple[Project, Any, PersonalRewardModel]:
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        record = repo.active_reward_model(session, project.id)
    if record is None or record.kind != PERSONAL:
        raise NoPersonalModelError(
            f"project {project_name!r} has no active personal reward model; train one: "
            f"rlhf train-reward --project {project_name} --kind personal"
        )
    return project, record, load_model(studio, record)


def score_texts(
    studio: Studio, project_name: str, prompt: str, responses: list[str], annotator: str | None
) -> tuple[int, list[tuple[str, float]]]:
    """Rank responses to a prompt as ``annotator`` would (None: the population), best first."""
    project, record, model = _active_personal(studio, project_name)
    if project.kind is not ProjectKind.text:
        raise InvalidInputError(f"project {project_name!r} holds clips, not text responses")
    if annotator is not None and annotator not in model.annotators:
        raise InvalidInputError(
            f"the personal model v{record.version} has no taste for {annotator!r} (it knows: "
            f"{', '.join(model.annotators)}); fit theirs from their labels: "
            f"rlhf personalize --project {project_name} --annotator NAME"
        )
    scores = model.scores(text_features([prompt] * len(responses), responses), annotator)
    order = np.argsort(-scores, kind="stable")
    return record.version, [(responses[i], float(scores[i])) for i in order]


def annotator_scores(studio: Studio, project: Project, item_ids: list[int]) -> dict[str, np.ndarray] | None:
    """Every known annotator's (and the population's, key '') scores of items, or None
    without an active personal model."""
    try:
        _, record, model = _active_personal(studio, project.name)
    except NoPersonalModelError:
        return None
    feats = item_features(studio, project, item_ids, (model.meta or {}).get("encoder"))
    return {name: model.scores(feats, name or None) for name in ["", *model.annotators]}


def personalize(studio: Studio, project_name: str, annotator: str) -> TrainResult:
    """Fit ``annotator``'s taste from their labels into the active personal model (everyone
    else's stays as it is) and register the result as a new version."""
    project, record, model = _active_personal(studio, project_name)
    with session_scope(studio.engine) as session:
        person = repo.find_annotator(session, annotator)
        if person is None:
            raise InvalidInputError(f"no annotator named {annotator!r} has labeled anything here")
        every = repo.comparisons(session, project.id, rulings=False)  # their own answers, ruled on or not
        mine = [c for c in every if c.annotator_id == person.id]
    if len(mine) < 3:
        raise InvalidInputError(
            f"{annotator!r} has {len(mine)} labels with a preference in {project_name!r}; "
            "fitting their taste needs at least 3 (about 10 for a reliable one)"
        )
    ids = sorted({c.item_a_id for c in mine} | {c.item_b_id for c in mine})
    feats = item_features(studio, project, ids, (model.meta or {}).get("encoder"))
    row = {item: r for r, item in enumerate(ids)}
    updated = copy.deepcopy(model)
    updated.add_annotator(
        annotator,
        feats[[row[c.item_a_id] for c in mine]],
        feats[[row[c.item_b_id] for c in mine]],
        np.array([c.pref for c in mine]),
    )
    metrics = dict(record.metrics or {})
    metrics.update(annotators=updated.annotators, personalized=annotator, personalized_labels=len(mine))
    version = register_version(studio, project.id, PERSONAL, updated, record.config, every, metrics, None)
    return TrainResult(version, PERSONAL, metrics)
