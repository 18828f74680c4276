"""Metrics of preference predictions: accuracy without ties, log loss, calibration, rank correlation."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest, spearmanr

_EPS = 1e-7


def preference_accuracy(p_a: np.ndarray, pref: np.ndarray) -> float:
    """Share of strict preferences (ties excluded) where the favoured side had P > 0.5.

    A prediction of exactly 0.5 counts as half right. NaN when there are no strict
    preferences. Counting ties as hits or misses would make the number depend on how often
    people answer "equal" (imitation #821).
    """
    strict = pref != 0.5
    if not strict.any():
        return float("nan")
    p, y = p_a[strict], pref[strict]
    return float(np.where(p == 0.5, 0.5, (p > 0.5) == (y == 1.0)).mean())


def preference_log_loss(p_a: np.ndarray, pref: np.ndarray) -> float:
    """Mean cross-entropy of predicted P(A preferred) against the labels (ties count as 0.5);
    NaN without labels."""
    if len(pref) == 0:
        return float("nan")
    p = np.clip(p_a, _EPS, 1 - _EPS)
    return float(-(pref * np.log(p) + (1 - pref) * np.log(1 - p)).mean())


@dataclass(frozen=True)
class CalibrationBin:
    """Comparisons whose predicted P(A preferred) fell in ``[low, high)``."""

    low: float
    high: float
    mean_predicted: float
    observed: float
    """Mean label in the bin (the frequency with which A was preferred, ties as 0.5)."""
    count: int


def calibration(p_a: np.ndarray, pref: np.ndarray, bins: int = 10) -> list[CalibrationBin]:
    """Reliability table: predicted probability against observed frequency, non-empty bins only."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p_a, edges) - 1, 0, bins - 1)
    out = []
    for k in range(bins):
        mask = which == k
        if mask.any():
            out.append(
                CalibrationBin(
                    float(edges[k]),
                    float(edges[k + 1]),
                    float(p_a[mask].mean()),
                    float(pref[mask].mean()),
                    int(mask.sum()),
                )
            )
    return out


def spearman(predicted: np.ndarray, target: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either side is constant or there are < 3 values."""
    if len(predicted) < 3 or np.ptp(predicted) == 0 or np.ptp(target) == 0:
        return float("nan")
    return float(spearmanr(predicted, target).statistic)


def finite_or_none(x: float | None) -> float | None:
    """``x`` as a float, or None when it is missing or not finite (JSON has no NaN)."""
    return None if x is None or not np.isfinite(x) else float(x)


def accuracy_interval(accuracy: float | None, n: int, confidence: float = 0.95) -> list[float] | None:
    """Wilson score interval [low, high] of an accuracy measured on ``n`` pairs; None without pairs."""
    if accuracy is None or n == 0:
        return None
    ci = binomtest(int(round(accuracy * n)), n).proportion_ci(confidence_level=confidence, method="wilson")
    return [float(ci.low), float(ci.high)]


def held_out_metrics(p_a: np.ndarray, pref: np.ndarray, pairs: Sequence[Hashable] | None = None) -> dict[str, Any]:
    """Accuracy (ties excluded) with the number of pairs it rests on and its 95% Wilson interval,
    log loss and calibration bins of predicted P(A) against labels.

    ``pairs``: which pair each label answers (any hashable key; None: every label its own pair).
    The accuracy counts labels, but k answers to one pair are not k independent trials of the
    model, so ``val_pairs`` and the interval count the distinct pairs (``val_labels``: the labels)."""
    accuracy = finite_or_none(preference_accuracy(p_a, pref))
    strict = np.flatnonzero(np.asarray(pref) != 0.5)
    n_pairs = len(strict) if pairs is None else len({pairs[i] for i in strict})
    return {
        "val_accuracy": accuracy,
        "val_pairs": n_pairs,
        "val_labels": len(strict),
        "val_accuracy_ci95": accuracy_interval(accuracy, n_pairs),
        "log_loss": finite_or_none(preference_log_loss(p_a, pref)),
        "calibration": [vars(b) for b in calibration(p_a, pref)],
    }
