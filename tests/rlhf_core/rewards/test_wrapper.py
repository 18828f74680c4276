"""The learned-reward wrappers any RL library trains on, and continuous actions as reward inputs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlhf_core.envs.behaviours import behaviour_mix
from rlhf_core.envs.episodes import rollout
from rlhf_core.envs.registry import env_info, make_env
from rlhf_core.rewards.learned import LearnedReward
from rlhf_core.rewards.models import load_reward_model, make_reward_model
from rlhf_core.rewards.preferences import FeatureSpec, Preferences, Segments, step_inputs
from rlhf_core.rewards.wrapper import DEFAULT_GAMMA, LearnedRewardWrapper


def _segments(env_id: str, episodes: int = 6, length: int = 20) -> tuple[Segments, np.ndarray]:
    """Windows of episodes of the demo behaviours, with their actions and true returns."""
    rng = np.random.default_rng(0)
    obs, valid, actions, returns = [], [], [], []
    mix = behaviour_mix(env_id)
    for k in range(episodes):
        ep = rollout(env_id, mix[k % len(mix)], seed=k, rng=rng, render=False, max_steps=3 * length)
        for start in range(0, ep.length - length, length):
            obs.append(ep.obs[start : start + length + 1])
            valid.append(np.ones(length, bool))
            actions.append(ep.actions[start : start + length])
            returns.append(ep.rewards[start : start + length].sum())
    return Segments(np.stack(obs), np.stack(valid), np.stack(actions)), np.array(returns)


def _model(env_id: str, *, with_actions: bool):
    segments, returns = _segments(env_id)
    info = env_info(env_id)
    bounds = (info.action_low, info.action_high) if info.continuous else None
    spec = FeatureSpec.for_segments(segments, n_actions=info.n_actions if with_actions else None, action_bounds=bounds)
    a, b = np.triu_indices(segments.count, 1)
    prefs = Preferences(segments, a, b, (returns[a] > returns[b]).astype(np.float64))
    model = make_reward_model("bt", spec)
    model.fit(prefs, rng=np.random.default_rng(0))
    return model, segments


def test_a_continuous_action_is_a_reward_input_scaled_by_its_bounds(tmp_path):
    model, segments = _model("Pendulum-v1", with_actions=True)
    spec = model.spec
    assert spec.continuous and spec.n_actions == 1 and (spec.action_low, spec.action_high) == ((-2.0,), (2.0,))
    x = step_inputs(spec, segments)
    np.testing.assert_allclose(x[..., -1], segments.actions[..., 0] / 2.0, atol=1e-6)  # [-2, 2] -> [-1, 1]
    padded = Segments(segments.obs[:1], np.array([[True] * 19 + [False]]), segments.actions[:1])
    assert step_inputs(spec, padded)[0, -1, -1] == 0.0  # padding has no action
    model.save(tmp_path / "m")
    back = load_reward_model(tmp_path / "m")
    assert back.spec == spec
    np.testing.assert_array_equal(back.step_rewards(segments), model.step_rewards(segments))
    # and the action changes the reward
    other = Segments(segments.obs, segments.valid, -segments.actions)
    assert not np.allclose(model.step_rewards(other), model.step_rewards(segments))


def test_the_wrapper_gives_the_models_normalised_reward_and_keeps_the_true_one_in_info():
    model, segments = _model("Pendulum-v1", with_actions=True)
    reward = LearnedReward(model, reference=segments)
    env, plain = (
        LearnedRewardWrapper(make_env("Pendulum-v1", render=False), reward),
        make_env("Pendulum-v1", render=False),
    )
    obs, _ = env.reset(seed=3)
    plain_obs, _ = plain.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(30):
        action = rng.uniform(-2, 2, size=1).astype(np.float32)
        before = obs
        obs, got, terminated, truncated, info = env.step(action)
        plain_obs, true_reward, *_ = plain.step(action)
        np.testing.assert_array_equal(obs, plain_obs)
        assert info["true_reward"] == pytest.approx(float(true_reward))
        expected = (
            model.step_rewards(Segments(np.stack([before, obs])[None], np.ones((1, 1), bool), action[None, None]))[0, 0]
            - reward.mean
        ) / reward.std
        assert got == pytest.approx(float(expected), rel=1e-5, abs=1e-5)


def test_the_vectorised_wrapper_computes_all_environments_rewards_in_one_call_and_handles_episode_ends():
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rlhf_core.rewards.wrapper import LearnedRewardVecEnv

    model, segments = _model("CartPole-v1", with_actions=True)
    reward = LearnedReward(model, reference=segments)
    venv = LearnedRewardVecEnv(DummyVecEnv([lambda: make_env("CartPole-v1", render=False)] * 3), reward)
    obs = venv.reset()
    bonus = DEFAULT_GAMMA * reward.absorbing_reward(obs[0]) / (1 - DEFAULT_GAMMA)
    assert bonus != 0
    rng = np.random.default_rng(1)
    ends = 0
    for _ in range(120):
        actions = rng.integers(0, 2, size=3)
        calls = reward.calls
        before = obs.copy()
        obs, rewards, dones, infos = venv.step(actions)
        assert reward.calls == calls + 1  # one model call for the three environments
        after = np.stack(
            [info["terminal_observation"] if done else o for o, done, info in zip(obs, dones, infos, strict=True)]
        )
        expected = reward(before, actions, after)
        for i, info in enumerate(infos):
            assert info["true_reward"] == 1.0  # CartPole's own reward, kept for evaluation
            truly_ended = dones[i] and not info.get("TimeLimit.truncated", False)
            ends += truly_ended
            assert rewards[i] == pytest.approx(expected[i] + (bonus if truly_ended else 0.0), rel=1e-5, abs=1e-5)
    assert ends >= 3  # random CartPole episodes end within ~20 steps


def test_sb3_ppo_trains_on_the_wrapper_in_five_lines():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from rlhf_core.rewards.wrapper import LearnedRewardVecEnv

    model, segments = _model("Pendulum-v1", with_actions=False)
    venv = LearnedRewardVecEnv(make_vec_env("Pendulum-v1", n_envs=2), LearnedReward(model, reference=segments))
    agent = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, seed=0, device="cpu").learn(256)
    assert agent.num_timesteps == 256
    assert isinstance(venv.action_space, gym.spaces.Box)


def test_a_state_only_reward_ignores_actions_of_any_width():
    """A wrapper passes every step's action; a reward of observations alone must ignore it,
    whatever the action's width (HalfCheetah's 6 values once broke the batch shape)."""
    model, segments = _model("Pendulum-v1", with_actions=False)
    assert model.spec.n_actions is None
    reward = LearnedReward(model, reference=segments)
    obs, nxt = segments.obs[:, 0], segments.obs[:, 1]
    rng = np.random.default_rng(0)
    without = reward.raw(obs, nxt)
    for width in (1, 6):
        actions = rng.uniform(-1, 1, size=(len(obs), width)).astype(np.float32)
        np.testing.assert_array_equal(reward.raw(obs, nxt, actions=actions), without)
    assert np.std(without) > 0
