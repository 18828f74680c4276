"""The learned-reward wrapper: batched, normalised, consistent with the model."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_core.rewards.learned import LearnedReward
from rlhf_core.rewards.models import make_reward_model
from rlhf_core.rewards.preferences import FeatureSpec, Preferences, Segments


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(80, 7, 3)).astype(np.float32)
    valid = np.ones((80, 6), bool)
    valid[:20, 3:] = False  # some segments ended early
    segments = Segments(obs, valid)
    returns = (obs[:, :-1, 0] * valid).sum(1) - 3 * (~valid).sum(1)
    a, b = rng.integers(0, 80, 400), rng.integers(0, 80, 400)
    keep = a != b
    pref = (returns[a[keep]] > returns[b[keep]]).astype(float)
    model = make_reward_model("bt", FeatureSpec.for_segments(segments))
    model.fit(Preferences(segments, a[keep], b[keep], pref), rng=rng)
    return model, segments


def test_rewards_of_a_batch_come_from_one_model_call_and_match_the_model(fitted):
    model, segments = fitted
    reward = LearnedReward(model)
    obs, next_obs = segments.obs[:, 0], segments.obs[:, 1]
    got = reward(obs, np.zeros(len(obs), np.int64), next_obs)
    assert reward.calls == 1 and got.shape == (80,)
    expected = model.step_rewards(Segments(segments.obs[:, :2], np.ones((80, 1), bool)))[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_rewards_are_normalised_on_the_reference_segments(fitted):
    model, segments = fitted
    reward = LearnedReward(model, reference=segments)
    seg, step = np.nonzero(segments.valid)  # every transition of the reference clips
    got = reward(segments.obs[seg, step], np.zeros(len(seg), np.int64), segments.obs[seg, step + 1])
    assert len(got) == 80 * 6 - 20 * 3
    assert abs(float(got.mean())) < 1e-5 and float(got.std()) == pytest.approx(1.0, rel=1e-4)
    raw = model.step_rewards(segments)[segments.valid]
    assert float(raw.std()) != pytest.approx(1.0, rel=1e-2)  # the model's own scale is another: it was rescaled


def test_absorbing_reward_is_the_models_padding_reward_normalised(fitted):
    model, segments = fitted
    reward = LearnedReward(model, reference=segments)
    padding = model.step_rewards(segments)[~segments.valid]
    assert np.ptp(padding) < 1e-6  # the absorbing state has one reward, whatever was observed last
    assert reward.absorbing_reward(segments.obs[5, 0]) == pytest.approx((padding[0] - reward.mean) / reward.std)
    assert reward.absorbing_reward(segments.obs[5, 0]) < 0  # the model learned that ending early is bad
