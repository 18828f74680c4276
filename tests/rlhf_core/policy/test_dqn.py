"""DQN pieces: TD target, schedule, replay, learning, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_core.envs.registry import make_env
from rlhf_core.policy.dqn import (
    DQNAgent,
    DQNConfig,
    ReplayBatch,
    ReplayBuffer,
    linear_schedule,
    preset_for,
    td_target,
    update_mode,
    vector_features,
)


def test_double_dqn_target_uses_online_argmax_valued_by_the_target_net():
    rewards = torch.tensor([1.0, 1.0])
    terminated = torch.tensor([0.0, 1.0])
    online = torch.tensor([[0.0, 5.0], [3.0, 0.0]])  # picks action 1, then action 0
    target = torch.tensor([[10.0, 2.0], [7.0, 9.0]])
    got = td_target(rewards, terminated, target, gamma=0.5, next_q_online=online)
    assert got.tolist() == [1.0 + 0.5 * 2.0, 1.0]  # terminal: no bootstrap from the next state
    absorbing = td_target(rewards, terminated, target, gamma=0.5, absorbing_value=-4.0, next_q_online=online)
    assert absorbing.tolist() == [2.0, 1.0 + 0.5 * -4.0]  # terminal: the absorbing state's value
    vanilla = td_target(rewards, terminated, target, gamma=0.5)
    assert vanilla.tolist() == [1.0 + 0.5 * 10.0, 1.0]  # the target network's best value


def _random_batches(n: int, seed: int = 0) -> list[ReplayBatch]:
    g = torch.Generator().manual_seed(seed)
    return [
        ReplayBatch(
            torch.randn(32, 4, generator=g),
            torch.randint(0, 2, (32,), generator=g),
            torch.randn(32, generator=g),
            torch.randn(32, 4, generator=g),
            (torch.rand(32, generator=g) < 0.2).float(),
        )
        for _ in range(n)
    ]


def _stacked(batches: list[ReplayBatch]) -> ReplayBatch:
    return ReplayBatch(*(torch.stack(parts) for parts in zip(*batches, strict=True)))


@pytest.mark.slow
@pytest.mark.parametrize("double_q", [True, False])
def test_compiled_updates_match_ordinary_updates(double_q):
    cfg = DQNConfig(hidden=(16, 16), learning_rate=1e-2, max_grad_norm=0.5, double_q=double_q, seed=4)
    eager = DQNAgent(cfg, 4, 2, vector_features)
    compiled = DQNAgent(cfg.replace(compile=True), 4, 2, vector_features)
    start = [p.detach().clone() for p in eager.q.parameters()]
    batches = _random_batches(13)
    with update_mode(1):
        # a round of 12 steps: two compiled calls of 6 (the largest divisor up to STEPS_PER_CALL);
        # the absorbing value and clipping (max_grad_norm 0.5) are both exercised
        a = eager.update_round(_stacked(batches[:12]), absorbing_value=-2.0)
        b = compiled.update_round(_stacked(batches[:12]), absorbing_value=-2.0)
        assert compiled._compiled_sizes == {6}
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # every step's loss
        if not double_q:  # a single step (its own compiled graph) continues from the same state
            torch.testing.assert_close(eager.update(batches[12]), compiled.update(batches[12]), rtol=1e-5, atol=1e-6)
            assert compiled._compiled_sizes == {1, 6}
    assert compiled._compiled is not None, "the compiled path fell back to eager"
    for e, c, s in zip(eager.q.parameters(), compiled.q.parameters(), start, strict=True):
        torch.testing.assert_close(e, c, rtol=1e-4, atol=1e-5)
        assert not torch.equal(c, s)  # it did learn
    steps = 12 if double_q else 13
    for e, c in zip(eager.q.parameters(), compiled.q.parameters(), strict=True):
        state = compiled.optimizer.state[c]  # the optimizer's own Adam state was used, and counted
        assert float(state["step"]) == steps
        for moment in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(state[moment], eager.optimizer.state[e][moment], rtol=1e-4, atol=1e-7)
    # acting reads the same storage the compiled step updates
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(compiled.greedy(x), compiled.q(torch.from_numpy(x)).argmax(1).numpy())


def test_a_step_that_cannot_compile_falls_back_to_ordinary_updates(monkeypatch):
    agent = DQNAgent(DQNConfig(hidden=(8,), compile=True), 4, 2, vector_features)

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    agent._compiled = broken
    before = [p.detach().clone() for p in agent.q.parameters()]
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        agent.update(_random_batches(1)[0])
    assert agent._compiled is None
    assert any(not torch.equal(p, b) for p, b in zip(agent.q.parameters(), before, strict=True))
    # the ordinary step counted itself in the state the compiled path had set up
    assert all(float(agent.optimizer.state[p]["step"]) == 1 for p in agent.q.parameters())


def test_a_failure_after_the_graph_has_run_is_raised_not_hidden():
    agent = DQNAgent(DQNConfig(hidden=(8,), compile=True), 4, 2, vector_features)
    calls = []

    def fails_the_second_time(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("out of memory")
        return torch.zeros(1)

    agent._compiled = fails_the_second_time
    batch = _random_batches(1)[0]
    agent.update(batch)
    with pytest.raises(RuntimeError, match="out of memory"):  # steps may have been taken: no rerun
        agent.update(batch)


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


@pytest.mark.parametrize("reward", ["true", "learned"])
def test_the_agent_ends_with_the_evaluated_network_that_scored_best_on_its_training_reward(reward):
    def shaped(obs, actions, next_obs):  # a "learned" reward unlike the true one: keep the pole left
        return (-next_obs[:, 2]).astype(np.float32)

    reward_fn = shaped if reward == "learned" else None
    key = "learned_return_mean" if reward == "learned" else "true_return_mean"
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
