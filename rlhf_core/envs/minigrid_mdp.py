"""A static MiniGrid room as an explicit MDP, to ask what a reward's *optimal* policy does.

When a policy trained on a learned reward fails, either the reward's optimum is not the task
(the reward model is wrong) or the learner did not find the optimum in its budget (the
reward may be right). In a room of walls, floor, lava and a goal, the states (cell and
facing direction) are few, so the optimum of any transition reward can be computed exactly
by value iteration and the two causes told apart (``scripts/bench/closed_loop.py`` reports
it per round).

Transitions follow MiniGrid: turn left, turn right, forward (blocked by walls; onto the goal
or into lava the episode ends), and the four other actions (pick up, drop, toggle, done)
change nothing in such a room. A terminal transition is followed by the absorbing state,
whose value is ``terminal_value`` (the studio's DQN uses ``gamma * r_abs / (1 - gamma)``).
Rooms with anything else in them (doors, keys, moving obstacles) are not static MDPs of
this kind: :meth:`RoomMDP.from_env` raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from rlhf_core.envs.behaviours import minigrid_goal_distance
from rlhf_core.envs.registry import make_env

N_ACTIONS = 7
_STATIC = {"wall", "goal", "lava"}


@dataclass(frozen=True)
class RoomMDP:
    """The states of one room layout and what each action does in each."""

    states: list[tuple[int, int, int]]
    """(x, y, direction) for every cell the agent can be on (floor, goal, lava)."""
    kind: list[str]
    """'floor', 'goal' or 'lava' per state."""
    next_state: np.ndarray
    """(S, 7) index of the state each action leads to."""
    terminal: np.ndarray
    """(S, 7) whether that transition ends the episode (onto the goal, into lava)."""
    start: int
    """The state the layout's episode starts in."""
    frames: np.ndarray
    """(S, H, W, 3) the observation of each state, as the studio's environment renders it."""
    goal_distance: np.ndarray
    """(S,) the MiniGrid oracle's distance to the goal (0 on the goal, the grid's size in lava)."""

    @classmethod
    def from_env(cls, env: gym.Env) -> RoomMDP:
        """The MDP of ``env``'s current layout (call after ``reset``); ``env`` as
        :func:`rlhf_core.envs.registry.make_env` makes it (whole-grid RGB observations)."""
        base = env.unwrapped
        grid = base.grid  # type: ignore[attr-defined]
        cells: dict[tuple[int, int], str] = {}
        for x in range(grid.width):
            for y in range(grid.height):
                obj = grid.get(x, y)
                if obj is not None and obj.type not in _STATIC:
                    raise ValueError(f"a {obj.type} at ({x}, {y}): only rooms of walls, floor, lava and a goal")
                if obj is None or obj.type != "wall":
                    cells[(x, y)] = "floor" if obj is None else obj.type
        start_pos, start_dir = tuple(int(v) for v in base.agent_pos), int(base.agent_dir)  # type: ignore[attr-defined]
        states = [(x, y, d) for (x, y) in cells for d in range(4)]
        index = {s: i for i, s in enumerate(states)}
        frames, distance = [], []
        nxt = np.tile(np.arange(len(states))[:, None], (1, N_ACTIONS))  # other actions: no change
        try:
            for i, (x, y, d) in enumerate(states):
                base.agent_pos, base.agent_dir = (x, y), d  # type: ignore[attr-defined]
                frames.append(_render(env))
                distance.append(0.0 if cells[(x, y)] == "goal" else minigrid_goal_distance(env))
                nxt[i, 0] = index[(x, y, (d - 1) % 4)]  # MiniGrid's left turn
                nxt[i, 1] = index[(x, y, (d + 1) % 4)]
                ahead = tuple(int(v) for v in base.front_pos)  # type: ignore[attr-defined]
                if ahead in cells:
                    nxt[i, 2] = index[(*ahead, d)]
        finally:
            base.agent_pos, base.agent_dir = start_pos, start_dir  # type: ignore[attr-defined]
        kind = [cells[(x, y)] for x, y, _ in states]
        ends = np.array([k != "floor" for k in kind])
        return cls(states, kind, nxt, ends[nxt], index[(*start_pos, start_dir)], np.stack(frames), np.array(distance))

    def transitions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (state, action) as arrays for a reward function: obs (S*7, ...), actions
        (S*7,), next obs (S*7, ...), in row-major (state, action) order."""
        flat = self.next_state.reshape(-1)
        obs = np.repeat(self.frames, N_ACTIONS, axis=0)
        return obs, np.tile(np.arange(N_ACTIONS), len(self.states)), self.frames[flat]

    def progress_rewards(self) -> np.ndarray:
        """(S, 7) the MiniGrid oracle's reward of each transition: the decrease of the distance
        to the goal, plus 1 onto the goal (the environment's reward, without its time discount)."""
        goal = np.array([k == "goal" for k in self.kind])
        progress = np.nan_to_num(self.goal_distance[:, None] - self.goal_distance[self.next_state])  # as the oracle
        return progress + goal[self.next_state]

    def optimal_actions(self, rewards: np.ndarray, gamma: float, terminal_value: float = 0.0) -> np.ndarray:
        """(S,) the greedy action of the optimal Q of ``rewards`` (S, 7), by value iteration."""
        q = np.zeros_like(rewards, dtype=np.float64)
        for _ in range(10_000):
            target = rewards + np.where(self.terminal, terminal_value, gamma * q.max(axis=1)[self.next_state])
            if np.max(np.abs(target - q)) < 1e-9:
                break
            q = target
        return q.argmax(axis=1)

    def reaches_goal(self, actions: np.ndarray, start: int | None = None, max_steps: int = 1_000) -> bool:
        """Whether following ``actions`` (S,) from ``start`` (default: the layout's) ends on the goal."""
        state = self.start if start is None else start
        for _ in range(max_steps):
            a = actions[state]
            nxt = int(self.next_state[state, a])
            if self.terminal[state, a]:
                return self.kind[nxt] == "goal"
            state = nxt
        return False


def _render(env: gym.Env) -> np.ndarray:
    """The observation of the agent's current position, through the environment's wrappers."""
    obs = env.unwrapped.gen_obs()  # type: ignore[attr-defined]
    layers = []
    wrapper = env
    while isinstance(wrapper, gym.Wrapper):
        layers.append(wrapper)
        wrapper = wrapper.env
    for layer in reversed(layers):  # innermost first, as a step passes an observation out
        if isinstance(layer, gym.ObservationWrapper):
            obs = layer.observation(obs)
    return np.asarray(obs)


def optimum_reaches_goal(
    env_id: str,
    reward: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None,
    gamma: float,
    *,
    absorbing_reward: float = 0.0,
    layouts: int = 5,
    seed: int = 10_000,
) -> float | None:
    """Share of ``layouts`` (the evaluation seeds' rooms) in which the optimal policy of
    ``reward`` (``(obs, actions, next_obs) -> rewards``; None: the oracle's progress reward)
    reaches the goal from the start; None where the room is not a static MDP."""
    env = make_env(env_id)
    terminal_value = gamma * absorbing_reward / (1 - gamma)
    reached = []
    try:
        for k in range(layouts):
            env.reset(seed=seed + k)
            try:
                mdp = RoomMDP.from_env(env)
            except ValueError:
                return None
            r = mdp.progress_rewards() if reward is None else reward(*mdp.transitions()).reshape(-1, N_ACTIONS)
            reached.append(mdp.reaches_goal(mdp.optimal_actions(r, gamma, terminal_value)))
    finally:
        env.close()
    return float(np.mean(reached))
