"""Query selection: random pairs and the pairs the ensemble disputes most."""

from __future__ import annotations

import numpy as np

from rlhf_core.rewards.models import make_reward_model
from rlhf_core.rewards.preferences import FeatureSpec, Preferences, Segments
from rlhf_core.rewards.queries import disagreement_pairs, disagreement_scores, random_pairs


def test_random_pairs_are_distinct_ordered_and_skip_existing_ones():
    rng = np.random.default_rng(0)
    pairs = random_pairs(6, 10, rng, exclude={(0, 1), (2, 3)})
    assert len(pairs) == 10 and len(set(pairs)) == 10
    assert all(a < b for a, b in pairs) and not {(0, 1), (2, 3)} & set(pairs)
    assert len(random_pairs(4, 100, rng)) == 6  # only 6 pairs exist


def test_disagreement_ranks_pairs_the_members_dispute_first():
    rng = np.random.default_rng(0)
    m, length = 60, 5
    obs = np.zeros((m, length + 1, 2), np.float32)
    obs[:, :, 0] = rng.normal(size=(m, 1))  # feature 0 varies and decides the labels
    segments = Segments(obs, np.ones((m, length), bool))
    a, b = rng.integers(0, m, 300), rng.integers(0, m, 300)
    keep = a != b
    a, b = a[keep], b[keep]
    pref = (obs[a, 0, 0] > obs[b, 0, 0]).astype(float)
    model = make_reward_model("ensemble", FeatureSpec.for_segments(segments), members=5, epochs=20)
    model.fit(Preferences(segments, a, b, pref), rng=rng)
    # new segments: 0-9 differ only along feature 1, never seen in training (members extrapolate
    # differently); 10-19 differ clearly along feature 0 (members agree)
    new = np.zeros((20, length + 1, 2), np.float32)
    new[:10, :, 1] = np.linspace(-8, 8, 10)[:, None]
    new[10:, :, 0] = np.linspace(-3, 3, 10)[:, None]
    pool = Segments(new, np.ones((20, length), bool))
    unseen = [(i, i + 5) for i in range(5)]
    clear = [(10, 19), (11, 18), (12, 17)]
    scores = disagreement_scores(model, pool, unseen + clear)
    assert scores[:5].mean() > 3 * scores[5:].mean()
    chosen, chosen_scores = disagreement_pairs(model, pool, 5, rng, oversample=10)
    assert list(chosen_scores) == sorted(chosen_scores, reverse=True)
    assert np.all(np.diff(chosen_scores) <= 0) and len(chosen) == 5
