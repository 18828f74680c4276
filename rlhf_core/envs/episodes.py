"""Trajectories: collecting them from behaviours, storing them, and cutting segments.

A trajectory holds one episode: observations ``obs[0..T]``, actions and true rewards
``[0..T)``, and how it ended. Segments are fixed-length windows ``[start, start + L)`` of a
trajectory. A window may run past the end of an episode that terminated: those steps are
*padding* (the terminal state repeated, reward 0, ``valid`` False), because in environments
such as CartPole the end of an episode is exactly what distinguishes a good clip from a
bad one.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from rlhf_core.envs.behaviours import STATE_EXTRAS, Behaviour
from rlhf_core.envs.registry import env_family, make_env
from rlhf_core.errors import DataFileError
from rlhf_core.fileio import atomic_write


@dataclass(frozen=True)
class Episode:
    """One episode of an environment."""

    obs: np.ndarray
    """Observations, shape (T + 1, *obs_shape): the last one is the state the episode ended in."""
    actions: np.ndarray
    """Actions taken: (T,) int64 for a discrete action space, (T, D) float32 for a continuous one."""
    rewards: np.ndarray
    """The environment's (true) rewards, shape (T,), float32."""
    terminated: bool
    """The episode reached a terminal state (as opposed to a time limit or a cut)."""
    seed: int = 0
    """Seed the environment was reset with."""
    source: str = "unknown"
    """Name of the behaviour that produced it."""
    frames: np.ndarray | None = field(default=None, repr=False, compare=False)
    """Rendered frames (T + 1, H, W, 3) uint8 for clips, if rendered; not stored in the file."""
    extras: dict[str, np.ndarray] = field(default_factory=dict, compare=False)
    """Per-observation facts (T + 1,) an oracle may use, e.g. MiniGrid's ``goal_distance``."""

    def __post_init__(self) -> None:
        t = len(self.actions)
        if t < 1:
            raise ValueError("a trajectory needs at least one step")
        if len(self.obs) != t + 1:
            raise ValueError(f"obs has {len(self.obs)} rows, expected len(actions) + 1 = {t + 1}")
        if self.rewards.shape != (t,):
            raise ValueError(f"rewards have shape {self.rewards.shape}, expected ({t},)")
        if self.frames is not None and len(self.frames) != t + 1:
            raise ValueError(f"frames have {len(self.frames)} rows, expected {t + 1}")
        for name, values in self.extras.items():
            if len(values) != t + 1:
                raise ValueError(f"extra {name!r} has {len(values)} rows, expected {t + 1}")

    @property
    def length(self) -> int:
        """Number of steps T."""
        return len(self.actions)

    @property
    def true_return(self) -> float:
        """Sum of the environment's rewards."""
        return float(self.rewards.sum())


def downscale_frame(frame: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink an RGB frame so that its longer side is at most ``max_side`` pixels."""
    h, w = frame.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return frame
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))


def rollout(
    env_id: str,
    behaviour: Behaviour,
    *,
    seed: int,
    rng: np.random.Generator,
    render: bool = True,
    frame_max_side: int = 240,
    max_steps: int | None = None,
) -> Episode:
    """Play one episode of ``env_id`` with ``behaviour``, rendering frames if asked."""
    env = make_env(env_id, render=render)
    recorders = STATE_EXTRAS.get(env_family(env_id), {})
    try:
        obs, _ = env.reset(seed=seed)
        observations, actions, rewards = [obs], [], []
        extras: dict[str, list[float]] = {name: [fn(env)] for name, fn in recorders.items()}
        frames = [downscale_frame(env.render(), frame_max_side)] if render else []  # type: ignore[arg-type]
        terminated = False
        while True:
            action = behaviour.act(env, obs, rng)
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            for name, fn in recorders.items():
                extras[name].append(fn(env))
            if render:
                frames.append(downscale_frame(env.render(), frame_max_side))  # type: ignore[arg-type]
            if terminated or truncated or (max_steps is not None and len(actions) >= max_steps):
                break
    finally:
        env.close()
    return Episode(
        obs=np.stack(observations),
        actions=_action_array(actions),
        rewards=np.asarray(rewards, dtype=np.float32),
        terminated=bool(terminated),
        seed=seed,
        source=behaviour.name,
        frames=np.stack(frames) if render else None,
        extras={name: np.asarray(values, dtype=np.float32) for name, values in extras.items()},
    )


def _action_array(actions: list) -> np.ndarray:
    """Discrete actions as (T,) int64, continuous ones as (T, D) float32."""
    first = np.asarray(actions[0])
    if first.ndim == 0 and np.issubdtype(first.dtype, np.integer):
        return np.asarray(actions, dtype=np.int64)
    return np.asarray(actions, dtype=np.float32).reshape(len(actions), -1)


@dataclass(frozen=True)
class SegmentWindow:
    """A fixed-length window of a trajectory, padded past a terminal state."""

    obs: np.ndarray
    """(L, *obs_shape): observation before each step; padding repeats the terminal state."""
    actions: np.ndarray
    """(L,): discrete action of each step, -1 on padding; or (L, D) continuous, 0 on padding."""
    rewards: np.ndarray
    """(L,): true reward of each step, 0 on padding."""
    valid: np.ndarray
    """(L,) bool: False on padding steps after the episode ended."""

    @property
    def true_return(self) -> float:
        """Sum of the true rewards in the window."""
        return float(self.rewards.sum())


def segment_indices(trajectory_length: int, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Observation index and validity of each step of the window ``[start, start + length)``."""
    if start < 0 or start >= trajectory_length:
        raise ValueError(f"segment start {start} outside a trajectory of {trajectory_length} steps")
    steps = np.arange(start, start + length)
    valid = steps < trajectory_length
    return np.minimum(steps, trajectory_length), valid


def segment_window(traj: Episode, start: int, length: int) -> SegmentWindow:
    """The window ``[start, start + length)`` of ``traj``."""
    idx, valid = segment_indices(traj.length, start, length)
    step_idx = np.minimum(idx, traj.length - 1)
    return SegmentWindow(
        obs=traj.obs[idx],
        actions=padded_actions(traj.actions, step_idx, valid, -1),
        rewards=np.where(valid, traj.rewards[step_idx], 0.0).astype(np.float32),
        valid=valid,
    )


def padded_actions(actions: np.ndarray, steps: np.ndarray, valid: np.ndarray, pad: int = 0) -> np.ndarray:
    """The actions at ``steps``, ``pad`` where not ``valid`` (0 for continuous actions)."""
    taken = actions[steps]
    if actions.ndim == 1:
        return np.where(valid, taken, pad)
    return np.where(valid[:, None], taken, 0.0).astype(np.float32)


def segment_frames(
    frames: np.ndarray, trajectory_length: int, start: int, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rendered frames of a window and its validity mask (padding shows the final frame)."""
    idx, valid = segment_indices(trajectory_length, start, length)
    return frames[idx], valid


def choose_segment_starts(
    trajectory_length: int, length: int, count: int, rng: np.random.Generator, *, terminated: bool = False
) -> list[int]:
    """Up to ``count`` distinct window starts in a trajectory, without overlap.

    When the episode terminated, the first window contains its end at a random position (so
    clips show endings of every kind: in environments like CartPole the ending is what
    makes a clip good or bad); the others start anywhere up to ``T - 2L/3`` for a terminated
    episode and ``T - L`` for a cut-off one (which must not look as if it had ended). A trajectory
    shorter than a window gives one window from its first step.
    """
    chosen: list[int] = []
    if terminated and count > 0:
        chosen.append(int(rng.integers(max(0, trajectory_length - length + 1), trajectory_length)))
    # Only an episode that really ended may be padded: a cut-off one did not end.
    last = max(0, trajectory_length - ((2 * length) // 3 if terminated else length))
    candidates = np.arange(0, last + 1)
    rng.shuffle(candidates)
    for start in candidates:
        if len(chosen) >= count:
            break
        if all(abs(int(start) - c) >= length for c in chosen):
            chosen.append(int(start))
    return sorted(chosen)


# --- storage -------------------------------------------------------------------------------


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Atomically save compressed arrays."""
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file, raising DataFileError if it is missing or corrupt."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError as exc:
        raise DataFileError(f"data file {path} is missing; it may have been moved or deleted") from exc
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataFileError(f"data file {path} is corrupt ({exc}); delete it or skip what uses it") from exc


def save_episode(path: Path, traj: Episode) -> None:
    """Store observations, actions and true rewards (not frames) as a compressed ``.npz``."""
    save_npz(
        path,
        obs=traj.obs,
        actions=traj.actions,
        rewards=traj.rewards,
        terminated=np.asarray(traj.terminated),
        seed=np.asarray(traj.seed),
        source=np.asarray(traj.source),
        **{f"extra_{name}": values for name, values in traj.extras.items()},
    )


def load_episode(path: Path) -> Episode:
    """Read a trajectory written by :func:`save_episode`."""
    data = load_npz(path)
    try:
        return Episode(
            obs=data["obs"],
            actions=data["actions"],
            rewards=data["rewards"],
            terminated=bool(data["terminated"]),
            seed=int(data["seed"]),
            source=str(data["source"]),
            extras={key.removeprefix("extra_"): value for key, value in data.items() if key.startswith("extra_")},
        )
    except (KeyError, ValueError) as exc:
        raise DataFileError(f"data file {path} is not a trajectory ({exc})") from exc
