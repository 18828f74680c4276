"""A learned reward as the environment's reward, for any Gymnasium-compatible RL library.

:class:`LearnedRewardWrapper` wraps one Gymnasium environment; :class:`LearnedRewardVecEnv`
wraps a stable-baselines3 ``VecEnv`` and computes the rewards of all its environments' steps
in one call of the reward model. Both

* normalise the model's rewards as the studio's DQN sees them (:class:`LearnedReward`:
  unit spread on the project's clips, centred on their mean, or on the absorbing state for a
  potential reward);
* treat a *true termination* as entering an absorbing state that keeps earning the model's
  own padding reward (people compared clips that continue past an episode's end): the last
  step of a terminated episode also earns ``gamma * r_abs / (1 - gamma)``, the discounted
  value of that tail, so that an algorithm which bootstraps 0 at a termination (PPO, SAC,
  ...) sees the same returns as the DQN's absorbing-state target. Time-limit truncations are
  left alone (the algorithm bootstraps them);
* keep the environment's own reward in ``info["true_reward"]`` (evaluation only: an RLHF
  user has no true reward to train or select by).

Five lines train stable-baselines3's PPO on a learned reward (``app.services.policies.
learned_reward`` gives a project's reward model normalised on its clips)::

    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from rlhf_core.rewards.wrapper import LearnedRewardVecEnv, load_learned_reward
    reward = load_learned_reward("data/models/project-1/0123abcd")  # a saved reward model's folder
    PPO("MlpPolicy", LearnedRewardVecEnv(make_vec_env("Pendulum-v1", n_envs=4), reward)).learn(100_000)

(imitation's ``RewardVecEnvWrapper`` does the same job; ``scripts/bench/closed_loop.py
--wrapper`` runs both side by side on one reward model.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnvWrapper

from rlhf_core.rewards.learned import LearnedReward

#: Discount of the absorbing tail a termination adds (the algorithms' usual gamma).
DEFAULT_GAMMA = 0.99


def load_learned_reward(folder: str | Path, reference: Any = None) -> LearnedReward:
    """The reward model saved in ``folder`` (any kind), normalised on ``reference`` segments when
    given (the project's clips; the studio's policies pass them); unnormalised otherwise."""
    from rlhf_core.rewards.models import load_reward_model

    return LearnedReward(load_reward_model(Path(folder)), reference=reference)


def absorbing_bonus(reward: LearnedReward, example_obs: np.ndarray, gamma: float) -> float:
    """What the last step of a truly terminated episode earns on top of its own reward: the
    discounted value ``gamma * r_abs / (1 - gamma)`` of the absorbing state's reward ``r_abs``."""
    if not 0 <= gamma < 1:
        raise ValueError(f"gamma must lie in [0, 1), got {gamma}")
    return gamma * reward.absorbing_reward(example_obs) / (1 - gamma)


class LearnedRewardWrapper(gym.Wrapper):
    """One environment whose reward is a learned reward model's (see the module docstring)."""

    def __init__(self, env: gym.Env, reward: LearnedReward, *, gamma: float = DEFAULT_GAMMA) -> None:
        super().__init__(env)
        self.reward_model = reward
        self.gamma = gamma
        self._obs: np.ndarray | None = None
        self._bonus: float | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs = np.asarray(obs)
        if self._bonus is None:
            self._bonus = absorbing_bonus(self.reward_model, self._obs, self.gamma)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        obs, true_reward, terminated, truncated, info = self.env.step(action)
        reward = float(self.reward_model(self._obs[None], np.asarray(action)[None], np.asarray(obs)[None])[0])
        if terminated:
            reward += float(self._bonus or 0.0)
        self._obs = np.asarray(obs)
        return obs, reward, terminated, truncated, {**info, "true_reward": float(true_reward)}


class LearnedRewardVecEnv(VecEnvWrapper):
    """A stable-baselines3 ``VecEnv`` whose rewards are a learned reward model's, computed for
    all environments' steps in one model call (see the module docstring).

    SB3 resets an environment whose episode ended inside ``step``: the observation it
    returns is the next episode's first one, and the episode's last one is in
    ``info["terminal_observation"]``; the reward uses that last one.
    """

    def __init__(self, venv: Any, reward: LearnedReward, *, gamma: float = DEFAULT_GAMMA) -> None:
        super().__init__(venv)
        self.reward_model = reward
        self.gamma = gamma
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None
        self._bonus: float | None = None

    def reset(self) -> Any:
        obs = self.venv.reset()
        self._obs = np.asarray(obs)
        if self._bonus is None:
            self._bonus = absorbing_bonus(self.reward_model, self._obs[0], self.gamma)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        obs, true_rewards, dones, infos = self.venv.step_wait()
        assert self._obs is not None and self._actions is not None, "reset() first"
        next_obs = np.array(obs, copy=True)
        for i in np.flatnonzero(dones):
            next_obs[i] = infos[i]["terminal_observation"]
        rewards = np.asarray(self.reward_model(self._obs, self._actions, next_obs), dtype=np.float32)
        for i, info in enumerate(infos):
            info["true_reward"] = float(true_rewards[i])
            if dones[i] and not info.get("TimeLimit.truncated", False):
                rewards[i] += float(self._bonus or 0.0)
        self._obs = np.asarray(obs)
        return obs, rewards, dones, infos
