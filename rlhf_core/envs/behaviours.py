"""Behaviours that generate clips worth comparing: random, and scripted ones with noise.

A demo project needs clips that differ in quality, so rollouts mix a uniformly random
behaviour with a scripted, goal-directed one whose actions are replaced by random ones with
probability ``epsilon``. Scripted behaviours exist for the maintained families (MiniGrid:
shortest path to the goal; CartPole: a balancing controller; Pendulum: an energy-pumping
swing-up with a PD controller at the top; MuJoCo: a rhythmic gait, sines of random phase per
joint, which moves some robots well and others badly); any other environment gets the
random behaviour only. A random action is uniform over a discrete space or over a
continuous action's bounds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rlhf_core.envs.registry import env_family

#: A behaviour maps (environment, last observation, rng) to an action (an int, or a float vector).
ActionFn = Callable[[gym.Env, np.ndarray, np.random.Generator], Any]


@dataclass(frozen=True)
class Behaviour:
    """A named way of acting, recorded as a trajectory's source policy."""

    name: str
    """Recorded with each trajectory, e.g. ``scripted(eps=0.3)``."""
    act: ActionFn
    """Chooses the next action."""


def random_action(env: gym.Env, obs: np.ndarray, rng: np.random.Generator) -> Any:
    """Uniformly random action: one of a discrete space's, or a point within a Box's bounds."""
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        return int(rng.integers(space.n))
    assert isinstance(space, gym.spaces.Box)
    return rng.uniform(space.low, space.high).astype(np.float32)


def pendulum_controller(env: gym.Env, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Swing a Pendulum up and hold it: pump energy (torque along the angular velocity) until the
    pendulum has the energy of the upright position, then a PD controller near the top.

    Pendulum: theta'' = 3g/(2l) sin(theta) + 3/(ml^2) u, theta = 0 upright; the energy
    E = theta'^2 / 2 + 15 (cos(theta) - 1) is 0 upright at rest and dE/dt = 3 u theta'.
    """
    cos, sin, speed = (float(v) for v in obs[:3])
    theta = np.arctan2(sin, cos)
    if cos > 0.8:  # near the top: hold it
        torque = -(12.0 * theta + 2.5 * speed)
    else:
        energy = 0.5 * speed**2 + 15.0 * (cos - 1.0)
        torque = 2.0 * np.sign(speed if speed != 0 else 1.0) * (1.0 if energy < 0 else -0.2)
    return np.clip(np.array([torque], np.float32), -2.0, 2.0)


def mujoco_gait(env: gym.Env, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A rhythmic gait: each joint's torque is a sine of the simulation time, at 1.5-3 Hz with a
    phase per joint drawn once per episode (kept on the environment), within the bounds."""
    space = env.action_space
    assert isinstance(space, gym.spaces.Box)
    base = env.unwrapped
    state = getattr(base, "_studio_gait", None)
    time = float(base.data.time)  # type: ignore[attr-defined]
    if state is None or time < state[0]:  # a new episode (time went back to 0)
        state = (time, rng.uniform(0, 2 * np.pi, space.shape), rng.uniform(1.5, 3.0))
    base._studio_gait = (time, state[1], state[2])  # type: ignore[attr-defined]
    mid, half = (space.high + space.low) / 2, (space.high - space.low) / 2
    return (mid + half * np.sin(2 * np.pi * state[2] * time + state[1])).astype(np.float32)


def cartpole_controller(env: gym.Env, obs: np.ndarray, rng: np.random.Generator) -> int:
    """Push the cart toward the side the pole falls to (angle plus damped angular speed)."""
    _x, x_dot, theta, theta_dot = (float(v) for v in obs[:4])
    return int(theta + 0.5 * theta_dot + 0.01 * x_dot > 0)


# MiniGrid directions: 0 right (+x), 1 down (+y), 2 left (-x), 3 up (-y).
_DIR_VEC = ((1, 0), (0, 1), (-1, 0), (0, -1))
_LEFT, _RIGHT, _FORWARD = 0, 1, 2


def minigrid_goal_path(env: gym.Env) -> list[tuple[int, int]] | None:
    """Cells of a shortest path from the agent to the goal, excluding the agent's cell.

    BFS over the cells the agent can walk on (lava, which ends an episode, is not); ``[]``
    when the agent stands on the goal, None when none is reachable.
    """
    grid_env = env.unwrapped
    grid = grid_env.grid  # type: ignore[attr-defined]
    start = tuple(int(v) for v in grid_env.agent_pos)  # type: ignore[attr-defined]
    parents: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
    queue = deque([start])
    goal = None
    while queue:
        cell = queue.popleft()
        obj = grid.get(*cell)
        if obj is not None and obj.type == "goal":
            goal = cell
            break
        for dx, dy in _DIR_VEC:
            nxt = (cell[0] + dx, cell[1] + dy)
            if nxt in parents or not (0 <= nxt[0] < grid.width and 0 <= nxt[1] < grid.height):
                continue
            nobj = grid.get(*nxt)
            if nobj is None or (nobj.can_overlap() and nobj.type != "lava"):  # lava ends the episode: not a path
                parents[nxt] = cell
                queue.append(nxt)
    if goal is None:
        return None
    path = []
    cell = goal
    while cell != start:
        path.append(cell)
        parent = parents[cell]
        assert parent is not None
        cell = parent
    return path[::-1]


def minigrid_goal_distance(env: gym.Env) -> float:
    """Steps on a shortest path to the goal (cells, ignoring turns); NaN if unreachable. On lava
    (the episode ended there) the number of cells of the grid: farther than any path, so that
    an oracle judging by progress counts walking into lava as losing all progress made."""
    grid_env = env.unwrapped
    here = grid_env.grid.get(*grid_env.agent_pos)  # type: ignore[attr-defined]
    if here is not None and here.type == "lava":
        return float(grid_env.grid.width * grid_env.grid.height)  # type: ignore[attr-defined]
    path = minigrid_goal_path(env)
    return float("nan") if path is None else float(len(path))


def minigrid_wall_contact(env: gym.Env) -> float:
    """1 when a wall is one of the four cells next to the agent, else 0 (the ``walls`` persona)."""
    grid_env = env.unwrapped
    ax, ay = (int(v) for v in grid_env.agent_pos)  # type: ignore[attr-defined]
    grid = grid_env.grid  # type: ignore[attr-defined]
    for dx, dy in _DIR_VEC:
        x, y = ax + dx, ay + dy
        if 0 <= x < grid.width and 0 <= y < grid.height:
            cell = grid.get(x, y)
            if cell is not None and cell.type == "wall":
                return 1.0
    return 0.0


def minigrid_shortest_path(env: gym.Env, obs: np.ndarray, rng: np.random.Generator) -> int:
    """Turn toward, then step onto, the next cell of a shortest path to the goal."""
    path = minigrid_goal_path(env)
    if not path:
        return random_action(env, obs, rng)
    target = path[0]
    grid_env = env.unwrapped
    ax, ay = (int(v) for v in grid_env.agent_pos)  # type: ignore[attr-defined]
    want = _DIR_VEC.index((target[0] - ax, target[1] - ay))
    have = int(grid_env.agent_dir)  # type: ignore[attr-defined]
    if want == have:
        return _FORWARD
    return _RIGHT if (want - have) % 4 == 1 else _LEFT


_SCRIPTED: dict[str, ActionFn] = {
    "minigrid": minigrid_shortest_path,
    "cartpole": cartpole_controller,
    "pendulum": pendulum_controller,
    "mujoco": mujoco_gait,
}


def with_noise(act: ActionFn, epsilon: float) -> ActionFn:
    """Replace ``act``'s choice by a random action with probability ``epsilon``."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")

    def noisy(env: gym.Env, obs: np.ndarray, rng: np.random.Generator) -> Any:
        if rng.random() < epsilon:
            return random_action(env, obs, rng)
        return act(env, obs, rng)

    return noisy


#: Per-state facts recorded with each observation, by family, for oracle rewards (a
#: MiniGrid goal is too sparse to compare 1.5 s clips by; see rlhf_core.rewards.teachers).
STATE_EXTRAS: dict[str, dict[str, Callable[[gym.Env], float]]] = {
    "minigrid": {"goal_distance": minigrid_goal_distance, "wall_contact": minigrid_wall_contact},
}


#: Noise levels of the scripted behaviour in a demo mix, by family: chosen so that clips
#: span good to bad (a CartPole controller with less than 50% noise almost never falls).
DEMO_EPSILONS: dict[str, tuple[float, ...]] = {
    "minigrid": (0.05, 0.25, 0.5),
    "cartpole": (0.05, 0.5, 0.7),
    "pendulum": (0.1, 0.4, 0.7),
    "mujoco": (0.1, 0.4, 0.7),
}


def behaviour_mix(env_id: str, epsilons: tuple[float, ...] | None = None) -> list[Behaviour]:
    """Behaviours for a demo project: random, plus the scripted one at several noise levels."""
    family = env_family(env_id)
    mix = [Behaviour("random", random_action)]
    scripted = _SCRIPTED.get(family)
    if scripted is not None:
        levels = epsilons if epsilons is not None else DEMO_EPSILONS.get(family, (0.05, 0.25, 0.5))
        mix += [Behaviour(f"scripted(eps={eps:g})", with_noise(scripted, eps)) for eps in levels]
    return mix
