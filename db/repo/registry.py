"""The model registry: versions of reward models and policies (registered, activated, withdrawn), and classifiers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.engine import serialize
from db.errors import NotFoundError
from db.models import (
    ClassifierRecord,
    PolicyRecord,
    RewardModelRecord,
)


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
    """The version number after the project's newest record of ``model`` (1 for the first);
    other transactions that number a version of it wait until this one ends."""
    serialize(session, f"{model.__tablename__}-versions:{project_id}")
    newest = session.scalar(select(func.max(model.version)).where(model.project_id == project_id))
    return int(newest or 0) + 1


def register_reward_model(session: Session, project_id: int, **fields: Any) -> RewardModelRecord:
    """Add a new version (numbered after the newest) of the project's reward model, made from
    ``fields`` (kind, config, label_count, label_hash, metrics, path, job_id), and make it the
    active one."""
    record = RewardModelRecord(project_id=project_id, **fields)
    record.version = _next_version(session, RewardModelRecord, project_id)
    session.execute(update(RewardModelRecord).where(RewardModelRecord.project_id == project_id).values(active=False))
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


def withdraw_reward_model(session: Session, project_id: int, version: int, reactivate: int | None) -> tuple[str, bool]:
    """Delete reward model ``version`` (a round that did not finish); where it was the active
    one, make version ``reactivate`` active again (None: no model is active). A newer model
    that another job made active meanwhile stays active. Returns the deleted model's path and
    whether it was the active one."""
    record = reward_model_by_version(session, project_id, version)
    path, was_active = record.path, bool(record.active)
    session.delete(record)
    session.flush()
    if was_active and reactivate is not None:
        activate_reward_model(session, project_id, reactivate)
    return path, was_active


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
        if version is None:
            raise NotFoundError(
                "no policy yet in this project; train one with `rlhf train-policy` or on the Policy page"
            )
        known = sorted(session.scalars(select(PolicyRecord.version).where(PolicyRecord.project_id == project_id)))
        have = f"its versions are {', '.join(map(str, known))}" if known else "it has none yet"
        raise NotFoundError(f"no policy version {version} in this project ({have})")
    return record


def register_policy(session: Session, project_id: int, **fields: Any) -> PolicyRecord:
    """Add a policy checkpoint, numbered after the newest, made from ``fields`` (reward,
    reward_model_id, encoder, config, label_count, metrics, curve, path, job_id)."""
    record = PolicyRecord(project_id=project_id, **fields)
    record.version = _next_version(session, PolicyRecord, project_id)
    session.add(record)
    session.flush()
    return record


def withdraw_policy(session: Session, project_id: int, version: int) -> str:
    """Delete policy checkpoint ``version`` (a round that did not finish); returns its path."""
    record = get_policy(session, project_id, version)
    path = record.path
    session.delete(record)
    session.flush()
    return path


# --- classifiers --------------------------------------------------------------------------------


def register_classifier(
    session: Session,
    *,
    kind: str,
    mode: str,
    dataset: str,
    class_names: list[str],
    config: dict[str, Any],
    metrics: dict[str, Any],
    path: str,
    job_id: int | None,
) -> ClassifierRecord:
    """A trained classifier's row (its files are already in place)."""
    record = ClassifierRecord(
        kind=kind, mode=mode, dataset=dataset, class_names=class_names, config=config, metrics=metrics,
        path=path, job_id=job_id,
    )  # fmt: skip
    session.add(record)
    session.flush()
    return record


def classifiers(session: Session) -> list[ClassifierRecord]:
    """Every registered classifier, newest first."""
    return list(session.scalars(select(ClassifierRecord).order_by(ClassifierRecord.id.desc())))


def get_classifier(session: Session, classifier_id: int) -> ClassifierRecord:
    """Classifier ``classifier_id``."""
    record = session.get(ClassifierRecord, classifier_id)
    if record is None:
        known = ", ".join(str(r.id) for r in classifiers(session)) or "none yet (train one: rlhf train-classifier)"
        raise NotFoundError(f"no classifier #{classifier_id}; classifiers: {known}")
    return record
