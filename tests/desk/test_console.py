"""The web console in headless Chromium against a real `tradeguard run`: log in with a token, see the state,
press "Stop entries", see REDUCE_ONLY appear and the next signal refused; then the API's orders reach the
trading loop (flatten), audited with the caller."""

from __future__ import annotations

import shutil
import signal
import socket
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import httpx

from tradeguard.kernel.tokens import new_token

from ..conftest import require
from ..helpers import start_trading

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def query(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with closing(sqlite3.connect(db)) as con:
            return con.execute(sql).fetchall()
    except sqlite3.Error:
        return []


def wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.1)


def test_stop_entries_from_the_console_then_flatten_from_the_api(tmp_path: Path) -> None:
    require(CHROMIUM is not None, "chromium not installed (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    token, digest = new_token()
    port = free_port()
    proc = start_trading(
        tmp_path,
        f'[default.control_api]\nport = {port}\n[default.control_api.tokens.alice]\nhash = "{digest}"\n'
        'scopes = ["read", "control"]\n',
    )
    db = tmp_path / "var" / "tradeguard.db"
    try:
        wait_for(lambda: query(db, "SELECT 1 FROM fills LIMIT 1"), 120, "the process traded")
        problems: list[str] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#token", token)
            page.click("#login-form button")
            page.wait_for_selector("#state:text('ACTIVE')", timeout=10_000)
            assert "alice" in page.inner_text("#who")
            page.fill("#reason", "news at 14:30")
            page.once("dialog", lambda dialog: dialog.accept())
            page.click("button[data-action='stop-entries']")
            page.wait_for_selector("#state:text('REDUCE_ONLY')", timeout=15_000)
            assert "REDUCE_ONLY" in page.get_attribute("#banner", "class")
            browser.close()
        assert problems == []
        time.sleep(2.0)  # the decisions taken before the latch are written behind (within a second)
        latched = query(db, "SELECT MAX(id) FROM decisions")[0][0] or 0
        wait_for(
            lambda: query(db, f"SELECT reasons FROM decisions WHERE id > {latched} AND approved = 0"),
            120,
            "a signal after the latch",
        )
        after = query(db, f"SELECT approved, reasons, record FROM decisions WHERE id > {latched}")
        openings = [r for r in after if r[0] and '"reduce_only":false' in r[2].replace(" ", "")]
        assert after and not openings  # REDUCE_ONLY admits what reduces; nothing that opens
        assert any("kill_switch_reduce_only" in reasons for ok, reasons, _ in after if not ok)
        events = query(db, "SELECT to_state, operator, via, auth, message FROM kill_switch_events")
        assert ("REDUCE_ONLY", "alice", "console", "token alice", "news at 14:30") in events
        flat = httpx.post(
            f"http://127.0.0.1:{port}/api/actions/flatten",
            json={"reason": "end of day"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert flat.status_code == 200 and flat.json()["ok"], flat.text
        audit = query(db, "SELECT record FROM audit WHERE kind = 'operator_action'")
        assert any('"operator":"alice"' in r[0] and '"via":"api"' in r[0] for r in audit), audit[-1:]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert token not in (tmp_path / "run.log").read_text()
