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
REPO = Path(__file__).resolve().parents[2]

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
