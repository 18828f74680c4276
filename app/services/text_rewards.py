"""Use cases of text reward models: train a LoRA reward model on a text project, score responses.

A text project's items hold a ``prompt`` and a response ``text``; its queries pair two
responses to the same prompt, and a label's ``pref`` is P(item A preferred). Training
follows the same rule as trajectory models: fit, evaluate and write to a fresh folder
first, then register the version in one transaction, so a failure or a cancel leaves the
store as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from app.config import Studio
from app.services.model_registry import (
    StageProgress,
    TrainingError,
    TrainResult,
    comparison_weights,
    fit_and_register,
    load_model,
    pair_key,
    split_train_val,
)
from db import repo
from db.engine import session_scope
from db.models import Project, ProjectKind
from rlhf_core.errors import InvalidInputError, StudioError
from rlhf_core.rewards.kinds import TEXT_LORA
from rlhf_core.rewards.metrics import finite_or_none, held_out_metrics

if TYPE_CHECKING:  # torch and transformers load only when a text model is used
    from rlhf_core.rewards.text import TextPreferences, TextRewardModel


class NoTextModelError(StudioError):
    """The project has no active text reward model to score with."""


def text_preferences(
    project_name: str,
    comparisons: list[repo.Comparison],
    items: dict[int, Any],
    weights: dict[int, float] | None = None,
) -> TextPreferences:
    """The labeled comparisons of a text project as (prompt, response A, response B, pref)."""
    from rlhf_core.rewards.text import TextPreferences

    prompts, a, b = [], [], []
    for c in comparisons:
        item_a, item_b = items[c.item_a_id], items[c.item_b_id]
        for item in (item_a, item_b):
            if item.text is None:
                raise StudioError(
                    f"item {item.id} of project {project_name!r} has no response text; "
                    "text reward models train on text projects (prompt + response items)"
                )
        prompts.append(item_a.prompt or "")
        a.append(item_a.text)
        b.append(item_b.text)
    weight = comparison_weights(comparisons, weights)
    return TextPreferences.from_lists(prompts, a, b, [c.pref for c in comparisons], weight)


def train_text_reward_model(
    studio: Studio,
    project: Project,
    labels: list[repo.Comparison],
    *,
    config: dict[str, Any] | None,
    val_fraction: float,
    seed: int,
    progress: StageProgress,
    should_stop: Any,
    job_id: int | None,
    weights: dict[int, float] | None = None,
    notes: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a LoRA reward model on a text project's labels and make it the active version
    (``weights``: each annotator's weight in the loss, by id).

    Called by :func:`app.services.rewards.train_reward_model`, which has checked the project
    and the number of labels.
    """
    from rlhf_core.rewards.text import TextRewardConfig, TextRewardModel

    if project.kind is not ProjectKind.text:
        raise TrainingError(
            f"{TEXT_LORA} models train on text projects; {project.name!r} holds trajectories: use --kind bt or ensemble"
        )
    try:
        options = dict(config or {})
        if options.get("target_modules") is not None:
            options["target_modules"] = tuple(options["target_modules"])
        cfg = TextRewardConfig(**{"seed": seed, **options})
    except TypeError as exc:
        raise TrainingError(f"bad option for a {TEXT_LORA!r} model: {exc}") from exc
    except InvalidInputError as exc:
        raise TrainingError(str(exc)) from exc
    progress("load", 0, 1)
    ids = sorted({c.item_a_id for c in labels} | {c.item_b_id for c in labels})
    with session_scope(studio.engine) as session:
        items = repo.items_by_id(session, ids)
    prefs = text_preferences(project.name, labels, items, weights)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = split_train_val(len(prefs), val_fraction, rng, [pair_key(c) for c in labels])
    train, val = prefs.take(train_idx), prefs.take(val_idx)
    try:
        model = TextRewardModel(cfg)
    except InvalidInputError as exc:
        raise TrainingError(str(exc)) from exc
    progress("load", 1, 1)

    def measure(fit: dict[str, Any], fit_seconds: float) -> dict[str, Any]:
        metrics = evaluate_text(model, val)
        metrics.update(
            n_labels=len(prefs),
            n_train=len(train),
            n_val=len(val),
            fit_seconds=round(fit_seconds, 3),
            pairs_per_s=round(fit["pairs_per_s"], 2),
            epochs=int(fit["epochs"]),  # chosen from the data unless --epochs was given
            optimizer_steps=int(fit["steps"]),
            train_loss=finite_or_none(fit["train_loss"]),
            trainable_params=int(fit["trainable_params"]),
            backbone_params=int(fit["backbone_params"]),
            trainable_fraction=round(fit["trainable_fraction"], 6),
            backbone=cfg.backbone,
            bf16=fit["bf16"],
            device=fit["device"],
            processes=fit["processes"],
        )
        return metrics

    return fit_and_register(
        studio,
        project.id,
        TEXT_LORA,
        model,
        config,
        labels,
        fit=lambda on_step, stop: model.fit(train, rng=rng, on_step=on_step, should_stop=stop),
        evaluate=measure,
        notes=notes,
        progress=progress,
        should_stop=should_stop,
        job_id=job_id,
    )


def evaluate_text(model: TextRewardModel, val: TextPreferences) -> dict[str, Any]:
    """Held-out accuracy (ties excluded), log loss and calibration."""
    if len(val) == 0:
        return held_out_metrics(np.zeros(0), np.zeros(0))
    pairs = [(p, frozenset((a, b))) for p, a, b in zip(val.prompts, val.responses_a, val.responses_b, strict=True)]
    return held_out_metrics(model.predict_pref(val), val.pref, pairs)


@dataclass(frozen=True)
class ScoredResponses:
    """Responses to one prompt ranked by the active text reward model, best first."""

    version: int
    prompt: str
    ranked: list[tuple[str, float]]


def score_responses(studio: Studio, project_name: str, prompt: str, responses: list[str]) -> ScoredResponses:
    """Score responses to ``prompt`` with the project's active text model and rank them."""
    if not responses:
        raise InvalidInputError("give at least one response to score")
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        record = repo.active_reward_model(session, project.id)
    if record is None or record.kind != TEXT_LORA:
        raise NoTextModelError(
            f"project {project_name!r} has no active text reward model; "
            f"train one first: rlhf train-reward --project {project_name}"
        )
    model = load_model(studio, record)
    scores = model.score([prompt] * len(responses), responses)
    order = np.argsort(-scores, kind="stable")
    return ScoredResponses(record.version, prompt, [(responses[i], float(scores[i])) for i in order])
