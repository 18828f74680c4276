"""The DQN agent on frozen features: only the head learns, NumPy acting, batched rewards, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rlhf_core.backbones.registry import get_encoder
from rlhf_core.backbones.source import load_source_encoder
from rlhf_core.envs.registry import make_env, success_fn
from rlhf_core.policy.dqn import DQNAgent, DQNConfig, preset_for, vector_features


def test_dqn_on_frozen_features_moves_the_head_and_not_the_encoder(source_file: Path):
    enc = load_source_encoder(source_file)
    frozen_before = {k: v.clone() for k, v in enc.module.state_dict().items()}
    cfg = preset_for("MiniGrid-Empty-Random-6x6-v0").replace(total_steps=600, learning_starts=200, eval_every=0)
    agent = DQNAgent(cfg, enc.features_dim, 7, enc.encode)
    head_before = [p.detach().clone() for p in agent.q.parameters()]
    agent.learn(make_env("MiniGrid-Empty-Random-6x6-v0", render=False))
    for k, v in enc.module.state_dict().items():
        torch.testing.assert_close(v, frozen_before[k], rtol=0, atol=0)
    moved = [not torch.equal(a, b.detach()) for a, b in zip(head_before, agent.q.parameters(), strict=True)]
    assert all(moved)
    assert enc.stats.hit_rate > 0.5  # a 6x6 room has few distinct frames
    x = enc.encode(make_env("MiniGrid-Empty-Random-6x6-v0", render=False).reset(seed=3)[0][None])
    np.testing.assert_array_equal(agent.greedy(x), agent.q(torch.from_numpy(x)).argmax(dim=1).numpy())


def test_numpy_acting_matches_the_torch_network():
    agent = DQNAgent(DQNConfig(hidden=(32, 32)), 4, 3, vector_features)
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    expected = agent.q(torch.from_numpy(x)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(agent.greedy(x), expected)
    with torch.no_grad():  # the NumPy views follow in-place updates of the weights
        for p in agent.q.parameters():
            p.mul_(-1.5)
    np.testing.assert_array_equal(agent.greedy(x), agent.q(torch.from_numpy(x)).argmax(dim=1).numpy())


class CountingReward:
    """A learned-reward stand-in: reward = -|pole angle|, counting calls and batch sizes."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        self.batches.append(len(obs))
        return (1.0 - np.abs(next_obs[:, 2]) * 5).astype(np.float32)


def test_learned_rewards_are_computed_in_batches_per_training_round():
    reward = CountingReward()
    cfg = DQNConfig(total_steps=1_024, train_freq=64, gradient_steps=8, learning_starts=256, eval_every=0)
    DQNAgent(cfg, 4, 2, vector_features).learn(make_env("CartPole-v1", render=False), reward_fn=reward)
    assert reward.batches == [64] * 16  # one call per round, covering every transition once


def test_evaluation_reports_success_and_learned_return():
    env_id = "MiniGrid-Empty-Random-6x6-v0"
    enc = get_encoder("efficientnet-lite0")
    agent = DQNAgent(DQNConfig(hidden=(16,)), enc.features_dim, 7, enc.encode)
    calls: list[int] = []

    def step_reward(obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        calls.append(len(obs))
        return np.full(len(obs), 0.5, np.float32)

    ev = agent.evaluate(make_env(env_id, render=False), 2, reward_fn=step_reward, success_fn=success_fn(env_id))
    assert len(ev.returns) == 2 and ev.successes is not None and ev.learned_returns is not None
    assert calls == ev.lengths  # one batched call per episode
    assert ev.learned_returns == pytest.approx([0.5 * n for n in ev.lengths])
    assert ev.success_rate == pytest.approx(np.mean([r > 0 for r in ev.returns]))
    assert success_fn("CartPole-v1") is None


def test_checkpoint_round_trip(tmp_path: Path):
    agent = DQNAgent(DQNConfig(hidden=(16,), seed=4), 4, 2, vector_features)
    agent.save(tmp_path / "ckpt", {"env_id": "CartPole-v1"})
    loaded = DQNAgent.load(tmp_path / "ckpt", vector_features)
    x = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.greedy(x), agent.greedy(x))
    assert loaded.config == agent.config
