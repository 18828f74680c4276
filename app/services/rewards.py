"""Use cases of reward learning: project data, training a version, the registry, predictions.

Training never touches the store until it has succeeded: the model is fitted, evaluated
and written to a fresh folder first, then one transaction registers it as the active
version (and re-ranks unlabeled pairs by the new ensemble's disagreement). A crash or a
cancel therefore leaves the previously active model in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.config import Studio
from app.services import reward_kinds
from app.services.clip_data import ProjectData, project_data
from app.services.model_registry import (
    StageProgress,
    TrainingError,
    TrainResult,
    active_model,
    comparison_weights,
    fit_and_register,
    pair_key,
    stable_split,
)
from app.services.text_rewards import train_text_reward_model
from db import repo
from db.engine import session_scope
from db.models import Project, ProjectKind
from rlhf_core.backbones.registry import get_encoder
from rlhf_core.callbacks import StopFn
from rlhf_core.envs.registry import env_info
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.base import RewardModel
from rlhf_core.rewards.ensemble import EnsembleBT
from rlhf_core.rewards.kinds import PERSONAL, TEXT_LORA
from rlhf_core.rewards.linear import LinearBT, LinearBTConfig
from rlhf_core.rewards.metrics import finite_or_none, held_out_metrics, preference_accuracy, spearman
from rlhf_core.rewards.models import make_reward_model
from rlhf_core.rewards.preferences import FeatureSpec, Preferences
from rlhf_core.rewards.queries import disagreement_scores
from rlhf_core.rewards.teachers import teacher_reward_name

#: Form of clip rewards unless the caller picks one (``rlhf_core.rewards.preferences.FeatureSpec.form``):
#: a learned potential's rise, which no loop of steps can farm (README: "Why potential rewards").
DEFAULT_FORM = "potential"
#: Form of clip rewards for continuous control: what people judge there is how well each moment
#: goes (a pendulum held upright, a robot running), which a potential's rise cannot express (a
#: clip held at the top and one hanging still both rise by 0): 0.63 held-out accuracy against
#: 0.95 for transition rewards on 300 oracle labels of the Pendulum demo.
CONTINUOUS_FORM = "transition"
#: Fewest strict preferences a model is trained on.
MIN_LABELS = 10


def default_form(env_id: str, kind: str) -> str:
    """The reward form a clip project trains when nobody picks one (the CLI, and the Train page's
    preselected choice): transition for cnn-lora and for continuous control, else potential."""
    if kind == "cnn-lora" or env_info(env_id).continuous:
        return CONTINUOUS_FORM
    return DEFAULT_FORM


def _preferences(
    data: ProjectData, comparisons: list[repo.Comparison], weights: dict[int, float] | None = None
) -> Preferences:
    return Preferences(
        data.segments,
        data.rows([c.item_a_id for c in comparisons]),
        data.rows([c.item_b_id for c in comparisons]),
        np.array([c.pref for c in comparisons], dtype=np.float64),
        comparison_weights(comparisons, weights),
    )


def evaluate(model: RewardModel, data: ProjectData, val: Preferences) -> dict[str, Any]:
    """Held-out metrics: accuracy (ties excluded), log loss, calibration, Spearman correlation of
    predicted segment returns with the teacher's (``spearman_teacher``: the true reward, or the
    registered oracle reward) and with the environment's own reward (``spearman_env``)."""
    if len(val) == 0:
        return {**held_out_metrics(np.zeros(0), np.zeros(0)), "spearman_teacher": None}
    held = np.unique(np.concatenate([val.a, val.b]))
    predicted = model.segment_returns(data.segments.subset(held))
    pairs = list(zip(np.minimum(val.a, val.b).tolist(), np.maximum(val.a, val.b).tolist(), strict=True))
    return {
        **held_out_metrics(model.predict_pref(val), val.pref, pairs),
        "spearman_teacher": finite_or_none(spearman(predicted, data.teacher_returns[held])),
        "spearman_env": finite_or_none(spearman(predicted, data.true_rewards.sum(axis=1)[held])),
    }


def learning_curve(spec: FeatureSpec, train: Preferences, val: Preferences, rng: np.random.Generator) -> list[dict]:
    """Held-out accuracy of linear BT fitted on the first 25/50/75/100% of the training labels."""
    points = []
    if len(val) == 0:
        return points
    sizes = sorted({min(len(train), max(MIN_LABELS // 2, int(len(train) * f))) for f in (0.25, 0.5, 0.75, 1.0)})
    for n in sizes:
        sub = train.take(np.arange(n))
        model = LinearBT(spec, LinearBTConfig(cs=5, folds=3))
        model.fit(sub, rng=rng)
        accuracy = finite_or_none(preference_accuracy(model.predict_pref(val), val.pref))
        points.append({"n_labels": n, "val_accuracy": accuracy})
    return points


def default_kind(project: Project) -> str:
    """The reward model a project trains unless told otherwise."""
    return reward_kinds.default_kind(project.kind is ProjectKind.text)


def train_reward_model(
    studio: Studio,
    project_name: str,
    kind: str | None = None,
    *,
    config: dict[str, Any] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    on_progress: StageProgress | None = None,
    should_stop: StopFn | None = None,
    job_id: int | None = None,
    encoder: str | None = None,
    actions: bool = False,
    form: str | None = None,
    min_agreement: float | None = None,
    weight_by_agreement: bool = False,
    continue_active: bool = True,
) -> TrainResult:
    """Train a reward model of ``kind`` on a project's labels and make it the active version.

    ``form`` (clip projects): 'potential' (the default of bt and ensemble) learns a potential
    Phi of the observation and rewards each step with its rise, r = Phi(s') - Phi(s) + c, so
    no loop of steps earns a reward and a policy cannot farm it by circling or hovering;
    'transition' learns any function of the step (cnn-lora's only form). See the README's
    "Why potential rewards".

    ``actions``: a state-action reward, r(s, a, s'), that also sees each step's action
    (one-hot; discrete actions), for preferences about how the agent acts.

    ``min_agreement`` leaves out the labels of annotators whose agreement with the majority
    of the others is below it (``rlhf agreement``); ``weight_by_agreement`` weighs each label
    in the loss by its annotator's agreement with the majority instead (an annotator who
    shares no pair with others weighs 1); rulings on disputed pairs always count, with weight
    1, instead of the pair's labels. ``personal`` learns one taste per annotator
    (:mod:`app.services.personal`).

    ``continue_active``: an ensemble continues training the project's active model when that is
    an ensemble of the same inputs and shape (``metrics["continued_from"]`` names its version),
    as Christiano et al. (2017) train one reward model as labels arrive; False starts fresh.
    Held-out pairs stay held out from version to version (:func:`stable_split`), with all
    their labels, so no model is scored on a pair it or its predecessor trained on.

    ``kind`` None picks the project's default: ``ensemble`` for trajectories, ``text-lora``
    (MiniLM + LoRA, see :mod:`app.services.text_rewards`) for text. ``encoder`` names the
    frozen encoder of pixel observations (``rlhf_core.backbones.registry``; default efficientnet-lite0);
    a policy trained on this model reuses it and its feature cache.
    """
    if not 0 <= val_fraction < 0.9:
        raise TrainingError(f"val_fraction must lie in [0, 0.9), got {val_fraction}")
    progress = on_progress or (lambda stage, done, total: None)
    stop = should_stop or (lambda: False)
    excluded: tuple[int, ...] = ()
    notes: dict[str, Any] = {}  # recorded with the model: how its labels were chosen
    if min_agreement is not None:
        from app.services.agreement import annotators_below

        ids, names = annotators_below(studio, project_name, min_agreement)
        excluded = tuple(ids)
        notes.update(min_agreement=min_agreement, excluded_annotators=names)
    weights: dict[int, float] | None = None
    if weight_by_agreement:
        from app.services.agreement import annotator_weights

        weights = annotator_weights(studio, project_name)
        notes.update(weighted_by_agreement=True)
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        kind = kind or default_kind(project)
        # a personal model learns each person's answers; a ruling replaces them for the pooled kinds
        labels = repo.comparisons(session, project.id, exclude_annotators=excluded, rulings=kind != PERSONAL)
    if weights is not None and kind == PERSONAL:
        raise TrainingError(
            "--weight-by-agreement is for pooled models; a personal model learns each annotator's own taste"
        )
    try:
        reward_kinds.check_options(kind, config or {})
    except InvalidInputError as exc:
        raise TrainingError(str(exc)) from exc
    if kind != PERSONAL and (kind == TEXT_LORA) != (project.kind is ProjectKind.text):
        raise TrainingError(
            f"project {project_name!r} holds {project.kind.value} items: train it with --kind "
            + ("text-lora" if project.kind is ProjectKind.text else "bt or ensemble")
        )
    strict = sum(1 for c in labels if c.pref != 0.5)
    if strict < MIN_LABELS:
        left_out = (
            f" once the labels of {', '.join(notes['excluded_annotators'])} (agreement with the majority below "
            f"{min_agreement}) are left out"
            if notes.get("excluded_annotators")
            else ""
        )
        raise TrainingError(
            f"project {project_name!r} has {strict} labels that prefer one side (left or right){left_out}; at least "
            f"{MIN_LABELS} are needed. "
            + ("Lower --min-agreement, or label more pairs" if left_out else "Label more pairs")
            + " (or run `rlhf label-synthetic`) and train again."
        )
    if kind == PERSONAL and (actions or form is not None):
        raise TrainingError("--actions and --form apply to the clip kinds bt, ensemble and cnn-lora")
    if actions and kind == TEXT_LORA:
        raise TrainingError("a text project's responses have no actions; --actions applies to clip projects")
    if form is not None and kind == TEXT_LORA:
        raise TrainingError("--form applies to clip projects; a text reward scores whole responses")
    # the text-lora and personal fits share these; the clip kinds below use them one by one
    common = dict(
        config=config, val_fraction=val_fraction, seed=seed, progress=progress, should_stop=stop, job_id=job_id,
        notes=notes,
    )  # fmt: skip
    if kind == PERSONAL:
        from app.services.personal import train_personal

        return train_personal(studio, project, labels, encoder=encoder, **common)
    if kind == TEXT_LORA:
        return train_text_reward_model(studio, project, labels, weights=weights, **common)
    progress("load", 0, 1)
    data = project_data(studio, project)
    prefs = _preferences(data, labels, weights)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = stable_split([pair_key(c) for c in labels], val_fraction)
    train, val = prefs.take(train_idx), prefs.take(val_idx)
    try:
        info = env_info(project.env_id or "")
        n_actions = info.n_actions if actions else None
        bounds = (info.action_low, info.action_high) if info.continuous else None
        form = form or default_form(project.env_id or "", kind)
        if kind == "cnn-lora" and form != "transition":
            raise InvalidInputError(
                "cnn-lora learns transition rewards only: use --form transition, or --kind ensemble"
            )
        spec = FeatureSpec.for_segments(data.segments, encoder, n_actions, form, bounds)
        if spec.encoder:
            get_encoder(spec.encoder)  # fails here, with what to do, if it cannot load
        model = make_reward_model(kind, spec, **(config or {}))
        continued = _continue_active(studio, project.id, model) if continue_active else None
    except TypeError as exc:
        raise TrainingError(f"bad option for a {kind!r} model: {exc}") from exc
    except InvalidInputError as exc:
        raise TrainingError(str(exc)) from exc
    progress("load", 1, 1)

    def measure(fitted: dict[str, Any], fit_seconds: float) -> dict[str, Any]:
        metrics = evaluate(model, data, val)
        metrics.update(
            n_labels=len(prefs),
            n_train=len(train),
            n_val=len(val),
            fit_seconds=round(fit_seconds, 3),
            teacher_reward=teacher_reward_name(project.env_id or ""),
            encoder=spec.encoder,
            state_action=spec.n_actions is not None,
            reward_form=spec.form,
            continued_from=continued,
            **({"calibration_scale": fitted["calibration_scale"]} if "calibration_scale" in fitted else {}),
            learning_curve=learning_curve(spec, train, val, np.random.default_rng(seed)),
        )
        return metrics

    return fit_and_register(
        studio,
        project.id,
        kind,
        model,
        config,
        labels,
        fit=lambda on_step, should_stop: model.fit(train, rng=rng, on_step=on_step, should_stop=should_stop),
        evaluate=measure,
        progress=progress,
        should_stop=stop,
        job_id=job_id,
        priorities=lambda: _disagreement_priorities(studio, project.id, model, data),
        notes=notes,
    )


def _continue_active(studio: Studio, project_id: int, model: RewardModel) -> int | None:
    """Start ``model``'s fit from the project's active model where it can (an ensemble of the same
    inputs and shape; see ``EnsembleBT.continue_from``); the version it continues, or None."""
    if not isinstance(model, EnsembleBT):
        return None
    try:
        active = active_model(studio, project_id)
    except (OSError, ValueError) as exc:  # its files are gone or unreadable: say so, change nothing
        raise TrainingError(
            f"the active reward model's files cannot be read ({exc}); train with --fresh (Start from scratch on "
            "Train) or make another version active"
        ) from exc
    if active is None or not model.continue_from(active[1]):
        return None
    return active[0].version


def _disagreement_priorities(
    studio: Studio, project_id: int, model: RewardModel, data: ProjectData
) -> dict[int, float]:
    """How much the model doubts each unlabeled pair, by query id (served most disputed first)."""
    with session_scope(studio.engine) as session:
        queries = repo.unlabeled_queries(session, project_id)
    if not queries:
        return {}
    rows_a = data.rows([q.item_a_id for q in queries])
    rows_b = data.rows([q.item_b_id for q in queries])
    scores = disagreement_scores(model, data.segments, list(zip(rows_a.tolist(), rows_b.tolist(), strict=True)))
    return {q.id: float(score) for q, score in zip(queries, scores, strict=True)}


def predicted_step_rewards(studio: Studio, project: Project, item_ids: list[int]) -> dict[str, Any] | None:
    """Per-step rewards the active model predicts for items, with the model's version; None if no model."""
    found = active_model(studio, project.id)
    if found is None or found[0].kind in (TEXT_LORA, PERSONAL):
        return None
    record, model = found
    data = project_data(studio, project)
    rows = data.rows(item_ids)
    rewards = model.step_rewards(data.segments.subset(rows))
    return {"version": record.version, "rewards": rewards, "valid": data.segments.valid[rows]}


def predicted_and_teacher_returns(studio: Studio, project: Project) -> tuple[np.ndarray, np.ndarray] | None:
    """Every segment's return under the active model and under the teacher's reward (M,) each;
    None without an active clip model."""
    found = active_model(studio, project.id)
    if found is None or found[0].kind in (TEXT_LORA, PERSONAL):
        return None
    data = project_data(studio, project)
    return found[1].segment_returns(data.segments), data.teacher_returns
