"""The reward kinds' catalogue and how a model's metrics read, shared by the CLI and the Train page."""

from __future__ import annotations

import pytest

from app.services import reward_kinds
from rlhf_core.errors import InvalidInputError


def test_each_project_is_offered_the_kinds_it_can_train_its_default_first():
    assert list(reward_kinds.kinds_for(text=False, pixels=True)) == ["ensemble", "bt", "cnn-lora", "personal"]
    assert list(reward_kinds.kinds_for(text=False, pixels=False)) == ["ensemble", "bt", "personal"]
    assert list(reward_kinds.kinds_for(text=True, pixels=False)) == ["text-lora", "personal"]
    assert reward_kinds.default_kind(text=False) == "ensemble" and reward_kinds.default_kind(text=True) == "text-lora"


def test_options_of_another_kind_are_refused_naming_the_kinds_that_take_them():
    reward_kinds.check_options("ensemble", {"members": 3, "epochs": 5})  # accepted
    with pytest.raises(
        InvalidInputError,
        match=r"^--members and --noise-prob apply to --kind ensemble only; "
        r"--rank applies to --kind text-lora and personal only, not to --kind bt$",
    ):
        reward_kinds.check_options("bt", {"members": 3, "noise_prob": 0.1, "rank": 4})
    with pytest.raises(InvalidInputError, match="unknown reward model kind 'svm'"):
        reward_kinds.check_options("svm", {})


def test_headlines_say_too_few_pairs_below_the_minimum_and_the_interval_above_it():
    few = {
        "val_accuracy": 1.0,
        "val_pairs": 5,
        "val_accuracy_ci95": [0.57, 1.0],
        "log_loss": 0.52,
        "n_labels": 40,
        "spearman_teacher": 0.71,
        "teacher_reward": "true",
        "fit_seconds": 2.2,
    }
    [accuracy, loss, spearman, labels, fit] = reward_kinds.headlines("ensemble", few)
    assert (accuracy.value, accuracy.detail) == ("too few pairs", None)
    assert (loss.value, spearman.label, spearman.value, labels.value, fit.value) == (
        "0.520",
        "Spearman vs true return",
        "0.710",
        "40",
        "2.2 s",
    )
    enough = {**few, "val_pairs": 40, "val_accuracy": 0.925, "val_accuracy_ci95": [0.8, 0.97]}
    assert reward_kinds.headlines("ensemble", enough)[0] == reward_kinds.Headline(
        "Held-out accuracy", "0.925", "95%: 0.80-0.97"
    )
    old = {k: v for k, v in enough.items() if k != "spearman_teacher"} | {"spearman_true": 0.5}  # saved before 0.2
    assert reward_kinds.headlines("bt", old)[2].value == "0.500"
    assert reward_kinds.summary(3, "ensemble", enough) == (
        "version 3 (ensemble) is active: held-out accuracy 0.925 on 40 held-out pairs (95% interval 0.80-0.97), "
        "log loss 0.520, spearman vs true return 0.710, 40 labels, fit 2.2 s"
    )


def test_a_text_model_reports_its_trainable_share_and_speed():
    m = {
        "val_accuracy": 1.0,
        "val_pairs": 32,
        "val_accuracy_ci95": [0.89, 1.0],
        "log_loss": 0.1,
        "n_labels": 159,
        "trainable_fraction": 0.0052,
        "backbone": "minilm",
        "fit_seconds": 29.0,
        "pairs_per_s": 21.4,
    }
    heads = reward_kinds.headlines("text-lora", m)
    assert heads[2] == reward_kinds.Headline("Trainable", "0.52% of minilm")
    assert heads[4] == reward_kinds.Headline("Fit", "29.0 s", "21.4 pairs/s")
