"""Use cases about projects as a whole: finding one, listing them with their counts."""

from __future__ import annotations

from typing import Any

from app.config import Studio
from db import repo
from db.engine import session_scope
from db.models import Project
from rlhf_core.errors import StudioError


def project_summaries(studio: Studio) -> list[dict[str, Any]]:
    """Name, kind, environment and counts of every project, oldest first."""
    rows = []
    with session_scope(studio.engine) as session:
        for project in repo.list_projects(session):
            counts = repo.project_counts(session, project.id)
            rows.append(
                {
                    "name": project.name,
                    "kind": project.kind.value,
                    "env_id": project.env_id,
                    "trajectories": counts.trajectories,
                    "items": counts.items,
                    "queries": counts.queries,
                    "labels": counts.labels,
                    "labeled_queries": counts.labeled_queries,
                    "labels_per_query": project.labels_per_query,
                    "gold_rate": float((project.config or {}).get("gold_rate", 0.0)),
                }
            )
    return rows


def get_project(studio: Studio, name: str) -> Project:
    """Project ``name`` (a detached row to read); NotFoundError or InvalidNameError say what is wrong."""
    with session_scope(studio.engine) as session:
        return repo.get_project(session, name)


def preference_count(studio: Studio, project_id: int) -> int:
    """How many of a project's labels prefer a side or call it equal (what reward models train on)."""
    with session_scope(studio.engine) as session:
        return repo.comparison_count(session, project_id)


MAX_GOLD_RATE = 0.5
"""Largest share of served pairs that may be gold pairs (the rest must be new work)."""


def update_settings(
    studio: Studio, name: str, *, labels_per_pair: int | None = None, gold_rate: float | None = None
) -> dict[str, Any]:
    """Change how a project is labeled; returns its settings after the change.

    ``labels_per_pair``: distinct annotators per pair (1 or more); pairs already answered by
    more people keep their labels. ``gold_rate``: share of served pairs drawn from its gold
    pairs (0 to :data:`MAX_GOLD_RATE`).
    """
    if labels_per_pair is not None and (isinstance(labels_per_pair, bool) or int(labels_per_pair) < 1):
        raise StudioError(f"labels per pair must be 1 or more, got {labels_per_pair}")
    if gold_rate is not None and not 0.0 <= float(gold_rate) <= MAX_GOLD_RATE:
        raise StudioError(f"the gold rate is a share of pairs from 0 to {MAX_GOLD_RATE}, got {gold_rate}")
    with session_scope(studio.engine, write=True) as session:
        project = repo.get_project(session, name)
        if labels_per_pair is not None:
            repo.set_labels_per_query(session, project.id, int(labels_per_pair))
        if gold_rate is not None:
            repo.set_project_config(session, project.id, {**project.config, "gold_rate": float(gold_rate)})
        return project_settings(project)


def project_settings(project: Project) -> dict[str, Any]:
    """The labeling settings of a project, as shown and printed."""
    return {
        "project": project.name,
        "labels_per_pair": int(project.labels_per_query),
        "gold_rate": float((project.config or {}).get("gold_rate", 0.0)),
    }


def active_kind(studio: Studio, name: str) -> str | None:
    """The kind of a project's active reward model, or None."""
    with session_scope(studio.engine) as session:
        record = repo.active_reward_model(session, repo.get_project(session, name).id)
        return None if record is None else record.kind
