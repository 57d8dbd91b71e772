"""A store that cannot write fails closed, loudly; a damaged one is named in one line by every command."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradeguard import KillState, OrderIntent
from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.plugins.alerting.alert_manager import AlertManager
from tradeguard.plugins.monitoring.audit_trail import AuditTrail
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.plugins.risk.position_sizing import PositionSizing
from tradeguard.store.sqlite import Store, StoreError
from tradeguard.testing import T0, make_runtime, signal

from ..helpers import tmpfs, wait_for
from ..receiver import Receiver


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs: a real disk that fills up (ENOSPC)."""
    with tmpfs(tmp_path / "disk", "4m") as mounted:
        yield mounted


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk is full (unbuffered: nothing left to flush at close); deleting it
    gives the space back."""
    ballast = disk / "ballast"
    with contextlib.suppress(OSError), ballast.open("wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 65536)
    return ballast


def test_a_full_disk_refuses_orders_latches_alerts_and_imports_the_outage_once_space_returns(
    small_disk: Path, receiver: Receiver
) -> None:
    eng, switch = ExecutionEngine(), KillSwitch()
    destinations = {"desk": {"kind": "webhook", "url": receiver.url, "min_severity": "CRITICAL"}}
    rt = make_runtime(
        ("kill_switch", switch),
        ("execution_engine", eng),
        ("position_sizing", PositionSizing()),
        ("audit_trail", AuditTrail()),
        ("alert_manager", AlertManager()),
        store=Store(small_disk / "j.db", synchronous="NORMAL"),
        settings={"alert_manager": {"destinations": destinations, "poll_seconds": 0.02}},
    )
    bid = rt.broker.quote("EURUSD").bid
    eng.submit_order(
        OrderIntent(symbol="EURUSD", side="buy", volume=0.1, stop_loss=round(bid - 0.0015, 5), created_at=T0)
    )
    ballast = fill(small_disk)

    refused = rt.decide(signal(price=1.0717, stop_loss=1.0697))  # its intent cannot be journaled
    assert not refused.approved and refused.stage == "execution"
    assert len(rt.broker.positions()) == 1  # nothing unjournaled reached the broker
    assert "store_unwritable" in rt.holds and rt.store.failure
    assert not rt.decide(signal(price=1.0717, stop_loss=1.0697)).approved  # held: refused before any broker call

    rt.store_watch.check()  # the trading loop's next pass: latch and alert
    assert switch.state is KillState.REDUCE_ONLY and switch.trigger == "store_failure"
    wait_for(lambda: any(body.get("error_code") == "store_failure" for _, body in receiver.posts))
    term = rt.broker.mt5
    while rt.broker.positions():  # the broker stops the position out while the disk is full
        assert term.replay_step(1)
    rt.store_watch.check()
    assert "store_unwritable" in rt.holds  # still full: still held

    ballast.unlink()  # space comes back
    rt.store_watch.check()
    assert "store_unwritable" not in rt.holds and rt.store.failure is None
    assert [f.entry.value for f in eng.journal.fills()] == ["in", "out"]  # the outage's stop-out, imported
    switch.refresh_latch()
    assert rt.store.kill_state()[:2] == ("REDUCE_ONLY", "store_failure")  # written, and it stays latched
    assert switch.state is KillState.REDUCE_ONLY
    assert not rt.decide(signal(price=1.0717, stop_loss=1.0697)).approved
    rt.stop()


def damage(db: Path, header: bool) -> None:
    """Overwrite the file's header (not a database) or its pages after the first (malformed)."""
    data = bytearray(db.read_bytes())
    start = 0 if header else 4096
    size = 100 if header else 65536
    data[start : start + size] = os.urandom(size)
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("header", [True, False], ids=["header", "pages"])
def test_every_command_names_a_damaged_store_in_one_line(tmp_path: Path, header: bool) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[default.runtime]\ndata_dir = "{tmp_path / "var"}"\n[default.logging]\nlevel = "ERROR"\n')
    env = {**os.environ, "COLUMNS": "200"}

    def tg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tradeguard", *args, "--settings", str(settings)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
        )

    made = tg("replay", "--to", "2017-06-01")
    assert made.returncode == 0, made.stderr
    db = tmp_path / "var" / "tradeguard.db"
    Store(db).close()  # one self-contained file, no write-ahead log beside it
    damage(db, header)
    with pytest.raises(StoreError):
        store = Store(db)
        store.query("SELECT COUNT(*) FROM decisions")
        store.query("SELECT COUNT(*) FROM fills")
    for command in (["status"], ["status", "--json"], ["run"], ["replay"], ["report"], ["audit", "verify"]):
        res = tg(*command)
        assert res.returncode == 1, (command, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr + res.stdout, (command, res.stderr)
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and str(db) in errors[0] and "damaged" in errors[0], (command, res.stderr)
