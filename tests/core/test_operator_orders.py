"""`tradeguard flatten`: carried out by the trading process (running, or started for the moment), over the
served emulator; alerted once to a real local webhook and audited with who, how and why."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradeguard import OrderIntent
from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.store.audit import verify
from tradeguard.store.sqlite import Store
from tradeguard.testing import T0, make_runtime

from ..helpers import wait_for
from ..receiver import Receiver
from ..served import Served, served_emulator

pytest.importorskip("mt5linux", reason="mt5linux is installed by `make test` (pip install --no-deps mt5linux)")


def open_positions(served: Served, db: Path, n: int) -> None:
    """Journaled positions of ours at the served broker, opened by an earlier process."""
    eng = ExecutionEngine()
    rt = make_runtime(
        ("kill_switch", KillSwitch()),
        ("execution_engine", eng),
        settings={"broker": {"module": "mt5linux", "port": served.port}},
        store=Store(db),
    )
    for _ in range(n):
        eng.submit_order(OrderIntent(symbol="EURUSD", side="buy", volume=0.1, created_at=T0))
    rt.stop()


def deployment(tmp_path: Path, served: Served, receiver: Receiver) -> Path:
    settings = tmp_path / "settings.toml"
    settings.write_text(f"""
[default.plugins]
enabled = ["kill_switch", "risk_guard", "execution_engine", "state_alignment", "alert_manager", "audit_trail"]
[default.broker]
module = "mt5linux"
port = {served.port}
[default.runtime]
data_dir = "{tmp_path / "var"}"
[default.alert_manager]
poll_seconds = 0.05
destinations = {{ desk = {{ kind = "webhook", url = "{receiver.url}/desk", min_severity = "WARNING" }} }}
[default.logging]
level = "INFO"
""")
    return settings


@pytest.mark.parametrize("running", [False, True], ids=["alone", "beside_a_running_process"])
def test_flatten_is_carried_out_alerted_once_and_audited(tmp_path: Path, receiver: Receiver, running: bool) -> None:
    with served_emulator(tmp_path) as served:
        settings = deployment(tmp_path, served, receiver)
        open_positions(served, tmp_path / "var" / "tradeguard.db", 2)
        assert served.terminal.positions_total() == 2
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
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tradeguard",
                    "flatten",
                    "--reason",
                    "news in 5 min",
                    "--operator",
                    "erin",
                    "--settings",
                    str(settings),
                ],
                capture_output=True,
                text=True,
                timeout=120,
                env={**os.environ, "COLUMNS": "200"},
            )
            out = done.stdout + done.stderr
            assert done.returncode == 0 and "flatten by erin" in out, out[-3000:]
            assert '"level": "ERROR"' not in out and "Traceback" not in out
            assert ("carried out by the trading process" in out) is running
            assert served.terminal.positions_total() == 0
            gone = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tradeguard",
                    "stops",
                    "1000001",
                    "--sl",
                    "1.05",
                    "--reason",
                    "tighten",
                    "--operator",
                    "erin",
                    "--settings",
                    str(settings),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert gone.returncode == 1 and "position 1000001: not open" in gone.stderr  # refused, and said so
            wait_for(lambda: [b for _, b in receiver.posts if b.get("error_code") == "operator_flatten"])
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=60) == 0
    time.sleep(0.3)
    (alert,) = [b for _, b in receiver.posts if b.get("error_code") == "operator_flatten"]
    assert alert["severity"] == "CRITICAL" and "erin" in alert["message"]
    store = Store(tmp_path / "var" / "tradeguard.db")
    record, refused = [
        json.loads(r[0])["data"]
        for r in store.query("SELECT record FROM audit WHERE kind = 'operator_action' ORDER BY seq")
    ]
    assert (refused["action"], refused["target"], refused["ok"]) == ("modify", "1000001", False)
    assert (record["action"], record["operator"], record["via"], record["reason"], record["ok"]) == (
        "flatten",
        "erin",
        "cli",
        "news in 5 min",
        True,
    )
    assert record["result"].count("tg-") == 2  # the two closes it sent
    assert verify(store, cross_check=False).ok
