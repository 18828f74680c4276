"""Accounts (app/services/accounts.py): argon2 hashes, roles, memberships, expiring sessions,
slowed and locked failed logins; the `rlhf users` and `rlhf project set` commands."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from app.cli import cli
from app.config import Settings, Studio
from app.services import accounts, text_data
from app.services.accounts import AccountError, LoginError
from db.engine import session_scope
from db.models import Annotator, LoginSession, utcnow


@pytest.fixture
def studio(tmp_path, database_url):
    """Two small text projects, on SQLite and on PostgreSQL."""
    studio = Studio(Settings.from_env(tmp_path / "data", database_url))
    text_data.create_team_demo(studio, "p", pairs=6)
    text_data.create_team_demo(studio, "q", pairs=6, seed=1)
    return studio


def test_passwords_are_stored_as_argon2_hashes_and_a_login_gives_an_expiring_session(studio):
    new = accounts.add_user(studio, "ann", "annotator", ["p"])
    with session_scope(studio.engine) as session:
        stored = session.scalar(select(Annotator.password_hash).where(Annotator.name == "ann"))
    assert stored.startswith("$argon2id$") and new.password not in stored
    login = accounts.login(studio, "ann", new.password, delay=0)
    assert login.user.projects == {"p"} and login.user.must_change_password
    assert login.user.can_label("p") and not login.user.can_label("q") and not login.user.is_admin
    with session_scope(studio.engine) as session:
        (record,) = session.scalars(select(LoginSession)).all()
        assert record.token_hash != login.token and len(record.token_hash) == 64  # only its SHA-256
    assert accounts.user_for_token(studio, login.token).name == "ann"
    with session_scope(studio.engine, write=True) as session:  # idle for longer than the timeout
        session.execute(update(LoginSession).values(last_seen_at=utcnow() - accounts.IDLE_TIMEOUT * 2))
    assert accounts.user_for_token(studio, login.token) is None
    assert accounts.user_for_token(studio, "made-up") is None


def test_failed_logins_are_slowed_then_lock_the_account_even_for_the_right_password(studio):
    new = accounts.add_user(studio, "bo", "annotator", ["p"])
    started = time.perf_counter()
    with pytest.raises(LoginError, match="wrong name or password"):
        accounts.login(studio, "bo", "nope", delay=0.3)
    assert time.perf_counter() - started >= 0.3
    with pytest.raises(LoginError, match="wrong name or password"):  # an unknown name reads the same
        accounts.login(studio, "nobody", "nope", delay=0)
    for _ in range(accounts.LOCK_AFTER_FAILURES - 1):
        with pytest.raises(LoginError):
            accounts.login(studio, "bo", "nope", delay=0)
    with pytest.raises(LoginError, match="too many failed logins"):
        accounts.login(studio, "bo", new.password, delay=0)
    with session_scope(studio.engine, write=True) as session:  # the lock runs out
        session.execute(update(Annotator).values(locked_until=utcnow() - timedelta(seconds=1)))
    assert accounts.login(studio, "bo", new.password, delay=0).user.name == "bo"


def test_roles_memberships_removal_and_password_changes(studio):
    admin = accounts.add_user(studio, "root", "admin")
    viewer = accounts.add_user(studio, "val", "viewer", ["q"])
    root = accounts.login(studio, "root", admin.password, delay=0).user
    assert root.is_admin and root.can_label("p") and root.can_view("q")
    val = accounts.login(studio, "val", viewer.password, delay=0).user
    assert val.can_view("q") and not val.can_label("q") and not val.can_view("p")
    with pytest.raises(AccountError, match="already has an account"):
        accounts.add_user(studio, "root", "admin")
    with pytest.raises(AccountError, match="unknown role"):
        accounts.add_user(studio, "zed", "owner")
    token = accounts.login(studio, "val", viewer.password, delay=0).token
    with pytest.raises(AccountError, match="at least"):
        accounts.change_password(studio, token, viewer.password, "short")
    assert not accounts.change_password(studio, token, viewer.password, "a proper password").must_change_password
    accounts.remove_user(studio, "val")
    assert accounts.user_for_token(studio, token) is None
    with pytest.raises(LoginError):
        accounts.login(studio, "val", "a proper password", delay=0)
    assert [r.name for r in accounts.list_users(studio)] == ["root"]
    assert accounts.is_loopback("127.0.0.1") and accounts.is_loopback("::1") and accounts.is_loopback("localhost")
    assert not accounts.is_loopback("0.0.0.0") and not accounts.is_loopback("192.168.1.5")


def test_roles_change_members_leave_and_the_last_admin_stays(studio):
    accounts.add_user(studio, "root", "admin")
    ann = accounts.add_user(studio, "ann", "annotator", ["p", "q"])
    token = accounts.login(studio, "ann", ann.password, delay=0).token
    assert accounts.set_role(studio, "ann", "viewer") == "annotator"
    user = accounts.user_for_token(studio, token)  # the same login sees the new role at once
    assert user.role == "viewer" and user.can_view("p") and not user.can_label("p")
    assert accounts.leave_projects(studio, "ann", ["q"]) == ["p"]
    assert not accounts.user_for_token(studio, token).can_view("q")
    with pytest.raises(AccountError, match="'root' is the last admin.*rlhf users role NAME admin"):
        accounts.set_role(studio, "root", "annotator")
    with pytest.raises(AccountError, match="'root' is the last admin.*then remove 'root'"):
        accounts.remove_user(studio, "root")
    assert {(r.name, r.role) for r in accounts.list_users(studio)} == {("root", "admin"), ("ann", "viewer")}
    assert accounts.set_role(studio, "ann", "admin") == "viewer"  # with a second admin, the first may go
    assert accounts.set_role(studio, "root", "annotator") == "admin"
    accounts.remove_user(studio, "root")
    with pytest.raises(AccountError, match="has no account"):
        accounts.set_role(studio, "root", "admin")
    with pytest.raises(AccountError, match="unknown role"):
        accounts.set_role(studio, "ann", "owner")
    accounts.remove_user(studio, "ann")  # the last account of all: the studio is back to no logins
    assert not accounts.accounts_enabled(studio)


def test_users_and_project_commands_and_the_host_guard(studio, tmp_path):
    runner = CliRunner(env={"RLHF_DATABASE_URL": studio.settings.database_url})
    base = ["--data-dir", str(studio.settings.data_dir)]
    out = runner.invoke(cli, [*base, "app", "--host", "0.0.0.0", "--port", "8765"])
    assert out.exit_code == 1 and "refusing to serve 0.0.0.0" in out.output and "rlhf users add" in out.output
    out = runner.invoke(cli, [*base, "users", "add", "ann", "--role", "annotator", "--project", "p"])
    assert out.exit_code == 0, out.output
    password = out.output.split("one-time password: ")[1].split()[0]
    assert accounts.login(studio, "ann", password, delay=0).user.projects == {"p"}
    out = runner.invoke(cli, [*base, "users", "add", "bo", "--project", "nope"])
    assert out.exit_code == 1 and "no project named 'nope'" in out.output
    assert "bo" not in runner.invoke(cli, [*base, "users", "list"]).output  # nothing half-added
    out = runner.invoke(cli, [*base, "users", "list"])
    assert "ann: annotator; projects: p; 0 labels; 20" in out.output and "not yet changed" in out.output
    out = runner.invoke(cli, [*base, "project", "set", "p", "--labels-per-pair", "3", "--gold-rate", "0.2"])
    assert out.exit_code == 0 and "p: 3 label(s) per pair, gold rate 0.20" in out.output
    out = runner.invoke(cli, [*base, "project", "set", "p", "--labels-per-pair", "0"])
    assert out.exit_code == 2
    out = runner.invoke(cli, [*base, "users", "role", "ann", "viewer"])
    assert out.exit_code == 0 and "ann: viewer (was annotator)" in out.output, out.output
    out = runner.invoke(cli, [*base, "users", "role", "ann", "owner"])
    assert out.exit_code == 2 and "'owner' is not one of" in out.output
    out = runner.invoke(cli, [*base, "users", "leave", "ann", "--project", "p"])
    assert out.exit_code == 0 and "ann works on: no project" in out.output, out.output
    out = runner.invoke(cli, [*base, "users", "remove", "ann"])
    assert out.exit_code == 0 and "their labels stay" in out.output


def test_parallel_wrong_guesses_are_all_counted(studio):
    """The failure count is updated under a row lock: guesses sent at once cannot slip past the lock."""
    import threading

    accounts.add_user(studio, "cy", "annotator", ["p"])
    barrier = threading.Barrier(8)

    def guess() -> None:
        barrier.wait()
        with pytest.raises(LoginError):
            accounts.login(studio, "cy", "wrong guess", delay=0)

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    with session_scope(studio.engine) as session:
        failed, locked = session.execute(
            select(Annotator.failed_logins, Annotator.locked_until).where(Annotator.name == "cy")
        ).one()
    assert failed == accounts.LOCK_AFTER_FAILURES and locked is not None  # locked, then no more counting


def test_a_name_is_found_however_its_accents_and_spaces_were_typed(studio):
    # stored as names are (stripped, NFC): a keyboard that sends "e" + U+0308 for "ë", or a
    # name pasted with a space, must find the account at login and in the CLI
    new = accounts.add_user(studio, "Zo\u00eb", "annotator", ["p"])
    decomposed = "Zoe\u0308"
    assert accounts.login(studio, decomposed, new.password, delay=0).user.name == "Zo\u00eb"
    assert accounts.login(studio, " Zo\u00eb ", new.password, delay=0).user.name == "Zo\u00eb"
    runner = CliRunner(env={"RLHF_DATABASE_URL": studio.settings.database_url})
    result = runner.invoke(cli, ["--data-dir", str(studio.settings.data_dir), "users", "password", decomposed + " "])
    assert result.exit_code == 0, result.output
    with pytest.raises(LoginError):
        accounts.login(studio, decomposed, new.password, delay=0)  # the reset ended the old password
    accounts.remove_user(studio, " " + decomposed)
    assert "Zo" not in runner.invoke(cli, ["--data-dir", str(studio.settings.data_dir), "users", "list"]).output
