"""SQLAlchemy 2.0 typed models of the label store.

Bulk data (observations, frames, clips) lives in files under the data folder; rows hold
their paths relative to it, so a data folder can be moved. Relationships are
``lazy="raise"`` so that nothing loads behind a page's back: queries say what they join.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from db import names

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware now, the one clock of the store."""
    return datetime.now(UTC)


def as_utc(t: datetime | None) -> datetime | None:
    """A datetime read back from the store, made timezone-aware.

    SQLite returns naive datetimes even for timezone=True columns; they were stored in UTC.
    """
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints stably."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class ProjectKind(enum.StrEnum):
    """What a project compares."""

    trajectory = "trajectory"
    text = "text"


class Choice(enum.StrEnum):
    """The answer a person gave, as shown on screen."""

    left = "left"
    right = "right"
    equal = "equal"
    cant_tell = "cant_tell"
    skip = "skip"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, create_constraint=True, length=16, validate_strings=True)


class Project(Base):
    """A set of items to compare, with its environment and labeling rules."""

    __tablename__ = "project"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[ProjectKind] = mapped_column(_enum(ProjectKind, "project_kind"))
    env_id: Mapped[str | None] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    guidelines: Mapped[str] = mapped_column(Text, default="")
    labels_per_query: Mapped[int] = mapped_column(Integer, default=1)
    answer_count: Mapped[int] = mapped_column(Integer, default=0)
    """Answers (labels that are not skips) in the project: progress without counting a million rows."""
    answered_pairs: Mapped[int] = mapped_column(Integer, default=0)
    """Pairs with at least one answer."""
    pair_count: Mapped[int] = mapped_column(Integer, default=0)
    """Pairs (queries) in the project."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint("labels_per_query >= 1", name="labels_per_query_positive"),)

    @validates("name")
    def _valid_name(self, _key: str, name: str) -> str:
        return names.project_name(name)


class Role(enum.StrEnum):
    """What an account may do. ``teacher`` and ``import`` are the studio's own label sources."""

    admin = "admin"
    """Everything: create projects, import, train, change settings, manage the team."""
    annotator = "annotator"
    """Label the projects they are a member of."""
    viewer = "viewer"
    """See their projects' progress and agreement; label nothing."""


class Annotator(Base):
    """A person (or a scripted teacher, ``teacher:NAME``) who gives labels.

    A person with a ``password_hash`` (argon2) is an *account*: once one exists the app asks
    everyone to log in. Without one, a typed name is enough (one person on 127.0.0.1).
    """

    __tablename__ = "annotator"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str | None] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(20), default="annotator")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @validates("name")
    def _valid_name(self, _key: str, name: str) -> str:
        # the role decides whether a reserved name may be taken (see repo.get_or_create_annotator)
        return names.annotator_name(name, reserved_ok=True)


class Membership(Base):
    """An account may work on a project (admins may work on every project without one)."""

    __tablename__ = "membership"

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(
        ForeignKey("annotator.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginSession(Base):
    """A logged-in browser: only the SHA-256 of its random token is stored."""

    __tablename__ = "login_session"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotator.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class Trajectory(Base):
    """One stored episode; observations, actions and true rewards are in ``file`` (.npz)."""

    __tablename__ = "trajectory"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    file: Mapped[str] = mapped_column(String(500))
    length: Mapped[int]
    source_policy: Mapped[str] = mapped_column(String(100))
    seed: Mapped[int]
    true_return: Mapped[float] = mapped_column(Float)
    terminated: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Item(Base):
    """Something to compare: a trajectory segment, or a prompt and a response."""

    __tablename__ = "item"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    trajectory_id: Mapped[int | None] = mapped_column(ForeignKey("trajectory.id", ondelete="CASCADE"), index=True)
    start: Mapped[int | None]
    length: Mapped[int | None]
    prompt: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    clip_file: Mapped[str | None] = mapped_column(String(500))
    true_return: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    trajectory: Mapped[Trajectory | None] = relationship(lazy="raise")


class Query(Base):
    """A pair of items to compare. ``item_a_id < item_b_id``; the screen order is random."""

    __tablename__ = "query"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    item_a_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    item_b_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(50), default="random")
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    gold_pref: Mapped[float | None] = mapped_column(Float)
    """A gold pair's known answer, P(item A preferred); gold pairs score annotators."""
    adjudicated_pref: Mapped[float | None] = mapped_column(Float)
    """An admin's ruling on a disputed pair: training uses it instead of the pair's labels."""
    adjudicated_by: Mapped[int | None] = mapped_column(ForeignKey("annotator.id", ondelete="SET NULL"))
    adjudicated_at: Mapped[datetime | None]
    answered: Mapped[int] = mapped_column(Integer, default=0)
    """How many answers (not skips) the pair has: serving's index, kept by record and undo."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    item_a: Mapped[Item] = relationship(foreign_keys=[item_a_id], lazy="raise")
    item_b: Mapped[Item] = relationship(foreign_keys=[item_b_id], lazy="raise")

    __table_args__ = (
        UniqueConstraint("project_id", "item_a_id", "item_b_id", name="uq_query_pair"),
        CheckConstraint("item_a_id < item_b_id", name="ordered_pair"),
        Index("ix_query_project_priority", "project_id", "priority", "id"),
        CheckConstraint("gold_pref IS NULL OR gold_pref IN (0, 0.5, 1)", name="gold_pref_values"),
        CheckConstraint("adjudicated_pref IS NULL OR adjudicated_pref IN (0, 0.5, 1)", name="adjudicated_pref_values"),
    )


# Serving reads pairs in exactly this order (half-answered first, then by priority, then id):
# the first open pair is the first index entry that qualifies, however large the project.
Index("ix_query_project_serving", Query.project_id, Query.answered.desc(), Query.priority.desc(), Query.id)


class AnnotatorCount(Base):
    """How many answers an annotator gave in a project (their progress, kept with each label)."""

    __tablename__ = "annotator_count"

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotator.id", ondelete="CASCADE"), primary_key=True)
    answers: Mapped[int] = mapped_column(Integer, default=0)


class Claim(Base):
    """An annotator is looking at a query; others are not served it until it expires."""

    __tablename__ = "claim"

    query_id: Mapped[int] = mapped_column(ForeignKey("query.id", ondelete="CASCADE"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotator.id", ondelete="CASCADE"), primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    swapped: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_claim_annotator_id", "annotator_id"),)


class Label(Base):
    """One answer of one annotator to one query.

    ``choice`` is what was clicked, as shown on screen; ``swapped`` says item B was on the
    left; ``pref`` is P(item A preferred): 1, 0, 0.5 for equal, NULL for can't tell / skip.
    """

    __tablename__ = "label"

    id: Mapped[int] = mapped_column(primary_key=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("query.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotator.id", ondelete="CASCADE"), index=True)
    choice: Mapped[Choice] = mapped_column(_enum(Choice, "label_choice"))
    pref: Mapped[float | None] = mapped_column(Float)
    swapped: Mapped[bool] = mapped_column(Boolean)
    shown_at: Mapped[datetime | None]
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("query_id", "annotator_id", name="uq_label_query_annotator"),
        CheckConstraint("pref IS NULL OR pref IN (0, 0.5, 1)", name="pref_values"),
        Index("ix_label_annotator_answered", "annotator_id", "answered_at"),
    )


class JobStatus(enum.StrEnum):
    """Where a background job is."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Job(Base):
    """Long work (training) run by a background process; its state lives here so the app
    can show progress and cancel it across page reloads."""

    __tablename__ = "job"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(50))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "job_status"), default=JobStatus.queued)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    pid: Mapped[int | None]
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id", ondelete="SET NULL"))
    """The worker process that took the job."""


class Worker(Base):
    """A job worker process (``rlhf worker``, or one the app started): it claims queued jobs
    and beats while alive, busy or idle, so the pages can say who will run a queued job."""

    __tablename__ = "worker"

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int | None]
    spawned: Mapped[bool] = mapped_column(Boolean, default=False)
    """Started by the app for its queue (exits when the queue is empty), not by a person."""
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None]


class ClassifierRecord(Base):
    """A trained classifier in the registry: its files (``path``, relative to the data folder),
    what it was trained on and how well it did."""

    __tablename__ = "classifier"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    """text or image."""
    mode: Mapped[str] = mapped_column(String(20))
    """frozen, lora or full."""
    dataset: Mapped[str] = mapped_column(String(500))
    class_names: Mapped[list[str]] = mapped_column(JSON)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    path: Mapped[str] = mapped_column(String(500))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RewardModelRecord(Base):
    """One trained version of a project's reward model; at most one per project is active."""

    __tablename__ = "reward_model"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    version: Mapped[int]
    kind: Mapped[str] = mapped_column(String(30))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    label_count: Mapped[int]
    label_hash: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    path: Mapped[str] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("project_id", "version", name="uq_reward_model_version"),
        Index(
            "uq_reward_model_one_active",
            "project_id",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )


class PolicyRecord(Base):
    """A policy checkpoint: a DQN trained on a project's learned (or the true) reward."""

    __tablename__ = "policy"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    version: Mapped[int]
    reward: Mapped[str] = mapped_column(String(20))
    """'true' (the environment's reward, the baseline) or 'model' (``reward_model_id``)."""
    reward_model_id: Mapped[int | None] = mapped_column(ForeignKey("reward_model.id", ondelete="SET NULL"))
    encoder: Mapped[str | None] = mapped_column(String(500))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    label_count: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    curve: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    path: Mapped[str] = mapped_column(String(500))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("project_id", "version", name="uq_policy_version"),)


_ANSWER_CHOICES = {Choice.left, Choice.right, Choice.equal, Choice.cant_tell}


def _count_answers(connection: Any, label: Label, step: int) -> None:
    """Move the counters an answer feeds: its pair's ``answered``, the project's answers and
    answered pairs, the annotator's answers in the project."""
    query, project, counts = Query.__table__, Project.__table__, AnnotatorCount.__table__
    project_id, answered = connection.execute(
        query.update()
        .where(query.c.id == label.query_id)
        .values(answered=query.c.answered + step)
        .returning(query.c.project_id, query.c.answered)
    ).one()
    opened = (step > 0 and answered == 1) or (step < 0 and answered == 0)  # the pair's first answer came or went
    connection.execute(
        project.update()
        .where(project.c.id == project_id)
        .values(
            answer_count=project.c.answer_count + step,
            answered_pairs=project.c.answered_pairs + (step if opened else 0),
        )
    )
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(counts).values(project_id=project_id, annotator_id=label.annotator_id, answers=max(step, 0))
    connection.execute(
        stmt.on_conflict_do_update(
            index_elements=[counts.c.project_id, counts.c.annotator_id],
            set_={"answers": counts.c.answers + step},
        )
    )


def _count_pair(connection: Any, query: Query, step: int) -> None:
    project = Project.__table__
    connection.execute(
        project.update().where(project.c.id == query.project_id).values(pair_count=project.c.pair_count + step)
    )


@event.listens_for(Query, "after_insert")
def _count_new_pair(_mapper: Any, connection: Any, query: Query) -> None:
    """Keep ``Project.pair_count`` in step with the pairs, whichever code path adds one."""
    _count_pair(connection, query, +1)


@event.listens_for(Query, "after_delete")
def _uncount_pair(_mapper: Any, connection: Any, query: Query) -> None:
    _count_pair(connection, query, -1)


@event.listens_for(Label, "after_insert")
def _count_answer(_mapper: Any, connection: Any, label: Label) -> None:
    """Keep the progress counters in step with the labels, whichever code path adds one."""
    if Choice(label.choice) in _ANSWER_CHOICES:
        _count_answers(connection, label, +1)


@event.listens_for(Label, "after_delete")
def _uncount_answer(_mapper: Any, connection: Any, label: Label) -> None:
    if Choice(label.choice) in _ANSWER_CHOICES:
        _count_answers(connection, label, -1)
