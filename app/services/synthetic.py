"""Use case: scripted annotators label pending pairs.

Two sorts: the B-Pref teachers (``oracle``, ``stochastic``, ``myopic``, ``mistake``,
``skip``, ``equal``), who judge clip projects by the task's reward, and the personas of
:mod:`rlhf_core.rewards.personas`, who judge by their own tastes (text: ``concise``,
``detailed``, ``formal``, ``casual``; MiniGrid: ``fast``, ``walls``; CartPole:
``centered``, ``upright``). ``annotator`` names who the labels are stored under (default
``teacher:NAME``), so several scripted people can make a team that disagrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.config import Studio
from app.services.clip_data import project_data, segment_rewards
from db import names, repo
from db.engine import session_scope
from db.models import Choice, ProjectKind
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.personas import TEXT_PERSONAS, persona_names, persona_reward_fn, text_persona_scores
from rlhf_core.rewards.teachers import TEACHERS, TeacherConfig, judge, return_scale, teacher


@dataclass(frozen=True)
class SyntheticResult:
    """What a teacher answered."""

    annotator: str
    labeled: int
    equal: int
    skipped: int


def scripted_names() -> list[str]:
    """Every scripted teacher and persona, B-Pref's first."""
    return [*TEACHERS, *persona_names()]


def _choice(pref: float) -> Choice:
    if np.isnan(pref):
        return Choice.skip
    if pref == 0.5:
        return Choice.equal
    return Choice.left if pref == 1 else Choice.right


def label_synthetic(
    studio: Studio,
    project_name: str,
    teacher_name: str,
    n: int,
    *,
    seed: int = 0,
    annotator: str | None = None,
    **overrides: float,
) -> SyntheticResult:
    """Label up to ``n`` pending pairs with the named teacher or persona, in one transaction."""
    persona = teacher_name not in TEACHERS
    if persona and teacher_name not in persona_names():
        raise InvalidInputError(f"unknown teacher {teacher_name!r}; use one of: {', '.join(scripted_names())}")
    try:
        config = TeacherConfig(**overrides) if persona else teacher(teacher_name, **overrides)
    except TypeError as exc:
        raise InvalidInputError(f"unknown teacher parameter: {exc}") from exc
    if n < 1:
        raise InvalidInputError(f"-n must be at least 1, got {n}")
    name = annotator if annotator is not None else f"{names.TEACHER_PREFIX}{teacher_name}"
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
    text = project.kind is ProjectKind.text
    if text and not (persona and teacher_name in TEXT_PERSONAS):
        raise InvalidInputError(
            f"a text project is labeled by the text personas ({', '.join(TEXT_PERSONAS)}), not by {teacher_name!r}"
        )
    rng = np.random.default_rng(seed)
    with session_scope(studio.engine, write=True) as session:
        who = repo.get_or_create_annotator(session, name, role="teacher")
        if who.password_hash is not None:
            raise InvalidInputError(
                f"{name!r} is a person's account; scripted labels go under another name (--annotator)"
            )
        queries = repo.pending_queries(session, project.id, who.id, n)
        if not queries:
            return SyntheticResult(who.name, 0, 0, 0)
        ids_a, ids_b = [q.item_a_id for q in queries], [q.item_b_id for q in queries]
        if text:
            items = repo.items_by_id(session, ids_a + ids_b)
            scores = text_persona_scores(
                teacher_name,
                [items[i].prompt or "" for i in ids_a + ids_b],
                [items[i].text or "" for i in ids_a + ids_b],
            )
            rewards_a, rewards_b = scores[: len(ids_a), None], scores[len(ids_a) :, None]
            scale = return_scale(scores)
        elif persona:
            reward_fn = persona_reward_fn(teacher_name, project.env_id or "")
            rewards_a = segment_rewards(studio, project, ids_a, reward_fn)
            rewards_b = segment_rewards(studio, project, ids_b, reward_fn)
            scale = return_scale(np.concatenate([rewards_a.sum(1), rewards_b.sum(1)]))
        else:
            data = project_data(studio, project)
            scale = return_scale(data.teacher_returns)
            rewards_a, rewards_b = data.teacher_rewards[data.rows(ids_a)], data.teacher_rewards[data.rows(ids_b)]
        prefs = judge(config, rewards_a, rewards_b, scale=scale, rng=rng)
        for query, pref in zip(queries, prefs, strict=True):
            repo.record_label(session, query.id, who.id, _choice(float(pref)), swapped=False)
    return SyntheticResult(who.name, len(queries), int((prefs == 0.5).sum()), int(np.isnan(prefs).sum()))
