"""Trajectories: windows with padding, segment starts, files."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_core.envs.behaviours import behaviour_mix
from rlhf_core.envs.episodes import (
    DataFileError,
    Episode,
    choose_segment_starts,
    load_episode,
    rollout,
    save_episode,
    segment_frames,
    segment_window,
)


def _traj(t: int = 5) -> Episode:
    return Episode(
        obs=np.arange((t + 1) * 2, dtype=np.float32).reshape(t + 1, 2),
        actions=np.arange(t, dtype=np.int64) % 2,
        rewards=np.ones(t, dtype=np.float32),
        terminated=True,
    )


def test_window_past_the_end_pads_with_the_terminal_state_and_zero_reward():
    traj = _traj(5)
    w = segment_window(traj, start=3, length=4)
    assert w.valid.tolist() == [True, True, False, False]
    assert w.rewards.tolist() == [1.0, 1.0, 0.0, 0.0] and w.true_return == 2.0
    assert w.actions.tolist() == [1, 0, -1, -1]
    np.testing.assert_array_equal(w.obs, traj.obs[[3, 4, 5, 5]])


def test_window_inside_the_episode_is_a_plain_slice():
    traj = _traj(10)
    w = segment_window(traj, start=2, length=4)
    assert w.valid.all() and w.true_return == 4.0
    np.testing.assert_array_equal(w.obs, traj.obs[2:6])


def test_window_start_outside_the_trajectory_is_an_error():
    with pytest.raises(ValueError, match="outside a trajectory of 5 steps"):
        segment_window(_traj(5), start=5, length=2)


def test_frames_of_a_window_repeat_the_last_frame():
    frames = np.arange(6)[:, None, None, None] * np.ones((1, 2, 2, 3), dtype=np.uint8)
    got, valid = segment_frames(frames, 5, 4, 3)
    assert got[:, 0, 0, 0].tolist() == [4, 5, 5] and valid.tolist() == [True, False, False]


def test_segment_starts_do_not_overlap_and_short_episodes_give_one_window():
    rng = np.random.default_rng(0)
    starts = choose_segment_starts(200, 15, 5, rng)
    assert len(starts) == 5 and all(b - a >= 15 for a, b in zip(starts, starts[1:], strict=False))
    assert max(starts) <= 200 - 10
    assert choose_segment_starts(4, 15, 3, rng) == [0]


def test_only_terminated_episodes_get_windows_past_their_end():
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert max(choose_segment_starts(225, 75, 3, rng, terminated=False)) <= 150
    ends = [choose_segment_starts(225, 75, 1, rng, terminated=True)[0] for _ in range(50)]
    assert min(ends) >= 151 and max(ends) > 200  # the first window contains the end


def test_trajectory_validates_its_shapes():
    with pytest.raises(ValueError, match="obs has 3 rows, expected len\\(actions\\) \\+ 1 = 5"):
        Episode(obs=np.zeros((3, 2)), actions=np.zeros(4, dtype=np.int64), rewards=np.zeros(4), terminated=False)


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    traj = rollout("CartPole-v1", behaviour_mix("CartPole-v1")[1], seed=3, rng=rng, render=False, max_steps=40)
    save_episode(tmp_path / "t.npz", traj)
    back = load_episode(tmp_path / "t.npz")
    np.testing.assert_array_equal(back.obs, traj.obs)
    np.testing.assert_array_equal(back.actions, traj.actions)
    np.testing.assert_array_equal(back.rewards, traj.rewards)
    assert (back.seed, back.source, back.terminated) == (3, traj.source, traj.terminated)
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed


def test_missing_and_corrupt_files_raise_a_clear_error(tmp_path):
    with pytest.raises(DataFileError, match="is missing"):
        load_episode(tmp_path / "nope.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataFileError, match="is corrupt"):
        load_episode(tmp_path / "bad.npz")


def test_rollouts_are_reproducible_from_their_seed():
    b = behaviour_mix("CartPole-v1")[2]
    one = rollout("CartPole-v1", b, seed=7, rng=np.random.default_rng(5), render=False)
    two = rollout("CartPole-v1", b, seed=7, rng=np.random.default_rng(5), render=False)
    np.testing.assert_array_equal(one.obs, two.obs)
