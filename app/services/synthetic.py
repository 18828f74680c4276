"""Use case: scripted teachers label pending pairs, as the annotator ``teacher:NAME``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.config import Studio
from app.services.rewards import project_data
from db import names, repo
from db.engine import session_scope
from db.models import Choice
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.teachers import judge, return_scale, teacher


@dataclass(frozen=True)
class SyntheticResult:
    """What a teacher answered."""

    annotator: str
    labeled: int
    equal: int
    skipped: int


def label_synthetic(
    studio: Studio, project_name: str, teacher_name: str, n: int, *, seed: int = 0, **overrides: float
) -> SyntheticResult:
    """Label up to ``n`` pending pairs with the named B-Pref teacher, in one transaction."""
    try:
        config = teacher(teacher_name, **overrides)
    except TypeError as exc:
        raise InvalidInputError(f"unknown teacher parameter: {exc}") from exc
    if n < 1:
        raise InvalidInputError(f"-n must be at least 1, got {n}")
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
    data = project_data(studio, project)
    scale = return_scale(data.teacher_returns)
    rng = np.random.default_rng(seed)
    name = f"{names.TEACHER_PREFIX}{teacher_name}"
    with session_scope(studio.engine, write=True) as session:
        annotator = repo.get_or_create_annotator(session, name, role="teacher")
        queries = repo.pending_queries(session, project.id, annotator.id, n)
        if not queries:
            return SyntheticResult(name, 0, 0, 0)
        rows_a = data.rows([q.item_a_id for q in queries])
        rows_b = data.rows([q.item_b_id for q in queries])
        prefs = judge(config, data.teacher_rewards[rows_a], data.teacher_rewards[rows_b], scale=scale, rng=rng)
        for query, pref in zip(queries, prefs, strict=True):
            choice = (
                Choice.skip
                if np.isnan(pref)
                else Choice.equal
                if pref == 0.5
                else Choice.left
                if pref == 1
                else Choice.right
            )
            repo.record_label(session, query.id, annotator.id, choice, swapped=False)
    return SyntheticResult(name, len(queries), int((prefs == 0.5).sum()), int(np.isnan(prefs).sum()))
