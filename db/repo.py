"""Repository functions: every read and write the use cases make.

Each function takes a ``Session`` and never opens, commits or closes one: the caller owns
the unit of work (see ``db.engine.session_scope``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from db import names
from db.errors import NotFoundError
from db.models import (
    Annotator,
    Choice,
    Claim,
    Item,
    Label,
    PolicyRecord,
    Project,
    Query,
    RewardModelRecord,
    Trajectory,
    utcnow,
)

#: How long a served query stays reserved for its annotator (rl-teacher used 2 minutes).
DEFAULT_CLAIM_TTL = timedelta(minutes=10)

#: Choices that count as an answer for completing a query (skips do not).
ANSWERED = (Choice.left, Choice.right, Choice.equal, Choice.cant_tell)


def pref_for(choice: Choice, swapped: bool) -> float | None:
    """P(item A preferred) for an on-screen choice; None when it carries no preference."""
    if choice is Choice.equal:
        return 0.5
    if choice is Choice.left:
        return 0.0 if swapped else 1.0
    if choice is Choice.right:
        return 1.0 if swapped else 0.0
    return None


# --- projects and annotators ----------------------------------------------------------------


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
    """Counts of a project's trajectories, items, queries, labels (skips excluded) and done queries."""

    def count(stmt: object) -> int:
        return int(session.scalar(stmt) or 0)  # type: ignore[call-overload]

    labels = (
        select(func.count(Label.id))
        .join(Query, Query.id == Label.query_id)
        .where(Query.project_id == project_id, Label.choice.in_(ANSWERED))
    )
    labeled = (
        select(func.count(func.distinct(Label.query_id)))
        .join(Query, Query.id == Label.query_id)
        .where(Query.project_id == project_id, Label.choice.in_(ANSWERED))
    )
    return ProjectCounts(
        trajectories=count(select(func.count(Trajectory.id)).where(Trajectory.project_id == project_id)),
        items=count(select(func.count(Item.id)).where(Item.project_id == project_id)),
        queries=count(select(func.count(Query.id)).where(Query.project_id == project_id)),
        labels=count(labels),
        labeled_queries=count(labeled),
    )


# --- serving queries ----------------------------------------------------------------------


@dataclass(frozen=True)
class ServedQuery:
    """A query reserved for one annotator, with the side order to show it in."""

    query_id: int
    item_a_id: int
    item_b_id: int
    swapped: bool
    """Item B is shown on the left."""
    claimed_at: datetime

    @property
    def left_item_id(self) -> int:
        return self.item_b_id if self.swapped else self.item_a_id

    @property
    def right_item_id(self) -> int:
        return self.item_a_id if self.swapped else self.item_b_id


def _served(query: Query, claim: Claim) -> ServedQuery:
    return ServedQuery(query.id, query.item_a_id, query.item_b_id, claim.swapped, claim.claimed_at)


def claim_next_query(
    session: Session,
    project_id: int,
    annotator_id: int,
    *,
    rng: np.random.Generator,
    ttl: timedelta = DEFAULT_CLAIM_TTL,
    exclude: tuple[int, ...] = (),
) -> ServedQuery | None:
    """Reserve the next query for an annotator, or None when nothing is left for them.

    An annotator who already holds a live claim gets that query again (a page reload shows
    the same pair). Otherwise the highest-priority query that this annotator has not
    answered and that still needs labels, counting live claims of others, is claimed. With
    one label per query two annotators are therefore never served the same query at once.
    Call inside a write transaction (``session_scope(write=True)``).
    """
    now = utcnow()
    session.execute(delete(Claim).where(Claim.expires_at < now))
    project = session.get(Project, project_id)
    if project is None:
        raise NotFoundError(f"no project with id {project_id}")

    mine = session.execute(
        select(Query, Claim)
        .join(Claim, Claim.query_id == Query.id)
        .where(Query.project_id == project_id, Claim.annotator_id == annotator_id, Query.id.not_in(exclude))
        .order_by(Claim.claimed_at)
        .limit(1)
    ).first()
    if mine is not None:
        return _served(mine[0], mine[1])

    other_label = aliased(Label)
    answered_count = (
        select(func.count(Label.id))
        .where(Label.query_id == Query.id, Label.choice.in_(ANSWERED))
        .correlate(Query)
        .scalar_subquery()
    )
    claimed_count = (
        select(func.count()).select_from(Claim).where(Claim.query_id == Query.id).correlate(Query).scalar_subquery()
    )
    already_mine = (
        select(other_label.id)
        .where(other_label.query_id == Query.id, other_label.annotator_id == annotator_id)
        .correlate(Query)
        .exists()
    )
    stmt = (
        select(Query)
        .where(
            Query.project_id == project_id,
            ~already_mine,
            answered_count + claimed_count < project.labels_per_query,
            Query.id.not_in(exclude),
        )
        .order_by(Query.priority.desc(), Query.id)
        .limit(1)
    )
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)
    query = session.scalar(stmt)
    if query is None:
        return None
    claim = Claim(
        query_id=query.id,
        annotator_id=annotator_id,
        claimed_at=now,
        expires_at=now + ttl,
        swapped=bool(rng.random() < 0.5),
    )
    session.add(claim)
    session.flush()
    return _served(query, claim)


@dataclass(frozen=True)
class RecordedLabel:
    """The stored label, and whether this call created it (False: it existed already)."""

    label_id: int
    created: bool
    pref: float | None
    choice: Choice
    """The stored answer: the one just given when ``created``, else the earlier one that stands."""


def record_label(
    session: Session,
    query_id: int,
    annotator_id: int,
    choice: Choice,
    *,
    swapped: bool,
    shown_at: datetime | None = None,
) -> RecordedLabel:
    """Store an annotator's answer to a query and release their claim on it.

    Idempotent: a second submit for the same query and annotator (a double click, a retry
    after a network error) returns the existing label instead of adding one.
    """
    existing = session.scalar(select(Label).where(Label.query_id == query_id, Label.annotator_id == annotator_id))
    if existing is not None:
        return RecordedLabel(existing.id, False, existing.pref, existing.choice)
    if session.get(Query, query_id) is None:
        raise NotFoundError(f"no query with id {query_id}; it may have been deleted")
    label = Label(
        query_id=query_id,
        annotator_id=annotator_id,
        choice=choice,
        pref=pref_for(choice, swapped),
        swapped=swapped,
        shown_at=shown_at,
        answered_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(label)
    except IntegrityError:  # the same label arrived through another connection meanwhile
        existing = session.scalars(
            select(Label).where(Label.query_id == query_id, Label.annotator_id == annotator_id)
        ).one()
        return RecordedLabel(existing.id, False, existing.pref, existing.choice)
    session.execute(delete(Claim).where(Claim.query_id == query_id, Claim.annotator_id == annotator_id))
    return RecordedLabel(label.id, True, label.pref, label.choice)


@dataclass(frozen=True)
class UndoneLabel:
    """A label that Undo removed: its query is served again next."""

    query_id: int
    shown_at: datetime | None
    """When its pair was first shown (the person has seen it)."""


def undo_last_label(
    session: Session, project_id: int, annotator_id: int, *, ttl: timedelta = DEFAULT_CLAIM_TTL
) -> UndoneLabel | None:
    """Delete the annotator's most recent label in a project and serve that query again next.

    Returns what was removed, or None when the annotator has no label to undo.
    """
    label = session.scalar(
        select(Label)
        .join(Query, Query.id == Label.query_id)
        .where(Query.project_id == project_id, Label.annotator_id == annotator_id)
        .order_by(Label.answered_at.desc(), Label.id.desc())
        .limit(1)
    )
    if label is None:
        return None
    query_id, swapped, shown_at = label.query_id, label.swapped, label.shown_at
    session.delete(label)
    session.execute(
        delete(Claim).where(
            Claim.annotator_id == annotator_id,
            Claim.query_id.in_(select(Query.id).where(Query.project_id == project_id)),
        )
    )
    now = utcnow()
    # The claim goes back with an older timestamp so it is served before any other claim.
    session.add(
        Claim(
            query_id=query_id,
            annotator_id=annotator_id,
            claimed_at=now - timedelta(days=1),
            expires_at=now + ttl,
            swapped=swapped,
        )
    )
    session.flush()
    return UndoneLabel(query_id, as_utc(shown_at))


@dataclass(frozen=True)
class AnnotatorProgress:
    """Where one annotator stands in a project."""

    total_queries: int
    labeled_queries: int
    """Queries with at least one answer from anyone."""
    my_labels: int
    labels_per_minute: float
    """This annotator's pace over their last 10 minutes of labeling."""


def annotator_progress(session: Session, project_id: int, annotator_id: int) -> AnnotatorProgress:
    """Progress of a project and the pace of one annotator in it."""
    counts = project_counts(session, project_id)
    mine = (
        select(Label.answered_at)
        .join(Query, Query.id == Label.query_id)
        .where(Query.project_id == project_id, Label.annotator_id == annotator_id, Label.choice.in_(ANSWERED))
    )
    my_labels = int(session.scalar(select(func.count()).select_from(mine.subquery())) or 0)
    since = utcnow() - timedelta(minutes=10)
    recent = sorted(as_utc(t) for t in session.scalars(mine.where(Label.answered_at >= since)))
    rate = 0.0
    if len(recent) >= 2:
        span_min = max((recent[-1] - recent[0]).total_seconds() / 60, 1 / 60)
        rate = (len(recent) - 1) / span_min
    return AnnotatorProgress(counts.queries, counts.labeled_queries, my_labels, rate)


def as_utc(t: datetime | None) -> datetime | None:
    """A datetime read back from the store, made timezone-aware.

    SQLite returns naive datetimes even for timezone=True columns; they were stored in UTC.
    """
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def items_by_id(session: Session, ids: list[int]) -> dict[int, Item]:
    """Items by id, one query."""
    return {item.id: item for item in session.scalars(select(Item).where(Item.id.in_(ids)))}


def query_with_items(session: Session, query_id: int) -> tuple[Query, Item, Item]:
    """A query and its two items."""
    a, b = aliased(Item), aliased(Item)
    row = session.execute(
        select(Query, a, b)
        .join(a, a.id == Query.item_a_id)
        .join(b, b.id == Query.item_b_id)
        .where(Query.id == query_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no query with id {query_id}")
    return row[0], row[1], row[2]


def existing_pairs(session: Session, project_id: int) -> set[tuple[int, int]]:
    """The (item_a_id, item_b_id) pairs a project already asks about."""
    rows = session.execute(select(Query.item_a_id, Query.item_b_id).where(Query.project_id == project_id))
    return {(int(a), int(b)) for a, b in rows}


# --- text projects ----------------------------------------------------------------------------


def text_item_ids(session: Session, project_id: int) -> dict[tuple[str, str], int]:
    """A text project's items by (prompt, response text): what an import deduplicates against."""
    rows = session.execute(
        select(Item.prompt, Item.text, Item.id).where(
            Item.project_id == project_id, Item.prompt.is_not(None), Item.text.is_not(None)
        )
    )
    return {(str(prompt), str(text)): int(item_id) for prompt, text, item_id in rows}


def query_ids_by_pair(session: Session, project_id: int) -> dict[tuple[int, int], int]:
    """A project's query ids by their (item_a_id, item_b_id) pair."""
    rows = session.execute(select(Query.item_a_id, Query.item_b_id, Query.id).where(Query.project_id == project_id))
    return {(int(a), int(b)): int(q) for a, b, q in rows}


def labels_by_annotator(session: Session, project_id: int, annotator_id: int) -> dict[int, float | None]:
    """One annotator's labels in a project: pref by query id."""
    rows = session.execute(
        select(Label.query_id, Label.pref)
        .join(Query, Query.id == Label.query_id)
        .where(Query.project_id == project_id, Label.annotator_id == annotator_id)
    )
    return {int(q): (None if p is None else float(p)) for q, p in rows}


@dataclass(frozen=True)
class TextJudgement:
    """One answer about a pair of responses to one prompt (skips excluded)."""

    label_id: int
    prompt: str
    text_a: str
    text_b: str
    choice: Choice
    pref: float | None
    """P(response A preferred); None for can't tell."""
    annotator: str


def text_judgements(session: Session, project_id: int) -> list[TextJudgement]:
    """Every answered label of a text project with its prompt and both responses, oldest first."""
    a, b = aliased(Item), aliased(Item)
    rows = session.execute(
        select(Label.id, a.prompt, a.text, b.text, Label.choice, Label.pref, Annotator.name)
        .join(Query, Query.id == Label.query_id)
        .join(a, a.id == Query.item_a_id)
        .join(b, b.id == Query.item_b_id)
        .join(Annotator, Annotator.id == Label.annotator_id)
        .where(Query.project_id == project_id, Label.choice.in_(ANSWERED))
        .order_by(Label.id)
    )
    return [
        TextJudgement(int(i), str(p), str(ta), str(tb), Choice(c), None if pref is None else float(pref), str(n))
        for i, p, ta, tb, c, pref, n in rows
    ]


# --- preferences, reward models and jobs ----------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One label that carries a preference: P(item A preferred) = pref."""

    label_id: int
    item_a_id: int
    item_b_id: int
    pref: float


def comparisons(session: Session, project_id: int) -> list[Comparison]:
    """Every label of a project with a preference (left, right, equal), oldest first."""
    rows = session.execute(
        select(Label.id, Query.item_a_id, Query.item_b_id, Label.pref)
        .join(Query, Query.id == Label.query_id)
        .where(Query.project_id == project_id, Label.pref.is_not(None))
        .order_by(Label.id)
    )
    return [Comparison(int(i), int(a), int(b), float(p)) for i, a, b, p in rows]


def comparison_count(session: Session, project_id: int) -> int:
    """How many labels of a project carry a preference (what :func:`comparisons` lists)."""
    return int(
        session.scalar(
            select(func.count(Label.id))
            .join(Query, Query.id == Label.query_id)
            .where(Query.project_id == project_id, Label.pref.is_not(None))
        )
        or 0
    )


def project_items(session: Session, project_id: int) -> list[tuple[Item, Trajectory]]:
    """A trajectory project's items with their trajectories, by item id."""
    rows = session.execute(
        select(Item, Trajectory)
        .join(Trajectory, Trajectory.id == Item.trajectory_id)
        .where(Item.project_id == project_id)
        .order_by(Item.id)
    )
    return [(item, traj) for item, traj in rows]


def reward_models(session: Session, project_id: int) -> list[RewardModelRecord]:
    """A project's reward model versions, newest first."""
    return list(
        session.scalars(
            select(RewardModelRecord)
            .where(RewardModelRecord.project_id == project_id)
            .order_by(RewardModelRecord.version.desc())
        )
    )


def active_reward_model(session: Session, project_id: int) -> RewardModelRecord | None:
    """The project's active reward model, if any."""
    return session.scalar(
        select(RewardModelRecord).where(RewardModelRecord.project_id == project_id, RewardModelRecord.active)
    )


def _next_version(session: Session, model: type[RewardModelRecord] | type[PolicyRecord], project_id: int) -> int:
    """The version number after the project's newest record of ``model`` (1 for the first)."""
    newest = session.scalar(select(func.max(model.version)).where(model.project_id == project_id))
    return int(newest or 0) + 1


def register_reward_model(session: Session, record: RewardModelRecord) -> RewardModelRecord:
    """Add a new version (numbered after the newest) and make it the active one."""
    record.version = _next_version(session, RewardModelRecord, record.project_id)
    session.execute(
        update(RewardModelRecord).where(RewardModelRecord.project_id == record.project_id).values(active=False)
    )
    record.active = True
    session.add(record)
    session.flush()
    return record


def activate_reward_model(session: Session, project_id: int, version: int) -> RewardModelRecord:
    """Make version ``version`` the project's active model."""
    record = reward_model_by_version(session, project_id, version)
    session.execute(update(RewardModelRecord).where(RewardModelRecord.project_id == project_id).values(active=False))
    record.active = True
    session.flush()
    return record


def pending_queries(session: Session, project_id: int, annotator_id: int, limit: int) -> list[Query]:
    """Queries that still need labels, that this annotator has not answered and that no one else
    holds, by priority (what a scripted teacher labels)."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFoundError(f"no project with id {project_id}")
    answered = (
        select(func.count(Label.id))
        .where(Label.query_id == Query.id, Label.choice.in_(ANSWERED))
        .correlate(Query)
        .scalar_subquery()
    )
    mine = select(Label.id).where(Label.query_id == Query.id, Label.annotator_id == annotator_id).correlate(Query)
    held_by_others = (
        select(func.count())
        .select_from(Claim)
        .where(Claim.query_id == Query.id, Claim.annotator_id != annotator_id, Claim.expires_at >= utcnow())
        .correlate(Query)
        .scalar_subquery()
    )
    return list(
        session.scalars(
            select(Query)
            .where(
                Query.project_id == project_id,
                ~mine.exists(),
                answered + held_by_others < project.labels_per_query,
            )
            .order_by(Query.priority.desc(), Query.id)
            .limit(limit)
        )
    )


def unlabeled_queries(session: Session, project_id: int) -> list[Query]:
    """Queries of a project with no answer yet."""
    answered = select(Label.id).where(Label.query_id == Query.id, Label.choice.in_(ANSWERED)).correlate(Query)
    return list(session.scalars(select(Query).where(Query.project_id == project_id, ~answered.exists())))


# --- policies ------------------------------------------------------------------------------


def policies(session: Session, project_id: int) -> list[PolicyRecord]:
    """A project's policy checkpoints, newest first."""
    return list(
        session.scalars(
            select(PolicyRecord).where(PolicyRecord.project_id == project_id).order_by(PolicyRecord.version.desc())
        )
    )


def get_policy(session: Session, project_id: int, version: int | None = None) -> PolicyRecord:
    """Checkpoint ``version`` of the project (the newest when None)."""
    stmt = select(PolicyRecord).where(PolicyRecord.project_id == project_id)
    if version is None:
        stmt = stmt.order_by(PolicyRecord.version.desc())
    else:
        stmt = stmt.where(PolicyRecord.version == version)
    record = session.scalars(stmt).first()
    if record is None:
        what = "no policy yet" if version is None else f"no policy version {version}"
        raise NotFoundError(f"{what} in this project; train one with `rlhf train-policy` or on the Policy page")
    return record


def register_policy(session: Session, record: PolicyRecord) -> PolicyRecord:
    """Add a checkpoint, numbered after the newest."""
    record.version = _next_version(session, PolicyRecord, record.project_id)
    session.add(record)
    session.flush()
    return record


def reward_model_by_version(session: Session, project_id: int, version: int) -> RewardModelRecord:
    """Reward model ``version`` of the project."""
    record = session.scalar(
        select(RewardModelRecord).where(
            RewardModelRecord.project_id == project_id, RewardModelRecord.version == version
        )
    )
    if record is None:
        raise NotFoundError(f"no reward model version {version} in this project")
    return record


def withdraw_reward_model(session: Session, project_id: int, version: int, reactivate: int | None) -> str:
    """Delete reward model ``version`` (a round that did not finish) and make version
    ``reactivate`` active again (None: no model is active). Returns the deleted model's path."""
    record = reward_model_by_version(session, project_id, version)
    path = record.path
    session.delete(record)
    session.flush()
    if reactivate is not None:
        activate_reward_model(session, project_id, reactivate)
    return path


def withdraw_policy(session: Session, project_id: int, version: int) -> str:
    """Delete policy checkpoint ``version`` (a round that did not finish); returns its path."""
    record = get_policy(session, project_id, version)
    path = record.path
    session.delete(record)
    session.flush()
    return path
