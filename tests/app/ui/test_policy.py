"""The Policy page's reward-hacking hint on hand-made evaluation curves (no training: fast)."""

from __future__ import annotations

import pytest

from app.ui.policy_hints import SUCCESS, TRUE, reward_hacking


def curve(learned: list[float | None], success: list[float] | None = None, true: list[float] | None = None) -> list:
    """Evaluation rows as the DQN writes them, every 5,000 steps."""
    n = len(learned)
    return [
        {
            "step": 5_000 * (i + 1),
            "learned_return_mean": learned[i],
            "success_rate": None if success is None else success[i],
            "true_return_mean": 0.0 if true is None else true[i],
            "episode_length_mean": 100.0,
        }
        for i in range(n)
    ]


LEARNED_UP = [40.0, 80.0, 150.0, 220.0, 300.0, 390.0]


def test_learned_return_up_while_success_flat_is_reward_hacking() -> None:
    hint = reward_hacking(curve(LEARNED_UP, success=[0.0, 0.0, 0.1, 0.0, 0.0, 0.0]))
    assert hint is not None and hint.measure == SUCCESS
    assert hint.learned_before == pytest.approx(60.0) and hint.learned_after == pytest.approx(345.0)
    assert hint.measure_before == pytest.approx(0.0) and hint.measure_after == pytest.approx(0.0)


def test_learned_return_up_while_success_falls_is_reward_hacking() -> None:
    assert reward_hacking(curve(LEARNED_UP, success=[0.6, 0.5, 0.4, 0.2, 0.1, 0.0])) is not None


def test_success_rising_with_the_learned_return_is_healthy() -> None:
    assert reward_hacking(curve(LEARNED_UP, success=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])) is None


def test_success_already_reached_is_no_warning() -> None:
    assert reward_hacking(curve(LEARNED_UP, success=[1.0] * 6)) is None


def test_flat_learned_return_is_no_warning() -> None:
    noisy_flat = [200.0, 210.0, 195.0, 205.0, 198.0, 202.0]
    assert reward_hacking(curve(noisy_flat, success=[0.0] * 6)) is None
    assert reward_hacking(curve([150.0] * 6, success=[0.0] * 6)) is None
    assert reward_hacking(curve(list(reversed(LEARNED_UP)), success=[0.0] * 6)) is None  # learned fell


def test_without_success_the_true_return_is_the_measure() -> None:
    hacked = curve(LEARNED_UP, true=[22.0, 19.0, 25.0, 21.0, 18.0, 20.0])
    hint = reward_hacking(hacked, true_return_goal=475.0)
    assert hint is not None and hint.measure == TRUE
    assert reward_hacking(curve(LEARNED_UP, true=[20.0, 60.0, 120.0, 250.0, 400.0, 500.0])) is None
    assert reward_hacking(curve(LEARNED_UP, true=[500.0] * 6), true_return_goal=475.0) is None  # solved


def test_no_learned_return_or_too_few_evaluations_is_no_warning() -> None:
    assert reward_hacking(curve([None] * 6, success=[0.0] * 6)) is None  # a true-reward baseline
    assert reward_hacking(curve([10.0, 300.0], success=[0.0, 0.0])) is None
    assert reward_hacking([]) is None


def test_rows_out_of_order_and_nan_are_handled() -> None:
    rows = curve(LEARNED_UP, success=[0.0] * 6)[::-1]
    rows[2]["learned_return_mean"] = float("nan")
    hint = reward_hacking(rows)
    assert hint is not None and (hint.learned_before, hint.learned_after) == (40.0, 390.0)  # 5 points: thirds of 1
