"""DQN for discrete actions: (double) DQN, target network, Huber loss, replay, epsilon schedule.

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

Speed: acting uses a NumPy copy-free view of the online network's weights (no autograd or
dispatcher overhead for one observation), learned rewards are computed for all
transitions of a training round in one batched call, a round's minibatches are sampled and
gathered at once and their target-network values computed in batched passes, subnormal
floats are flushed to zero during updates, Adam runs as one fused kernel, and the target
network is copied only when the online one may have changed since its last copy. With
``compile=True`` a round's gradient steps run as compiled graphs of several steps each
(with Adam written into the graph).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from rlhf_core.callbacks import ProgressFn, StopFn, TrainingCancelledError
from rlhf_core.errors import InvalidInputError
from rlhf_core.policy.compiled import CompiledUpdates
from rlhf_core.policy.qnetwork import QNetwork, ReplayBatch, numpy_q_values, td_loss, td_target
from rlhf_core.threads import ThreadChooser, configured_threads

logger = logging.getLogger(__name__)

#: Observations (N, *obs_shape) -> features (N, D) float32.
Featurize = Callable[[np.ndarray], np.ndarray]
#: Batched reward of transitions: (obs, actions, next_obs) -> (N,) float32.
RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
#: Did an episode that ended with (terminated, last reward, info) succeed?
SuccessFn = Callable[[bool, float, dict[str, Any]], bool]


@dataclass(frozen=True)
class DQNConfig:
    """DQN hyperparameters (field names and meanings follow stable-baselines3's ``DQN``)."""

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
    """Environment steps per training round."""
    gradient_steps: int = 1
    """Gradient steps per training round."""
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
    eval_every: int = 0
    """Environment steps between greedy evaluations during training (0: only at the end)."""
    eval_episodes: int = 5
    """Episodes per evaluation."""
    keep_best: bool = True
    """End with the network of the evaluation (during training, every ``eval_every`` steps, or
    the last) whose return on the *training* reward was highest (later ones win ties): for a
    learned reward its *discounted* return with the absorbing tail, the objective the agent
    maximises (:class:`Evaluation`), so the choice never looks at the true reward. DQN's
    greedy policy can collapse late in training; this keeps the best one seen. (Undiscounted,
    a learned reward's small per-step bonus summed over a time-limited episode can outweigh
    reaching the goal: on MiniGrid rooms that kept hovering networks over ones that reached
    it, docs/benchmarks.md.)"""
    torch_threads: int = 0
    """CPU threads for the updates; 0: automatic, :meth:`DQNAgent.update_threads` (one for plain
    updates, whose small products do not pay for sharing; up to two for compiled rounds)."""
    double_q: bool = True
    """Double DQN: the online network picks the next action, the target network values it.
    False: vanilla DQN, the target network's best value (stable-baselines3's ``DQN``)."""
    compile: bool = False
    """Run a round's gradient steps as compiled graphs (:mod:`rlhf_core.policy.compiled`; each
    call makes up to ``STEPS_PER_CALL`` steps of TD target, loss, gradient, clipping and Adam).
    Compiling costs seconds once per machine and process (torch caches graphs on disk), so it
    pays on runs of thousands of gradient steps (docs/benchmarks.md). Falls back to ordinary
    updates, with a warning, where compiling fails (for example without a C++ compiler)."""
    bf16: bool = False
    """Multiply the hidden-to-hidden layers in bfloat16, weights and Adam in float32
    (:func:`~rlhf_core.policy.qnetwork.mlp_forward`). Those products are most of a compiled
    run's time, and a CPU that multiplies bfloat16 in hardware (AVX512-BF16, AMX) runs a
    CartPole run 1.2-1.4x faster (side by side with float32, another benchmark on the other
    core; not measured on a CPU without). Off by default: on CartPole it learned worse
    (docs/benchmarks.md: in 2 of 10 seeds no evaluation reached 500, against 0 of 10 in
    float32). A head with one hidden layer (the MiniGrid preset's) has no hidden-to-hidden
    layer and is float32 either way."""
    seed: int = 0
    """Seeds the network, the environment and exploration."""

    def __post_init__(self) -> None:
        if self.total_steps < 1 or self.batch_size < 1 or self.buffer_size < self.batch_size:
            raise InvalidInputError("total_steps, batch_size must be positive and buffer_size >= batch_size")
        if self.train_freq < 1 or self.gradient_steps < 1 or self.target_update_interval < 1:
            raise InvalidInputError("train_freq, gradient_steps and target_update_interval must be at least 1")
        if self.total_steps <= self.learning_starts:
            raise InvalidInputError(
                f"total_steps ({self.total_steps}) must exceed learning_starts ({self.learning_starts}): "
                "before that the agent only acts at random and never learns"
            )
        if self.buffer_size < self.train_freq:
            raise InvalidInputError("buffer_size must be at least train_freq")
        if not 0 < self.gamma < 1:
            raise InvalidInputError(f"gamma must lie in (0, 1), got {self.gamma}")
        if not 0 <= self.epsilon_end <= self.epsilon_start <= 1:
            raise InvalidInputError("need 0 <= epsilon_end <= epsilon_start <= 1")
        if self.torch_threads < 0:
            raise InvalidInputError("torch_threads must be at least 1, or 0 for automatic")
        if self.eval_every < 0 or self.eval_episodes < 1:
            raise InvalidInputError("eval_every must be >= 0 and eval_episodes >= 1")

    def replace(self, **changes: Any) -> DQNConfig:
        """A copy with some fields changed (validated again)."""
        return DQNConfig(**{**asdict(self), **changes})

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (tuples as lists); :meth:`from_dict` reads them back."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DQNConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "hidden" in known:
            known["hidden"] = tuple(known["hidden"])
        return cls(**known)


#: Tuned settings per environment family. CartPole-v1 is rl-baselines3-zoo's tuned DQN with
#: the algorithm it was tuned for (vanilla DQN, as stable-baselines3 runs it) and compiled
#: updates (it makes 24,576 gradient steps in 50,000 environment steps).
PRESETS: dict[str, DQNConfig] = {
    "CartPole-v1": DQNConfig(
        total_steps=50_000,
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1_000,
        gamma=0.99,
        target_update_interval=10,
        train_freq=256,
        gradient_steps=128,
        exploration_fraction=0.16,
        epsilon_end=0.04,
        hidden=(256, 256),
        eval_every=5_000,
        double_q=False,
        compile=True,
    ),
    "MiniGrid": DQNConfig(
        total_steps=20_000,
        learning_rate=5e-4,
        batch_size=64,
        buffer_size=50_000,
        learning_starts=1_000,
        gamma=0.95,
        target_update_interval=500,
        train_freq=4,
        gradient_steps=1,
        exploration_fraction=0.3,
        epsilon_end=0.05,
        hidden=(256,),
        eval_every=2_000,
    ),
}


def preset_for(env_id: str) -> DQNConfig:
    """The tuned configuration of ``env_id`` (its family for MiniGrid), else the defaults."""
    if env_id in PRESETS:
        return PRESETS[env_id]
    if env_id.startswith("MiniGrid-"):
        return PRESETS["MiniGrid"]
    return DQNConfig(eval_every=5_000)


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """Linear interpolation from ``start`` to ``end`` over ``duration`` steps, then ``end``."""
    if duration <= 0:
        return end
    return start + (end - start) * min(1.0, t / duration)


@contextmanager
def update_mode(threads: int) -> Iterator[None]:
    """Run gradient steps with ``threads`` intra-op threads and subnormal floats flushed to zero.

    Adam's second moments and late-training gradients decay into the subnormal range, where
    x86 arithmetic is many times slower; flushing them is numerically negligible here (its
    effect on speed: docs/benchmarks.md). Both settings are restored afterwards.
    """
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    was_flushing = _flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_flushing)
        torch.set_num_threads(old_threads)


def _flushing_denormals() -> bool:
    """Does this thread flush subnormal floats to zero now? (torch has no getter.)"""
    return float(torch.tensor([1e-40]) * 1.0) == 0.0


class ReplayBuffer:
    """A ring buffer of transitions stored as features."""

    def __init__(self, capacity: int, feature_dim: int) -> None:
        self.features = np.zeros((capacity, feature_dim), np.float32)
        self.next_features = np.zeros((capacity, feature_dim), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.capacity, self.size, self.pos = capacity, 0, 0

    def add(self, features: np.ndarray, action: int, reward: float, next_features: np.ndarray, terminated: bool) -> int:
        """Store a transition; returns its slot (its reward may be filled in later)."""
        i = self.pos
        self.features[i], self.next_features[i] = features, next_features
        self.actions[i], self.rewards[i], self.terminated[i] = action, reward, float(terminated)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return i

    def sample_many(self, n_batches: int, batch_size: int, rng: np.random.Generator) -> ReplayBatch:
        """``n_batches`` minibatches gathered at once: tensors of shape (n_batches, batch_size, ...)."""
        idx = rng.integers(0, self.size, size=(n_batches, batch_size))
        return ReplayBatch(
            torch.from_numpy(self.features[idx]),
            torch.from_numpy(self.actions[idx]),
            torch.from_numpy(self.rewards[idx]),
            torch.from_numpy(self.next_features[idx]),
            torch.from_numpy(self.terminated[idx]),
        )

    def sample(self, batch_size: int, rng: np.random.Generator) -> ReplayBatch:
        """One minibatch of ``batch_size`` transitions."""
        many = self.sample_many(1, batch_size, rng)
        return ReplayBatch(*(t[0] for t in many))


@dataclass(frozen=True)
class Evaluation:
    """Greedy episodes: true returns, successes and, when a reward model is given, learned returns.

    A learned return sums the learned reward over the episode's steps; the absorbing tail
    after a termination (which the TD target does count) is left out, so it reads in the
    same units as the clips people labeled. A *discounted* learned return (given a discount)
    is what the agent maximises: sum_t gamma^t r_t from the episode's start, plus, after a
    termination at step T, the absorbing state's gamma^T r_abs / (1 - gamma).
    """

    returns: list[float]
    lengths: list[int]
    successes: list[bool] | None = None
    learned_returns: list[float] | None = None
    discounted_learned_returns: list[float] | None = None

    @property
    def true_return_mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def success_rate(self) -> float | None:
        return None if self.successes is None else float(np.mean(self.successes))

    @property
    def learned_return_mean(self) -> float | None:
        return None if self.learned_returns is None else float(np.mean(self.learned_returns))

    @property
    def discounted_learned_return_mean(self) -> float | None:
        values = self.discounted_learned_returns
        return None if values is None else float(np.mean(values))

    def summary(self) -> dict[str, float | None]:
        return {
            "true_return_mean": self.true_return_mean,
            "success_rate": self.success_rate,
            "learned_return_mean": self.learned_return_mean,
            "discounted_learned_return_mean": self.discounted_learned_return_mean,
            "episode_length_mean": float(np.mean(self.lengths)),
        }


@dataclass(frozen=True)
class DQNResult:
    """What a training run did."""

    episode_returns: list[float]
    """True return of each finished training episode."""
    env_steps: int
    seconds: float
    curve: list[dict[str, float | None]] = field(default_factory=list)
    """Greedy evaluations during training: ``step`` plus :meth:`Evaluation.summary`."""
    gradient_steps: int = 0
    chosen_step: int = 0
    """The evaluation whose network the agent ended with (``DQNConfig.keep_best``)."""
    chosen_score: float | None = None
    """That evaluation's score on the reward it was chosen by (None: no choice was made)."""
    chosen_by: str | None = None
    """The evaluation summary's key that score is (e.g. "discounted_learned_return_mean")."""

    @property
    def env_steps_per_second(self) -> float:
        return self.env_steps / self.seconds if self.seconds > 0 else 0.0


class DQNAgent:
    """Online and target Q-networks on features, and the training loop."""

    def __init__(self, config: DQNConfig, feature_dim: int, n_actions: int, featurize: Featurize) -> None:
        self.config = config
        with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the global generator
            torch.manual_seed(config.seed)
            self.q = QNetwork(feature_dim, n_actions, config.hidden, torch.bfloat16 if config.bf16 else None)
        self.target = copy.deepcopy(self.q)  # no draw from the global generator
        self.target.requires_grad_(False)
        params = [p for p in self.q.parameters() if p.requires_grad]
        try:
            self.optimizer = torch.optim.Adam(params, lr=config.learning_rate, fused=True)
        except (RuntimeError, ValueError):  # a build without the fused CPU kernel
            self.optimizer = torch.optim.Adam(params, lr=config.learning_rate)
        self._layers = self.q.numpy_views()
        self.featurize = featurize
        self.n_actions = n_actions
        self.feature_dim = feature_dim
        self.absorbing_reward = 0.0
        """Per-step reward of the state after a termination in the last training run (for evaluations)."""
        self.last_threads: ThreadChooser | None = None
        """The thread counts of the last :meth:`learn`'s update rounds."""
        self._compiled: CompiledUpdates | None = None
        if config.compile:
            self._compiled = CompiledUpdates(
                self.q,
                self.target,
                self.optimizer,
                gamma=config.gamma,
                max_grad_norm=config.max_grad_norm,
                double_q=config.double_q,
            )

    def greedy(self, features: np.ndarray) -> np.ndarray:
        """Greedy actions for features (N, D)."""
        return numpy_q_values(self._layers, features).argmax(axis=1)

    def act(self, obs: np.ndarray) -> int:
        """The greedy action for one observation (the interface SB3Agent shares)."""
        return int(self.greedy(self.featurize(obs[None]))[0])

    def target_values(self, next_features: torch.Tensor) -> torch.Tensor:
        """The target network's Q-values of next states, any leading shape (..., D) -> (..., A).

        A training round's minibatches all see the same target network (it is copied between
        rounds, on environment steps), so the round computes them in one batched pass.
        """
        with torch.no_grad():
            return self.target(next_features)

    def update_threads(self) -> int:
        """The threads the updates run with by preference: ``config.torch_threads``, or where that
        is 0 the count ``RLHF_THREADS`` fixes, or where neither does, two (at most torch's own
        count) while the updates run compiled, whose 64x256 by 256x256 products ran 1.3-1.8x
        faster on two idle cores (docs/benchmarks.md; more do not pay there), and one for plain
        updates (also after a compile failed). Where no count is fixed and two are preferred,
        :meth:`learn` times the rounds and runs them on one where that is faster (another
        process on the cores: :mod:`rlhf_core.threads`)."""
        fixed = self._fixed_threads()
        if fixed:
            return fixed
        return min(2, torch.get_num_threads()) if self._compiled is not None else 1

    def thread_chooser(self) -> ThreadChooser:
        """What picks each training round's thread count: the preferred count (:meth:`update_threads`),
        and one where no count is fixed and two are preferred."""
        preferred = self.update_threads()
        return ThreadChooser((preferred, 1) if not self._fixed_threads() and preferred > 1 else (preferred,))

    def _fixed_threads(self) -> int | None:
        """The count ``config.torch_threads`` or else ``RLHF_THREADS`` fixes, or None."""
        return self.config.torch_threads or configured_threads()

    def update(
        self, batch: ReplayBatch, absorbing_value: float = 0.0, next_q_target: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One gradient step of the Huber TD loss; returns the loss (a 0-d tensor).

        ``next_q_target``: the target network's values of ``batch.next_features`` when
        already computed (see :meth:`target_values`); the compiled step computes its own.
        """
        if self._compiled is not None:
            losses = self._compiled_round(ReplayBatch(*(t[None] for t in batch)), absorbing_value)
            if losses is not None:
                return losses[0]
        if next_q_target is None:
            next_q_target = self.target_values(batch.next_features)
        with torch.no_grad():
            online_next = self.q(batch.next_features) if self.config.double_q else None
            target = td_target(
                batch.rewards, batch.terminated, next_q_target, self.config.gamma, absorbing_value, online_next
            )
        loss = td_loss(self.q.linear_params(), batch.features, batch.actions, target, self.q.hidden_dtype)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.q.parameters(), self.config.max_grad_norm, foreach=True)
        self.optimizer.step()
        return loss.detach()

    def update_round(self, batches: ReplayBatch, absorbing_value: float = 0.0) -> torch.Tensor:
        """A training round's gradient steps, one per stacked minibatch (G, B, ...), in order;
        returns their losses (G,).

        The target network is fixed during a round (it is copied on environment steps), so
        its values of the round's minibatches come from batched passes: one for the whole
        round in ordinary updates, one per call in compiled ones (up to
        ``rlhf_core.policy.compiled.STEPS_PER_CALL`` steps per call).
        """
        if self._compiled is not None:
            losses = self._compiled_round(batches, absorbing_value)
            if losses is not None:
                return losses
        targets = self.target_values(batches.next_features)
        return torch.stack(
            [
                self.update(ReplayBatch(*(t[g] for t in batches)), absorbing_value, targets[g])
                for g in range(len(batches.features))
            ]
        )

    def _compiled_round(self, batches: ReplayBatch, absorbing_value: float) -> torch.Tensor | None:
        """The compiled steps' losses, or None (and plain updates from now on) where they cannot compile."""
        assert self._compiled is not None
        losses = self._compiled(batches, absorbing_value)
        if losses is None:
            self._compiled = None
        return losses

    def learn(
        self,
        env: gym.Env,
        *,
        reward_fn: RewardFn | None = None,
        absorbing_reward: float = 0.0,
        on_step: ProgressFn | None = None,
        should_stop: StopFn | None = None,
        eval_env: gym.Env | None = None,
        success_fn: SuccessFn | None = None,
        select_by: str | None = "auto",
        start_is_candidate: bool = False,
    ) -> DQNResult:
        """Train on ``env`` for ``config.total_steps`` steps.

        ``reward_fn`` replaces the environment's reward; it is called once per training round
        on all of the round's new transitions. ``absorbing_reward`` is the per-step reward of
        the state after a termination (see the module docstring). With ``eval_env``, greedy
        evaluations every ``config.eval_every`` steps fill the result's ``curve``, and with
        ``config.keep_best`` the agent ends with the evaluated network that scored best on the
        reward it trained on (``select_by``: "learned" with a ``reward_fn``, "true" when the
        environment's reward is the training reward, None: the last network).
        ``start_is_candidate``: also evaluate the network the agent starts with (step 0: one
        loaded with :meth:`warm_start`) and keep it where nothing trained here scores better.
        """
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        buffer = ReplayBuffer(cfg.buffer_size, self.feature_dim)
        absorbing_value = absorbing_reward / (1 - cfg.gamma)
        pending: list[tuple[int, np.ndarray, int, np.ndarray]] = []  # transitions awaiting a learned reward
        obs, _ = env.reset(seed=cfg.seed)
        env.action_space.seed(cfg.seed)
        feats = self.featurize(obs[None])[0]
        returns: list[float] = []
        curve: list[dict[str, float | None]] = []
        episode_return, loss, n_updates = 0.0, float("nan"), 0
        target_stale = True  # may the online network differ from the target? (at first: if trained before)
        explore_steps = int(cfg.exploration_fraction * cfg.total_steps)
        eval_seconds = 0.0
        self.absorbing_reward = absorbing_reward
        if select_by == "auto":
            select_by = "learned" if reward_fn is not None else "true"
        key = {"learned": "discounted_learned_return_mean", "true": "true_return_mean", None: None}[select_by]
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        chooser = self.thread_chooser()
        self.last_threads = chooser

        def consider(point: dict[str, Any]) -> None:
            nonlocal best
            if not cfg.keep_best or key is None or point.get(key) is None:
                return
            if best is None or point[key] >= best[0]:
                best = (float(point[key]), int(point["step"]), copy.deepcopy(self.q.state_dict()))

        def evaluate_at(step: int) -> None:  # a point of the curve, and a candidate for the kept network
            nonlocal eval_seconds
            assert eval_env is not None
            eval_start = time.perf_counter()
            evaluation = self.evaluate(eval_env, cfg.eval_episodes, reward_fn=reward_fn, success_fn=success_fn)
            curve.append({"step": step, **evaluation.summary()})
            consider(curve[-1])
            eval_seconds += time.perf_counter() - eval_start

        start = time.perf_counter()
        if eval_env is not None and start_is_candidate:
            evaluate_at(0)
        for step in range(1, cfg.total_steps + 1):
            epsilon = linear_schedule(cfg.epsilon_start, cfg.epsilon_end, explore_steps, step)
            if step <= cfg.learning_starts or rng.random() < epsilon:
                action = int(rng.integers(self.n_actions))
            else:
                action = int(self.greedy(feats[None])[0])
            next_obs, true_reward, terminated, truncated, _ = env.step(action)
            episode_return += float(true_reward)
            next_feats = self.featurize(next_obs[None])[0]
            slot = buffer.add(feats, action, float(true_reward), next_feats, terminated)
            if reward_fn is not None:
                pending.append((slot, obs, action, next_obs))
            obs, feats = next_obs, next_feats
            if terminated or truncated:
                returns.append(episode_return)
                episode_return = 0.0
                obs, _ = env.reset()
                feats = self.featurize(obs[None])[0]
            if step % cfg.train_freq == 0:
                if pending:
                    _fill_rewards(buffer, pending, reward_fn)
                if step > cfg.learning_starts:
                    batches = buffer.sample_many(cfg.gradient_steps, cfg.batch_size, rng)
                    # a compile that failed leaves plain updates, which run on the preferred count
                    threads = chooser.threads() if self._compiled is not None else self.update_threads()
                    wall, cpu = time.perf_counter(), time.process_time()
                    with update_mode(threads):  # only the updates: encoders keep their threads
                        loss = float(self.update_round(batches, absorbing_value)[-1])
                    chooser.record(threads, time.perf_counter() - wall, time.process_time() - cpu)
                    n_updates += cfg.gradient_steps
                    target_stale = True
            # copying weights that have not changed since the last copy changes nothing: skipped
            if target_stale and step % cfg.target_update_interval == 0:
                self.target.load_state_dict(self.q.state_dict())
                target_stale = False
            if eval_env is not None and cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.total_steps:
                evaluate_at(step)
            if step % 500 == 0 or step == cfg.total_steps:
                if on_step is not None:
                    recent = float(np.mean(returns[-10:])) if returns else float("nan")
                    on_step(step, cfg.total_steps, {"loss": loss, "epsilon": epsilon, "episode_return": recent})
                if should_stop is not None and should_stop():
                    raise TrainingCancelledError("stopped during training")
        seconds = time.perf_counter() - start - eval_seconds  # training only: evaluations are not steps
        logger.info(
            "DQN: %d steps in %.1f s (%.0f steps/s), %d gradient steps, %d episodes; updates on %s",
            cfg.total_steps,
            seconds,
            cfg.total_steps / max(seconds, 1e-9),
            n_updates,
            len(returns),
            chooser.summary(),
        )
        chosen = cfg.total_steps
        if eval_env is not None:
            evaluate_at(cfg.total_steps)
            if best is not None and best[1] != cfg.total_steps:
                self.q.load_state_dict(best[2])
                self.target.load_state_dict(best[2])
                chosen = best[1]
                logger.info("DQN: keeping the network of step %d (best %s return %.3f)", chosen, select_by, best[0])
        score = None if best is None else best[0]
        return DQNResult(returns, cfg.total_steps, seconds, curve, n_updates, chosen, score, key)

    def evaluate(
        self,
        env: gym.Env,
        episodes: int,
        seed: int = 10_000,
        *,
        reward_fn: RewardFn | None = None,
        success_fn: SuccessFn | None = None,
    ) -> Evaluation:
        """Greedy episodes on the true reward (and the learned one, in one batched call per episode;
        its discounted return with the agent's discount and the absorbing reward it last trained with)."""
        return evaluate_policy(
            self.act,
            env,
            episodes,
            seed,
            reward_fn=reward_fn,
            success_fn=success_fn,
            gamma=self.config.gamma,
            absorbing_reward=self.absorbing_reward,
        )

    # --- checkpoints ---------------------------------------------------------------------

    def warm_start(self, state: dict[str, torch.Tensor]) -> None:
        """Start from another agent's online network (both networks; the optimizer's moments stay fresh),
        as rl-teacher keeps training one policy while its reward model changes."""
        self.q.load_state_dict(state)
        self.target.load_state_dict(state)

    def save(self, folder: Path, extra: dict[str, Any] | None = None) -> None:
        """Online network weights (safetensors) and the configuration (JSON) into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.q.state_dict().items()}, str(folder / "q.safetensors"))
        meta = {
            "config": self.config.to_dict(),
            "feature_dim": self.feature_dim,
            "n_actions": self.n_actions,
            **(extra or {}),
        }
        (folder / "policy.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path, featurize: Featurize) -> DQNAgent:
        """An agent with the saved online network (also copied to the target network)."""
        meta = json.loads((folder / "policy.json").read_text())
        agent = cls(DQNConfig.from_dict(meta["config"]), int(meta["feature_dim"]), int(meta["n_actions"]), featurize)
        agent.warm_start(cls.saved_network(folder))
        return agent

    @staticmethod
    def saved_network(folder: Path) -> dict[str, torch.Tensor]:
        """The online network's weights saved in ``folder`` (no agent built)."""
        return load_file(str(folder / "q.safetensors"))


def evaluate_policy(
    act: Callable[[np.ndarray], Any],
    env: gym.Env,
    episodes: int,
    seed: int = 10_000,
    *,
    reward_fn: RewardFn | None = None,
    success_fn: SuccessFn | None = None,
    gamma: float | None = None,
    absorbing_reward: float = 0.0,
) -> Evaluation:
    """Episodes of ``act`` (an observation -> its action) on the true reward, from seeds
    ``seed, seed + 1, ...``, and on the learned one (one batched call per episode); with
    ``gamma``, also the learned reward's discounted return (:class:`Evaluation`), the state
    after a termination earning ``absorbing_reward`` per step."""
    returns, lengths, successes, learned, discounted = [], [], [], [], []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total, done, steps = 0.0, False, 0
        observations, actions = [obs], []
        while not done:
            action = act(obs)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            steps += 1
            done = terminated or truncated
            if reward_fn is not None:
                observations.append(obs)
                actions.append(action)
        returns.append(total)
        lengths.append(steps)
        if success_fn is not None:
            successes.append(bool(success_fn(bool(terminated), float(reward), info)))
        if reward_fn is not None:
            stacked = np.stack(observations)
            rewards = np.asarray(reward_fn(stacked[:-1], np.asarray(actions), stacked[1:]), np.float64)
            learned.append(float(rewards.sum()))
            if gamma is not None:
                tail = gamma**steps * absorbing_reward / (1 - gamma) if terminated else 0.0
                discounted.append(float(rewards @ gamma ** np.arange(steps)) + tail)
    return Evaluation(
        returns,
        lengths,
        successes if success_fn is not None else None,
        learned if reward_fn is not None else None,
        discounted if reward_fn is not None and gamma is not None else None,
    )


def _fill_rewards(
    buffer: ReplayBuffer, pending: list[tuple[int, np.ndarray, int, np.ndarray]], reward_fn: RewardFn | None
) -> None:
    """Replace the stored rewards of pending transitions by one batched call of ``reward_fn``."""
    assert reward_fn is not None
    slots = np.array([p[0] for p in pending])
    obs = np.stack([p[1] for p in pending])
    actions = np.array([p[2] for p in pending])
    next_obs = np.stack([p[3] for p in pending])
    buffer.rewards[slots] = reward_fn(obs, actions, next_obs)
    pending.clear()


def vector_features(obs: np.ndarray) -> np.ndarray:
    """Identity featurizer for vector observations."""
    return np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
