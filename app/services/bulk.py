"""Projects of team size written in bulk, for the benchmarks (scripts/bench/labeling.py)."""

from __future__ import annotations

from app.config import Studio
from db import repo
from db.engine import refresh_statistics, session_scope


def synthetic_text_project(studio: Studio, name: str, *, pairs: int, labels: int, annotators: int = 100) -> int:
    """A text project of ``pairs`` pairs and ``labels`` stored answers; its id."""
    with session_scope(studio.engine, write=True) as session:
        project_id = repo.bulk_labeled_text_project(session, name, pairs=pairs, labels=labels, annotators=annotators)
    refresh_statistics(studio.engine)
    return project_id
