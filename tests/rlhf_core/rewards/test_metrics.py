"""Held-out metrics: accuracy, log loss, calibration, rank correlation, the interval."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_core.rewards.metrics import (
    accuracy_interval,
    calibration,
    held_out_metrics,
    preference_accuracy,
    preference_log_loss,
    spearman,
)


def test_accuracy_excludes_ties_and_log_loss_counts_them_as_one_half():
    p = np.array([0.9, 0.2, 0.6, 0.5])
    pref = np.array([1.0, 1.0, 0.5, 0.0])
    assert preference_accuracy(p, pref) == pytest.approx(1.5 / 3)  # ties excluded; P = 0.5 is half right
    expected = -(np.log(0.9) + np.log(0.2) + 0.5 * np.log(0.6) + 0.5 * np.log(0.4) + np.log(0.5)) / 4
    assert preference_log_loss(p, pref) == pytest.approx(expected)
    assert np.isnan(preference_accuracy(p[2:3], pref[2:3]))


def test_calibration_bins_compare_predicted_with_observed():
    p = np.array([0.05, 0.07, 0.93, 0.95, 0.97])
    pref = np.array([0.0, 1.0, 1.0, 1.0, 0.0])
    bins = calibration(p, pref, bins=10)
    assert [(b.low, b.count) for b in bins] == [(0.0, 2), (0.9, 3)]
    assert bins[0].observed == 0.5 and bins[1].observed == pytest.approx(2 / 3)
    assert bins[1].mean_predicted == pytest.approx(0.95)


def test_spearman_is_nan_for_constant_inputs():
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0])) == pytest.approx(0.5)
    assert np.isnan(spearman(np.ones(5), np.arange(5.0)))


def test_held_out_accuracy_comes_with_its_pair_count_and_wilson_interval():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.9, 0.8, 0.7, 0.6, 0.2, 0.1, 0.5])
    pref = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.5])  # 8 of 10 strict pairs right, one tie
    m = held_out_metrics(p, pref)
    assert m["val_pairs"] == 10 and m["val_accuracy"] == pytest.approx(0.8)
    low, high = m["val_accuracy_ci95"]
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # Wilson score interval, 8 of 10
    assert accuracy_interval(0.8, 1000)[1] - accuracy_interval(0.8, 1000)[0] < 0.06  # narrows with pairs
    empty = held_out_metrics(np.zeros(0), np.zeros(0))
    assert empty["val_accuracy"] is None and empty["val_pairs"] == 0 and empty["val_accuracy_ci95"] is None
    assert empty["log_loss"] is None


def test_two_answers_to_one_pair_count_as_one_pair_in_the_interval():
    # the 10 pairs above, each answered by two annotators (one tie stays a tie): the accuracy
    # is the same, but 20 labels on 10 pairs are not 20 independent trials of the model
    p = np.repeat([0.9, 0.8, 0.7, 0.6, 0.9, 0.8, 0.7, 0.6, 0.2, 0.1, 0.5], 2)
    pref = np.repeat([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.5], 2)
    keys = np.repeat(np.arange(11), 2).tolist()
    m = held_out_metrics(p, pref, keys)
    assert m["val_accuracy"] == pytest.approx(0.8) and m["val_pairs"] == 10 and m["val_labels"] == 20
    assert m["val_accuracy_ci95"] == pytest.approx([0.4902, 0.9433], abs=1e-4)  # as 8 of 10
    unkeyed = held_out_metrics(p, pref)  # counted as labels, the interval would be narrower
    assert unkeyed["val_pairs"] == 20 and unkeyed["val_accuracy_ci95"][0] > 0.58
