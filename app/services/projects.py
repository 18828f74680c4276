"""Use cases about projects as a whole: listing them with their counts."""

from __future__ import annotations

from typing import Any

from app.config import Studio
from db import repo
from db.engine import session_scope


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
