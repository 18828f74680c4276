"""The vocabulary every long-running fit in ``rlhf_core`` shares: progress, stop requests, cancellation.

A fit (reward model, text reward model, classifier, DQN) takes an ``on_step`` :data:`ProgressFn`
that it calls with ``(done, total, metrics so far)``, and a ``should_stop`` :data:`StopFn` that it
polls between steps; when that returns True the fit raises :class:`TrainingCancelledError` and
leaves nothing half-written. Light to import (no torch, no numpy).
"""

from __future__ import annotations

from collections.abc import Callable

#: Progress callback: (steps done, total steps, metrics so far).
ProgressFn = Callable[[int, int, dict[str, float]], None]
#: Polled between steps; True asks the fit to stop.
StopFn = Callable[[], bool]


class TrainingCancelledError(RuntimeError):
    """A fit was asked to stop (``should_stop`` returned True); its result was discarded."""


def never() -> bool:
    """The default :data:`StopFn`: never asks to stop."""
    return False


def quiet(done: int, total: int, metrics: dict[str, float]) -> None:
    """The default :data:`ProgressFn`: reports nothing."""
    return None
