"""Scripted teachers that stand in for people, after B-Pref (Lee et al., 2021).

A teacher compares two segments by the per-step rewards it judges by: the environment's
true reward, or an *oracle reward* registered for a family whose true reward is too sparse
for 1.5 s clips. MiniGrid's registered oracle is progress toward the goal: the decrease in
shortest-path distance at each step, plus the true (success) reward, so a clip that
approaches the goal beats one that wanders even when neither reaches it.

Teacher parameters (B-Pref's names):

* ``beta``: rationality; P(A) = sigmoid(beta * (R_A - R_B) / scale); ``inf`` is deterministic.
  ``scale`` is the spread (std) of segment returns in the pool, so the same beta means the
  same noisiness in every environment (imitation #821: unscaled, it is near-deterministic).
* ``gamma``: myopia; step t of L counts gamma^(L-1-t) (the end of a clip weighs most).
* ``eps_mistake``: probability of flipping the answer.
* ``skip_threshold``: skip when both undiscounted returns are below this fraction of scale.
* ``equal_threshold``: answer "equal" (0.5) when returns differ by less than this fraction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from rlhf_core.envs.behaviours import minigrid_goal_distance
from rlhf_core.envs.episodes import Episode, segment_indices, segment_window
from rlhf_core.envs.registry import env_family
from rlhf_core.errors import InvalidInputError


@dataclass(frozen=True)
class TeacherConfig:
    """A scripted teacher."""

    beta: float = math.inf
    """Rationality (inf: always prefers the higher return)."""
    gamma: float = 1.0
    """Myopic discount over the steps of a segment (1: not myopic)."""
    eps_mistake: float = 0.0
    """Probability of giving the wrong answer."""
    skip_threshold: float = 0.0
    """Skip a pair when both returns are below this fraction of the return scale."""
    equal_threshold: float = 0.0
    """Answer equal when the returns differ by less than this fraction of the return scale."""

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise InvalidInputError(f"beta must be positive (inf for deterministic), got {self.beta}")
        if not 0 < self.gamma <= 1:
            raise InvalidInputError(f"gamma must lie in (0, 1], got {self.gamma}")
        if not 0 <= self.eps_mistake <= 0.5:
            raise InvalidInputError(f"eps_mistake must lie in [0, 0.5], got {self.eps_mistake}")
        if self.skip_threshold < 0 or self.equal_threshold < 0:
            raise InvalidInputError("thresholds must be non-negative")


#: The named teachers of B-Pref, with its default parameters.
TEACHERS: dict[str, TeacherConfig] = {
    "oracle": TeacherConfig(),
    "stochastic": TeacherConfig(beta=1.0),
    "myopic": TeacherConfig(gamma=0.9),
    "mistake": TeacherConfig(eps_mistake=0.1),
    "skip": TeacherConfig(skip_threshold=0.1),
    "equal": TeacherConfig(equal_threshold=0.1),
}


def teacher(name: str, **overrides: float) -> TeacherConfig:
    """The named teacher, with parameters overridden."""
    if name not in TEACHERS:
        raise InvalidInputError(f"unknown teacher {name!r}; use one of: {', '.join(TEACHERS)}")
    return replace(TEACHERS[name], **overrides)


def return_scale(segment_returns: np.ndarray) -> float:
    """Spread of segment returns used to scale beta and the thresholds (never 0)."""
    scale = float(np.std(segment_returns)) if len(segment_returns) > 1 else 0.0
    return scale if scale > 1e-8 else 1.0


def judge(
    config: TeacherConfig,
    rewards_a: np.ndarray,
    rewards_b: np.ndarray,
    *,
    scale: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Preferences for N pairs of segments from their per-step teacher rewards (N, L).

    Returns P(A preferred) per pair: 1, 0, 0.5 (equal) or NaN (skipped).
    """
    if rewards_a.shape != rewards_b.shape or rewards_a.ndim != 2:
        raise ValueError(f"rewards must both be (N, L), got {rewards_a.shape} and {rewards_b.shape}")
    length = rewards_a.shape[1]
    ret_a, ret_b = rewards_a.sum(1), rewards_b.sum(1)
    weights = config.gamma ** np.arange(length - 1, -1, -1)
    disc_a, disc_b = rewards_a @ weights, rewards_b @ weights
    diff = (disc_a - disc_b) / scale
    if math.isinf(config.beta):
        pref = (diff > 0).astype(np.float64)
        pref[diff == 0] = 0.5
    else:
        p = 1.0 / (1.0 + np.exp(-np.clip(config.beta * diff, -60, 60)))
        pref = (rng.random(len(p)) < p).astype(np.float64)
    flip = rng.random(len(pref)) < config.eps_mistake
    pref = np.where(flip & (pref != 0.5), 1.0 - pref, pref)
    if config.equal_threshold > 0:
        pref[np.abs(ret_a - ret_b) < config.equal_threshold * scale] = 0.5
    if config.skip_threshold > 0:  # (returns can be negative: a threshold of 0 skips nothing)
        pref[np.maximum(ret_a, ret_b) < config.skip_threshold * scale] = np.nan
    return pref


# --- what teachers judge by ----------------------------------------------------------------

#: (trajectory, start, length) -> per-step rewards (length,) the teacher judges by.
RewardFn = Callable[[Episode, int, int], np.ndarray]


def true_reward(traj: Episode, start: int, length: int) -> np.ndarray:
    """The environment's reward of each step of the window; 0 on padding."""
    return segment_window(traj, start, length).rewards


def minigrid_progress_reward(traj: Episode, start: int, length: int) -> np.ndarray:
    """MiniGrid oracle: decrease of shortest-path distance to the goal, plus the true reward."""
    dist = traj.extras.get("goal_distance")
    if dist is None:
        raise ValueError("this MiniGrid trajectory has no 'goal_distance'; recollect it with this version")
    idx, valid = segment_indices(traj.length, start, length)
    nxt = np.minimum(idx + 1, traj.length)
    progress = np.nan_to_num(dist[idx] - dist[nxt])
    return (np.where(valid, progress, 0.0) + true_reward(traj, start, length)).astype(np.float32)


#: Oracle rewards registered by environment family (documented in the module docstring).
ORACLE_REWARDS: dict[str, RewardFn] = {"minigrid": minigrid_progress_reward}


def teacher_reward_fn(env_id: str) -> RewardFn:
    """What a teacher judges ``env_id`` by: its registered oracle reward, else the true reward."""
    return ORACLE_REWARDS.get(env_family(env_id), true_reward)


def teacher_reward_name(env_id: str) -> str:
    """'oracle:progress' or 'true', for reports."""
    return "oracle:progress" if env_family(env_id) in ORACLE_REWARDS else "true"


# --- the teacher's reward as an environment reward ------------------------------------------


class MiniGridProgressReward(gym.Wrapper):
    """MiniGrid with the oracle's per-step reward (:func:`minigrid_progress_reward`) in place of
    the environment's: the decrease of the shortest-path distance to the goal, plus the true
    reward. A policy trained on it tells whether the teacher can teach the task at all."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._distance = 0.0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._distance = minigrid_goal_distance(self.env)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        distance = 0.0 if terminated and float(reward) > 0 else minigrid_goal_distance(self.env)
        progress = float(np.nan_to_num(self._distance - distance))
        self._distance = distance
        info = {**info, "true_reward": float(reward)}
        return obs, progress + float(reward), terminated, truncated, info


def with_teacher_reward(env_id: str, env: gym.Env) -> gym.Env:
    """``env`` rewarding what the scripted teacher of ``env_id`` judges by (its registered oracle
    reward; the true reward where none is registered, so ``env`` itself)."""
    if env_family(env_id) == "minigrid":
        return MiniGridProgressReward(env)
    return env
