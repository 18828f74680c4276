"""AppTest tests of teams in the UI: the login page, roles, labeling settings and the Team page."""

from __future__ import annotations

from pathlib import Path

import pytest
from _labeling import answer_button
from streamlit.testing.v1 import AppTest

from app.config import Settings, Studio
from app.services import accounts, agreement, projects, synthetic, text_data
from app.ui import auth
from db import repo
from db.engine import session_scope
from db.models import Choice

UI = Path(__file__).resolve().parents[3] / "app" / "ui"
MAIN, HOME, TEAM, TRAIN = UI / "main.py", UI / "views" / "home.py", UI / "views" / "team.py", UI / "views" / "train.py"
LABEL = UI / "views" / "label.py"
TIMEOUT = 60


@pytest.fixture
def team(tmp_path: Path, studio_env, monkeypatch: pytest.MonkeyPatch) -> Studio:
    """Two projects; 'team' answered twice per pair by two personas who disagree on some pairs."""
    monkeypatch.setattr(accounts, "FAILED_LOGIN_DELAY", 0.0)
    data = studio_env(tmp_path / "data")
    studio = Studio(Settings.from_env(data))
    text_data.create_team_demo(studio, "team", pairs=30)
    text_data.create_team_demo(studio, "other", pairs=10, seed=1)
    projects.update_settings(studio, "team", labels_per_pair=2)
    synthetic.label_synthetic(studio, "team", "concise", 30, annotator="ann")
    synthetic.label_synthetic(studio, "team", "formal", 30, annotator="bo")
    return studio


def _text(element: object) -> str:
    """What an element shows: its Markdown with the escapes of display.md undone."""
    return str(element.value).replace("\\", "")


def _run(script: Path, **state: object) -> AppTest:
    at = AppTest.from_file(str(script), default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_without_accounts_the_projects_page_changes_labels_per_pair(team: Studio) -> None:
    at = _run(HOME)
    at.number_input(key="settings_labels_per_pair").set_value(3)
    at.slider(key="settings_gold_rate").set_value(0.1)
    next(b for b in at.button if b.label == "Save settings").click()
    at.run()
    assert any("3 label(s) per pair, gold rate 0.10" in _text(s) for s in at.success)
    with session_scope(team.engine) as session:
        project = repo.get_project(session, "team")
        assert project.labels_per_query == 3 and project.config["gold_rate"] == 0.1


def test_with_accounts_the_app_asks_for_a_login_and_an_annotator_sees_their_projects_only(team: Studio) -> None:
    new = accounts.add_user(team, "ann", "annotator", ["team"])
    at = _run(MAIN)
    assert [h.value for h in at.subheader] == ["Log in"]
    at.text_input(key="login_name").input("ann")
    at.text_input(key="login_password").input("wrong password")
    at.button[0].click()
    at.run()
    assert any("wrong name or password" in _text(e) for e in at.error)

    at.text_input(key="login_name").input("ann")
    at.text_input(key="login_password").input(new.password)
    at.button[0].click()
    at.run()
    assert "choose your own password" in at.subheader[0].value
    at.text_input(key="pw_old").input(new.password)
    at.text_input(key="pw_new").input("short")
    at.text_input(key="pw_again").input("short")
    at.button[0].click()
    at.run()
    assert any("at least 10 characters" in _text(e) for e in at.error)
    at.text_input(key="pw_old").input(new.password)
    at.text_input(key="pw_new").input("a long new password")
    at.text_input(key="pw_again").input("a long new password")
    at.button[0].click()
    at.run()
    assert not at.exception
    assert at.session_state["user"].name == "ann" and not at.session_state["user"].must_change_password
    token = at.session_state["session"]

    # an address that names the token (as addresses did before the cookie) logs nobody in,
    # and the token leaves the address
    shared = AppTest.from_file(str(MAIN), default_timeout=TIMEOUT)
    shared.query_params["session"] = token
    shared.run()
    assert [h.value for h in shared.subheader] == ["Log in"] and "session" not in shared.query_params

    home = _run(MAIN, session=token)
    assert [r for r in home.dataframe[0].value["name"]] == ["team"]  # not 'other'
    assert not [b for b in home.button if b.label == "Save settings"]  # settings are for admins
    train = _run(TRAIN, session=token, project="team")
    assert any("Only an admin" in e.value for e in train.error)
    # the old one-time password no longer works
    with pytest.raises(accounts.LoginError):
        accounts.login(team, "ann", new.password, delay=0)


def _logged_in(studio: Studio, name: str, role: str, projects: tuple[str, ...] = ()) -> str:
    """A new account that logged in and chose its own password; its session token."""
    one_time = accounts.add_user(studio, name, role, projects).password
    token = accounts.login(studio, name, one_time, delay=0).token
    accounts.change_password(studio, token, one_time, f"{name}'s own password")
    return token


def _end_login(studio: Studio, name: str, token: str, ending: str) -> None:
    """End ``name``'s login the way ``ending`` says."""
    if ending == "removed":
        accounts.remove_user(studio, name)
    elif ending == "password reset":
        accounts.reset_password(studio, name)
    else:
        accounts.logout(studio, token)


def test_the_team_page_shows_agreement_and_an_admin_rules_on_a_disputed_pair(team: Studio) -> None:
    report = agreement.agreement(team, "team", with_model=False)
    assert report.pairs_with_several == 30 and report.disputed
    at = _run(TEAM, project="team")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pairs answered by 2+"] == "30"
    assert metrics["Krippendorff's alpha"] == f"{report.alpha:.3f}"
    assert list(at.dataframe[0].value["annotator"]) == ["ann", "bo"]
    first = report.disputed[0].query_id
    next(b for b in at.button if b.key == f"rule-{first}-a").click()
    at.run()
    assert any(f"Pair {first}: ruling 'A'" in _text(s) for s in at.success)
    with session_scope(team.engine) as session:
        project = repo.get_project(session, "team")
        ruled = [c for c in repo.comparisons(session, project.id) if c.label_id == -first]
    assert len(ruled) == 1 and ruled[0].pref == 1.0


def test_the_team_page_computes_agreement_again_only_when_the_answers_change(
    team: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed: list[int] = []
    real = agreement.agreement

    def counted(*args, **kwargs):
        report = real(*args, **kwargs)
        computed.append(report.pairs_with_several)
        return report

    monkeypatch.setattr(agreement, "agreement", counted)
    at = _run(TEAM, project="team")
    at.run()
    assert computed == [30]  # a rerun with nothing new reuses the report
    first = agreement.agreement(team, "team").disputed[0].query_id
    computed.clear()
    next(b for b in at.button if b.key == f"rule-{first}-b").click()
    at.run()
    assert computed == []  # a ruling is read from the store, not computed again
    assert any(f"pair {first} · " in e.label and "ruled B" in e.label for e in at.expander)
    assert metrics_of(at)["Pairs answered by 2+"] == "30"
    with session_scope(team.engine, write=True) as session:  # a third person answers a pair
        cy = repo.get_or_create_annotator(session, "cy")
        repo.record_label(session, first, cy.id, Choice.left, swapped=False)
    at.run()
    assert computed == [30] and list(at.dataframe[0].value["annotator"]) == ["ann", "bo", "cy"]
    agreement.set_gold(team, "team", {first: "a"})  # a gold answer changes "with gold"
    at.run()
    assert len(computed) == 2 and list(at.dataframe[0].value["gold pairs"]) == [1, 1, 1]


def metrics_of(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_a_viewer_sees_the_team_page_but_cannot_rule(team: Studio) -> None:
    token = _logged_in(team, "val", "viewer", ("team",))
    at = _run(TEAM, session=token, project="team")
    assert at.metric and not [b for b in at.button if b.key and b.key.startswith("rule-")]


def _rulings(studio: Studio) -> int:
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, "team")
        return sum(1 for c in repo.comparisons(session, project.id) if c.label_id < 0)


@pytest.mark.parametrize("ending", ["removed", "password reset", "logged out"])
def test_an_admins_open_tab_acts_no_more_once_its_login_has_ended(team: Studio, ending: str) -> None:
    # a button's callback runs before its page checks the login again: each admin action asks itself
    accounts.add_user(team, "root", "admin")  # the studio keeps accounts when boss's is removed
    token = _logged_in(team, "boss", "admin")
    team_page = _run(TEAM, session=token, project="team")
    projects_page = _run(MAIN, session=token)  # the Projects page, in the navigation (its links need it)
    _end_login(team, "boss", token, ending)
    first = agreement.agreement(team, "team", with_model=False).disputed[0].query_id
    next(b for b in team_page.button if b.key == f"rule-{first}-a").click()
    team_page.run()
    projects_page.number_input(key="settings_labels_per_pair").set_value(3)
    next(b for b in projects_page.button if b.label == "Save settings").click()
    projects_page.run()
    for at in (team_page, projects_page):
        assert not at.exception, [e.value for e in at.exception]
        assert not at.success
    assert any("Log in first" in _text(i) for i in team_page.info)
    assert [h.value for h in projects_page.subheader] == ["Log in"]  # the app shows the login page
    assert _rulings(team) == 0  # no ruling stored
    with session_scope(team.engine) as session:
        assert [repo.get_project(session, p).labels_per_query for p in ("team", "other")] == [2, 1]  # unchanged
    assert "press did nothing" in team_page.session_state["login_error"]


def test_served_to_other_machines_without_accounts_no_page_is_served(team: Studio, monkeypatch) -> None:
    """`rlhf app --host 0.0.0.0` refuses to start without accounts; if the last account is
    removed while it runs, the pages refuse too instead of making everyone an admin."""
    monkeypatch.setenv(accounts.SERVED_HOST_ENV, "0.0.0.0")
    at = _run(MAIN)
    assert any("serves other machines and has no account" in _text(e) for e in at.error)
    assert not at.dataframe and not at.button


def _labels_of(studio: Studio, name: str) -> int:
    """How many labels ``name`` has given on project 'other'."""
    with session_scope(studio.engine) as session:
        labels = repo.comparisons(session, repo.get_project(session, "other").id)
        names = repo.annotator_names(session, sorted({c.annotator_id for c in labels if c.annotator_id}))
    return sum(1 for c in labels if names.get(c.annotator_id) == name)


@pytest.mark.usefixtures("instant_answers")
@pytest.mark.parametrize("ending", ["removed", "password reset", "logged out"])
def test_an_open_labeling_page_stores_nothing_once_its_login_has_ended(team: Studio, ending: str) -> None:
    # an answer reruns only the labeling panel, not the page that checked the login: the
    # panel must ask again, or a removed account's open tab would go on storing labels
    accounts.add_user(team, "root", "admin")  # the studio keeps accounts when cy's is removed
    token = _logged_in(team, "cy", "annotator", ("other",))
    at = _run(LABEL, session=token, project="other")
    answer_button(at, "left").click().run()
    assert any("Saved: left better" in c.value for c in at.caption), [c.value for c in at.caption]
    assert _labels_of(team, "cy") == 1
    _end_login(team, "cy", token, ending)
    on_screen = at.session_state["pair"].query_id
    answer_button(at, "right").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _labels_of(team, "cy") == 1  # nothing more stored
    assert not any("Saved" in c.value for c in at.caption)
    assert "pair" not in at.session_state or at.session_state["pair"].query_id != on_screen
    assert at.session_state["login_error"] == auth.SESSION_ENDED  # what the login page will say
    assert any("Log in first" in _text(i) for i in at.info)


@pytest.mark.usefixtures("instant_answers")
def test_a_tab_where_someone_else_logs_in_labels_as_them_not_as_the_one_before(team: Studio) -> None:
    # cy labels, then dee logs in on the same tab: cy's labeling session must not store dee's answers
    accounts.add_user(team, "root", "admin")
    tokens = {name: _logged_in(team, name, "annotator", ("other",)) for name in ("cy", "dee")}
    at = _run(LABEL, session=tokens["cy"], project="other")
    answer_button(at, "left").click().run()
    assert _labels_of(team, "cy") == 1
    at.session_state["session"] = tokens["dee"]  # what a login as dee leaves behind, the old session kept
    at.session_state["annotator"] = "dee"
    answer_button(at, "right").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _labels_of(team, "cy") == 1 and _labels_of(team, "dee") == 0  # cy's pair: not stored for either
    assert at.session_state["labeling_session"].annotator_name == "dee"  # the tab now labels as dee
    answer_button(at, "left").click().run()
    assert _labels_of(team, "dee") == 1 and _labels_of(team, "cy") == 1


def test_each_label_store_has_its_own_login_cookie_and_scripts_get_safe_strings(tmp_path: Path) -> None:
    # cookies do not tell ports apart: two studios on one host must not share (or delete) a login
    one = Studio(Settings.from_env(tmp_path / "one"))
    two = Studio(Settings.from_env(tmp_path / "two"))
    assert auth._cookie_name(one).startswith("rlhf_session_")
    assert auth._cookie_name(one) != auth._cookie_name(two)
    assert auth._cookie_name(one) == auth._cookie_name(Studio(Settings.from_env(tmp_path / "one")))
    assert "<" not in auth._js("</script><script>alert(1)</script>") and auth._js("a-b_c") == '"a-b_c"'
