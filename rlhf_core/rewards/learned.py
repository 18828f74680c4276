"""A learned reward model as an environment reward: batched and normalised.

Rewards for many transitions are computed in one call of the reward model (features of
pixel observations come from the frozen encoder's cache). They are scaled by the spread of
the model's rewards on reference segments (the project's clips), so a policy sees rewards of
unit scale whatever the model's. The absorbing state after a termination gets the model's
own padding reward, normalised the same way; together with ``rlhf_core.policy.dqn``'s
absorbing-state bootstrap this keeps the shift of normalisation from making episodes look
better shorter or longer.

The shift: a transition reward is centred on its mean over the reference steps. A potential
reward (``FeatureSpec.form == "potential"``) is centred on its absorbing state instead, so
that, as with the teacher's and the environment's own reward, the state after an episode
ends earns 0 and a step earns the rise of the potential. The policy the rewards define is
the same either way; what DQN learns in 20,000 steps is not: on the default demo, the
mean-centred potential reward (a constant -0.29 per step) left a greedy policy stalled in
2 of 3 second-round runs where the absorbing-centred one reached the goal in 5.9 steps.
"""

from __future__ import annotations

import numpy as np

from rlhf_core.rewards.base import RewardModel
from rlhf_core.rewards.preferences import Segments


class LearnedReward:
    """Callable ``(obs, actions, next_obs) -> rewards`` for batches of transitions."""

    def __init__(self, model: RewardModel, reference: Segments | None = None) -> None:
        self.model = model
        self.mean, self.std = 0.0, 1.0
        self.calls = 0
        if reference is None:
            return
        rewards = model.step_rewards(reference)[reference.valid]
        if len(rewards) > 1:
            self.mean = float(rewards.mean())
            self.std = float(rewards.std()) or 1.0
        if model.spec.form == "potential":  # the state after an episode ends earns 0, as for the teacher
            end = reference.obs[:1, -1]
            self.mean = float(self.raw(end, end, np.array([False]))[0])
            self.calls = 0

    def raw(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        valid: np.ndarray | None = None,
        actions: np.ndarray | None = None,
    ) -> np.ndarray:
        """The model's reward of N transitions (obs, next_obs: (N, *obs_shape); actions: (N,) or
        (N, D) continuous, needed by a state-action model), one model call."""
        pairs = np.stack([obs, next_obs], axis=1)  # (N, 2, *obs_shape)
        ok = np.ones((len(obs), 1), bool) if valid is None else valid.reshape(-1, 1)
        spec = self.model.spec
        if actions is None and spec.n_actions is not None:
            if valid is None or valid.any():
                raise ValueError("this reward model takes the action of each step: pass actions")
            width = (spec.n_actions,) if spec.continuous else ()
            actions = np.zeros((len(obs), *width))  # padding steps only: their action is masked
        if actions is None or spec.n_actions is None:  # a state-only reward ignores any action given
            acts = None
        elif spec.continuous:
            acts = np.asarray(actions, dtype=np.float32).reshape(len(obs), 1, -1)
        else:
            acts = np.asarray(actions).astype(np.int64).reshape(-1, 1)
        self.calls += 1
        return self.model.step_rewards(Segments(pairs, ok, acts))[:, 0]

    def __call__(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Normalised rewards of N transitions."""
        return ((self.raw(obs, next_obs, actions=actions) - self.mean) / self.std).astype(np.float32)

    def absorbing_reward(self, example_obs: np.ndarray) -> float:
        """Normalised per-step reward of the state after a termination (the model's padding reward)."""
        one = example_obs[None]
        raw = float(self.raw(one, one, np.array([False]))[0])
        return (raw - self.mean) / self.std
