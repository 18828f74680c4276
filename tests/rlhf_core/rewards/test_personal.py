"""The two-tower personal reward model (rlhf_core/rewards/personal.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.personal import PersonalConfig, PersonalRewardModel, surface_features


def _team(rng: np.random.Generator, n: int = 300, d: int = 6):
    """Items with d features; 'up' prefers a high x0, 'down' a low x0, 'side' a high x1."""
    x = rng.normal(size=(400, d)).astype(np.float32)
    taste = {"up": np.eye(d)[0], "down": -np.eye(d)[0], "side": np.eye(d)[1]}
    a, b = rng.integers(400, size=n), rng.integers(400, size=n)
    who = rng.choice(["up", "down"], size=n)
    pref = np.array([float(x[i] @ taste[u] > x[j] @ taste[u]) for i, j, u in zip(a, b, who, strict=True)])
    return x, taste, a, b, who, pref


def _accuracy(model, x, taste, name, rng, who=None):
    a, b = rng.integers(400, size=500), rng.integers(400, size=500)
    truth = (x[a] @ taste[name]) > (x[b] @ taste[name])
    guess = model.predict_pref(x[a], x[b], [who or name] * 500) > 0.5
    return float(np.mean(guess == truth))


def test_opposite_tastes_are_learned_per_annotator_where_a_pooled_model_is_at_chance():
    rng = np.random.default_rng(0)
    x, taste, a, b, who, pref = _team(rng)
    personal = PersonalRewardModel(x.shape[1], PersonalConfig(rank=2))
    personal.fit(x[a], x[b], list(who), pref)
    pooled = PersonalRewardModel(x.shape[1], PersonalConfig(rank=2))
    pooled.fit(x[a], x[b], ["all"] * len(who), pref)
    for name in ("up", "down"):
        assert _accuracy(personal, x, taste, name, rng) >= 0.95
        assert 0.3 <= _accuracy(pooled, x, taste, name, rng, who="all") <= 0.7
    # the annotator changes the ranking, not only the level: opposite orders of the same items
    up, down = personal.scores(x, "up"), personal.scores(x, "down")
    assert np.corrcoef(up, down)[0, 1] < -0.9


def test_a_new_annotator_is_fitted_from_ten_labels_and_nobody_else_changes():
    rng = np.random.default_rng(1)
    x, taste, a, b, who, pref = _team(rng)
    model = PersonalRewardModel(x.shape[1], PersonalConfig(rank=2))
    model.fit(x[a], x[b], list(who), pref)
    before = {name: model.scores(x, name) for name in ("up", "down", None)}
    na, nb = rng.integers(400, size=10), rng.integers(400, size=10)
    model.add_annotator("newbie", x[na], x[nb], (x[na, 0] < x[nb, 0]).astype(float))  # a 'down' person
    assert model.annotators == ["down", "up", "newbie"]
    assert _accuracy(model, x, {"newbie": taste["down"]}, "newbie", rng) >= 0.9
    for name, scores in before.items():
        np.testing.assert_array_equal(model.scores(x, name), scores)


def test_saved_models_score_the_same_after_loading(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 12)).astype(np.float32)
    model = PersonalRewardModel(12, PersonalConfig(rank=3, components=4, steps=20), passthrough=2)
    a, b = rng.integers(50, size=40), rng.integers(50, size=40)
    model.fit(x[a], x[b], ["p", "q"] * 20, (x[a, 0] > x[b, 0]).astype(float))
    model.meta = {"project_kind": "text"}
    model.save(tmp_path / "m")
    loaded = PersonalRewardModel.load(tmp_path / "m")
    assert loaded.annotators == ["p", "q"] and loaded.meta == {"project_kind": "text"}
    assert loaded.basis.shape == (4, 10)  # 4 components of the 10 leading features, 2 passed through
    for who in ("p", "q", None):
        np.testing.assert_allclose(loaded.scores(x, who), model.scores(x, who), rtol=1e-6)
    # a model saved by an older version, with a setting this one no longer has, still loads
    saved = json.loads((tmp_path / "m" / "personal.json").read_text())
    saved["config"]["new_user_l2"] = 0.05
    (tmp_path / "m" / "personal.json").write_text(json.dumps(saved))
    np.testing.assert_allclose(PersonalRewardModel.load(tmp_path / "m").scores(x, "p"), model.scores(x, "p"), rtol=1e-6)


def test_bad_inputs_say_what_is_wrong():
    model = PersonalRewardModel(4)
    with pytest.raises(InvalidInputError, match="same, non-zero length"):
        model.fit(np.zeros((3, 4)), np.zeros((2, 4)), ["a"] * 3, np.ones(3))
    with pytest.raises(InvalidInputError, match="before adding"):
        model.add_annotator("x", np.zeros((2, 4)), np.zeros((2, 4)), np.ones(2))
    with pytest.raises(InvalidInputError, match=r"\(N, 4\)"):
        model.scores(np.zeros((2, 5)))
    with pytest.raises(InvalidInputError):
        PersonalConfig(rank=0)
    with pytest.raises(InvalidInputError, match="new_user_prior non-negative"):
        PersonalConfig(new_user_prior=-1.0)


def test_surface_features_measure_length_and_register():
    short, long_ = surface_features("Fine."), surface_features("It is fine. It works. I like it a lot.")
    assert long_[0] > short[0] and long_[2] == 3
    assert surface_features("It's great!!")[3] > 0 and surface_features("It's great!!")[4] == 0.5
