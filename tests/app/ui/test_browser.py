"""End to end: `rlhf app` in a real Chromium, labeling with the keyboard."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NAME = "browser-alice"
STARTUP_TIMEOUT_S = 60
UI_TIMEOUT_MS = 30_000
REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    """Something still accepts connections on 127.0.0.1:port (after a moment to close)."""
    deadline = time.monotonic() + 5
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.2)


def _wait_for_http_200(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the app exited with {proc.returncode} before serving:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"no HTTP 200 from {url} within {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


@contextmanager
def _serve(data_dir: Path, log: Path) -> Iterator[str]:
    """`rlhf app` on a free port of 127.0.0.1, serving ``data_dir``; stopped on exit."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RLHF_DATA_DIR", "RLHF_DATABASE_URL")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "--data-dir", str(data_dir),
             "app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so that nothing of it can outlive the test
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for_http_200(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        still_serving = _listening(port)
        try:  # whatever `rlhf app` started and left behind (its Streamlit child)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # reached only when the test body passed: terminating `rlhf app` must stop the server it started
    assert not still_serving, f"the server on port {port} kept running after `rlhf app` was terminated"


def _pair_number(page) -> int | None:
    text = page.get_by_text(re.compile(r"^pair #\d+$")).first.inner_text(timeout=UI_TIMEOUT_MS)
    match = re.fullmatch(r"pair #(\d+)", text.strip())
    return int(match.group(1)) if match else None


def _wait_for_clip(page) -> None:
    page.wait_for_function(
        """() => [...document.querySelectorAll('img')].some(
               img => (img.src.includes('.gif') || img.src.includes('/media/'))
                      && img.complete && img.naturalWidth > 0)""",
        timeout=UI_TIMEOUT_MS,
    )


def _wait_for_shortcuts(page) -> None:
    """Wait until the answer buttons are enabled and their keyboard shortcuts are bound.

    Streamlit draws the buttons before it binds their shortcuts (hotkeys-js, exposed as
    ``window.hotkeys``); a key pressed in between is lost, so wait for the binding.
    """
    from playwright.sync_api import expect

    expect(page.get_by_role("button", name=re.compile("^Left better"))).to_be_enabled()
    page.wait_for_function(
        """() => !window.hotkeys || window.hotkeys.getAllKeyCodes().some(k => k.shortcut === '1')""",
        timeout=UI_TIMEOUT_MS,
    )


def test_label_three_pairs_with_the_keyboard(fresh_demo: Path, tmp_path: Path) -> None:
    if not CHROMIUM.is_file():  # a failure, not a skip: the end-to-end check must not vanish silently
        pytest.fail(
            f"{CHROMIUM} not found: this test drives Debian's Chromium; install it with "
            "`apt-get install chromium` (do not run `playwright install`)"
        )
    from playwright.sync_api import expect, sync_playwright

    from app.services.labeling import MIN_VIEW_SECONDS

    expect.set_options(timeout=UI_TIMEOUT_MS)

    with _serve(fresh_demo, tmp_path / "server.log") as app_url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        try:
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.goto(app_url)

            # Projects page: say who you are (keyboard), then follow the link to the label page.
            name_input = page.get_by_label("Your name (labels are recorded under it)")
            name_input.click()
            page.keyboard.type(NAME)
            page.keyboard.press("Enter")
            link = page.get_by_role("link", name=re.compile("Start labeling"))
            expect(link).to_be_visible()
            expect(link).to_contain_text(NAME)
            link.click()
            page.wait_for_url(re.compile(r"/label\?"))
            assert f"annotator={NAME}" in page.url
            expect(page.get_by_text(f"demo · labeling as {NAME}")).to_be_visible()

            _wait_for_clip(page)
            shown = _pair_number(page)
            assert shown is not None
            seen = [shown]
            for _ in range(3):
                page.evaluate("document.activeElement && document.activeElement.blur()")  # keys go to the page
                _wait_for_shortcuts(page)
                time.sleep(MIN_VIEW_SECONDS + 0.2)  # a person looks before answering; sooner is refused
                page.keyboard.press("1")
                deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
                while (now := _pair_number(page)) == shown:
                    assert time.monotonic() < deadline, f"pair #{shown} still shown after pressing 1"
                    time.sleep(0.1)
                shown = now
                seen.append(shown)
                _wait_for_clip(page)
            assert len(set(seen)) == 4, seen
        except BaseException:
            try:  # what the page looked like, for the failure report
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                (tmp_path / "failure.html").write_text(page.content())
            except Exception:
                pass
            raise
        finally:
            browser.close()

    con = sqlite3.connect(fresh_demo / "rlhf.db")
    try:
        rows = con.execute(
            "SELECT label.query_id, label.choice FROM label JOIN annotator ON annotator.id = label.annotator_id "
            "WHERE annotator.name = ? ORDER BY label.id",
            (NAME,),
        ).fetchall()
        total = con.execute("SELECT count(*) FROM label").fetchone()[0]
    finally:
        con.close()
    assert [choice for _, choice in rows] == ["left", "left", "left"]
    assert [query_id for query_id, _ in rows] == seen[:3]
    assert total == 3


# --- trust: what is stored is what was seen and said; names are text; nothing leaves the machine


def _require_chromium() -> None:
    if not CHROMIUM.is_file():  # a failure, not a skip
        pytest.fail(f"{CHROMIUM} not found: install it with `apt-get install chromium` (not `playwright install`)")
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)  # a page's first load (torch imports) can take longer than 5 s


def _label_rows(data_dir: Path) -> list[tuple[int, str, str]]:
    con = sqlite3.connect(data_dir / "rlhf.db")
    try:
        return con.execute(
            "SELECT label.query_id, annotator.name, label.choice FROM label "
            "JOIN annotator ON annotator.id = label.annotator_id ORDER BY label.id"
        ).fetchall()
    finally:
        con.close()


@contextmanager
def _browser(pw, tmp_path: Path, outside: list[str]):
    """Chromium whose pages may reach 127.0.0.1 only: any other request is recorded in
    ``outside`` and aborted (the studio works offline; a test fails on any such request)."""
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    context = browser.new_context()

    def guard(route) -> None:
        host = urllib.parse.urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield context
    except BaseException:
        for i, page in enumerate(context.pages):
            try:
                page.screenshot(path=str(tmp_path / f"failure-{i}.png"), full_page=True)
            except Exception:
                pass
        raise
    finally:
        browser.close()


def _ready_to_answer(page) -> int:
    """Wait until a pair's clip is shown and its keys are bound, then as long as a person needs
    at the least (the minimum viewing time); return the pair's number."""
    from app.services.labeling import MIN_VIEW_SECONDS

    _wait_for_clip(page)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    _wait_for_shortcuts(page)
    shown = _pair_number(page)
    assert shown is not None
    time.sleep(MIN_VIEW_SECONDS + 0.2)
    return shown


def _wait_for_new_pair(page, old: int) -> int:
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while (now := _pair_number(page)) == old:
        assert time.monotonic() < deadline, f"pair #{old} still shown"
        time.sleep(0.05)
    assert now is not None
    return now


def test_a_double_key_press_or_a_held_key_stores_one_label(fresh_demo: Path, tmp_path: Path) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    with _serve(fresh_demo, tmp_path / "server.log") as app_url, sync_playwright() as pw:
        with _browser(pw, tmp_path, outside) as context:
            page = context.new_page()
            page.goto(f"{app_url}label?project=demo&annotator={NAME}")
            answered = []
            for gap_ms in (0, 50, 150):
                shown = _ready_to_answer(page)
                page.keyboard.press("1")
                page.wait_for_timeout(gap_ms) if gap_ms else None
                page.keyboard.press("1")
                answered.append(shown)
                nxt = _wait_for_new_pair(page, shown)
                time.sleep(1.0)  # time for a second label to land, if one were stored
                rows = _label_rows(fresh_demo)
                assert [(q, c) for q, _, c in rows] == [(q, "left") for q in answered], (gap_ms, rows)
                assert _pair_number(page) == nxt  # the next pair is still on screen, unanswered
            # holding the key down (auto-repeat, every 50 ms for 2 s) answers the pair on screen once
            shown = _ready_to_answer(page)
            for _ in range(40):
                page.keyboard.down("1")
                page.wait_for_timeout(50)
            page.keyboard.up("1")
            answered.append(shown)
            _wait_for_new_pair(page, shown)
            time.sleep(1.0)
            assert [(q, c) for q, _, c in _label_rows(fresh_demo)] == [(q, "left") for q in answered]
    assert outside == []


def test_two_tabs_of_one_annotator_never_acknowledge_an_answer_that_was_not_stored(
    fresh_demo: Path, tmp_path: Path
) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    outside: list[str] = []
    with _serve(fresh_demo, tmp_path / "server.log") as app_url, sync_playwright() as pw:
        with _browser(pw, tmp_path, outside) as context:
            tab1, tab2 = context.new_page(), context.new_page()
            for tab in (tab1, tab2):
                tab.goto(f"{app_url}label?project=demo&annotator={NAME}")
            pair = _ready_to_answer(tab1)
            assert _ready_to_answer(tab2) == pair  # one annotator, one live claim: the same pair

            tab1.bring_to_front()
            tab1.keyboard.press("1")
            expect(tab1.get_by_text(re.compile(r"Saved: left better")).first).to_be_visible()  # the ack, and its toast
            tab2.bring_to_front()
            tab2.keyboard.press("2")
            expect(tab2.get_by_text(re.compile(rf"Not stored: you had already answered pair #{pair}"))).to_be_visible()
            assert tab2.get_by_text(re.compile("Saved")).count() == 0
            assert _wait_for_new_pair(tab2, pair) != pair
    assert [(q, c) for q, _, c in _label_rows(fresh_demo)] == [(pair, "left")]
    assert outside == []


class _Trap:
    """An HTTP server on 127.0.0.1 that counts the requests it gets (none are expected)."""

    def __init__(self) -> None:
        import http.server
        import threading

        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                hits.append(self.path)
                self.send_response(404)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_markdown_and_html_in_names_are_shown_as_text_and_fetch_nothing(tmp_path: Path) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    from app.config import Settings, Studio
    from app.services.demo import create_demo_project

    trap = _Trap()
    try:
        project = f"**p** ![q](http://127.0.0.1:{trap.port}/project.png) :red[r]"
        annotator = f"![a](http://127.0.0.1:{trap.port}/annotator.png)<img src=http://127.0.0.1:{trap.port}/i.png>"
        data_dir = tmp_path / "data"
        studio = Studio(Settings.from_env(data_dir))
        create_demo_project(studio, project, "MiniGrid-Empty-Random-6x6-v0", n_segments=4, n_queries=2, workers=1)
        studio.engine.dispose()
        outside: list[str] = []
        with _serve(data_dir, tmp_path / "server.log") as app_url, sync_playwright() as pw:
            with _browser(pw, tmp_path, outside) as context:
                page = context.new_page()
                query = urllib.parse.urlencode({"project": project, "annotator": annotator})
                page.goto(f"{app_url}label?{query}")
                expect(page.get_by_text(f"{project} · labeling as {annotator}", exact=True)).to_be_visible()
                _wait_for_clip(page)
                page.goto(f"{app_url}?{query}")  # the Projects page: the choice and the link
                expect(page.get_by_text(project, exact=True).first).to_be_visible()
                link = page.get_by_role("link", name=re.compile("Start labeling"))
                expect(link).to_be_visible()
                shown = link.inner_text().replace("\u200b", "")  # zero-width spaces keep ":red[" inert
                assert f"Start labeling {project} as {annotator}" in shown, shown
                for view in ("train", "policy"):
                    page.goto(f"{app_url}{view}?{query}")
                    title = page.locator("h1").first
                    expect(title).to_be_visible()
                    assert title.inner_text().replace("\u200b", "").endswith(f" · {project}"), title.inner_text()
                page.wait_for_timeout(500)
        assert trap.hits == []  # no image of a name was fetched
        assert outside == []
    finally:
        trap.close()


def test_the_app_makes_no_request_outside_the_machine(demo_data_dir: Path, tmp_path: Path) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    outside: list[str] = []
    with _serve(demo_data_dir, tmp_path / "server.log") as app_url, sync_playwright() as pw:
        with _browser(pw, tmp_path, outside) as context:
            page = context.new_page()
            seen: list[str] = []
            page.on("request", lambda request: seen.append(request.url))
            page.goto(app_url)
            expect(page.get_by_text("rlhf-studio").first).to_be_visible()
            for view, text in (("label", "labeling as"), ("train", "Reward model"), ("policy", "Policy"),
                               ("classifiers", "Classifiers")):  # fmt: skip
                page.goto(f"{app_url}{view}?project=demo&annotator=viewer")
                expect(page.get_by_text(re.compile(text)).first).to_be_visible()
            page.wait_for_timeout(1000)  # late requests (icons, fonts) too
            icon = page.evaluate("(document.querySelector(\"link[rel*='icon']\") || {}).href || ''")
    assert outside == [], outside
    assert len(seen) > 10 and all(u.startswith(app_url[:-1]) or u.startswith(("data:", "blob:")) for u in seen)
    assert icon.startswith(app_url[:-1]), icon  # the tab icon is served by the app itself


# --- teams: accounts, roles, two annotators on one pair, the Team page


def _log_in(page, app_url: str, name: str, password: str, new_password: str | None = None) -> None:
    from playwright.sync_api import expect

    page.goto(app_url)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    if new_password is not None:  # first login: the one-time password must be replaced
        expect(page.get_by_text("choose your own password")).to_be_visible()
        page.get_by_role("textbox", name="One-time password").fill(password)
        page.get_by_role("textbox", name="New password", exact=True).fill(new_password)
        page.get_by_role("textbox", name="New password, again").fill(new_password)
        page.get_by_role("button", name="Set password").click()
    expect(page.get_by_text(f"Logged in as {name}")).to_be_visible()


def _login_cookies(context, count: int | None = None) -> list[str]:
    """The values of the studio's login cookies in a browser (first waiting, up to the UI's
    timeout, until there are ``count``: the page's script writes them as it renders)."""
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while True:
        values = [c["value"] for c in context.cookies() if c["name"].startswith("rlhf_session_")]
        if count is None or len(values) == count or time.monotonic() > deadline:
            return values
        time.sleep(0.1)


def _label_text_pairs(page, n: int) -> list[int]:
    from playwright.sync_api import expect

    page.get_by_role("link", name=re.compile("Start labeling")).click()
    page.wait_for_url(re.compile(r"/label\?"))
    seen = []
    for _ in range(n):
        expect(page.get_by_text(re.compile(r"^pair #\d+$"))).to_be_visible()
        page.evaluate("document.activeElement && document.activeElement.blur()")
        _wait_for_shortcuts(page)
        shown = _pair_number(page)
        assert shown is not None
        from app.services.labeling import MIN_VIEW_SECONDS

        time.sleep(MIN_VIEW_SECONDS + 0.2)
        page.keyboard.press("1")
        seen.append(shown)
        _wait_for_new_pair(page, shown)
    return seen


def test_two_annotators_log_in_label_one_project_twice_each_pair_and_see_their_agreement(tmp_path: Path) -> None:
    """A team as a new user sets it up: accounts by CLI, k = 2, two people in two browsers;
    roles keep an annotator out of admin pages and other projects; the Team page shows agreement."""
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    from app.config import Settings, Studio
    from app.services import accounts, projects, text_data

    data = tmp_path / "data"
    studio = Studio(Settings.from_env(data))
    text_data.create_team_demo(studio, "team", pairs=30)
    text_data.create_team_demo(studio, "secret", pairs=20)
    projects.update_settings(studio, "team", labels_per_pair=2)
    ann = accounts.add_user(studio, "ann", "annotator", ["team"])
    bo = accounts.add_user(studio, "bo", "annotator", ["team"])
    studio.engine.dispose()

    outside: list[str] = []
    with _serve(data, tmp_path / "server.log") as app_url, sync_playwright() as pw:
        with _browser(pw, tmp_path, outside) as first, _browser(pw, tmp_path, outside) as second:
            page_a, page_b = first.new_page(), second.new_page()
            # a wrong password is refused without saying which of name and password was wrong
            page_a.goto(app_url)
            page_a.get_by_role("textbox", name="Name").fill("ann")
            page_a.get_by_role("textbox", name="Password").fill("not-the-password")
            page_a.get_by_role("button", name="Log in").click()
            expect(page_a.get_by_text("wrong name or password")).to_be_visible()

            _log_in(page_a, app_url, "ann", ann.password, new_password="ann-own-password")
            _log_in(page_b, app_url, "bo", bo.password, new_password="bo-own-password")

            # an annotator sees their project only, and no admin page
            expect(page_a.get_by_text("secret")).to_have_count(0)
            expect(page_a.get_by_role("link", name="Train")).to_have_count(0)
            page_a.goto(app_url + "train?" + urllib.parse.urlsplit(page_a.url).query)
            expect(page_a.get_by_role("heading", name=re.compile("^Reward model"))).to_have_count(0)
            page_a.goto(app_url + "?" + urllib.parse.urlsplit(page_a.url).query)

            seen_a = _label_text_pairs(page_a, 3)
            seen_b = _label_text_pairs(page_b, 3)
            assert seen_b == seen_a  # k = 2: bo finishes the pairs ann started, never one twice

            page_a.get_by_role("link", name="Team").click()
            expect(page_a.get_by_text("Krippendorff's alpha").first).to_be_visible()
            expect(page_a.get_by_text("Pairs answered by 2+")).to_be_visible()
            # an annotator may not rule on disputes
            expect(page_a.get_by_role("button", name="A is better")).to_have_count(0)

            # the login lives in a cookie of the app's own, never in an address: a copied
            # address does not log anyone in, not even an old one that names a token
            _login_cookies(first, count=1)
            (cookie,) = [c for c in first.cookies() if c["name"].startswith("rlhf_session_")]
            assert (
                cookie["sameSite"] == "Strict" and cookie["domain"] == "127.0.0.1" and cookie["expires"] > time.time()
            )
            assert all(cookie["value"] not in page.url and "session=" not in page.url for page in (page_a, page_b))

            # a reload and a new tab keep the login; logging out ends it and deletes the cookie
            page_b.reload()
            expect(page_b.get_by_text("Logged in as bo")).to_be_visible()
            tab = second.new_page()
            tab.goto(app_url)
            expect(tab.get_by_text("Logged in as bo")).to_be_visible()
            tab.close()
            page_b.get_by_role("button", name="Log out").click()
            expect(page_b.get_by_role("heading", name="Log in")).to_be_visible()
            assert not _login_cookies(second, count=0), "logging out left the cookie"
            # logging in again without a reload writes the new login's cookie: a new tab has it
            page_b.get_by_role("textbox", name="Name").fill("bo")
            page_b.get_by_role("textbox", name="Password").fill("bo-own-password")
            page_b.get_by_role("button", name="Log in").click()
            expect(page_b.get_by_text("Logged in as bo")).to_be_visible()
            tab = second.new_page()
            tab.goto(app_url)
            expect(tab.get_by_text("Logged in as bo")).to_be_visible()
            tab.get_by_role("button", name="Log out").click()  # ends the login the first tab shares
            expect(tab.get_by_role("heading", name="Log in")).to_be_visible()
            # and logs in again there: the first tab, whose login has ended, must not delete
            # the new login's cookie when it next runs
            _log_in(tab, app_url, "bo", "bo-own-password")
            (new_login,) = _login_cookies(second, count=1)
            page_b.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Team").click()
            expect(page_b.get_by_role("heading", name="Log in")).to_be_visible()
            time.sleep(1)  # (the page's script would have run)
            assert _login_cookies(second) == [new_login]
            tab.reload()
            expect(tab.get_by_text("Logged in as bo")).to_be_visible()
            tab.get_by_role("button", name="Log out").click()
            expect(tab.get_by_role("heading", name="Log in")).to_be_visible()
            tab.close()
            for address in (page_a.url, app_url + "team?session=" + cookie["value"]):
                page_b.goto(address)
                expect(page_b.get_by_role("heading", name="Log in")).to_be_visible()
                expect(page_b.get_by_text("Logged in as")).to_have_count(0)
            page_a.reload()  # ann's own login goes on
            expect(page_a.get_by_text("Logged in as ann")).to_be_visible()
    assert outside == []
    rows = _label_rows(data)
    assert sorted(q for q, name, _ in rows if name == "ann") == sorted(seen_a)
    assert sorted(q for q, name, _ in rows if name == "bo") == sorted(seen_a)
    assert {name for _, name, _ in rows} == {"ann", "bo"}
