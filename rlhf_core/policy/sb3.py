"""stable-baselines3's SAC and PPO (or any of its algorithms) on a learned reward.

The studio's own DQN (:mod:`rlhf_core.policy.dqn`) stays the default for discrete actions;
continuous actions (``Box``) need an actor-critic method, and SAC is the one Christiano et
al.'s continuous-control results are usually reproduced with today. The learned reward
reaches SB3 through :class:`rlhf_core.rewards.wrapper.LearnedRewardVecEnv` (batched over the
vectorised environments, normalised, absorbing state at a true termination), so an SB3
agent trains on exactly what a DQN would.

Training reports progress and can be cancelled (a callback), evaluates the greedy
(deterministic) policy on the true reward every ``eval_every`` steps for the curve people
look at, and never *chooses* by the true reward: the agent kept is the last one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlhf_core.callbacks import ProgressFn, StopFn, TrainingCancelledError
from rlhf_core.devices import resolve_device
from rlhf_core.errors import InvalidInputError
from rlhf_core.policy.dqn import DQNResult, Evaluation, RewardFn, SuccessFn, evaluate_policy
from rlhf_core.threads import AdaptiveThreads, ThreadChooser

logger = logging.getLogger(__name__)

#: Algorithms of stable-baselines3 the studio trains (``--algo``), with the action spaces they take.
SB3_ALGOS: dict[str, tuple[str, ...]] = {
    "sac": ("box",),
    "ppo": ("box", "discrete"),
    "td3": ("box",),
    "a2c": ("box", "discrete"),
}
MODEL_FILE = "model.zip"
META_FILE = "policy.json"


@dataclass(frozen=True)
class SB3Config:
    """An SB3 run: the algorithm, its length and its keyword arguments (SB3's own names)."""

    algo: str = "sac"
    total_steps: int = 20_000
    seed: int = 0
    n_envs: int = 1
    """Environments stepped together (PPO collects from several; SAC learns from one)."""
    gamma: float = 0.99
    eval_every: int = 5_000
    eval_episodes: int = 5
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Passed to the algorithm's constructor (learning_rate, buffer_size, n_steps, ...)."""

    def __post_init__(self) -> None:
        if self.algo not in SB3_ALGOS:
            raise InvalidInputError(f"unknown algorithm {self.algo!r}; use one of: dqn, {', '.join(SB3_ALGOS)}")
        if self.total_steps < 1 or self.n_envs < 1 or self.eval_every < 1:
            raise InvalidInputError("total_steps, n_envs and eval_every must be at least 1")

    def replace(self, **changes: Any) -> SB3Config:
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:  # anything else is an argument of the algorithm
            kwargs = {**self.kwargs, **{k: changes.pop(k) for k in sorted(unknown)}}
            changes["kwargs"] = kwargs
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SB3Config:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def sb3_preset(env_id: str, algo: str) -> SB3Config:
    """Settings per environment family and algorithm (from rl-baselines3-zoo's tuned ones, made
    shorter where this machine's two CPU cores need it)."""
    from rlhf_core.envs.registry import env_family

    family = env_family(env_id)
    if algo == "sac":
        if family == "pendulum":  # zoo: 20k steps, lr 1e-3
            return SB3Config("sac", 20_000, kwargs={"learning_rate": 1e-3})
        if family == "mujoco":  # zoo: 1M steps, learning_starts 10k; here 100k by default
            return SB3Config("sac", 100_000, eval_every=10_000, kwargs={"learning_starts": 10_000})
        return SB3Config("sac", 50_000)
    if algo == "td3":
        return SB3Config("td3", 20_000 if family == "pendulum" else 100_000, eval_every=10_000)
    if algo == "ppo":
        if family == "pendulum":  # zoo: 4 envs, n_steps 1024, gae 0.95, gamma 0.9, lr 1e-3, sde
            return SB3Config(
                "ppo", 100_000, n_envs=4, gamma=0.9, eval_every=10_000,
                kwargs={"n_steps": 1024, "gae_lambda": 0.95, "ent_coef": 0.0, "learning_rate": 1e-3,
                        "clip_range": 0.2, "use_sde": True, "sde_sample_freq": 4},
            )  # fmt: skip
        return SB3Config("ppo", 100_000, n_envs=4, eval_every=10_000)
    return SB3Config(algo, 100_000, n_envs=4 if algo == "a2c" else 1, eval_every=10_000)


def sb3_device(algo: str) -> Any:
    """Where an SB3 model runs: ``RLHF_DEVICE`` when set; else the GPU for the off-policy
    algorithms (SAC, TD3: large batches of replayed transitions) and the CPU for PPO and A2C
    with MLP policies, as stable-baselines3 advises (their small rollout batches run faster there)."""
    import os

    from rlhf_core.devices import DEVICE_ENV

    if os.environ.get(DEVICE_ENV, "auto").strip().lower() not in ("", "auto") or algo in ("sac", "td3"):
        return resolve_device()
    return "cpu"


def _algo_class(algo: str) -> type:
    import stable_baselines3

    return getattr(stable_baselines3, algo.upper())


def quiet_logger() -> Any:
    """An SB3 logger that writes nowhere. Left to itself, ``learn`` with ``verbose=0`` makes an
    empty ``$TMPDIR/SB3-<date>`` folder on every run; progress comes from our callback."""
    from stable_baselines3.common.logger import Logger

    return Logger(folder=None, output_formats=[])


class SB3Agent:
    """An SB3 model behind the interface the studio's pages use: ``act``, ``evaluate``, ``save``."""

    def __init__(self, config: SB3Config, model: Any) -> None:
        self.config = config
        self.model = model
        model.set_logger(quiet_logger())
        self.last_threads: ThreadChooser | None = None
        """The last :meth:`learn`'s thread choice (how many steps ran on each count)."""

    @classmethod
    def build(cls, config: SB3Config, env: Any) -> SB3Agent:
        """A new model of ``config.algo`` on the (vectorised) environment ``env``."""
        kwargs = {"gamma": config.gamma, **config.kwargs}
        try:
            model = _algo_class(config.algo)(
                "MlpPolicy", env, seed=config.seed, verbose=0, device=sb3_device(config.algo), **kwargs
            )
        except (TypeError, ValueError, AssertionError) as exc:
            raise InvalidInputError(f"bad setting for {config.algo.upper()}: {exc}") from exc
        return cls(config, model)

    def act(self, obs: np.ndarray) -> Any:
        """The deterministic action for one observation."""
        action, _ = self.model.predict(obs, deterministic=True)
        return action

    def learn(
        self,
        *,
        on_step: ProgressFn | None = None,
        should_stop: StopFn | None = None,
        eval_env: gym.Env | None = None,
        reward_fn: RewardFn | None = None,
        success_fn: SuccessFn | None = None,
    ) -> DQNResult:
        """Train for ``config.total_steps`` environment steps (all environments together)."""
        from stable_baselines3.common.callbacks import BaseCallback

        cfg = self.config
        curve: list[dict[str, float | None]] = []
        returns: list[float] = []
        agent = self
        eval_seconds = [0.0]

        learning_starts = int(getattr(self.model, "learning_starts", 0))
        # off-policy algorithms that train every few steps (SAC, TD3) make each step about equal
        # work, so the steps can choose their thread count; PPO and A2C train in bursts between
        # rollouts, which such units cannot compare: they keep torch's count (or RLHF_THREADS)
        freq = getattr(self.model, "train_freq", None)
        steady = freq is not None and getattr(freq.unit, "value", None) == "step"

        class Progress(BaseCallback):
            next_eval = cfg.eval_every

            def _on_step(self) -> bool:
                steps = self.num_timesteps
                if steps > learning_starts:  # a step with its gradient steps: units of equal work
                    threads.tick()
                for info in self.locals.get("infos", []):
                    episode = info.get("episode")
                    if episode is not None:
                        returns.append(float(episode["r"]))  # Monitor sits below the reward: the true return
                if on_step is not None:
                    on_step(min(steps, cfg.total_steps), cfg.total_steps, {})
                if eval_env is not None and steps >= self.next_eval and steps < cfg.total_steps:
                    self.next_eval += cfg.eval_every
                    start = time.perf_counter()
                    point = agent.evaluate(eval_env, cfg.eval_episodes, reward_fn=reward_fn, success_fn=success_fn)
                    curve.append({"step": steps, **point.summary()})
                    eval_seconds[0] += time.perf_counter() - start
                    threads.restart()  # an evaluation is not a training step
                return not (should_stop is not None and should_stop())

        start = time.perf_counter()
        # thread counts chosen step by step: fewer where another job computes on the cores
        with AdaptiveThreads(choose=steady) as threads:
            self.model.learn(total_timesteps=cfg.total_steps, callback=Progress(), progress_bar=False)
        seconds = time.perf_counter() - start - eval_seconds[0]
        self.last_threads = threads.chooser
        logger.info("%s: %d steps in %.1f s; steps on %s", cfg.algo.upper(), cfg.total_steps, seconds,
                    threads.chooser.summary("unit"))  # fmt: skip
        if should_stop is not None and should_stop():
            raise TrainingCancelledError("stopped while training the policy")
        if eval_env is not None:
            point = self.evaluate(eval_env, cfg.eval_episodes, reward_fn=reward_fn, success_fn=success_fn)
            curve.append({"step": int(self.model.num_timesteps), **point.summary()})
        steps = int(self.model.num_timesteps)
        updates = int(getattr(self.model, "_n_updates", 0))
        return DQNResult(returns, steps, max(seconds, 1e-9), curve, updates, steps)

    def evaluate(
        self,
        env: gym.Env,
        episodes: int,
        seed: int = 10_000,
        *,
        reward_fn: RewardFn | None = None,
        success_fn: SuccessFn | None = None,
    ) -> Evaluation:
        """Deterministic episodes on the true reward (and the learned one, one call per episode)."""
        return evaluate_policy(self.act, env, episodes, seed, reward_fn=reward_fn, success_fn=success_fn)

    def save(self, folder: Path, extra: dict[str, Any] | None = None) -> None:
        """The SB3 model (its own zip format) and the configuration (JSON) into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(str(folder / MODEL_FILE))
        meta = {"algo": self.config.algo, "config": self.config.to_dict(), **(extra or {})}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> SB3Agent:
        meta = json.loads((folder / META_FILE).read_text())
        config = SB3Config.from_dict(meta["config"])
        model = _algo_class(config.algo).load(str(folder / MODEL_FILE), device=sb3_device(config.algo))
        return cls(config, model)


def is_sb3_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds an SB3 agent (else the studio's DQN)."""
    return (folder / MODEL_FILE).exists()


def make_training_env(env_fn: Callable[[], gym.Env], config: SB3Config, reward: Any = None) -> Any:
    """SB3's vectorised training environment: ``config.n_envs`` copies of ``env_fn()``, each in
    SB3's Monitor, under the learned reward (:class:`LearnedRewardVecEnv`) when one is given."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: Monitor(env_fn()) for _ in range(config.n_envs)])
    venv.seed(config.seed)
    if reward is not None:
        from rlhf_core.rewards.wrapper import LearnedRewardVecEnv

        venv = LearnedRewardVecEnv(venv, reward, gamma=config.gamma)
    return venv
