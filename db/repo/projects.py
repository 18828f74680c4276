"""Projects, their annotators, items and what they hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import names
from db.errors import NotFoundError
from db.models import (
    Annotator,
    Item,
    Project,
    ProjectKind,
    Trajectory,
)


def get_project(session: Session, name: str) -> Project:
    """The project called ``name``; NotFoundError names the ones that exist.

    An invalid name (empty, too long, control characters) is an InvalidNameError.
    """
    project = find_project(session, name)
    if project is None:
        existing = session.scalars(select(Project.name).order_by(Project.name)).all()
        known = ", ".join(existing) if existing else "none yet; run `rlhf demo` to create one"
        raise NotFoundError(f"no project named {name!r} (projects: {known})")
    return project


def find_project(session: Session, name: str) -> Project | None:
    """The project called ``name``, or None (InvalidNameError for a name no project can have).

    A name is looked up as given first: a project stored before names were normalised (e.g.
    with a trailing space) stays reachable under its own name, and never under a neighbour's.
    """
    exact = session.scalar(select(Project).where(Project.name == name)) if isinstance(name, str) else None
    if exact is not None:
        return exact
    return session.scalar(select(Project).where(Project.name == names.project_name(name)))


def list_projects(session: Session) -> list[Project]:
    """All projects, oldest first."""
    return list(session.scalars(select(Project).order_by(Project.id)))


def get_or_create_annotator(session: Session, name: str, role: str = "annotator") -> Annotator:
    """The annotator called ``name``, created on first use.

    The name must be valid (:mod:`db.names`); the studio's own names (``import``,
    ``teacher:*``) are taken only with a role other than ``annotator``.
    """
    if role == "annotator":  # a person never takes the studio's own names, not even existing ones
        names.annotator_name(name)
    annotator = session.scalar(select(Annotator).where(Annotator.name == name))  # as stored, old names too
    if annotator is None:
        name = names.annotator_name(name, reserved_ok=role != "annotator")
        annotator = session.scalar(select(Annotator).where(Annotator.name == name))
    if annotator is None:
        try:
            with session.begin_nested():
                annotator = Annotator(name=name, role=role)
                session.add(annotator)
        except IntegrityError:  # created by another process meanwhile
            annotator = session.scalars(select(Annotator).where(Annotator.name == name)).one()
    return annotator


@dataclass(frozen=True)
class ProjectCounts:
    """How much a project holds."""

    trajectories: int
    items: int
    queries: int
    labels: int
    labeled_queries: int


def project_counts(session: Session, project_id: int) -> ProjectCounts:
    """Counts of a project's trajectories, items, queries, labels (skips excluded) and done queries.

    Labels and answered pairs come from the project's counters (kept with every label), so
    progress costs the same at 300 pairs and at a million labels."""

    def count(stmt: object) -> int:
        return int(session.scalar(stmt) or 0)  # type: ignore[call-overload]

    counters = session.execute(  # columns, not the row object: the counters move in SQL, behind the ORM
        select(Project.pair_count, Project.answer_count, Project.answered_pairs).where(Project.id == project_id)
    ).first()
    if counters is None:
        raise NotFoundError(f"no project with id {project_id}")
    return ProjectCounts(
        trajectories=count(select(func.count(Trajectory.id)).where(Trajectory.project_id == project_id)),
        items=count(select(func.count(Item.id)).where(Item.project_id == project_id)),
        queries=int(counters.pair_count),
        labels=int(counters.answer_count),
        labeled_queries=int(counters.answered_pairs),
    )


def items_by_id(session: Session, ids: list[int]) -> dict[int, Item]:
    """Items by id, one query."""
    return {item.id: item for item in session.scalars(select(Item).where(Item.id.in_(ids)))}


def project_items(session: Session, project_id: int) -> list[tuple[Item, Trajectory]]:
    """A trajectory project's items with their trajectories, by item id."""
    rows = session.execute(
        select(Item, Trajectory)
        .join(Trajectory, Trajectory.id == Item.trajectory_id)
        .where(Item.project_id == project_id)
        .order_by(Item.id)
    )
    return [(item, traj) for item, traj in rows]


def create_project(
    session: Session, *, name: str, kind: ProjectKind, env_id: str | None, config: dict[str, Any], guidelines: str
) -> Project:
    """A new project (the name must be free: check with :func:`find_project` in the same transaction)."""
    project = Project(name=name, kind=kind, env_id=env_id, config=config, guidelines=guidelines)
    session.add(project)
    session.flush()
    return project


@dataclass(frozen=True)
class NewSegment:
    """A segment of a new trajectory: an item to compare, with its rendered frames' file."""

    start: int
    length: int
    clip_file: str
    """Frames file, relative to the data folder."""
    true_return: float


@dataclass(frozen=True)
class NewTrajectory:
    """A recorded episode to add to a project, with the segments cut from it."""

    file: str
    """Episode file, relative to the data folder."""
    length: int
    source_policy: str
    seed: int
    true_return: float
    terminated: bool
    segments: tuple[NewSegment, ...]


def add_trajectories(session: Session, project_id: int, trajectories: list[NewTrajectory]) -> list[list[int]]:
    """Add episodes and their segment items; the new item ids, per trajectory, in segment order."""
    ids: list[list[int]] = []
    for new in trajectories:
        row = Trajectory(
            project_id=project_id,
            file=new.file,
            length=new.length,
            source_policy=new.source_policy,
            seed=new.seed,
            true_return=new.true_return,
            terminated=new.terminated,
        )
        session.add(row)
        session.flush()
        items = [
            Item(
                project_id=project_id,
                trajectory_id=row.id,
                start=s.start,
                length=s.length,
                clip_file=s.clip_file,
                true_return=s.true_return,
            )
            for s in new.segments
        ]
        session.add_all(items)
        session.flush()
        ids.append([item.id for item in items])
    return ids


def add_text_items(session: Session, project_id: int, responses: list[tuple[str, str]]) -> list[int]:
    """Add a text project's (prompt, response) items in the order given; their ids."""
    items = [Item(project_id=project_id, prompt=prompt, text=text) for prompt, text in responses]
    session.add_all(items)
    session.flush()
    return [item.id for item in items]


def set_project_config(session: Session, project_id: int, config: dict[str, Any]) -> None:
    """Replace a project's settings (``Project.config``)."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFoundError(f"no project with id {project_id}")
    project.config = dict(config)


def set_labels_per_query(session: Session, project_id: int, labels_per_query: int) -> None:
    """How many distinct annotators answer each pair of a project."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFoundError(f"no project with id {project_id}")
    project.labels_per_query = int(labels_per_query)


def annotator_names(session: Session, ids: list[int]) -> dict[int, str]:
    """Annotators' names by id."""
    return {int(i): n for i, n in session.execute(select(Annotator.id, Annotator.name).where(Annotator.id.in_(ids)))}
