"""Use cases about projects as a whole: finding one, listing them with their counts."""

from __future__ import annotations

from typing import Any

from app.config import Studio
from db import repo
from db.engine import session_scope
from db.models import Project


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
