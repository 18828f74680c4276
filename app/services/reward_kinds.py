"""The catalogue of reward model kinds, and how a trained model's metrics read: shared by the
CLI (``rlhf train-reward``) and the Train page, so both offer, check and report the same things.

Light to import (no torch): the pages import it on every rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.kinds import CNN_LORA, ENSEMBLE, LINEAR, PERSONAL, TEXT_LORA

MIN_HELD_OUT = 20
"""Fewest strict held-out pairs whose accuracy front ends show as a number: below it the
95% interval is wider than about +-0.2, and they say to label more instead."""

#: Clip reward forms (``rlhf_core.rewards.preferences.REWARD_FORMS``): the default and the other.
POTENTIAL, TRANSITION = "potential", "transition"


@dataclass(frozen=True)
class RewardKind:
    """One kind of reward model, as offered to a person."""

    name: str
    title: str
    """What the Train page shows."""
    summary: str
    """What ``rlhf train-reward --help`` says about it."""
    text: bool
    """Trains on text projects (else on clip projects)."""
    options: tuple[str, ...]
    """The training options it accepts (keys of its config)."""
    forms: tuple[str, ...] = ()
    """The clip reward forms it can learn, the default first (clip kinds)."""
    takes_actions: bool = False
    """Can also see each step's action (state-action rewards)."""
    pixels_only: bool = False
    continues: bool = False
    """Retraining continues the active model of the same kind and inputs (``--fresh`` starts anew)."""
    any_project: bool = False
    """Trains on text and clip projects alike (``text`` is then ignored)."""


REWARD_KINDS: dict[str, RewardKind] = {
    k.name: k
    for k in (
        RewardKind(
            ENSEMBLE,
            "Neural ensemble (bagged, per-step MLP; frozen CNN features for pixels)",
            "bagged neural Bradley-Terry (default for trajectory projects)",
            text=False,
            options=("members", "epochs", "noise_prob"),
            forms=(POTENTIAL, TRANSITION),
            takes_actions=True,
            continues=True,
        ),
        RewardKind(
            LINEAR,
            "Linear Bradley-Terry (logistic regression, CV-tuned)",
            "linear Bradley-Terry",
            text=False,
            options=(),
            forms=(POTENTIAL, TRANSITION),
            takes_actions=True,
        ),
        RewardKind(
            CNN_LORA,
            "CNN + LoRA (reward head on a LoRA-adapted EfficientNet-Lite0; slower, pixels only)",
            "reward head on a LoRA-adapted CNN (pixel observations)",
            text=False,
            options=(),
            forms=(TRANSITION,),
            pixels_only=True,
        ),
        RewardKind(
            TEXT_LORA,
            "MiniLM + LoRA (query/value adapters and a score head; the base model stays frozen)",
            "MiniLM + LoRA (text projects, their default)",
            text=True,
            options=("epochs", "rank", "alpha", "dropout", "target_modules", "lr", "max_length", "backbone"),
        ),
        RewardKind(
            PERSONAL,
            "Personal (two towers: one taste per annotator over shared content features)",
            "one taste per annotator (teams that disagree; text and clip projects)",
            text=False,
            options=("rank",),
            any_project=True,
        ),
    )
}


def kinds_for(text: bool, pixels: bool) -> dict[str, RewardKind]:
    """The kinds a project can train, its default first."""
    return {
        n: k for n, k in REWARD_KINDS.items() if (k.any_project or k.text == text) and (pixels or not k.pixels_only)
    }


def default_kind(text: bool) -> str:
    """The kind a project trains unless told otherwise."""
    return TEXT_LORA if text else ENSEMBLE


def check_options(kind: str, config: dict[str, Any]) -> None:
    """Refuse training options that ``kind`` does not take, naming the kinds that do."""
    known = REWARD_KINDS.get(kind)
    if known is None:
        raise InvalidInputError(f"unknown reward model kind {kind!r}; use one of: {', '.join(REWARD_KINDS)}")
    groups: dict[tuple[str, ...], list[str]] = {}
    for option in config:
        if option not in known.options:
            kinds = tuple(k.name for k in REWARD_KINDS.values() if option in k.options)
            if not kinds:
                raise InvalidInputError(f"{_flag(option)} is not an option of any reward model kind")
            groups.setdefault(kinds, []).append(_flag(option))
    if groups:
        said = "; ".join(
            f"{' and '.join(flags)} {'applies' if len(flags) == 1 else 'apply'} to --kind {' and '.join(kinds)} only"
            for kinds, flags in groups.items()
        )
        raise InvalidInputError(f"{said}, not to --kind {kind}")


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


# --- how the metrics read ------------------------------------------------------------------------


def few_held_out(metrics: dict[str, Any]) -> bool:
    """Does the held-out accuracy rest on too few pairs to mean much (or on none)?"""
    pairs = metrics.get("val_pairs")
    return metrics.get("val_accuracy") is None or (pairs is not None and pairs < MIN_HELD_OUT)


def describe_accuracy(metrics: dict[str, Any]) -> str:
    """The held-out accuracy with how many pairs it rests on and its 95% interval, or why there is none."""
    accuracy, pairs, ci = metrics.get("val_accuracy"), metrics.get("val_pairs"), metrics.get("val_accuracy_ci95")
    if accuracy is None:
        return f"none (no held-out pair prefers a side; label at least {MIN_HELD_OUT} more)"
    if pairs is None or ci is None:  # a version trained before the interval was recorded
        return f"{accuracy:.3f}"
    text = f"{accuracy:.3f} on {pairs} held-out pairs (95% interval {ci[0]:.2f}-{ci[1]:.2f})"
    if pairs < MIN_HELD_OUT:
        text += f"; fewer than {MIN_HELD_OUT} held-out pairs: label more before trusting it"
    return text


def spearman_teacher(metrics: dict[str, Any]) -> float | None:
    """Rank correlation of predicted clip returns with the teacher's (``spearman_true`` before 0.2)."""
    return metrics.get("spearman_teacher", metrics.get("spearman_true"))


@dataclass(frozen=True)
class Headline:
    """One headline number of a trained model: what the page shows as a metric, the CLI as text."""

    label: str
    value: str
    detail: str | None = None


def headlines(kind: str, metrics: dict[str, Any]) -> list[Headline]:
    """The five numbers that sum up a trained reward model."""
    m = metrics
    few = few_held_out(m)
    ci = m.get("val_accuracy_ci95")
    out = [
        Headline(
            "Held-out accuracy",
            "too few pairs" if few else f"{m['val_accuracy']:.3f}",
            None if few or not ci else f"95%: {ci[0]:.2f}-{ci[1]:.2f}",
        ),
        Headline("Log loss", _fmt(m.get("log_loss"))),
    ]
    if kind == PERSONAL:
        pooled = m.get("pooled_val_accuracy")
        out.append(
            Headline(
                "Pooled model (same features)",
                _fmt(pooled),
                f"{len(m.get('annotators') or [])} annotators' tastes",
            )
        )
    elif kind == TEXT_LORA:
        out.append(
            Headline("Trainable", f"{m.get('trainable_fraction', 0):.2%} of {m.get('backbone', 'the backbone')}")
        )
    else:
        out.append(Headline(f"Spearman vs {m.get('teacher_reward', 'true')} return", _fmt(spearman_teacher(m))))
    out.append(Headline("Labels", str(m.get("n_labels"))))
    pairs_per_s = f"{m['pairs_per_s']:.1f} pairs/s" if m.get("pairs_per_s") is not None else None
    out.append(Headline("Fit", f"{m.get('fit_seconds', 0):.1f} s", pairs_per_s))
    return out


def summary(version: int, kind: str, metrics: dict[str, Any]) -> str:
    """One line for the CLI: the new active version and its headline numbers."""
    parts = [f"held-out accuracy {describe_accuracy(metrics)}"]
    for h in headlines(kind, metrics)[1:]:
        said = f"{h.value} labels" if h.label == "Labels" else f"{h.label.lower()} {h.value}"
        parts.append(said + (f" ({h.detail})" if h.detail else ""))
    if metrics.get("continued_from") is not None:
        parts.append(f"continued from version {metrics['continued_from']} (--fresh starts anew)")
    if metrics.get("min_agreement") is not None:
        left_out = ", ".join(metrics.get("excluded_annotators") or []) or "nobody"
        parts.append(f"left out (agreement with the majority below {metrics['min_agreement']}): {left_out}")
    if metrics.get("weighted_by_agreement"):
        parts.append("labels weighted by each annotator's agreement")
    return f"version {version} ({kind}) is active: " + ", ".join(parts)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
