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

from rlhf_core.envs import env_family

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


def _minigrid_next_cell(env: gym.Env) -> tuple[int, int] | None:
    """First cell on a shortest path from the agent to the goal (BFS on the grid)."""
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
            if nobj is None or nobj.can_overlap():
                parents[nxt] = cell
                queue.append(nxt)
    if goal is None or goal == start:
        return None
    cell = goal
    while parents[cell] != start:
        parent = parents[cell]
        assert parent is not None
        cell = parent
    return cell


def minigrid_shortest_path(env: gym.Env, obs: np.ndarray, rng: np.random.Generator) -> int:
    """Turn toward, then step onto, the next cell of a shortest path to the goal."""
    target = _minigrid_next_cell(env)
    if target is None:
        return random_action(env, obs, rng)
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


def behaviour_mix(env_id: str, epsilons: tuple[float, ...] = (0.05, 0.25, 0.5)) -> list[Behaviour]:
    """Behaviours for a demo project: random, plus the scripted one at several noise levels."""
    mix = [Behaviour("random", random_action)]
    scripted = _SCRIPTED.get(env_family(env_id))
    if scripted is not None:
        mix += [Behaviour(f"scripted(eps={eps:g})", with_noise(scripted, eps)) for eps in epsilons]
    return mix
