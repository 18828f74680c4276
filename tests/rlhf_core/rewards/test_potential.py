"""Potential-form rewards, r = Phi(s') - Phi(s) + c: learned from a progress teacher, and no
loop of steps earns anything (what keeps a policy from farming a reward by circling)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_core.rewards.ensemble import EnsembleNet
from rlhf_core.rewards.learned import LearnedReward
from rlhf_core.rewards.linear import LinearBT
from rlhf_core.rewards.models import load_reward_model, make_reward_model
from rlhf_core.rewards.preferences import FeatureSpec, Preferences, Segments

CELLS, GOAL, LENGTH = 12, 9, 8


def _obs(positions: np.ndarray) -> np.ndarray:
    """A position on a line of cells as a one-hot vector (a state a linear model cannot rank)."""
    return np.eye(CELLS, dtype=np.float32)[positions]


def _walks(n: int, seed: int) -> tuple[Segments, np.ndarray]:
    """Random walks on the line; returns the segments and their progress toward GOAL."""
    rng = np.random.default_rng(seed)
    pos = np.empty((n, LENGTH + 1), np.int64)
    pos[:, 0] = rng.integers(0, CELLS, n)
    drift = rng.choice([-1, 1], n)  # each walk mostly goes one way
    for t in range(LENGTH):
        step = np.where(rng.random(n) < 0.8, drift, -drift)
        pos[:, t + 1] = np.clip(pos[:, t] + step, 0, CELLS - 1)
    distance = np.abs(pos - GOAL)
    return Segments(_obs(pos), np.ones((n, LENGTH), bool)), (distance[:, 0] - distance[:, -1]).astype(float)


def _prefs(segments: Segments, progress: np.ndarray, n_pairs: int, seed: int) -> Preferences:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, segments.count, 3 * n_pairs)
    b = (a + rng.integers(1, segments.count, 3 * n_pairs)) % segments.count
    keep = np.flatnonzero(progress[a] != progress[b])[:n_pairs]
    a, b = a[keep], b[keep]
    return Preferences(segments, a, b, (progress[a] > progress[b]) * 1.0)


def _loops(at: list[int]) -> Segments:
    """Segments that step back and forth between two cells, ending where they started."""
    pos = np.array([[p, p + 1] * (LENGTH // 2) + [p] for p in at])
    return Segments(_obs(pos), np.ones((len(at), LENGTH), bool))


def _accuracy(model, data: Preferences) -> float:
    return float(((model.predict_pref(data) > 0.5) == (data.pref == 1)).mean())


@pytest.mark.parametrize("kind", ["bt", "ensemble"])
def test_a_progress_teacher_is_learned_and_a_loop_earns_the_same_anywhere(kind):
    segments, progress = _walks(300, seed=0)
    train = _prefs(segments, progress, 400, seed=1)
    held_segments, held_progress = _walks(200, seed=2)
    held = _prefs(held_segments, held_progress, 300, seed=3)
    model = make_reward_model(kind, FeatureSpec.for_segments(segments, form="potential"))
    model.fit(train, rng=np.random.default_rng(0))
    assert _accuracy(model, held) >= 0.9
    loops = model.segment_returns(_loops([1, 4, GOAL - 1, GOAL]))
    np.testing.assert_allclose(loops, loops[0], atol=1e-4)  # next to the goal earns nothing more than far away


def test_a_transition_reward_learns_the_same_teacher_but_pays_for_loops_near_the_goal():
    segments, progress = _walks(300, seed=0)
    model = make_reward_model("ensemble", FeatureSpec.for_segments(segments))  # form="transition"
    model.fit(_prefs(segments, progress, 400, seed=1), rng=np.random.default_rng(0))
    loops = model.segment_returns(_loops([1, GOAL - 1]))
    assert abs(loops[1] - loops[0]) > 0.1  # the farmable difference the potential form rules out


def test_linear_potential_ignores_the_state_itself():
    segments, progress = _walks(200, seed=4)
    model = LinearBT(FeatureSpec.for_segments(segments, form="potential"))
    model.fit(_prefs(segments, progress, 300, seed=5), rng=np.random.default_rng(0))
    assert model.weights is not None
    x = model.inputs(_loops([2]))
    assert not x[..., :CELLS].any()  # the observation's own columns are zeroed: only its change counts


def test_potential_models_save_their_form_and_reload_to_identical_rewards(tmp_path):
    segments, progress = _walks(150, seed=6)
    model = make_reward_model("ensemble", FeatureSpec.for_segments(segments, form="potential"), epochs=5)
    model.fit(_prefs(segments, progress, 200, seed=7), rng=np.random.default_rng(0))
    model.save(tmp_path / "m")
    back = load_reward_model(tmp_path / "m")
    assert back.spec.form == "potential"
    np.testing.assert_array_equal(back.step_rewards(segments), model.step_rewards(segments))


def test_models_saved_before_forms_existed_load_as_transition_rewards():
    spec = FeatureSpec.from_json({"obs_shape": [3], "pixels": False, "encoder": None})
    assert spec.form == "transition" and spec.n_actions is None
    with pytest.raises(ValueError, match="form must be one of potential, transition|form must be one of"):
        FeatureSpec((3,), False, form="loops")


def test_a_potential_reward_gives_the_state_after_an_episode_zero():
    segments, progress = _walks(150, seed=8)
    model = make_reward_model("ensemble", FeatureSpec.for_segments(segments, form="potential"), epochs=5)
    model.fit(_prefs(segments, progress, 200, seed=9), rng=np.random.default_rng(0))
    reward = LearnedReward(model, reference=segments)
    assert reward.absorbing_reward(segments.obs[0, 0]) == pytest.approx(0.0, abs=1e-6)
    toward = _obs(np.array([GOAL - 2])), _obs(np.array([GOAL - 1]))
    away = toward[1], toward[0]
    assert reward(toward[0], np.zeros(1, np.int64), toward[1])[0] > reward(away[0], np.zeros(1, np.int64), away[1])[0]


def _phi(model, positions: list[int]) -> np.ndarray:
    """The members' mean potential of single cells (unscaled), as the network computes it."""
    x = torch.from_numpy(_obs(np.array(positions)))
    with torch.inference_mode():  # EnsembleNet's forward is Phi; PotentialEnsembleNet's, its rise
        return EnsembleNet.forward(model.net, x.expand(model.config.members, -1, -1)).mean(0).numpy()


def test_a_continued_ensemble_starts_from_the_earlier_networks_and_learns_on():
    segments, progress = _walks(300, seed=8)
    first = _prefs(segments, progress, 150, seed=9)
    spec = FeatureSpec.for_segments(segments, form="potential")
    earlier = make_reward_model("ensemble", spec)
    earlier.fit(first, rng=np.random.default_rng(0))
    # a fit of one epoch at a negligible learning rate leaves a continued model where it started
    still = make_reward_model("ensemble", spec, epochs=1, lr=1e-12)
    assert still.continue_from(earlier)
    still.fit(first, rng=np.random.default_rng(1))
    fresh = make_reward_model("ensemble", spec, epochs=1, lr=1e-12, seed=1)
    fresh.fit(first, rng=np.random.default_rng(1))
    cells = list(range(CELLS))
    np.testing.assert_allclose(_phi(still, cells), _phi(earlier, cells), atol=1e-6)
    assert np.abs(_phi(fresh, cells) - _phi(earlier, cells)).max() > 0.1
    # and with more labels it learns on: as accurate as a fresh fit of all of them
    more = _prefs(segments, progress, 400, seed=10)
    held_segments, held_progress = _walks(200, seed=11)
    held = _prefs(held_segments, held_progress, 300, seed=12)
    continued = make_reward_model("ensemble", spec)
    assert continued.continue_from(earlier)
    continued.fit(more, rng=np.random.default_rng(2))
    assert _accuracy(continued, held) >= 0.9


def test_only_an_ensemble_of_the_same_inputs_and_shape_is_continued():
    segments, progress = _walks(120, seed=13)
    prefs = _prefs(segments, progress, 100, seed=14)
    spec = FeatureSpec.for_segments(segments, form="potential")
    earlier = make_reward_model("ensemble", spec, epochs=2)
    assert not make_reward_model("ensemble", spec).continue_from(earlier)  # not fitted yet
    earlier.fit(prefs, rng=np.random.default_rng(0))
    assert make_reward_model("ensemble", spec, epochs=5).continue_from(earlier)  # training options may differ
    assert not make_reward_model("ensemble", spec, hidden=(32,)).continue_from(earlier)
    assert not make_reward_model("ensemble", spec, members=5).continue_from(earlier)
    assert not make_reward_model("ensemble", FeatureSpec.for_segments(segments)).continue_from(earlier)
    linear = make_reward_model("bt", spec)
    linear.fit(prefs, rng=np.random.default_rng(0))
    assert not make_reward_model("ensemble", spec).continue_from(linear)


def test_image_features_share_one_scale_and_older_per_feature_models_are_not_continued():
    from rlhf_core.rewards.ensemble import PotentialEnsembleNet

    spec = FeatureSpec((48, 48, 3), True, "efficientnet-lite0", form="potential")
    older = make_reward_model("ensemble", spec)
    older.net = PotentialEnsembleNet(3, 2 * 8 + 2, (64, 64), 2)  # 8 features, step and padding columns
    older.net.std.copy_(torch.linspace(0.01, 1.0, 8))  # each feature's own spread: the old standardisation
    assert not make_reward_model("ensemble", spec).continue_from(older)
    older.net.std.fill_(0.3)  # one scale, as a fit of image features now gives
    assert make_reward_model("ensemble", spec).continue_from(older)
