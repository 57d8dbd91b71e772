"""The audit chain records what happened, verifies, and names the record that was tampered with."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.plugins.monitoring.audit_trail import AuditTrail
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.plugins.risk.position_sizing import PositionSizing
from tradeguard.store.audit import verify
from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime, signal


def audited(db: Path, key: str = "") -> tuple[Any, AuditTrail]:
    audit = AuditTrail()
    rt = make_runtime(
        ("execution_engine", ExecutionEngine()),
        ("kill_switch", KillSwitch()),
        ("position_sizing", PositionSizing()),
        ("audit_trail", audit),
        store=Store(db),
        settings={"audit_trail": {"hmac_key": key}},
    )
    rt.decide(signal(price=1.0717, stop_loss=1.0697))
    rt.request_halt("manual", "operator", source="cli")
    rt.decide(signal(price=1.0717, stop_loss=1.0697, side="sell"))
    rt.stop()
    return rt, audit


def kinds(db: Path) -> list[str]:
    return [r[0] for r in sqlite3.connect(db).execute("SELECT kind FROM audit ORDER BY seq")]


def test_everything_that_matters_is_chained_and_verifies(tmp_path: Path) -> None:
    rt, _ = audited(tmp_path / "a.db")
    assert kinds(tmp_path / "a.db") == [
        "start",
        "order",
        "fill",
        "order",
        "decision",
        "halt",
        "decision",
        "kill_switch",
        "stop",
    ]
    verdict = verify(rt.store)
    assert verdict.ok and verdict.records == 9


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("UPDATE audit SET record = replace(record, 'buy', 'sell') WHERE seq = 3", "record 3 (fill) was altered"),
        ("DELETE FROM audit WHERE seq = 4", "record 4 is missing"),
        ("SWAP 5 6", "record 5 (halt) does not follow record 4"),  # seq 5 was the decision, 6 the halt
    ],
)
def test_update_delete_and_reorder_are_detected_and_located(tmp_path: Path, tamper: str, reason: str) -> None:
    _rt, _ = audited(tmp_path / "a.db")
    con = sqlite3.connect(tmp_path / "a.db")
    if tamper.startswith("SWAP"):  # two records change places
        a, b = (
            con.execute("SELECT kind, record, prev_hash, hash FROM audit WHERE seq = ?", (n,)).fetchone()
            for n in (5, 6)
        )
        for seq, row in ((5, b), (6, a)):
            con.execute("UPDATE audit SET kind = ?, record = ?, prev_hash = ?, hash = ? WHERE seq = ?", (*row, seq))
    else:
        con.execute(tamper)
    con.commit()
    verdict = verify(Store(tmp_path / "a.db"))
    assert not verdict.ok and reason in verdict.reason


def test_an_hmac_chain_cannot_be_rebuilt_without_the_key(tmp_path: Path) -> None:
    _rt, _ = audited(tmp_path / "a.db", key="k3y-from-secrets")
    store = Store(tmp_path / "a.db")
    assert verify(store, b"k3y-from-secrets").ok
    assert not verify(store).ok and not verify(store, b"guess").ok


def test_the_chain_continues_across_a_restart_and_the_cli_verifies_it(tmp_path: Path) -> None:
    audited(tmp_path / "var" / "tradeguard.db")
    audited(tmp_path / "var" / "tradeguard.db")
    assert kinds(tmp_path / "var" / "tradeguard.db").count("start") == 2
    settings = tmp_path / "s.toml"
    settings.write_text(f'[default.runtime]\ndata_dir = "{tmp_path / "var"}"\n')
    ok = subprocess.run(
        [sys.executable, "-m", "tradeguard", "audit", "verify", "--settings", str(settings)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # the second run starts with the latch restored HALTED: its first signal makes no order: 9 + 5 records
    assert ok.returncode == 0 and "audit chain intact: 14 records" in ok.stdout
    con = sqlite3.connect(tmp_path / "var" / "tradeguard.db")
    con.execute("UPDATE audit SET record = replace(record, 'operator', 'nobody') WHERE kind = 'halt'")
    con.commit()
    bad = subprocess.run(
        [sys.executable, "-m", "tradeguard", "audit", "verify", "--settings", str(settings)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "(halt) was altered" in bad.stderr
