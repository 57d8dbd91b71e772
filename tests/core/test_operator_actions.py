"""Every operator action on the kill switch is alerted once (CRITICAL, RISK, to a real local webhook) and
audited with who, how and the state before and after: with a trading process running, and without one."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tradeguard.kernel.operator_secret import hash_secret
from tradeguard.store.audit import verify
from tradeguard.store.sqlite import Store

from ..helpers import tradeguard as tg
from ..helpers import wait_for
from ..receiver import Receiver

SECRET = "open sesame, please"


def deployment(tmp_path: Path, receiver: Receiver) -> Path:
    settings = tmp_path / "settings.toml"
    settings.write_text(f"""
[default.plugins]
enabled = ["kill_switch", "risk_guard", "execution_engine", "alert_manager", "audit_trail"]
[default.runtime]
data_dir = "{tmp_path / "var"}"
[default.alert_manager]
poll_seconds = 0.05
destinations = {{ desk = {{ kind = "webhook", url = "{receiver.url}/desk", min_severity = "CRITICAL" }} }}
[default.logging]
level = "INFO"
""")
    (tmp_path / ".secrets.toml").write_text(f'[default.kill_switch]\noperator_secret_hash = "{hash_secret(SECRET)}"\n')
    return settings


def posted(receiver: Receiver, code: str) -> list[dict[str, Any]]:
    return [body for _, body in receiver.posts if body.get("error_code") == code]


def clean(res: subprocess.CompletedProcess[str]) -> str:
    """The command's output, which must hold no ERROR line and no traceback."""
    out = res.stdout + res.stderr
    assert '"level": "ERROR"' not in out and "Traceback" not in out, out[-3000:]
    return out


@pytest.mark.parametrize("running", [False, True], ids=["alone", "beside_a_running_process"])
def test_kill_reset_and_a_refused_reset_are_alerted_once_and_audited(
    tmp_path: Path, receiver: Receiver, running: bool
) -> None:
    settings = deployment(tmp_path, receiver)
    proc = None
    if running:
        log = (tmp_path / "run.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradeguard", "run", "--settings", str(settings)],
            stdout=log,
            stderr=log,
            cwd=tmp_path,
        )
        wait_for(lambda: "runtime started" in (tmp_path / "run.log").read_text(errors="replace"))
    try:
        killed = tg(settings, "kill", "--reason", "desk says stop", "--operator", "carol")
        assert killed.returncode == 0 and "latched HALTED by carol" in clean(killed)
        assert ("a trading process runs" in killed.stdout) is running
        wait_for(lambda: len(posted(receiver, "kill_switch_latched")) == 1)

        wrong = tg(settings, "reset", "--operator", "mallory", "--reason", "let me in", secret="guess")
        assert wrong.returncode == 1 and "wrong operator secret" in clean(wrong)
        assert "guess" not in wrong.stdout + wrong.stderr
        wait_for(lambda: len(posted(receiver, "reset_refused")) == 1)

        ok = tg(settings, "reset", "--operator", "dave", "--reason", "all clear", secret=SECRET)
        assert ok.returncode == 0 and "reset to ACTIVE by dave" in clean(ok)
        wait_for(lambda: len(posted(receiver, "kill_switch_reset")) == 1)
        again = tg(settings, "reset", "--operator", "dave", "--reason", "twice", secret=SECRET)
        assert again.returncode == 0 and "already ACTIVE" in again.stdout  # no ACTIVE -> ACTIVE recorded
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
    time.sleep(0.5)
    for code in ("kill_switch_latched", "reset_refused", "kill_switch_reset"):
        (alert,) = posted(receiver, code)  # once, never twice
        assert alert["severity"] == "CRITICAL" and alert["channel"] == "RISK"
    assert SECRET not in json.dumps(receiver.posts)

    db = tmp_path / "var" / "tradeguard.db"
    store = Store(db)
    assert verify(store).ok
    events = [
        json.loads(r[0])["data"]
        for r in store.query("SELECT record FROM audit WHERE kind = 'kill_switch' ORDER BY seq")
    ]
    assert [(e["operator"], e["via"], e["auth"], e["from_state"], e["to_state"], e["trigger"]) for e in events] == [
        ("carol", "cli", "none", "ACTIVE", "HALTED", "manual"),
        ("mallory", "cli", "wrong secret", "HALTED", "HALTED", "reset_refused"),
        ("dave", "cli", "operator secret", "HALTED", "ACTIVE", "reset"),
    ]
    assert all(e["time"] and e["message"] for e in events)
    outbox = sqlite3.connect(db).execute("SELECT status, last_error, delivered FROM alert_outbox").fetchall()
    assert outbox and all(s == "sent" and err == "" and when for s, err, when in outbox)
