"""Behaviours that generate clips worth comparing: random, and scripted ones with noise.

A demo project needs clips that differ in quality, so rollouts mix a uniformly random
behaviour with a scripted, goal-directed one whose actions are replaced by random ones with
probability ``epsilon``. Scripted behaviours exist for the maintained families (MiniGrid:
shortest path to the goal; CartPole: a balancing controller); any other environment gets
the random behaviour only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from rlhf_core.envs.registry import env_family

#: A behaviour maps (environment, last observation, rng) to an action.
ActionFn = Callable[[gym.Env, np.ndarray, np.random.Generator], int]


@dataclass(frozen=True)
class Behaviour:
    """A named way of acting, recorded as a trajectory's source policy."""

    name: str
    """Recorded with each trajectory, e.g. ``scripted(eps=0.3)``."""
    act: ActionFn
    """Chooses the next action."""


def random_action(env: gym.Env, obs: np.ndarray, rng: np.random.Generator) -> int:
    """Uniformly random action."""
    assert isinstance(env.action_space, gym.spaces.Discrete)
    return int(rng.integers(env.action_space.n))


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
}


def with_noise(act: ActionFn, epsilon: float) -> ActionFn:
    """Replace ``act``'s choice by a random action with probability ``epsilon``."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")

    def noisy(env: gym.Env, obs: np.ndarray, rng: np.random.Generator) -> int:
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
DEMO_EPSILONS: dict[str, tuple[float, ...]] = {"minigrid": (0.05, 0.25, 0.5), "cartpole": (0.05, 0.5, 0.7)}


def behaviour_mix(env_id: str, epsilons: tuple[float, ...] | None = None) -> list[Behaviour]:
    """Behaviours for a demo project: random, plus the scripted one at several noise levels."""
    family = env_family(env_id)
    mix = [Behaviour("random", random_action)]
    scripted = _SCRIPTED.get(family)
    if scripted is not None:
        levels = epsilons if epsilons is not None else DEMO_EPSILONS.get(family, (0.05, 0.25, 0.5))
        mix += [Behaviour(f"scripted(eps={eps:g})", with_noise(scripted, eps)) for eps in levels]
    return mix
