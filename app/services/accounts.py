"""Accounts, roles and logins: who may use the studio, and what each may do.

Local accounts live in the label store; their passwords are hashed with argon2id
(``argon2-cffi``, the OWASP recommendation) and never stored or logged. A login gives a
random session token (only its SHA-256 is stored) that expires after
:data:`IDLE_TIMEOUT` without use and :data:`MAX_SESSION_AGE` after login. Failed logins
are slowed down: each waits :data:`FAILED_LOGIN_DELAY`, and after
:data:`LOCK_AFTER_FAILURES` in a row the account refuses logins for a while that doubles
with each further failure.

With no account at all the studio is the one-person tool it always was: a typed name on
127.0.0.1. The first ``rlhf users add`` turns logins on.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import Studio
from db import names, repo
from db.engine import session_scope
from db.models import Role, as_utc, utcnow
from rlhf_core.errors import StudioError

IDLE_TIMEOUT = timedelta(hours=8)
"""A login session ends after this long without a request."""
MAX_SESSION_AGE = timedelta(days=7)
"""A login session ends this long after login, used or not."""
FAILED_LOGIN_DELAY = 1.0
"""Seconds every failed login waits before it answers (tests lower it)."""
LOCK_AFTER_FAILURES = 5
"""Failed logins in a row after which an account is locked for a while."""
FIRST_LOCK = timedelta(seconds=30)
"""How long the first lock lasts; each further failure doubles it, up to :data:`LONGEST_LOCK`."""
LONGEST_LOCK = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10
_SEEN_EVERY = timedelta(minutes=1)

_hasher = PasswordHasher()
# Checked against when the name is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

ROLES = tuple(r.value for r in Role)

SERVED_HOST_ENV = "RLHF_SERVED_HOST"
"""The address `rlhf app` serves (set for the server): off loopback, a studio without accounts
serves no page, even when its last account was removed while it ran."""


class AccountError(StudioError):
    """An account cannot be added, changed or used as asked: the message says why and the fix."""


class LoginError(StudioError):
    """A login was refused; the message never says whether the name or the password was wrong."""


@dataclass(frozen=True)
class User:
    """Who is using the app, and what they may do."""

    id: int
    name: str
    role: str
    projects: frozenset[str]
    """Projects they are a member of (admins may use every project)."""
    must_change_password: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin

    def can_view(self, project: str) -> bool:
        """May see the project (its progress, agreement, models)."""
        return self.is_admin or project in self.projects

    def can_label(self, project: str) -> bool:
        """May label the project's pairs."""
        return self.role in (Role.admin, Role.annotator) and self.can_view(project)

    def visible(self, projects: Iterable[str]) -> list[str]:
        """The projects of ``projects`` this user may see, in order."""
        return [p for p in projects if self.can_view(p)]


def local_user(name: str) -> User:
    """The one person of a studio without accounts, who may do everything."""
    return User(id=0, name=name, role=Role.admin, projects=frozenset())


def open_to_others() -> bool:
    """Whether this server listens on an address other machines can reach."""
    import os

    return not is_loopback(os.environ.get(SERVED_HOST_ENV, "127.0.0.1"))


def accounts_enabled(studio: Studio) -> bool:
    """Whether anyone has an account (then the app asks everyone to log in)."""
    with session_scope(studio.engine) as session:
        return repo.account_count(session) > 0


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters, got {len(password)}")


@dataclass(frozen=True)
class NewAccount:
    """An account just added (or reset), with the one-time password to hand over."""

    name: str
    role: str
    projects: list[str]
    password: str
    """Shown once; the person must choose their own at first login."""


def add_user(studio: Studio, name: str, role: str, projects: Iterable[str] = ()) -> NewAccount:
    """Add an account (or re-add a removed one) with a one-time password.

    A name that has labeled before without an account (typed on a studio without accounts)
    becomes that account, so its labels stay its own. Projects must exist.
    """
    role = _check_role(role)
    name = names.annotator_name(name)
    password = secrets.token_urlsafe(12)
    with session_scope(studio.engine, write=True) as session:
        annotator = repo.find_annotator(session, name)
        if annotator is not None and annotator.password_hash is not None:
            raise AccountError(
                f"{name!r} already has an account ({annotator.role}); "
                f"`rlhf users password {name}` gives a new one-time password"
            )
        project_ids = [repo.get_project(session, p).id for p in projects]
        if annotator is None:
            annotator = repo.get_or_create_annotator(session, name)
        repo.set_account(session, annotator, role=role, password_hash=_hasher.hash(password), must_change_password=True)
        session.flush()
        repo.set_memberships(session, annotator.id, project_ids)
        return NewAccount(annotator.name, role, repo.member_projects(session, annotator.id), password)


def reset_password(studio: Studio, name: str) -> NewAccount:
    """Give an account a new one-time password (and end its sessions)."""
    password = secrets.token_urlsafe(12)
    with session_scope(studio.engine, write=True) as session:
        annotator = _account(session, name)
        repo.set_account(
            session, annotator, role=annotator.role, password_hash=_hasher.hash(password), must_change_password=True
        )
        repo.end_sessions_of(session, annotator.id)
        return NewAccount(annotator.name, annotator.role, repo.member_projects(session, annotator.id), password)


def add_to_projects(studio: Studio, name: str, projects: Iterable[str]) -> list[str]:
    """Make an account a member of more projects; returns all its projects."""
    with session_scope(studio.engine, write=True) as session:
        annotator = _account(session, name)
        repo.set_memberships(session, annotator.id, [repo.get_project(session, p).id for p in projects])
        return repo.member_projects(session, annotator.id)


def leave_projects(studio: Studio, name: str, projects: Iterable[str]) -> list[str]:
    """End an account's membership of projects (its labels there stay); returns its projects."""
    with session_scope(studio.engine, write=True) as session:
        annotator = _account(session, name)
        ids = [repo.get_project(session, p).id for p in projects]
        repo.leave_projects(session, annotator.id, ids)
        return repo.member_projects(session, annotator.id)


def _account(session, name: str):  # noqa: ANN001, ANN202
    annotator = repo.require_annotator(session, name)
    if annotator.password_hash is None:
        raise AccountError(f"{annotator.name!r} has no account; add one with `rlhf users add {annotator.name}`")
    return annotator


def _keep_an_admin(session, annotator, action: str) -> None:  # noqa: ANN001
    """Refuse to take the admin role from the last admin while other accounts remain: nobody
    could then manage the team, import or train from the app."""
    admins = repo.lock_admins(session)
    if admins == [annotator.id] and repo.account_count(session) > 1:
        raise AccountError(
            f"{annotator.name!r} is the last admin, and other accounts would be left without one; "
            f"make another account admin first (`rlhf users role NAME admin`), then {action}"
        )


def set_role(studio: Studio, name: str, role: str) -> str:
    """Change an account's role; it applies to the account's next page (admin buttons check it
    when pressed). Returns the role it had."""
    role = _check_role(role)
    with session_scope(studio.engine, write=True) as session:
        annotator = _account(session, name)
        before = annotator.role
        if before == role:
            return before
        if before == Role.admin.value:
            _keep_an_admin(session, annotator, f"change the role of {annotator.name!r}")
        annotator.role = role
        return before


def remove_user(studio: Studio, name: str) -> None:
    """Remove an account: it can no longer log in; its labels stay, under its name."""
    with session_scope(studio.engine, write=True) as session:
        annotator = repo.require_annotator(session, name)
        if annotator.password_hash is None:
            raise AccountError(f"{name!r} has no account to remove")
        if annotator.role == Role.admin.value:
            _keep_an_admin(session, annotator, f"remove {annotator.name!r}")
        repo.remove_account(session, annotator)


def list_users(studio: Studio) -> list[repo.AccountRow]:
    """Every account, by name."""
    with session_scope(studio.engine) as session:
        return repo.list_accounts(session)


def _user(session, annotator) -> User:  # noqa: ANN001
    return User(
        annotator.id,
        annotator.name,
        annotator.role,
        frozenset(repo.member_projects(session, annotator.id)),
        bool(annotator.must_change_password),
    )


@dataclass(frozen=True)
class Login:
    """A successful login: the token the browser keeps, and who it is."""

    token: str
    user: User


REFUSED = (
    "wrong name or password, or too many failed logins in a row (then wait a few minutes, "
    "or ask an admin for a new password: `rlhf users password NAME`)"
)
"""The one answer to every refused login: it never says whether the name exists."""


def login(studio: Studio, name: str, password: str, *, delay: float | None = None) -> Login:
    """Check a name and password; a LoginError (after a delay) when they do not match.

    The password is checked (argon2, deliberately slow) outside any write transaction, so
    a flood of attempts cannot hold the store's write lock. Every failure waits ``delay``
    (default :data:`FAILED_LOGIN_DELAY`); after :data:`LOCK_AFTER_FAILURES` failures in a
    row the account is locked for a while, even for the right password; the count is
    updated under a row lock, so parallel guesses cannot slip past it. The message is the
    same for every refusal (:data:`REFUSED`).
    """
    wait = FAILED_LOGIN_DELAY if delay is None else delay
    key = name.strip() if isinstance(name, str) else ""
    with session_scope(studio.engine) as session:
        annotator = repo.find_annotator(session, key) if key else None
        stored = annotator.password_hash if annotator is not None else None
        account_id = annotator.id if annotator is not None and stored is not None else None
    try:
        ok = _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if account_id is not None:
        now = utcnow()
        with session_scope(studio.engine, write=True) as session:
            annotator = repo.lock_annotator(session, account_id)
            until = as_utc(annotator.locked_until)
            locked = until is not None and until > now
            changed = annotator.password_hash != stored  # reset or removed meanwhile: check again
            if ok and not locked and not changed:
                annotator.failed_logins = 0
                annotator.locked_until = None
                if _hasher.check_needs_rehash(stored):
                    annotator.password_hash = _hasher.hash(password)
                token = secrets.token_urlsafe(32)
                repo.end_expired_sessions(session, now)
                repo.add_login_session(session, annotator.id, _token_hash(token), now, now + MAX_SESSION_AGE)
                return Login(token, _user(session, annotator))
            if not locked and not ok:
                annotator.failed_logins += 1
                extra = annotator.failed_logins - LOCK_AFTER_FAILURES
                if extra >= 0:
                    annotator.locked_until = now + min(FIRST_LOCK * 2**extra, LONGEST_LOCK)
    time.sleep(wait)
    raise LoginError(REFUSED)


def user_for_token(studio: Studio, token: str | None) -> User | None:
    """The user of a login session, or None when the token is unknown or the session expired.

    Using a session keeps it alive for another :data:`IDLE_TIMEOUT` (up to
    :data:`MAX_SESSION_AGE` after login); its last use is written at most once a minute.
    """
    if not token:
        return None
    now = utcnow()
    key = _token_hash(token)
    with session_scope(studio.engine) as session:
        found = repo.login_session(session, key)
        if found is None:
            return None
        record, annotator = found
        expired = as_utc(record.expires_at) <= now or now - as_utc(record.last_seen_at) > IDLE_TIMEOUT
        if annotator.password_hash is None:
            expired = True
        user = None if expired else _user(session, annotator)
        touch = not expired and now - as_utc(record.last_seen_at) > _SEEN_EVERY
    if expired or touch:
        with session_scope(studio.engine, write=True) as session:
            if expired:
                repo.end_login_session(session, key)
            else:
                repo.touch_login_session(session, key, now)
    return user


def logout(studio: Studio, token: str | None) -> None:
    """End a login session (nothing happens for an unknown token)."""
    if token:
        with session_scope(studio.engine, write=True) as session:
            repo.end_login_session(session, _token_hash(token))


def change_password(studio: Studio, token: str, old: str, new: str) -> User:
    """Change the password of the logged-in user (the one-time password at first login)."""
    _check_password(new)
    if new == old:
        raise AccountError("the new password must differ from the old one")
    with session_scope(studio.engine, write=True) as session:
        found = repo.login_session(session, _token_hash(token))
        if found is None or as_utc(found[0].expires_at) <= utcnow():
            raise LoginError("your session has ended; log in again")
        annotator = found[1]
        try:
            _hasher.verify(annotator.password_hash or _DUMMY_HASH, old)
        except (VerificationError, InvalidHashError) as exc:
            raise AccountError("the current password is wrong") from exc
        annotator.password_hash = _hasher.hash(new)
        annotator.must_change_password = False
        repo.end_sessions_of(session, annotator.id, keep=_token_hash(token))  # whoever knew the old one is out
        return _user(session, annotator)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine can reach."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
