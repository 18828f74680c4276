"""Side-by-side clips: one GIF, both halves in the same frames, looping."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from rlhf_core.envs.clips import END_HOLD_MS, side_by_side_gif


def _frames(n: int, value: int, h: int = 80, w: int = 120) -> np.ndarray:
    return np.full((n, h, w, 3), value, dtype=np.uint8)


def _open(gif: bytes) -> Image.Image:
    return Image.open(io.BytesIO(gif))


def test_both_segments_share_every_frame_and_the_clip_loops():
    left = _frames(10, 200)
    right = _frames(10, 50)
    valid = np.ones(10, bool)
    img = _open(side_by_side_gif(left, valid, right, valid, fps=10))
    assert img.format == "GIF" and img.n_frames == 10 and img.info["loop"] == 0
    assert img.size == (120 + 8 + 120, 80)
    img.seek(4)
    rgb = np.asarray(img.convert("RGB")).astype(int)
    assert np.abs(rgb[40, 10] - 200).max() <= 4 and np.abs(rgb[40, 200] - 50).max() <= 4


def test_frame_timing_is_real_time_and_fast_envs_drop_frames_evenly():
    valid = np.ones(75, bool)
    img = _open(side_by_side_gif(_frames(75, 100), valid, _frames(75, 100), valid, fps=50))
    assert img.n_frames == 38  # every second frame, plus the last
    durations = []
    for i in range(img.n_frames):
        img.seek(i)
        durations.append(img.info["duration"])
    assert durations[:-1] == [40] * 37
    assert durations[-1] == 40 + END_HOLD_MS  # the end is held before the loop restarts


def test_steps_after_the_episode_ended_are_dimmed_on_that_side_only():
    left, right = _frames(4, 250), _frames(4, 250)
    img = _open(side_by_side_gif(left, np.array([1, 1, 0, 0], bool), right, np.ones(4, bool), fps=10))
    img.seek(3)
    rgb = np.asarray(img.convert("RGB")).astype(int)
    assert rgb[60, 10].sum() < 3 * 200 and rgb[60, 200].sum() >= 3 * 245


def test_progress_bar_fills_along_the_clip():
    valid = np.ones(4, bool)
    img = _open(side_by_side_gif(_frames(4, 0), valid, _frames(4, 0), valid, fps=10))
    filled = []
    for i in range(4):
        img.seek(i)
        bar = np.asarray(img.convert("RGB"))[-1, :120]
        filled.append(int((bar[:, 0] > 200).sum()))
    assert filled == [30, 60, 90, 120]


def test_segments_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        side_by_side_gif(_frames(3, 0), np.ones(3, bool), _frames(4, 0), np.ones(4, bool), fps=10)
