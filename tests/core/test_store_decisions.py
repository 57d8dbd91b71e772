"""Decisions survive a crash: an approved one is in the file once its order is; the rest are restored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.plugins.monitoring.audit_trail import AuditTrail
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.plugins.risk.position_sizing import PositionSizing
from tradeguard.store.sqlite import Store
from tradeguard.testing import crash, make_runtime, signal


def on_file(db: Path) -> list[tuple[str, int, str]]:
    """The decisions table as another process reads it."""
    with sqlite3.connect(db) as con:
        return [tuple(r) for r in con.execute("SELECT signal_id, approved, client_id FROM decisions ORDER BY id")]


def test_a_crash_loses_no_decision_the_journal_or_the_audit_can_give_back(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    audit = AuditTrail()
    rt = make_runtime(
        ("execution_engine", ExecutionEngine()),
        ("kill_switch", KillSwitch()),
        ("position_sizing", PositionSizing()),
        ("audit_trail", audit),
        store=Store(db),
    )
    approved = rt.decide(signal(signal_id="s-approved", price=1.0717, stop_loss=1.0697))
    assert approved.approved and on_file(db) == [("s-approved", 1, approved.client_id)]  # written with its order
    rt.request_halt("manual", "test", source="test")
    rejected = rt.decide(signal(signal_id="s-rejected", price=1.0717, stop_loss=1.0697))
    assert not rejected.approved and len(on_file(db)) == 1  # written behind
    audit.flush()
    crash(rt)  # the process dies: the pending decision is gone from memory, the audit chain holds it

    store = Store(db)
    assert store.restore_decisions() == (1, 0)
    assert [(d.signal_id, d.approved, d.stage) for d in store.decisions()] == [
        ("s-approved", True, "done"),
        ("s-rejected", False, "risk"),
    ]
    assert store.restore_decisions() == (0, 0)  # nothing twice

    # the audit lost it too (a kill inside its last second): the order's row still tells what was approved
    with store.tx() as con:
        con.execute("DELETE FROM decisions WHERE signal_id = 's-approved'")
        con.execute("DELETE FROM audit WHERE kind = 'decision'")
    assert store.restore_decisions() == (0, 1)
    (rebuilt,) = [d for d in store.decisions() if d.signal_id == "s-approved"]
    assert rebuilt.approved and rebuilt.client_id == approved.client_id and rebuilt.order is not None
    assert (rebuilt.volume, rebuilt.order.stop_loss, rebuilt.order.symbol) == (approved.volume, 1.0697, "EURUSD")
    assert rebuilt.targets is not None and rebuilt.targets.method == "restored from the order"
