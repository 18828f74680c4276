"""Weighted comparisons: a comparison's weight scales its share of the loss (weight 0: no share)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_core.rewards.base import bt_loss
from rlhf_core.rewards.preferences import Preferences, Segments
from rlhf_core.rewards.text import TextPreferences, preference_loss


def test_a_weighted_loss_is_the_weighted_mean_and_weight_zero_drops_a_comparison() -> None:
    r_a, r_b = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([0.0, 1.0, 0.5])
    pref = torch.tensor([1.0, 1.0, 0.5])
    for loss in (bt_loss, lambda a, b, p, weight=None: preference_loss(a, b, p, weight=weight)):
        kept = loss(r_a[[0, 2]], r_b[[0, 2]], pref[[0, 2]])
        assert loss(r_a, r_b, pref, weight=torch.tensor([1.0, 0.0, 1.0])) == pytest.approx(kept.item())
        assert loss(r_a, r_b, pref, weight=torch.tensor([2.0, 2.0, 2.0])) == pytest.approx(loss(r_a, r_b, pref).item())
        heavy = loss(r_a, r_b, pref, weight=torch.tensor([1.0, 3.0, 1.0]))
        assert heavy > loss(r_a, r_b, pref)  # the badly ranked comparison counts three times


def test_weights_travel_with_the_comparisons_they_belong_to() -> None:
    segments = Segments(np.zeros((3, 3, 2), np.float32), np.ones((3, 2), bool))
    prefs = Preferences(
        segments, np.array([0, 1, 0]), np.array([1, 2, 2]), np.array([1.0, 0.0, 0.5]), np.array([0.2, 0.9, 1.0])
    )
    np.testing.assert_allclose(prefs.take(np.array([2, 0])).weights(), [1.0, 0.2])
    assert Preferences(segments, np.array([0]), np.array([1]), np.array([1.0])).weights().tolist() == [1.0]
    with pytest.raises(ValueError, match="non-negative"):
        Preferences(segments, np.array([0]), np.array([1]), np.array([1.0]), np.array([-1.0]))
    text = TextPreferences.from_lists(["p"] * 3, ["a", "b", "c"], ["d", "e", "f"], [1, 0, 1], weight=[0.5, 1.0, 0.0])
    np.testing.assert_allclose(text.take([2, 0]).weight, [0.0, 0.5])
