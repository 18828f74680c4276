"""The explicit MDP of a static MiniGrid room (rlhf_core/envs/minigrid_mdp.py)."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_core.envs.minigrid_mdp import N_ACTIONS, RoomMDP, optimum_reaches_goal
from rlhf_core.envs.registry import make_env


def _mdp(env_id: str, seed: int = 0) -> tuple[RoomMDP, object]:
    env = make_env(env_id)
    env.reset(seed=seed)
    return RoomMDP.from_env(env), env


def test_the_states_transitions_and_frames_are_minigrids_own():
    mdp, _ = _mdp("MiniGrid-Empty-8x8-v0")
    assert len(mdp.states) == 36 * 4  # 6x6 inner cells (the goal among them), four directions
    assert mdp.kind.count("goal") == 4 and mdp.goal_distance[mdp.start] == 10  # start (1, 1), goal (6, 6)
    # every move from every floor state agrees with stepping the real environment, and so does
    # its frame: walls, lava and the goal included
    for env_id in ("MiniGrid-LavaGapS5-v0", "MiniGrid-DistShift1-v0"):
        mdp, env = _mdp(env_id)
        kinds = set()
        for i, (x, y, d) in enumerate(mdp.states):
            if mdp.kind[i] != "floor":
                continue
            for a in range(N_ACTIONS):
                env.unwrapped.agent_pos, env.unwrapped.agent_dir = (x, y), d
                obs, _, terminated, _, _ = env.step(a)
                j = mdp.next_state[i, a]
                assert mdp.states[j] == (*env.unwrapped.agent_pos, env.unwrapped.agent_dir), (env_id, i, a)
                assert terminated == mdp.terminal[i, a]
                np.testing.assert_array_equal(obs, mdp.frames[j])
                kinds.add(mdp.kind[j] if j != i else "blocked" if a == 2 else "no-op")
        assert kinds == {"floor", "lava", "goal", "blocked", "no-op"}, env_id


def test_the_oracles_progress_reward_has_the_task_as_its_optimum_and_a_bad_reward_does_not():
    for env_id in ("MiniGrid-Empty-8x8-v0", "MiniGrid-LavaGapS5-v0", "MiniGrid-DistShift1-v0"):
        mdp, _ = _mdp(env_id)
        best = mdp.optimal_actions(mdp.progress_rewards(), gamma=0.95)
        floor = [i for i, k in enumerate(mdp.kind) if k == "floor"]
        assert all(mdp.reaches_goal(best, start=i) for i in floor), env_id
    mdp, _ = _mdp("MiniGrid-LavaGapS5-v0")
    lava = np.array([k == "lava" for k in mdp.kind])
    into_lava = np.where(lava[mdp.next_state], 5.0, 0.0)  # a reward that pays for the lava
    assert not mdp.reaches_goal(mdp.optimal_actions(into_lava, gamma=0.95))
    # a standing reward larger than the goal's: the optimum never ends the episode
    stay = np.where(mdp.next_state == np.arange(len(mdp.states))[:, None], 1.0, 0.0)
    assert not mdp.reaches_goal(mdp.optimal_actions(stay + mdp.progress_rewards() * 0.01, gamma=0.95))


def test_the_share_of_layouts_counts_the_rooms_and_refuses_moving_obstacles():
    assert optimum_reaches_goal("MiniGrid-LavaGapS5-v0", None, 0.95, layouts=3) == 1.0

    def away(obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs))  # indifferent: argmax takes the first action (turn left), forever

    assert optimum_reaches_goal("MiniGrid-LavaGapS5-v0", away, 0.95, layouts=2) == 0.0
    assert optimum_reaches_goal("MiniGrid-Dynamic-Obstacles-6x6-v0", None, 0.95) is None
    with pytest.raises(ValueError, match="ball"):
        _mdp("MiniGrid-Dynamic-Obstacles-6x6-v0")
    assert N_ACTIONS == make_env("MiniGrid-Empty-8x8-v0").action_space.n
