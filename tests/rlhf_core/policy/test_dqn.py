"""DQN pieces: TD target, schedule, replay, learning, seeds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlhf_core.envs.registry import make_env
from rlhf_core.policy.dqn import (
    DQNAgent,
    DQNConfig,
    ReplayBuffer,
    evaluate_policy,
    linear_schedule,
    preset_for,
    update_mode,
    vector_features,
)


def test_update_mode_flushes_subnormals_and_restores_both_settings():
    def flushing() -> bool:
        return float(torch.tensor([1e-40]) * 1.0) == 0.0

    threads = torch.get_num_threads()
    assert not flushing()
    with update_mode(1):
        assert torch.get_num_threads() == 1 and flushing()
    assert torch.get_num_threads() == threads and not flushing()
    torch.set_flush_denormal(True)  # a caller that flushes already keeps flushing
    try:
        with update_mode(1):
            pass
        assert flushing()
    finally:
        torch.set_flush_denormal(False)


def test_linear_schedule():
    assert [linear_schedule(1.0, 0.1, 10, t) for t in (0, 5, 10, 50)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    assert linear_schedule(1.0, 0.1, 0, 3) == 0.1


def test_replay_buffer_wraps_around_and_samples_what_was_stored():
    buf = ReplayBuffer(capacity=3, feature_dim=1)
    for i in range(5):
        buf.add(np.array([i], np.float32), i % 2, float(i), np.array([i + 1], np.float32), i == 4)
    assert buf.size == 3 and sorted(buf.features[:, 0].tolist()) == [2.0, 3.0, 4.0]
    batch = buf.sample(50, np.random.default_rng(0))
    assert set(batch.features[:, 0].tolist()) <= {2.0, 3.0, 4.0}
    np.testing.assert_array_equal(batch.next_features[:, 0], batch.features[:, 0] + 1)
    np.testing.assert_array_equal(batch.terminated, (batch.features[:, 0] == 4).float())


def test_config_is_validated():
    with pytest.raises(ValueError, match="gamma must lie in"):
        DQNConfig(gamma=1.0)
    with pytest.raises(ValueError, match="epsilon"):
        DQNConfig(epsilon_start=0.1, epsilon_end=0.5)
    with pytest.raises(ValueError, match="torch_threads"):
        DQNConfig(torch_threads=-1)


def test_compiled_updates_share_two_threads_plain_ones_run_on_one(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)

    def agent(**settings) -> DQNAgent:
        return DQNAgent(DQNConfig(hidden=(8,), **settings), 4, 2, vector_features)

    compiled = agent(compile=True)
    assert compiled.update_threads() == 2  # 64-row products gain nothing from more
    assert agent().update_threads() == 1
    assert agent(compile=True, torch_threads=3).update_threads() == 3  # a chosen count is kept
    compiled._compiled = None  # where compiling failed, the plain updates run on one
    assert compiled.update_threads() == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # never more than torch's own count
    assert agent(compile=True).update_threads() == 1


@pytest.mark.slow
def test_dqn_improves_the_return_on_cartpole_in_a_short_run():
    env = make_env("CartPole-v1", render=False)
    agent = DQNAgent(DQNConfig(total_steps=8_000, seed=1), 4, 2, vector_features)
    before = agent.evaluate(make_env("CartPole-v1", render=False), 5).true_return_mean
    result = agent.learn(env)
    after = agent.evaluate(make_env("CartPole-v1", render=False), 10).true_return_mean
    assert result.env_steps == 8_000 and result.env_steps_per_second > 0
    assert after > 100 and after > 3 * before


@pytest.mark.parametrize(("interval", "copied_last_round", "n_copies"), [(25, True, 11), (250, False, 2)])
def test_the_target_network_copies_the_online_one_on_schedule(interval, copied_last_round, n_copies):
    """Rounds at every 50th step from 150 to 600. Copies every 25 steps: 24 are due, but only
    the first (the agent may have been trained before) and the 10 that follow a round can
    change anything, and the last round (step 600) is copied at once. Copies every 250 steps:
    the last one is at step 500, before the rounds at 550 and 600."""
    cfg = DQNConfig(
        total_steps=600, learning_starts=100, train_freq=50, gradient_steps=2, target_update_interval=interval,
        hidden=(8,), learning_rate=1e-2,
    )  # fmt: skip
    agent = DQNAgent(cfg, 4, 2, vector_features)
    start = [p.detach().clone() for p in agent.target.parameters()]
    copies = []
    load = agent.target.load_state_dict
    agent.target.load_state_dict = lambda state: copies.append(1) or load(state)  # type: ignore[method-assign]
    agent.learn(make_env("CartPole-v1", render=False))
    same = all(torch.equal(t, q) for t, q in zip(agent.target.parameters(), agent.q.parameters(), strict=True))
    assert same == copied_last_round
    assert not any(torch.equal(t, s) for t, s in zip(agent.target.parameters(), start, strict=True))
    assert len(copies) == n_copies


def test_same_seed_gives_the_same_network():
    def train() -> list[torch.Tensor]:
        agent = DQNAgent(DQNConfig(total_steps=400, learning_starts=100, seed=3), 4, 2, vector_features)
        agent.learn(make_env("CartPole-v1", render=False))
        return [p.detach().clone() for p in agent.q.parameters()]

    for a, b in zip(train(), train(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_config_from_dict_ignores_unknown_keys_and_restores_tuples():
    cfg = DQNConfig.from_dict({"hidden": [8, 8], "gamma": 0.9, "not_a_field": 1})
    assert cfg.hidden == (8, 8) and cfg.gamma == 0.9
    assert cfg.replace(train_freq=4).train_freq == 4
    with pytest.raises(ValueError, match="train_freq"):
        cfg.replace(train_freq=0)


def test_presets_follow_the_environment_family():
    cartpole = preset_for("CartPole-v1")  # rl-baselines3-zoo's tuned CartPole DQN, and its algorithm
    assert cartpole.train_freq == 256 and not cartpole.double_q and cartpole.compile
    assert preset_for("MiniGrid-Empty-8x8-v0").double_q
    assert preset_for("MiniGrid-Empty-8x8-v0") == preset_for("MiniGrid-Empty-Random-6x6-v0")
    assert preset_for("Acrobot-v1").eval_every > 0


@pytest.mark.slow  # two short DQN runs
@pytest.mark.parametrize("reward", ["true", "learned"])
def test_the_agent_ends_with_the_evaluated_network_that_scored_best_on_its_training_reward(reward):
    def shaped(obs, actions, next_obs):  # a "learned" reward unlike the true one: keep the pole left
        return (-next_obs[:, 2]).astype(np.float32)

    reward_fn = shaped if reward == "learned" else None
    key = "discounted_learned_return_mean" if reward == "learned" else "true_return_mean"
    cfg = DQNConfig(total_steps=3_000, learning_starts=500, eval_every=500, eval_episodes=2, seed=2)
    agent = DQNAgent(cfg, 4, 2, vector_features)
    eval_env = make_env("CartPole-v1", render=False)
    result = agent.learn(make_env("CartPole-v1", render=False), reward_fn=reward_fn, eval_env=eval_env)
    scores = [point[key] for point in result.curve]
    best = max(scores)
    assert result.chosen_step == result.curve[len(scores) - 1 - scores[::-1].index(best)]["step"]  # latest best
    again = agent.evaluate(eval_env, 2, reward_fn=reward_fn).summary()[key]
    assert again == pytest.approx(best)  # the network kept is the one that scored it
    last = DQNAgent(cfg.replace(keep_best=False), 4, 2, vector_features)
    assert last.learn(make_env("CartPole-v1", render=False), eval_env=eval_env).chosen_step == cfg.total_steps


def test_evaluations_discount_the_learned_return_and_add_the_absorbing_tail_after_a_termination():
    def ones(obs, actions, next_obs):
        return np.ones(len(obs), np.float32)

    gamma = 0.9
    falls = make_env("CartPole-v1", render=False)  # always pushing left: the pole falls within a few steps
    ev = evaluate_policy(lambda obs: 0, falls, 3, reward_fn=ones, gamma=gamma, absorbing_reward=0.5)
    assert ev.learned_returns == [float(n) for n in ev.lengths] and max(ev.lengths) < 20
    expected = [(1 - gamma**n) / (1 - gamma) + gamma**n * 0.5 / (1 - gamma) for n in ev.lengths]
    assert ev.discounted_learned_returns == pytest.approx(expected)
    assert ev.summary()["discounted_learned_return_mean"] == pytest.approx(np.mean(expected))
    # a time limit is no termination: nothing after it is counted
    cut = gym.make("CartPole-v1", max_episode_steps=4)
    ev = evaluate_policy(lambda obs: int(obs[2] > 0), cut, 2, reward_fn=ones, gamma=gamma, absorbing_reward=0.5)
    assert ev.lengths == [4, 4] and ev.discounted_learned_returns == pytest.approx([(1 - gamma**4) / (1 - gamma)] * 2)
    # without a discount, or without a learned reward, there is no discounted return
    assert evaluate_policy(lambda obs: 0, falls, 1, reward_fn=ones).summary()["discounted_learned_return_mean"] is None
    assert evaluate_policy(lambda obs: 0, falls, 1, gamma=gamma).discounted_learned_returns is None


@pytest.mark.slow  # two short DQN runs
def test_a_warm_started_agent_keeps_its_start_where_nothing_trained_since_scores_higher():
    cfg = DQNConfig(total_steps=3_000, learning_starts=500, eval_every=1_000, eval_episodes=3, seed=2)
    eval_env = make_env("CartPole-v1", render=False)
    first = DQNAgent(cfg, 4, 2, vector_features)
    first.learn(make_env("CartPole-v1", render=False), eval_env=eval_env)
    start = {k: v.clone() for k, v in first.q.state_dict().items()}
    start_return = first.evaluate(eval_env, 3).true_return_mean
    assert start_return > 100  # it balances the pole for a while
    # a run that can only do worse than its start: a learning rate that wrecks the network
    wrecking = DQNAgent(cfg.replace(learning_rate=5.0, seed=3), 4, 2, vector_features)
    wrecking.warm_start(start)
    result = wrecking.learn(make_env("CartPole-v1", render=False), eval_env=eval_env, start_is_candidate=True)
    assert result.curve[0]["step"] == 0 and result.curve[0]["true_return_mean"] == pytest.approx(start_return)
    assert all(p["true_return_mean"] < start_return for p in result.curve[1:])
    assert result.chosen_step == 0
    for name, value in wrecking.q.state_dict().items():
        torch.testing.assert_close(value, start[name], rtol=0, atol=0)
    # the start is trained on, not only kept: with an ordinary learning rate the network moves from it
    moving = DQNAgent(cfg.replace(seed=3), 4, 2, vector_features)
    moving.warm_start(start)
    moved = moving.learn(make_env("CartPole-v1", render=False), eval_env=eval_env)
    assert [p["step"] for p in moved.curve] == [1_000, 2_000, 3_000]  # no step-0 point unless asked
    assert any(not torch.equal(moving.q.state_dict()[k], start[k]) for k in start)
