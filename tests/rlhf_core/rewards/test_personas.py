"""Scripted personas (rlhf_core/rewards/personas.py): tastes that conflict as designed."""

from __future__ import annotations

import gymnasium as gym
import minigrid  # noqa: F401  (registers the environments)
import numpy as np
import pytest

from rlhf_core.demo_data.text import styled_responses
from rlhf_core.envs.behaviours import minigrid_wall_contact
from rlhf_core.envs.episodes import Episode
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.personas import (
    casual_markers,
    persona_reward_fn,
    text_persona_scores,
    word_count,
)


def test_text_markers_count_what_they_say():
    assert word_count("It's a really good phone, isn't it?") == 7
    assert casual_markers("Honestly, it's super good!!") == 5  # honestly, it's, super, !, !
    assert casual_markers("It is a very good phone.") == 0


def test_length_and_register_personas_disagree_on_about_half_of_the_pairs():
    rng = np.random.default_rng(0)
    items = styled_responses(800, rng)
    prompts, responses = [p for p, _ in items], [r for _, r in items]
    s = {n: text_persona_scores(n, prompts, responses) for n in ("concise", "detailed", "formal", "casual")}
    a, b = rng.integers(800, size=3000), rng.integers(800, size=3000)

    def disagree(x: str, y: str) -> float:
        both = (s[x][a] != s[x][b]) & (s[y][a] != s[y][b])
        return float(np.mean((s[x][a] > s[x][b])[both] != (s[y][a] > s[y][b])[both]))

    assert disagree("concise", "detailed") == 1.0
    assert disagree("formal", "casual") == 1.0
    assert 0.4 <= disagree("concise", "formal") <= 0.6


def test_unknown_personas_are_refused_with_the_known_ones():
    with pytest.raises(InvalidInputError, match="concise"):
        text_persona_scores("grumpy", ["p"], ["r"])
    with pytest.raises(InvalidInputError, match="fast, walls"):
        persona_reward_fn("centered", "MiniGrid-Empty-5x5-v0")


def test_minigrid_wall_contact_and_the_walls_persona():
    env = gym.make("MiniGrid-Empty-6x6-v0")
    env.reset(seed=0)
    env.unwrapped.agent_pos = (1, 1)  # a corner cell of the 4x4 room
    assert minigrid_wall_contact(env) == 1.0
    env.unwrapped.agent_pos = (2, 2)
    assert minigrid_wall_contact(env) == 0.0
    contact = np.array([1, 0, 0, 1, 1], np.float32)
    steps = (np.zeros((5, 3)), np.zeros(4, np.int64), np.zeros(4, np.float32), False)
    ep = Episode(*steps, extras={"wall_contact": contact})
    np.testing.assert_array_equal(persona_reward_fn("walls", "MiniGrid-Empty-6x6-v0")(ep, 0, 4), [0, 0, 1, 1])
    old = Episode(*steps)
    with pytest.raises(InvalidInputError, match="re-create"):
        persona_reward_fn("walls", "MiniGrid-Empty-6x6-v0")(old, 0, 4)


def test_cartpole_personas_judge_position_and_angle():
    obs = np.array([[0.0, 0, 0.0, 0], [0.5, 0, 0.01, 0], [1.0, 0, 0.2, 0]], np.float32)
    ep = Episode(obs, np.zeros(2, np.int64), np.ones(2, np.float32), False)
    np.testing.assert_allclose(persona_reward_fn("centered", "CartPole-v1")(ep, 0, 2), [-0.5, -1.0])
    np.testing.assert_allclose(persona_reward_fn("upright", "CartPole-v1")(ep, 0, 2), [-0.01, -0.2], rtol=1e-5)
