"""Use case: add pairs to a project, at random or where the reward model is least sure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.config import Studio
from app.services.clip_data import project_data
from app.services.episodes import render_pair_clips
from app.services.model_registry import StageProgress, TrainingError, active_model
from db import repo
from db.engine import session_scope
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.queries import disagreement_pairs, random_pairs

METHODS = ("random", "disagreement")


@dataclass(frozen=True)
class QueriesResult:
    """Pairs added."""

    added: int
    method: str
    top_score: float | None


def add_queries(
    studio: Studio,
    project_name: str,
    method: str,
    n: int,
    *,
    seed: int | None = None,
    oversample: int = 10,
    workers: int = 2,
    on_progress: StageProgress | None = None,
) -> QueriesResult:
    """Add up to ``n`` new pairs of existing segments; their clips are rendered first.

    ``disagreement`` keeps the ``n`` most disputed of ``oversample * n`` random candidates
    under the active model and gives them that score as priority, so they are served first.
    """
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; use one of: {', '.join(METHODS)}")
    if n < 1:
        raise InvalidInputError(f"-n must be at least 1, got {n}")
    progress = on_progress or (lambda stage, done, total: None)
    rng = np.random.default_rng(seed)
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        existing = repo.existing_pairs(session, project.id)
    data = project_data(studio, project)
    exclude = {
        tuple(sorted((int(r[0]), int(r[1]))))
        for r in zip(data.rows([a for a, _ in existing]), data.rows([b for _, b in existing]), strict=True)
    }
    if method == "random":
        pairs, scores = random_pairs(data.segments.count, n, rng, exclude), None  # type: ignore[arg-type]
    else:
        found = active_model(studio, project.id)
        if found is None:
            raise TrainingError("disagreement needs a trained reward model: run `rlhf train-reward` first")
        if found[0].kind == "personal":
            raise TrainingError(
                "disagreement pairs come from a pooled model's ensemble; the active model is personal: "
                "add random pairs (--method random) or activate an ensemble version"
            )
        pairs, scores = disagreement_pairs(found[1], data.segments, n, rng, oversample=oversample, exclude=exclude)  # type: ignore[arg-type]
    if not pairs:
        return QueriesResult(0, method, None)
    ids = [(int(data.item_ids[i]), int(data.item_ids[j])) for i, j in pairs]
    with session_scope(studio.engine) as session:
        items = repo.items_by_id(session, [x for pair in ids for x in pair])
    fps = float(project.config.get("fps", 10))
    clip_pairs = [(items[a].clip_file or "", items[b].clip_file or "") for a, b in ids]
    render_pair_clips(studio, clip_pairs, fps, workers, progress)
    with session_scope(studio.engine, write=True) as session:  # pairs added meanwhile are skipped
        new = repo.add_queries(session, project.id, ids, method, None if scores is None else [float(x) for x in scores])
    top = float(scores[0]) if scores is not None and len(scores) else None
    return QueriesResult(len(new), method, top)
