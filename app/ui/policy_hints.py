"""What a policy's evaluation curve says the user should do (pure: no Streamlit, testable alone).

Reward hacking shows on the curve as the learned return rising while the task measure (the
environment's success rate, else its true return) does not: the policy found a way to collect
the reward model's reward without doing what the labels meant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LEARNED = "learned_return_mean"
SUCCESS = "success_rate"
TRUE = "true_return_mean"

MIN_EVALUATIONS = 3
"""Fewer evaluations than this have no first and last third to compare."""
LEARNED_RISE = 0.5
"""The learned return rose 'clearly': by at least this share of its range over the whole curve."""
SUCCESS_RISE = 0.1
"""Success 'rose': by at least this much (success rates run 0-1)."""
SUCCESS_DONE = 0.9
"""A last third at or above this success rate does the task: a flat success there is no warning."""
TRUE_RISE = 0.1
"""True return 'rose': by this share of max(its range, its first third's magnitude)."""


@dataclass(frozen=True)
class RewardHacking:
    """The learned return rose while the task measure did not: first-third and last-third means."""

    measure: str
    """``success_rate`` or ``true_return_mean``: the curve's measure of the task."""
    learned_before: float
    learned_after: float
    measure_before: float
    measure_after: float


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def task_measure(curve: Sequence[Mapping[str, Any]]) -> str:
    """The curve's measure of the task: the success rate where the environment has one, else the true return."""
    return SUCCESS if any(_number(row.get(SUCCESS)) is not None for row in curve) else TRUE


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def reward_hacking(
    curve: Sequence[Mapping[str, Any]], *, true_return_goal: float | None = None
) -> RewardHacking | None:
    """Whether the learned return rose while success (or the true return) did not.

    Compares the mean of the last third of the evaluations with the first third's: the learned
    return must rise by at least ``LEARNED_RISE`` of its range, and the measure must stay flat or
    fall. A measure that already does the task (success >= ``SUCCESS_DONE``, or a true return at
    ``true_return_goal`` when given) is no sign of hacking. None when the curve shows no hacking,
    has no learned return (a true-reward baseline) or has fewer than ``MIN_EVALUATIONS`` points.
    """
    measure = task_measure(curve)
    points = sorted(
        (
            (_number(row.get("step")) or 0.0, learned, value)
            for row in curve
            if (learned := _number(row.get(LEARNED))) is not None and (value := _number(row.get(measure))) is not None
        ),
        key=lambda p: p[0],
    )
    if len(points) < MIN_EVALUATIONS:
        return None
    k = len(points) // 3
    learned = [p[1] for p in points]
    values = [p[2] for p in points]
    learned_before, learned_after = _mean(learned[:k]), _mean(learned[-k:])
    before, after = _mean(values[:k]), _mean(values[-k:])
    spread = max(learned) - min(learned)
    if spread <= 1e-9 or learned_after - learned_before < LEARNED_RISE * spread:
        return None  # the learned return did not clearly rise
    if measure == SUCCESS:
        if after - before >= SUCCESS_RISE or after >= SUCCESS_DONE:
            return None
    else:
        scale = max(max(values) - min(values), abs(before))
        if after - before > TRUE_RISE * scale or (true_return_goal is not None and after >= true_return_goal):
            return None
    return RewardHacking(measure, learned_before, learned_after, before, after)
