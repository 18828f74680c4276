"""Use case: the autopilot's settings and whether a round is due (rounds: :mod:`app.services.loop`).

Kept apart from the rounds, and free of torch and the environments, because the labeling
page asks :func:`autopilot_due` after every label it stores.
"""

from __future__ import annotations

from app.config import Studio
from db import repo
from db.engine import session_scope
from db.models import Project, ProjectKind
from rlhf_core.errors import InvalidInputError

#: Labels between autopilot rounds when a user switches it on without choosing.
DEFAULT_EVERY = 50
#: The project config key holding the autopilot's settings.
AUTOPILOT_KEY = "autopilot"


def autopilot_every(project: Project) -> int | None:
    """Labels between the project's autopilot rounds; None when the autopilot is off."""
    every = (project.config or {}).get(AUTOPILOT_KEY)
    return int(every) if every else None


def set_autopilot(studio: Studio, project_name: str, every: int | None) -> None:
    """Switch the project's autopilot on (a round every ``every`` new labels) or off (None)."""
    if every is not None and every < 1:
        raise InvalidInputError(f"the autopilot needs at least 1 label per round, got {every}")
    with session_scope(studio.engine, write=True) as session:
        project = repo.get_project(session, project_name)
        if project.kind is not ProjectKind.trajectory:
            raise InvalidInputError("the autopilot trains policies: it runs on clip projects")
        config = dict(project.config or {})
        if every is None:
            config.pop(AUTOPILOT_KEY, None)
        else:
            config[AUTOPILOT_KEY] = int(every)
        repo.set_project_config(session, project.id, config)


def labels_since_round(studio: Studio, project_name: str) -> tuple[int, int | None]:
    """(labels that prefer a side given since the active reward model was trained, the
    autopilot's interval or None). Counted by time, not as the labels now minus the model's
    label count: rulings (one per pair) and left-out annotators make that count differ for good."""
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        active = repo.active_reward_model(session, project.id)
        since = repo.comparison_count(session, project.id, since=None if active is None else active.created_at)
        return since, autopilot_every(project)


def autopilot_due(studio: Studio, project_name: str) -> bool:
    """Is the autopilot on, and have enough labels arrived since the last round?"""
    since, every = labels_since_round(studio, project_name)
    return every is not None and since >= every
