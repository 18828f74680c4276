"""Accounts (annotators with a password), their project memberships and login sessions.

Passwords and session tokens are never stored: the caller hashes them (argon2 for
passwords, SHA-256 for random session tokens) and this module keeps the hashes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from db.errors import NotFoundError
from db.models import Annotator, Label, LoginSession, Membership, Project, Role, as_utc

#: Role of an account that was removed: it keeps its name and labels, and cannot log in.
REMOVED_ROLE = "removed"


def account_count(session: Session) -> int:
    """How many accounts can log in (annotators with a password)."""
    return int(session.scalar(select(func.count(Annotator.id)).where(Annotator.password_hash.is_not(None))) or 0)


def find_annotator(session: Session, name: str) -> Annotator | None:
    """The annotator called ``name``, or None. The name is looked up as names are stored
    (:mod:`db.names`: stripped, Unicode NFC), so a login or a CLI command finds an account
    typed with other spaces around it or another form of its accents (decomposed ``e`` + ``\u0308``)."""
    return session.scalar(select(Annotator).where(Annotator.name == unicodedata.normalize("NFC", name.strip())))


def set_account(
    session: Session, annotator: Annotator, *, role: str, password_hash: str, must_change_password: bool
) -> None:
    """Make an annotator an account with this role and password (unlocked)."""
    annotator.role = role
    annotator.password_hash = password_hash
    annotator.must_change_password = must_change_password
    annotator.failed_logins = 0
    annotator.locked_until = None


def remove_account(session: Session, annotator: Annotator) -> None:
    """Take away an account's password, memberships and sessions; its labels stay, under its name."""
    annotator.password_hash = None
    annotator.role = REMOVED_ROLE
    session.execute(delete(Membership).where(Membership.annotator_id == annotator.id))
    session.execute(delete(LoginSession).where(LoginSession.annotator_id == annotator.id))


def set_memberships(session: Session, annotator_id: int, project_ids: Iterable[int]) -> None:
    """Add an annotator to projects (memberships it has stay)."""
    have = set(session.scalars(select(Membership.project_id).where(Membership.annotator_id == annotator_id)))
    session.add_all(Membership(project_id=p, annotator_id=annotator_id) for p in set(project_ids) - have)
    session.flush()


def leave_projects(session: Session, annotator_id: int, project_ids: Iterable[int]) -> None:
    """End an annotator's membership of these projects (their labels there stay)."""
    ids = list(project_ids)
    if ids:
        session.execute(
            delete(Membership).where(Membership.annotator_id == annotator_id, Membership.project_id.in_(ids))
        )


def lock_admins(session: Session) -> list[int]:
    """Ids of the accounts with the admin role, their rows locked until the transaction ends
    (PostgreSQL: two admins demoting each other at once cannot both see the other still there)."""
    stmt = select(Annotator.id).where(Annotator.role == Role.admin, Annotator.password_hash.is_not(None))
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    return list(session.scalars(stmt.order_by(Annotator.id)))


def member_projects(session: Session, annotator_id: int) -> list[str]:
    """Names of the projects an annotator is a member of, by name."""
    return list(
        session.scalars(
            select(Project.name)
            .join(Membership, Membership.project_id == Project.id)
            .where(Membership.annotator_id == annotator_id)
            .order_by(Project.name)
        )
    )


def project_members(session: Session, project_id: int) -> list[str]:
    """Names of a project's members, by name."""
    return list(
        session.scalars(
            select(Annotator.name)
            .join(Membership, Membership.annotator_id == Annotator.id)
            .where(Membership.project_id == project_id)
            .order_by(Annotator.name)
        )
    )


@dataclass(frozen=True)
class AccountRow:
    """An account as listed."""

    name: str
    role: str
    projects: list[str]
    labels: int
    must_change_password: bool
    last_seen_at: datetime | None


def list_accounts(session: Session) -> list[AccountRow]:
    """Every account, by name, with its projects, label count and last activity."""
    rows = []
    for annotator in session.scalars(
        select(Annotator).where(Annotator.password_hash.is_not(None)).order_by(Annotator.name)
    ):
        labels = session.scalar(select(func.count(Label.id)).where(Label.annotator_id == annotator.id)) or 0
        seen = session.scalar(
            select(func.max(LoginSession.last_seen_at)).where(LoginSession.annotator_id == annotator.id)
        )
        rows.append(
            AccountRow(
                annotator.name,
                annotator.role,
                member_projects(session, annotator.id),
                int(labels),
                bool(annotator.must_change_password),
                as_utc(seen),
            )
        )
    return rows


def add_login_session(
    session: Session, annotator_id: int, token_hash: str, now: datetime, expires_at: datetime
) -> None:
    """Store a new login session (by its token's hash)."""
    session.add(
        LoginSession(
            token_hash=token_hash, annotator_id=annotator_id, created_at=now, last_seen_at=now, expires_at=expires_at
        )
    )


def login_session(session: Session, token_hash: str) -> tuple[LoginSession, Annotator] | None:
    """A login session and its account, or None."""
    row = session.execute(
        select(LoginSession, Annotator)
        .join(Annotator, Annotator.id == LoginSession.annotator_id)
        .where(LoginSession.token_hash == token_hash)
    ).first()
    return None if row is None else (row[0], row[1])


def end_login_session(session: Session, token_hash: str) -> None:
    """Forget a login session (logout, or expired)."""
    session.execute(delete(LoginSession).where(LoginSession.token_hash == token_hash))


def end_expired_sessions(session: Session, now: datetime) -> None:
    """Forget every expired login session."""
    session.execute(delete(LoginSession).where(LoginSession.expires_at < now))


def require_annotator(session: Session, name: str) -> Annotator:
    """The annotator called ``name``; NotFoundError lists the accounts."""
    annotator = find_annotator(session, name)
    if annotator is None:
        known = ", ".join(r.name for r in list_accounts(session)) or "none yet"
        raise NotFoundError(f"no user named {name!r} (accounts: {known}); add one with `rlhf users add NAME`")
    return annotator


def touch_login_session(session: Session, token_hash: str, now: datetime) -> None:
    """Note that a login session was used now."""
    record = session.get(LoginSession, token_hash)
    if record is not None:
        record.last_seen_at = now


def end_sessions_of(session: Session, annotator_id: int, *, keep: str | None = None) -> None:
    """End every login session of an annotator (a password reset), but the one ``keep`` names."""
    stmt = delete(LoginSession).where(LoginSession.annotator_id == annotator_id)
    if keep is not None:
        stmt = stmt.where(LoginSession.token_hash != keep)
    session.execute(stmt)


def lock_annotator(session: Session, annotator_id: int) -> Annotator:
    """An annotator's row, locked until the transaction ends (PostgreSQL: SELECT ... FOR UPDATE;
    a SQLite write transaction holds the whole database already)."""
    stmt = select(Annotator).where(Annotator.id == annotator_id).execution_options(populate_existing=True)
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one()
