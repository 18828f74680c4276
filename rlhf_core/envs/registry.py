"""Gymnasium environments by id, with the few facts the studio needs about each.

Any Gymnasium environment with a discrete action space or a continuous (``Box``) one works.
MuJoCo ids (Hopper-v5, HalfCheetah-v5, ...) render off-screen without a display or a GPU
(``MUJOCO_GL=egl``, Mesa's software EGL; the README's set-up installs it). MiniGrid ids are wrapped so
that the agent sees the whole grid as an RGB image (pixels, so that a pretrained CNN is
useful), and every environment is made with ``render_mode="rgb_array"`` so clips can be
drawn for people to compare.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from rlhf_core.errors import InvalidInputError

#: The default demo environment. An empty 6x6 room with a random start: clips from a
#: random walker and from a goal-seeking agent look clearly different, the pixel
#: observations have few distinct values (so cached CNN features pay off), and a policy
#: can learn it from a learned reward in minutes on two CPU cores.
DEFAULT_ENV_ID = "MiniGrid-Empty-Random-6x6-v0"

#: Pixels per grid cell in MiniGrid observations (6x6 grid -> 48x48x3).
MINIGRID_OBS_TILE = 8


class EnvError(InvalidInputError):
    """An environment id that cannot be used by the studio, with the reason and the fix."""


@dataclass(frozen=True)
class EnvInfo:
    """What the studio needs to know about an environment."""

    env_id: str
    """The Gymnasium id."""
    n_actions: int
    """Size of the discrete action space; for a continuous one, the action's dimension."""
    obs_shape: tuple[int, ...]
    """Shape of one observation after the studio's wrappers."""
    obs_dtype: str
    """Numpy dtype name of observations."""
    pixels: bool
    """True when observations are HxWx3 uint8 images."""
    render_fps: int
    """Frames per second the environment is meant to be watched at."""
    family: str
    """'minigrid', 'cartpole', 'pendulum', 'mujoco' or 'generic': picks scripted behaviours and oracles."""
    continuous: bool = False
    """The action space is a ``Box`` (actions are float vectors of ``n_actions`` values)."""
    action_low: tuple[float, ...] = ()
    """A continuous action's lower bounds (one per dimension)."""
    action_high: tuple[float, ...] = ()
    """A continuous action's upper bounds."""

    def segment_length(self, seconds: float = 1.5) -> int:
        """Steps in a clip of ``seconds`` of play at the environment's frame rate."""
        return max(2, round(seconds * self.render_fps))


def env_family(env_id: str) -> str:
    """Name the family an environment id belongs to."""
    if env_id.startswith("MiniGrid-") or env_id.startswith("BabyAI-"):
        return "minigrid"
    if env_id.startswith("CartPole-"):
        return "cartpole"
    if env_id.startswith("Pendulum-"):
        return "pendulum"
    if env_id.split("-")[0] in MUJOCO_TASKS:
        return "mujoco"
    return "generic"


#: Gymnasium's MuJoCo tasks (the ``mujoco`` package from PyPI; rendering through EGL).
MUJOCO_TASKS = frozenset(
    {"Ant", "HalfCheetah", "Hopper", "Humanoid", "HumanoidStandup", "InvertedDoublePendulum",
     "InvertedPendulum", "Pusher", "Reacher", "Swimmer", "Walker2d"}
)  # fmt: skip


def _import_env_packages(env_id: str) -> None:
    family = env_family(env_id)
    if family == "minigrid":
        import minigrid  # noqa: F401  (registers the MiniGrid ids with Gymnasium)
    elif family == "mujoco":
        # Off-screen rendering without a display or a GPU: EGL through Mesa (set before mujoco loads).
        os.environ.setdefault("MUJOCO_GL", "egl")
        if os.environ["MUJOCO_GL"] == "egl":
            os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def make_env(env_id: str, *, render: bool = True) -> gym.Env:
    """Make the environment ``env_id`` as the studio uses it.

    Raises EnvError when the id is unknown or its action space is neither discrete nor a Box.
    """
    _import_env_packages(env_id)
    if render:
        # Off-screen frames only: keep pygame-based renderers (CartPole) from probing for a display.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    size = {"width": 240, "height": 240} if render and env_family(env_id) == "mujoco" else {}  # clips are 240 px
    try:
        env = gym.make(env_id, render_mode="rgb_array" if render else None, **size)
    except gym.error.DependencyNotInstalled as exc:
        raise EnvError(
            f"environment {env_id!r} needs a package that is not installed ({str(exc).strip()}); "
            "for MuJoCo tasks run: pip install -e '.[mujoco]' (the README's set-up installs it)"
        ) from exc
    except (gym.error.Error, ImportError) as exc:  # ImportError: an id like 'module:Env' whose module is absent
        raise EnvError(
            f"unknown environment {env_id!r} ({str(exc).strip()}); use a registered Gymnasium id such as "
            f"{DEFAULT_ENV_ID!r} or 'CartPole-v1'"
        ) from exc
    space = env.action_space
    box = isinstance(space, gym.spaces.Box) and len(space.shape or ()) == 1
    if not isinstance(space, gym.spaces.Discrete) and not box:
        env.close()
        raise EnvError(
            f"environment {env_id!r} has a {type(space).__name__} action space; the studio takes a Discrete "
            "one or a one-dimensional Box (continuous actions)"
        )
    if box and not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):  # type: ignore[union-attr]
        env.close()
        raise EnvError(
            f"environment {env_id!r} has unbounded continuous actions; the studio needs finite bounds "
            "(wrap it in gymnasium.wrappers.ClipAction or RescaleAction)"
        )
    if env_family(env_id) == "minigrid":
        from minigrid.wrappers import ImgObsWrapper

        env = ImgObsWrapper(_cached_rgb_wrapper()(env, tile_size=MINIGRID_OBS_TILE))
    return env


@functools.cache
def _cached_rgb_wrapper() -> type:
    """MiniGrid's ``RGBImgObsWrapper`` with each distinct state's frame drawn once (the class is
    made on first use, when minigrid is imported, and reused)."""
    from minigrid.wrappers import RGBImgObsWrapper

    class CachedRGBImgObsWrapper(RGBImgObsWrapper):
        """The whole grid as an RGB image, as ``RGBImgObsWrapper`` draws it, cached per state.

        A frame is a function of the grid's contents and the agent's position and direction
        (the state MiniGrid's own ``hash`` identifies), so frames are kept under exactly those.
        Drawing one takes about 285 us, the key about 20 us; a room has few distinct states,
        so a training run draws each once. Callers get a copy they may change. The cache
        holds at most ``max_bytes`` of frames and forgets the oldest first.
        """

        max_bytes = 32 * 2**20

        def __init__(self, env: gym.Env, tile_size: int) -> None:
            super().__init__(env, tile_size=tile_size)
            self._frames: dict[tuple[bytes, int, int, int, bool], np.ndarray] = {}
            self._bytes = 0
            self.frames_drawn = 0

        def observation(self, obs: dict) -> dict:
            game = self.unwrapped
            x, y = game.agent_pos
            key = (game.grid.encode().tobytes(), int(x), int(y), int(game.agent_dir), bool(game.highlight))
            frame = self._frames.get(key)
            if frame is None:
                frame = game.get_frame(highlight=game.highlight, tile_size=self.tile_size)
                while self._frames and self._bytes + frame.nbytes > self.max_bytes:  # forget the oldest
                    self._bytes -= self._frames.pop(next(iter(self._frames))).nbytes
                self._frames[key] = frame
                self._bytes += frame.nbytes
                self.frames_drawn += 1
            return {**obs, "image": frame.copy()}

    return CachedRGBImgObsWrapper


def env_info(env_id: str) -> EnvInfo:
    """Describe ``env_id`` (makes and closes one instance)."""
    env = make_env(env_id, render=False)
    try:
        space = env.observation_space
        shape = tuple(int(s) for s in (space.shape or ()))
        dtype = np.dtype(space.dtype or np.float32).name
        pixels = len(shape) == 3 and shape[-1] == 3 and dtype == "uint8"
        fps = int(env.metadata.get("render_fps") or 30)
        actions = env.action_space
        if isinstance(actions, gym.spaces.Discrete):
            return EnvInfo(env_id, int(actions.n), shape, dtype, pixels, fps, env_family(env_id))
        assert isinstance(actions, gym.spaces.Box)
        return EnvInfo(
            env_id=env_id,
            n_actions=int(actions.shape[0]),
            obs_shape=shape,
            obs_dtype=dtype,
            pixels=pixels,
            render_fps=fps,
            family=env_family(env_id),
            continuous=True,
            action_low=tuple(float(v) for v in actions.low),
            action_high=tuple(float(v) for v in actions.high),
        )
    finally:
        env.close()


def _minigrid_success(terminated: bool, last_reward: float, info: dict) -> bool:
    return terminated and last_reward > 0


def success_fn(env_id: str):  # noqa: ANN201  (returns rlhf_core.policy.dqn.SuccessFn | None; no import cycle)
    """How to tell a successful episode of ``env_id`` (None where the environment defines no success).

    MiniGrid: the episode terminated with a positive reward, i.e. the agent reached the goal.
    """
    return _minigrid_success if env_family(env_id) == "minigrid" else None
