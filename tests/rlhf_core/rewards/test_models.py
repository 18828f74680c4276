"""Bradley-Terry reward models: recovery of known rewards, ties, save/load, noise, cancel."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from rlhf_core.callbacks import TrainingCancelledError
from rlhf_core.rewards.base import bt_loss, pairwise_rows
from rlhf_core.rewards.ensemble import ACTION_SCALE, EnsembleBT
from rlhf_core.rewards.linear import LinearBT
from rlhf_core.rewards.models import load_reward_model, make_reward_model
from rlhf_core.rewards.preferences import FeatureSpec, Preferences, Segments, step_inputs

TRUE_W = np.array([1.0, -2.0, 0.5], dtype=np.float32)


def synthetic(n_segments=120, length=10, n_pairs=600, seed=0, ties=False):
    """Vector segments whose true step reward is TRUE_W . obs; oracle preferences."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n_segments, length + 1, 3)).astype(np.float32)
    obs += rng.normal(size=(n_segments, 1, 3)).astype(np.float32)  # segments differ in level
    segments = Segments(obs, np.ones((n_segments, length), bool))
    true_returns = (obs[:, :-1] @ TRUE_W).sum(1)
    a = rng.integers(0, n_segments, n_pairs)
    b = (a + rng.integers(1, n_segments, n_pairs)) % n_segments
    diff = true_returns[a] - true_returns[b]
    pref = (diff > 0).astype(np.float64)
    if ties:
        pref[np.abs(diff) < np.quantile(np.abs(diff), 0.2)] = 0.5
    return Preferences(segments, a, b, pref), true_returns


def _accuracy(model, data):
    p = model.predict_pref(data)
    strict = data.pref != 0.5
    return float(((p[strict] > 0.5) == (data.pref[strict] == 1)).mean())


def test_linear_bt_recovers_known_weights():
    data, true_returns = synthetic()
    model = LinearBT(FeatureSpec.for_segments(data.segments))
    model.fit(data, rng=np.random.default_rng(0))
    w_now = model.weights[:3]
    cosine = w_now @ TRUE_W / (np.linalg.norm(w_now) * np.linalg.norm(TRUE_W))
    assert cosine > 0.98
    predicted = model.segment_returns(data.segments)
    assert np.corrcoef(predicted, true_returns)[0, 1] > 0.98
    held, _ = synthetic(seed=1)
    assert _accuracy(model, held) > 0.9


def test_linear_bt_solves_on_one_blas_thread_and_puts_the_libraries_counts_back(monkeypatch):
    # NumPy's and SciPy's OpenBLAS pools spinning against each other made such fits 12x slower on two cores
    from sklearn.linear_model import LogisticRegressionCV
    from threadpoolctl import threadpool_info, threadpool_limits

    seen = []
    solve = LogisticRegressionCV.fit

    def watched(self, *args, **kwargs):
        seen.append({lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})
        return solve(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegressionCV, "fit", watched)
    data, _ = synthetic()
    with threadpool_limits(limits=2, user_api="blas"):
        before = {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}
        LinearBT(FeatureSpec.for_segments(data.segments)).fit(data, rng=np.random.default_rng(0))
        after = {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}
    assert seen and seen[0] and set(seen[0].values()) == {1}  # every BLAS library NumPy and SciPy load
    assert after == before


def test_pairwise_rows_use_both_orders_and_split_ties_half_and_half():
    diff = np.array([[1.0, 2.0], [3.0, 4.0]])
    x, y, w, groups = pairwise_rows(diff, np.array([1.0, 0.5]))
    rows = {(tuple(xi), yi, wi) for xi, yi, wi in zip(x, y, w, strict=True)}
    assert rows == {
        ((1.0, 2.0), 1.0, 1.0),
        ((-1.0, -2.0), 0.0, 1.0),  # a strict preference: both orders
        ((3.0, 4.0), 1.0, 0.5),
        ((3.0, 4.0), 0.0, 0.5),  # a tie: half weight each way...
        ((-3.0, -4.0), 1.0, 0.5),
        ((-3.0, -4.0), 0.0, 0.5),  # ...in both orders
    }
    assert sorted(groups.tolist()) == [0, 0, 1, 1, 1, 1]


def test_ties_pull_predictions_toward_one_half():
    data, _ = synthetic(ties=True)
    model = LinearBT(FeatureSpec.for_segments(data.segments))
    model.fit(data, rng=np.random.default_rng(0))
    p = model.predict_pref(data)
    tied = data.pref == 0.5
    assert np.abs(p[tied] - 0.5).mean() < np.abs(p[~tied] - 0.5).mean()


def test_ensemble_learns_the_reward_and_members_differ():
    data, true_returns = synthetic(n_pairs=400)
    model = EnsembleBT(FeatureSpec.for_segments(data.segments), None)
    model.config = type(model.config)(members=3, epochs=30)
    steps = []
    model.fit(data, rng=np.random.default_rng(0), on_step=lambda d, t, m: steps.append((d, t)))
    assert steps[-1] == (30, 30)
    assert np.corrcoef(model.segment_returns(data.segments), true_returns)[0, 1] > 0.95
    held, _ = synthetic(seed=2)
    assert _accuracy(model, held) > 0.85
    members = model.member_returns(data.segments)
    assert members.shape == (3, data.segments.count)
    assert not np.allclose(members[0], members[1])  # bagging and initialisation differ


@pytest.mark.parametrize("kind", ["bt", "ensemble"])
def test_save_and_load_reproduce_rewards_exactly(tmp_path, kind):
    data, _ = synthetic(n_pairs=200)
    model = make_reward_model(kind, FeatureSpec.for_segments(data.segments), **({"epochs": 3} if kind != "bt" else {}))
    model.fit(data, rng=np.random.default_rng(0))
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    back = load_reward_model(tmp_path / "m")
    assert type(back) is type(model)
    np.testing.assert_array_equal(back.step_rewards(data.segments), model.step_rewards(data.segments))


def test_noise_probability_bounds_the_loss_of_a_confident_mistake():
    r_a, r_b, pref = torch.tensor([20.0]), torch.tensor([0.0]), torch.tensor([0.0])
    assert bt_loss(r_a, r_b, pref).item() > 15  # a confident mistake costs ~20 nats
    assert bt_loss(r_a, r_b, pref, noise_prob=0.1).item() < np.log(1 / 0.05) + 1e-4  # at most -log(e/2)


def test_fit_can_be_cancelled():
    data, _ = synthetic(n_pairs=100)
    model = make_reward_model("ensemble", FeatureSpec.for_segments(data.segments), epochs=50)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(TrainingCancelledError):
        model.fit(data, rng=np.random.default_rng(0), should_stop=stop)
    assert isinstance(model, EnsembleBT) and model.net is None  # nothing half-trained is kept


def test_padding_steps_are_an_absorbing_state_with_a_reward_of_their_own():
    obs = np.zeros((2, 4, 1), np.float32)
    valid = np.array([[True, True, True], [True, False, False]])
    x = step_inputs(FeatureSpec((1,), False), Segments(obs, valid))
    assert x.shape == (2, 3, 4)
    np.testing.assert_array_equal(x[1, 1:, -2:], [[0, 1], [0, 1]])  # valid=0, ended=1
    np.testing.assert_array_equal(x[0, :, -2:], [[1, 0]] * 3)


def test_bad_inputs_are_refused_with_the_reason():
    seg = Segments(np.zeros((3, 5, 2), np.float32), np.ones((3, 4), bool))
    with pytest.raises(ValueError, match="pref must be 0, 0.5 or 1"):
        Preferences(seg, np.array([0]), np.array([1]), np.array([0.7]))
    with pytest.raises(ValueError, match="segment indices must lie in"):
        Preferences(seg, np.array([0]), np.array([3]), np.array([1.0]))
    with pytest.raises(ValueError, match="must be \\(M, L \\+ 1, ...\\)"):
        Segments(np.zeros((3, 4, 2)), np.ones((3, 4), bool))
    with pytest.raises(ValueError, match="unknown reward model kind 'svm'"):
        make_reward_model("svm", FeatureSpec((2,), False))
    with pytest.raises(ValueError, match="noise_prob must lie in"):
        make_reward_model("ensemble", FeatureSpec((2,), False), noise_prob=1.5)


def _wide(n_pairs: int, seed: int, dim: int = 300, n_segments: int = 200, length: int = 10) -> Preferences:
    """Segments of ``dim`` features of which 3 carry the reward: easy to overfit with few labels."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n_segments, length + 1, dim)).astype(np.float32)
    obs += rng.normal(size=(n_segments, 1, dim)).astype(np.float32)
    w = np.zeros(dim, np.float32)
    w[:3] = TRUE_W
    returns = (obs[:, :-1] @ w).sum(1)
    a = rng.integers(0, n_segments, n_pairs)
    b = (a + rng.integers(1, n_segments, n_pairs)) % n_segments
    return Preferences(Segments(obs, np.ones((n_segments, length), bool)), a, b, (returns[a] > returns[b]) * 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_ensemble_fitted_on_ten_labels_is_not_overconfident(seed):
    from rlhf_core.rewards.metrics import preference_log_loss

    data = _wide(10 + 300, seed)
    train, held = data.take(np.arange(10)), data.take(np.arange(10, 310))
    model = EnsembleBT(FeatureSpec.for_segments(data.segments))
    model.fit(train, rng=np.random.default_rng(seed))
    assert 0 < model.scale < 0.5  # the out-of-bag pairs showed that it knows little
    calibrated = preference_log_loss(model.predict_pref(held), held.pref)
    assert calibrated <= np.log(2) + 0.01
    returns = model.segment_returns(held.segments) / model.scale  # what it would say uncalibrated
    uncalibrated = preference_log_loss(1 / (1 + np.exp(-(returns[held.a] - returns[held.b]))), held.pref)
    assert uncalibrated > np.log(2) + 0.05


def test_calibration_leaves_a_well_fitted_ensemble_confident():
    data, _ = synthetic(n_pairs=700)
    model = EnsembleBT(FeatureSpec.for_segments(data.segments))
    model.fit(data.take(np.arange(400)), rng=np.random.default_rng(0))
    held = data.take(np.arange(400, 700))
    assert model.scale > 0.3
    assert _accuracy(model, held) > 0.9
    p = model.predict_pref(held)
    assert np.mean(np.abs(p - 0.5) > 0.4) > 0.5  # most held-out pairs are called with confidence


def _action_only(n_pairs: int, seed: int, n_segments: int = 300, length: int = 10, n_actions: int = 3):
    """Random observations; the teacher rewards action 1 alone, so only the actions tell segments
    apart. The first ``n_pairs`` comparisons pair segments of the first half, the next
    ``n_pairs`` those of the second half: held-out pairs show segments never trained on."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n_segments, length + 1, 4)).astype(np.float32)
    actions = rng.integers(0, n_actions, size=(n_segments, length))
    segments = Segments(obs, np.ones((n_segments, length), bool), actions)
    returns = (actions == 1).sum(axis=1)
    half = n_segments // 2
    firsts, seconds = [], []
    for offset in (0, half):
        a = offset + rng.integers(0, half, 4 * n_pairs)
        b = offset + (a - offset + rng.integers(1, half, 4 * n_pairs)) % half
        keep = np.flatnonzero(returns[a] != returns[b])[:n_pairs]  # strict preferences only
        firsts.append(a[keep])
        seconds.append(b[keep])
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    return Preferences(segments, a, b, (returns[a] > returns[b]) * 1.0)


@pytest.mark.parametrize("form", ["potential", "transition"])  # potential: the default for discrete actions
@pytest.mark.parametrize("kind", ["bt", "ensemble"])
def test_a_reward_of_the_action_alone_is_learned_with_the_action_and_not_without(kind, form):
    data = _action_only(300, seed=0)
    train, held = data.take(np.arange(300)), data.take(np.arange(300, 600))
    accuracy = {}
    for n_actions in (None, 3):
        spec = FeatureSpec.for_segments(data.segments, n_actions=n_actions, form=form)
        model = make_reward_model(kind, spec)
        model.fit(train, rng=np.random.default_rng(0))
        accuracy[n_actions] = _accuracy(model, held)
    assert accuracy[3] >= 0.9, accuracy
    assert accuracy[None] < 0.7, accuracy  # observations alone carry nothing of it


def test_a_potential_ensemble_saved_before_the_actions_scale_scores_as_it_did(tmp_path):
    # its action weights were the rewards themselves: loaded, they are not scaled by ACTION_SCALE
    data = _action_only(100, seed=1)
    model = make_reward_model("ensemble", FeatureSpec.for_segments(data.segments, n_actions=3, form="potential"))
    model.fit(data, rng=np.random.default_rng(0))
    x = model.inputs(data.segments)
    rewards = model.member_step_rewards(x)
    old = model.net.state_dict()
    old["extra"] = old["extra"] * old.pop("extra_scale")  # what the same network saved back then held
    model.net.load_state_dict(old)
    np.testing.assert_allclose(model.member_step_rewards(x), rewards, rtol=1e-5, atol=1e-6)
    assert model.net.extra_scale.max() == 1.0
    # continued, as retraining does by default, the next version starts from the same rewards on the new scale
    later = make_reward_model("ensemble", model.spec)
    assert later.continue_from(model)
    later.config = replace(later.config, epochs=1, lr=1e-9)  # a step too small to move anything
    later.fit(data, rng=np.random.default_rng(0))
    assert later.net.extra_scale.max() == ACTION_SCALE
    later.scale = model.scale  # (calibration is refitted on each fit; the networks are what is compared)
    np.testing.assert_allclose(later.member_step_rewards(x), rewards, rtol=1e-4, atol=1e-5)


def test_state_action_models_save_their_action_count_and_refuse_segments_without_actions(tmp_path):
    data = _action_only(100, seed=1)
    model = make_reward_model("ensemble", FeatureSpec.for_segments(data.segments, n_actions=3))
    model.fit(data, rng=np.random.default_rng(0))
    model.save(tmp_path / "m")
    loaded = load_reward_model(tmp_path / "m")
    assert loaded.spec.n_actions == 3
    np.testing.assert_array_equal(loaded.step_rewards(data.segments), model.step_rewards(data.segments))
    with pytest.raises(ValueError, match="takes the action of each step"):
        loaded.step_rewards(Segments(data.segments.obs, data.segments.valid))
    with pytest.raises(ValueError, match="needs segments with their actions"):
        FeatureSpec.for_segments(Segments(data.segments.obs, data.segments.valid), n_actions=3)


def test_the_learned_reward_of_a_transition_depends_on_its_action():
    from rlhf_core.rewards.learned import LearnedReward

    data = _action_only(100, seed=2)
    model = make_reward_model("ensemble", FeatureSpec.for_segments(data.segments, n_actions=3))
    model.fit(data, rng=np.random.default_rng(0))
    reward = LearnedReward(model, reference=data.segments)
    obs = data.segments.obs[:50, 0]
    by_action = [reward(obs, np.full(50, a), obs).mean() for a in range(3)]
    assert by_action[1] > by_action[0] + 1.0 and by_action[1] > by_action[2] + 1.0  # normalised units
    assert np.isfinite(reward.absorbing_reward(obs[0]))  # padding needs no action


def test_cnn_lora_refuses_a_state_action_spec_with_the_kinds_that_can():
    from rlhf_core.errors import InvalidInputError

    spec = FeatureSpec((48, 48, 3), True, "efficientnet-lite0", n_actions=3)
    with pytest.raises(InvalidInputError, match="state-action reward use bt or ensemble"):
        make_reward_model("cnn-lora", spec)
