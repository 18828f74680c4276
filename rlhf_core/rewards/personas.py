"""Scripted personas: simulated annotators whose tastes conflict, to try a team's tools on.

A B-Pref teacher (:mod:`rlhf_core.rewards.teachers`) judges by the task's one reward; a
persona judges by its own. Two personas of one pair disagree where their rewards rank the
two sides differently, so a team of them has the structure of real preference data: people
who are each consistent and who do not want the same thing.

Text (any text project; scores of the response):

- ``concise``: fewer words is better; ``detailed``: more words is better;
- ``formal``: fewer casual markers (contractions, slang, exclamation marks, loose openers)
  per word; ``casual``: more of them.

Length and register are independent, so ``concise`` and ``formal`` disagree on about half
of the pairs, while ``concise`` and ``detailed`` disagree on all of them.

Trajectories (per-step rewards, judged like a teacher's: the higher segment return wins):

- MiniGrid ``fast``: progress toward the goal (the oracle's reward); ``walls``: steps spent
  next to a wall (recorded as ``wall_contact`` with each observation);
- CartPole ``centered``: the cart near the middle of the track; ``upright``: the pole near
  vertical.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rlhf_core.envs.episodes import Episode, segment_indices
from rlhf_core.envs.registry import env_family
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.teachers import RewardFn, minigrid_progress_reward

_WORD = re.compile(r"\b\w[\w']*\b")
_CASUAL_MARKERS = re.compile(
    r"\b(?:\w+'(?:s|t|m|d|re|ll|ve)|lol|tbh|ngl|ok so|yeah|honestly|super|totally|awesome|awful|gonna|kinda)\b|!",
    re.IGNORECASE,
)


def word_count(text: str) -> int:
    """Words of a text."""
    return len(_WORD.findall(text))


def casual_markers(text: str) -> int:
    """Contractions, slang, loose openers and exclamation marks in a text."""
    return len(_CASUAL_MARKERS.findall(text))


def casualness(text: str) -> float:
    """Casual markers per word: the register of a text, whatever its length."""
    return casual_markers(text) / max(1, word_count(text))


TextScore = Callable[[str, str], float]

TEXT_PERSONAS: dict[str, TextScore] = {
    "concise": lambda prompt, response: -float(word_count(response)),
    "detailed": lambda prompt, response: float(word_count(response)),
    "formal": lambda prompt, response: -casualness(response),
    "casual": lambda prompt, response: casualness(response),
}


def _state(traj: Episode, name: str) -> np.ndarray:
    values = traj.extras.get(name)
    if values is None:
        raise InvalidInputError(
            f"these episodes have no {name!r} record (made by an older version): re-create the project's "
            "episodes (e.g. `rlhf demo --project NEW`) to label them with this persona"
        )
    return values


def _after_each_step(traj: Episode, start: int, length: int, values: np.ndarray) -> np.ndarray:
    idx, valid = segment_indices(traj.length, start, length)
    return np.where(valid, values[np.minimum(idx + 1, traj.length)], 0.0).astype(np.float32)


def _walls(traj: Episode, start: int, length: int) -> np.ndarray:
    return _after_each_step(traj, start, length, _state(traj, "wall_contact"))


def _cartpole(column: int) -> RewardFn:
    def reward(traj: Episode, start: int, length: int) -> np.ndarray:
        values = -np.abs(traj.obs[:, column]).astype(np.float64)
        # a fallen pole ends the episode: its padding earns the worst value, not 0
        idx, valid = segment_indices(traj.length, start, length)
        out = values[np.minimum(idx + 1, traj.length)]
        return np.where(valid, out, values.min() if len(values) else 0.0).astype(np.float32)

    return reward


TRAJECTORY_PERSONAS: dict[str, dict[str, RewardFn]] = {
    "minigrid": {"fast": minigrid_progress_reward, "walls": _walls},
    "cartpole": {"centered": _cartpole(0), "upright": _cartpole(2)},
}


@dataclass(frozen=True)
class PersonaInfo:
    """A persona, for listings."""

    name: str
    applies_to: str


def personas() -> list[PersonaInfo]:
    """Every persona and what it applies to."""
    out = [PersonaInfo(name, "text projects") for name in TEXT_PERSONAS]
    for family, table in TRAJECTORY_PERSONAS.items():
        out += [PersonaInfo(name, f"{family} projects") for name in table]
    return out


def persona_names() -> list[str]:
    """Every persona's name."""
    return [p.name for p in personas()]


def text_persona_scores(name: str, prompts: list[str], responses: list[str]) -> np.ndarray:
    """A text persona's score of each response (N,)."""
    if name not in TEXT_PERSONAS:
        raise InvalidInputError(f"{name!r} is not a text persona; text projects take: {', '.join(TEXT_PERSONAS)}")
    score = TEXT_PERSONAS[name]
    return np.array([score(p, r) for p, r in zip(prompts, responses, strict=True)], dtype=np.float64)


def persona_reward_fn(name: str, env_id: str) -> RewardFn:
    """A trajectory persona's per-step reward for an environment."""
    table = TRAJECTORY_PERSONAS.get(env_family(env_id), {})
    if name not in table:
        known = ", ".join(table) or "none"
        raise InvalidInputError(f"{name!r} is not a persona of {env_id} (its personas: {known})")
    return table[name]
