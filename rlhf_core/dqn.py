"""DQN for discrete actions: double DQN, target network, Huber loss, replay, epsilon schedule.

The loop is written to be read top to bottom (after cleanrl's ``dqn.py``). Observations are
turned into features by a ``featurize`` function (identity for vectors; a frozen, cached
CNN encoder for pixels), and the Q-network is an MLP head on them.

Termination bias: with a learned reward of either sign, ending an episode early can look
attractive (all-negative rewards) or be avoided at any cost (all-positive). The fix used
here treats a true termination as entering an *absorbing state* that keeps earning its own
reward forever: the TD target of a terminal transition is ``r + gamma * r_abs / (1 -
gamma)`` instead of ``r``, where ``r_abs`` is the reward the model assigns to the absorbing
state (reward models here learn it from clips that continue past an episode's end; for
the true reward it is 0, which gives the usual target). Time-limit truncations bootstrap
from the next state as usual.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Observations (N, *obs_shape) -> features (N, D) float32.
Featurize = Callable[[np.ndarray], np.ndarray]
#: Batched reward of transitions: (obs, actions, next_obs) -> (N,) float32.
RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class TrainingCancelledError(RuntimeError):
    """Training was asked to stop."""


@dataclass(frozen=True)
class DQNConfig:
    """DQN hyperparameters (defaults suit CartPole-sized problems)."""

    total_steps: int = 30_000
    """Environment steps."""
    learning_rate: float = 5e-4
    """Adam learning rate."""
    buffer_size: int = 50_000
    """Replay capacity in transitions."""
    batch_size: int = 64
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount."""
    learning_starts: int = 1_000
    """Random steps before learning."""
    train_freq: int = 1
    """Environment steps per gradient step."""
    target_update_interval: int = 500
    """Environment steps between target-network copies."""
    exploration_fraction: float = 0.2
    """Share of training over which epsilon falls linearly."""
    epsilon_start: float = 1.0
    """Initial exploration rate."""
    epsilon_end: float = 0.05
    """Final exploration rate."""
    max_grad_norm: float = 10.0
    """Gradient clipping."""
    hidden: tuple[int, ...] = (128, 128)
    """Q-head hidden sizes."""
    seed: int = 0
    """Seeds the network, the environment and exploration."""

    def __post_init__(self) -> None:
        if self.total_steps < 1 or self.batch_size < 1 or self.buffer_size < self.batch_size:
            raise ValueError("total_steps, batch_size must be positive and buffer_size >= batch_size")
        if not 0 < self.gamma < 1:
            raise ValueError(f"gamma must lie in (0, 1), got {self.gamma}")
        if not 0 <= self.epsilon_end <= self.epsilon_start <= 1:
            raise ValueError("need 0 <= epsilon_end <= epsilon_start <= 1")


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """Linear interpolation from ``start`` to ``end`` over ``duration`` steps, then ``end``."""
    if duration <= 0:
        return end
    return start + (end - start) * min(1.0, t / duration)


def double_dqn_target(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    next_q_online: torch.Tensor,
    next_q_target: torch.Tensor,
    gamma: float,
    absorbing_value: float = 0.0,
) -> torch.Tensor:
    """TD target: the online net picks the next action, the target net values it.

    Terminal transitions bootstrap from the absorbing state's value instead of the next state.
    """
    next_action = next_q_online.argmax(dim=1, keepdim=True)  # (B, 1)
    next_value = next_q_target.gather(1, next_action).squeeze(1)  # (B,)
    bootstrap = torch.where(terminated.bool(), torch.full_like(next_value, absorbing_value), next_value)
    return rewards + gamma * bootstrap


class ReplayBatch(NamedTuple):
    """Sampled transitions (features, not raw observations)."""

    features: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_features: torch.Tensor
    terminated: torch.Tensor


class ReplayBuffer:
    """A ring buffer of transitions stored as features."""

    def __init__(self, capacity: int, feature_dim: int) -> None:
        self.features = np.zeros((capacity, feature_dim), np.float32)
        self.next_features = np.zeros((capacity, feature_dim), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.capacity, self.size, self.pos = capacity, 0, 0

    def add(
        self, features: np.ndarray, action: int, reward: float, next_features: np.ndarray, terminated: bool
    ) -> None:
        i = self.pos
        self.features[i], self.next_features[i] = features, next_features
        self.actions[i], self.rewards[i], self.terminated[i] = action, reward, float(terminated)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> ReplayBatch:
        idx = rng.integers(0, self.size, size=batch_size)
        return ReplayBatch(
            torch.from_numpy(self.features[idx]),
            torch.from_numpy(self.actions[idx]),
            torch.from_numpy(self.rewards[idx]),
            torch.from_numpy(self.next_features[idx]),
            torch.from_numpy(self.terminated[idx]),
        )


class QNetwork(nn.Module):
    """MLP head: features (B, D) -> Q-values (B, n_actions)."""

    def __init__(self, feature_dim: int, n_actions: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = feature_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_actions))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True)
class DQNResult:
    """What a training run did."""

    episode_returns: list[float]
    """True return of each finished training episode."""
    env_steps: int
    seconds: float

    @property
    def env_steps_per_second(self) -> float:
        return self.env_steps / self.seconds if self.seconds > 0 else 0.0


class DQNAgent:
    """Online and target Q-networks on features, and the training loop."""

    def __init__(self, config: DQNConfig, feature_dim: int, n_actions: int, featurize: Featurize) -> None:
        self.config = config
        with torch.random.fork_rng():  # seeded initialisation without touching the global generator
            torch.manual_seed(config.seed)
            self.q = QNetwork(feature_dim, n_actions, config.hidden)
        self.target = QNetwork(feature_dim, n_actions, config.hidden)
        self.target.load_state_dict(self.q.state_dict())
        self.optimizer = torch.optim.Adam([p for p in self.q.parameters() if p.requires_grad], lr=config.learning_rate)
        self.featurize = featurize
        self.n_actions = n_actions
        self.feature_dim = feature_dim

    @torch.inference_mode()
    def greedy(self, features: np.ndarray) -> np.ndarray:
        """Greedy actions for features (N, D)."""
        return self.q(torch.from_numpy(features)).argmax(dim=1).numpy()

    def update(self, batch: ReplayBatch, absorbing_value: float = 0.0) -> float:
        """One gradient step of the Huber TD loss; returns the loss."""
        with torch.no_grad():
            target = double_dqn_target(
                batch.rewards,
                batch.terminated,
                self.q(batch.next_features),
                self.target(batch.next_features),
                self.config.gamma,
                absorbing_value,
            )
        q = self.q(batch.features).gather(1, batch.actions[:, None]).squeeze(1)
        loss = F.smooth_l1_loss(q, target)
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.q.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        return float(loss.detach())

    def learn(
        self,
        env: gym.Env,
        *,
        reward_fn: RewardFn | None = None,
        absorbing_reward: float = 0.0,
        on_step: Callable[[int, int, dict[str, float]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> DQNResult:
        """Train on ``env`` for ``config.total_steps`` steps.

        ``reward_fn`` replaces the environment's reward (called once per step here; a wrapper
        that batches across environments can pass precomputed rewards). ``absorbing_reward``
        is the per-step reward of the state after a termination (see the module docstring).
        """
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        buffer = ReplayBuffer(cfg.buffer_size, self.feature_dim)
        absorbing_value = absorbing_reward / (1 - cfg.gamma)
        obs, _ = env.reset(seed=cfg.seed)
        feats = self.featurize(obs[None])[0]
        returns: list[float] = []
        episode_return = 0.0
        start = time.perf_counter()
        explore_steps = int(cfg.exploration_fraction * cfg.total_steps)
        for step in range(cfg.total_steps):
            epsilon = linear_schedule(cfg.epsilon_start, cfg.epsilon_end, explore_steps, step)
            if step < cfg.learning_starts or rng.random() < epsilon:
                action = int(rng.integers(self.n_actions))
            else:
                action = int(self.greedy(feats[None])[0])
            next_obs, true_reward, terminated, truncated, _ = env.step(action)
            episode_return += float(true_reward)
            reward = (
                float(true_reward)
                if reward_fn is None
                else float(reward_fn(obs[None], np.array([action]), next_obs[None])[0])
            )
            next_feats = self.featurize(next_obs[None])[0]
            buffer.add(feats, action, reward, next_feats, terminated)
            obs, feats = next_obs, next_feats
            if terminated or truncated:
                returns.append(episode_return)
                episode_return = 0.0
                obs, _ = env.reset()
                feats = self.featurize(obs[None])[0]
            if step >= cfg.learning_starts and step % cfg.train_freq == 0:
                loss = self.update(buffer.sample(cfg.batch_size, rng), absorbing_value)
                if step % cfg.target_update_interval == 0:
                    self.target.load_state_dict(self.q.state_dict())
                if on_step is not None and step % 500 == 0:
                    on_step(step, cfg.total_steps, {"loss": loss, "epsilon": epsilon})
            if should_stop is not None and step % 500 == 0 and should_stop():
                raise TrainingCancelledError("stopped during training")
        return DQNResult(returns, cfg.total_steps, time.perf_counter() - start)

    def evaluate(self, env: gym.Env, episodes: int, seed: int = 10_000) -> list[float]:
        """True returns of greedy episodes."""
        out = []
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k)
            total, done = 0.0, False
            while not done:
                action = int(self.greedy(self.featurize(obs[None]))[0])
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            out.append(total)
        return out


def vector_features(obs: np.ndarray) -> np.ndarray:
    """Identity featurizer for vector observations."""
    return np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
