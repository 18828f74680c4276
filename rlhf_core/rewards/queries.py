"""Choosing which pairs of segments to ask about.

* random: uniform distinct pairs.
* disagreement: oversample random candidates (10x by default), keep those on which the
  ensemble's members disagree most (std of their P(A preferred)), as in Christiano et al.
  and B-Pref. A single model has no members; it ranks by the entropy of its prediction.
"""

from __future__ import annotations

import numpy as np

from rlhf_core.rewards.base import RewardModel
from rlhf_core.rewards.ensemble import EnsembleBT
from rlhf_core.rewards.preferences import Preferences, Segments

Pair = tuple[int, int]


def random_pairs(n_segments: int, n: int, rng: np.random.Generator, exclude: set[Pair] | None = None) -> list[Pair]:
    """Up to ``n`` distinct pairs (i < j) of segment indices not in ``exclude``."""
    exclude = exclude or set()
    available = n_segments * (n_segments - 1) // 2 - len(exclude)
    n = min(n, max(available, 0))
    chosen: set[Pair] = set()
    attempts = 0
    while len(chosen) < n and attempts < 50 * n + 100:
        attempts += 1
        i, j = (int(v) for v in rng.choice(n_segments, size=2, replace=False))
        pair = (min(i, j), max(i, j))
        if pair not in exclude:
            chosen.add(pair)
    return sorted(chosen, key=lambda p: rng.random())


def disagreement_scores(model: RewardModel, segments: Segments, pairs: list[Pair]) -> np.ndarray:
    """How disputed each pair is: members' std of P(A preferred), or the prediction's entropy."""
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    data = Preferences(segments, a, b, np.full(len(pairs), 0.5))
    if isinstance(model, EnsembleBT) and model.config.members > 1:
        return model.member_prefs(data).std(axis=0)
    p = np.clip(model.predict_pref(data), 1e-7, 1 - 1e-7)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def disagreement_pairs(
    model: RewardModel,
    segments: Segments,
    n: int,
    rng: np.random.Generator,
    *,
    oversample: int = 10,
    exclude: set[Pair] | None = None,
) -> tuple[list[Pair], np.ndarray]:
    """The ``n`` most disputed of ``oversample * n`` random candidate pairs, most disputed first."""
    candidates = random_pairs(segments.count, oversample * n, rng, exclude)
    if not candidates:
        return [], np.zeros(0)
    scores = disagreement_scores(model, segments, candidates)
    order = np.argsort(-scores, kind="stable")[:n]
    return [candidates[i] for i in order], scores[order]
