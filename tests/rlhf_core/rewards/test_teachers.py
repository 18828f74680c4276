"""Scripted teachers match their B-Pref definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlhf_core.envs.episodes import Episode
from rlhf_core.rewards.teachers import (
    TEACHERS,
    TeacherConfig,
    judge,
    minigrid_progress_reward,
    return_scale,
    teacher,
    teacher_reward_fn,
    true_reward,
)

RNG = np.random.default_rng


def test_oracle_prefers_the_higher_return_and_calls_exact_ties_equal():
    a = np.array([[1.0, 1.0], [0.0, 0.0], [2.0, 0.0]])
    b = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    assert judge(TEACHERS["oracle"], a, b, scale=1.0, rng=RNG(0)).tolist() == [1.0, 0.0, 0.5]


def test_myopic_teacher_weighs_the_end_of_the_clip_most():
    early = np.array([[3.0, 0.0, 0.0, 0.0]])  # return 3, all at the start
    late = np.array([[0.0, 0.0, 0.0, 2.0]])  # return 2, at the end
    assert judge(TEACHERS["oracle"], early, late, scale=1.0, rng=RNG(0)).tolist() == [1.0]
    # gamma = 0.5: early counts 3 * 0.5**3 = 0.375 < 2
    assert judge(teacher("myopic", gamma=0.5), early, late, scale=1.0, rng=RNG(0)).tolist() == [0.0]


def test_skip_threshold_skips_pairs_where_both_returns_are_low():
    a = np.array([[0.1, 0.0], [5.0, 0.0]])
    b = np.array([[0.0, 0.2], [0.0, 0.1]])
    prefs = judge(teacher("skip", skip_threshold=0.5), a, b, scale=2.0, rng=RNG(0))  # threshold = 1.0
    assert math.isnan(prefs[0]) and prefs[1] == 1.0


def test_equal_threshold_answers_equal_for_close_returns():
    a = np.array([[1.0, 1.0], [4.0, 0.0]])
    b = np.array([[1.0, 0.9], [1.0, 0.0]])
    prefs = judge(teacher("equal", equal_threshold=0.1), a, b, scale=2.0, rng=RNG(0))  # |diff| < 0.2
    assert prefs.tolist() == [0.5, 1.0]


def test_stochastic_teacher_follows_a_temperature_scaled_by_the_returns():
    n = 20000
    a, b = np.full((n, 1), 1.0), np.zeros((n, 1))
    for scale in (1.0, 100.0):  # the same beta means the same noise whatever the units of return
        prefs = judge(teacher("stochastic", beta=1.0), a * scale, b, scale=scale, rng=RNG(1))
        assert prefs.mean() == pytest.approx(1 / (1 + math.exp(-1.0)), abs=0.01)


def test_mistake_teacher_flips_answers_at_its_rate():
    n = 20000
    a, b = np.ones((n, 1)), np.zeros((n, 1))
    prefs = judge(teacher("mistake", eps_mistake=0.2), a, b, scale=1.0, rng=RNG(2))
    assert (prefs == 0.0).mean() == pytest.approx(0.2, abs=0.01)


def test_named_teachers_and_validation():
    assert set(TEACHERS) == {"oracle", "stochastic", "myopic", "mistake", "skip", "equal"}
    with pytest.raises(ValueError, match="unknown teacher 'genius'"):
        teacher("genius")
    with pytest.raises(ValueError, match="gamma must lie in"):
        TeacherConfig(gamma=0.0)
    assert return_scale(np.array([3.0, 3.0])) == 1.0  # never divides by zero
    assert return_scale(np.array([0.0, 2.0])) == pytest.approx(1.0)


def _minigrid_traj(distances, rewards):
    t = len(rewards)
    return Episode(
        np.zeros((t + 1, 2)),
        np.zeros(t, np.int64),
        np.asarray(rewards, np.float32),
        True,
        extras={"goal_distance": np.asarray(distances, np.float32)},
    )


def test_minigrid_oracle_rewards_progress_toward_the_goal():
    traj = _minigrid_traj([4, 3, 3, 2, 1, 0], [0, 0, 0, 0, 0.9])
    r = minigrid_progress_reward(traj, start=0, length=7)
    assert r.tolist() == pytest.approx([1, 0, 1, 1, 1 + 0.9, 0, 0])  # padding after the goal earns 0
    away = _minigrid_traj([2, 3, 4], [0, 0])
    assert minigrid_progress_reward(away, 0, 2).sum() == -2
    assert teacher_reward_fn("MiniGrid-Empty-Random-6x6-v0") is minigrid_progress_reward
    assert teacher_reward_fn("CartPole-v1") is true_reward


def test_oracle_never_skips_even_when_both_returns_are_negative():
    a, b = np.array([[-2.0]]), np.array([[-1.0]])
    assert judge(TEACHERS["oracle"], a, b, scale=1.0, rng=RNG(0)).tolist() == [0.0]


def test_the_teachers_reward_as_an_environment_reward_is_progress_plus_success():
    from rlhf_core.envs.behaviours import minigrid_goal_distance, minigrid_shortest_path
    from rlhf_core.envs.registry import make_env
    from rlhf_core.rewards.teachers import MiniGridProgressReward, with_teacher_reward

    env = with_teacher_reward("MiniGrid-Empty-Random-6x6-v0", make_env("MiniGrid-Empty-Random-6x6-v0", render=False))
    assert isinstance(env, MiniGridProgressReward)
    obs, _ = env.reset(seed=3)
    start = minigrid_goal_distance(env)
    rng, rewards, done = np.random.default_rng(0), [], False
    while not done:
        obs, reward, terminated, truncated, info = env.step(minigrid_shortest_path(env, obs, rng))
        rewards.append(float(reward))
        done = terminated or truncated
    assert terminated and info["true_reward"] > 0
    assert sum(rewards) == pytest.approx(start + info["true_reward"])  # every step of the path, then success
    assert set(rewards[:-1]) <= {0.0, 1.0}  # turning earns 0, a step closer earns 1
    cartpole = make_env("CartPole-v1", render=False)
    assert with_teacher_reward("CartPole-v1", cartpole) is cartpole  # its teacher judges by the true reward


def test_the_oracle_counts_walking_into_lava_as_losing_all_progress():
    from rlhf_core.envs.behaviours import minigrid_goal_distance, minigrid_goal_path
    from rlhf_core.envs.registry import make_env

    env = make_env("MiniGrid-LavaGapS5-v0", render=False)
    env.reset(seed=0)
    grid = env.unwrapped.grid
    lava = [
        (x, y) for x in range(grid.width) for y in range(grid.height) if getattr(grid.get(x, y), "type", "") == "lava"
    ]
    path = minigrid_goal_path(env)
    assert lava and path and not set(path) & set(lava)  # the path goes through the gap, not the lava
    env.unwrapped.agent_pos = lava[0]
    assert minigrid_goal_distance(env) == grid.width * grid.height
