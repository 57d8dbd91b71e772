"""Reconciliation on hedging and netting accounts, with foreign and manual positions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tradeguard import BrokerDeal, ClosedBy, DealEntry, DealKind, OrderIntent, Side
from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.plugins.account.position_reconciler import PositionReconciler
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.store.sqlite import Store
from tradeguard.testing import T0, make_runtime

OURS = 20261125


def setup(tmp_path: Path, emulator: dict[str, Any] | None = None, **cfg: Any) -> tuple[Any, Any, PositionReconciler]:
    eng, rec = ExecutionEngine(), PositionReconciler()
    rt = make_runtime(
        ("kill_switch", KillSwitch()),
        ("execution_engine", eng),
        ("position_reconciler", rec),
        settings={"broker": {"emulator": emulator or {}}, "position_reconciler": cfg},
        store=Store(tmp_path / "rec.db"),
    )
    return rt, eng, rec


def order(side: str = "buy", volume: float = 0.1, symbol: str = "EURUSD", **kw: Any) -> OrderIntent:
    return OrderIntent(symbol=symbol, side=side, volume=volume, created_at=T0, **kw)


def direct(rt: Any, **req: Any) -> Any:
    """Trade at the terminal behind the engine's back (as a person or a bug would)."""
    return rt.broker.send(rt.broker.prepare({"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, **req}))


def test_hedging_consistent_with_foreign_and_manual_positions_classified(tmp_path: Path) -> None:
    rt, eng, rec = setup(tmp_path)
    eng.submit_order(order(stop_loss=1.0650))
    manual = rt.broker.mt5.admin_add_position("EURUSD", False, 0.2, magic=0)
    other_ea = rt.broker.mt5.admin_add_position("EURUSD", True, 0.3, magic=999)
    report = rec.run_reconciliation("test")
    assert report.consistent and report.cause == "test"
    assert set(report.foreign) == {manual, other_ea} and report.unprotected == ()
    assert report.details == {str(manual): "manual", str(other_ea): "ea:999"}


def test_what_the_brokers_history_explains_is_imported_not_reported(tmp_path: Path) -> None:
    """A partial close at the terminal and a manual close of ours are deals to import (on_fill once each);
    a position with our magic that no order of ours opened stays unknown."""
    rt, eng, rec = setup(tmp_path)
    eng.submit_order(order(volume=0.3, stop_loss=1.0650))
    (ours,) = eng.get_positions_snapshot()
    direct(rt, type=1, volume=0.1, position=ours.ticket, magic=OURS)  # a partial close the journal did not see
    orphan = direct(rt, magic=OURS).order  # our magic, never journaled
    report = rec.run_reconciliation("test")
    assert not report.consistent and report.volume_drift == {} and report.missing == ()
    assert report.unknown == (orphan,) and report.unprotected == (orphan,)
    drift = {
        k: rt.metrics.registry.get_sample_value("tradeguard_reconciliation_drift", {"kind": k})
        for k in ("missing", "unknown", "unprotected", "volume")
    }
    assert drift == {"missing": 0, "unknown": 1, "unprotected": 1, "volume": 0}
    direct(rt, type=1, volume=0.2, position=ours.ticket, magic=0)  # someone closes ours by hand
    report = rec.run_reconciliation("again")
    assert report.missing == () and report.volume_drift == {}
    closes = [(f.entry.value, f.volume, f.magic) for f in eng.journal.fills() if f.position_id == ours.ticket]
    assert closes == [("in", 0.3, OURS), ("out", 0.1, OURS), ("out", 0.2, 0)]
    assert {f.client_id for f in eng.journal.fills()} == {"tg-00000001"}


def test_a_position_history_cannot_explain_is_missing(tmp_path: Path) -> None:
    _rt, eng, rec = setup(tmp_path)
    eng.submit_order(order(volume=0.1, stop_loss=1.0650))
    ghost = BrokerDeal(
        ticket=999_999,
        order=777_777,
        position_id=777_777,
        symbol="EURUSD",
        kind=DealKind.TRADE,
        side=Side.BUY,
        entry=DealEntry.IN,
        closed_by=ClosedBy.ORDER,
        volume=0.1,
        price=1.07,
        commission=0.0,
        swap=0.0,
        profit=0.0,
        magic=OURS,
        comment="tg-00000001",
        time=T0,
    )
    eng._journal_deal(ghost)  # the journal holds a position the broker never had
    report = rec.run_reconciliation("t")
    assert report.missing == (777_777,) and not report.consistent


def test_a_stop_hit_not_yet_polled_is_not_a_missing_position(tmp_path: Path) -> None:
    rt, eng, rec = setup(tmp_path)
    eng.submit_order(order(volume=0.2, stop_loss=1.0650))
    (ours,) = eng.get_positions_snapshot()
    direct(rt, type=1, volume=0.2, position=ours.ticket, magic=OURS)  # a deal of ours, as an SL hit is
    report = rec.run_reconciliation("schedule")  # before the engine's own poll
    assert report.consistent and report.missing == ()
    assert [f.entry.value for f in eng.journal.fills()] == ["in", "out"]  # the deal was journaled first


def test_sltp_changed_behind_the_engine_is_a_mismatch_but_engine_changes_are_not(tmp_path: Path) -> None:
    rt, eng, rec = setup(tmp_path)
    eng.submit_order(order(stop_loss=1.0650, take_profit=1.0800))
    ticket = eng.get_positions_snapshot()[0].ticket
    assert eng.modify_order(ticket, 1.0660, 1.0800)
    assert rec.run_reconciliation("t").sltp_mismatch == ()
    rt.broker.send({"action": 6, "symbol": "EURUSD", "position": ticket, "sl": 1.0670, "tp": 1.0800})
    assert rec.run_reconciliation("t").sltp_mismatch == (ticket,)


def test_rearm_missing_stops_and_adopt_foreign(tmp_path: Path) -> None:
    rt, eng, rec = setup(tmp_path, foreign_policy="adopt", rearm_missing_stops=True, rearm_stop_points=150)
    eng.submit_order(order())
    manual = rt.broker.mt5.admin_add_position("EURUSD", True, 0.1, magic=0)
    report = rec.run_reconciliation("t")
    ticket = eng.get_positions_snapshot()[0].ticket
    assert report.unprotected == (ticket,) and report.foreign == (manual,)
    done = rec.apply_corrections()
    bid = rt.broker.quote("EURUSD").bid
    assert done == [f"adopted {manual}", f"re-armed stop {round(bid - 0.0015, 5)} on {ticket}"]
    after = rec.run_reconciliation("t")
    assert after.unprotected == () and after.foreign == () and after.consistent
    assert [p.sl for p in rt.broker.positions() if p.ticket == manual] == [0.0]  # never touched a foreign one


def test_netting_compares_net_volume_per_symbol(tmp_path: Path) -> None:
    rt, eng, rec = setup(tmp_path, emulator={"margin_mode": "netting"})
    eng.submit_order(order(volume=0.3, stop_loss=1.0650))
    eng.submit_order(order(side="sell", volume=0.1))
    manual_gbp = rt.broker.mt5.admin_add_position("GBPUSD", True, 0.1, magic=0)
    report = rec.run_reconciliation("t")
    assert report.consistent and report.foreign == (manual_gbp,)
    direct(rt, type=1, volume=0.1, magic=OURS)  # the net exposure moves behind the engine's back ...
    report = rec.run_reconciliation("t")  # ... and the broker's history explains it
    assert report.consistent and report.volume_drift == {}
    assert [(f.side.value, f.volume) for f in eng.journal.fills()] == [("buy", 0.3), ("sell", 0.1), ("sell", 0.1)]


def test_many_inconsistencies_request_a_halt_and_a_halt_triggers_reconciliation(tmp_path: Path) -> None:
    rt, _eng, rec = setup(tmp_path, halt_after_issues=2)
    for _ in range(2):
        direct(rt, magic=OURS)
    report = rec.run_reconciliation("t")
    assert len(report.unknown) == 2 and rt.store.kill_state()[:2] == ("HALTED", "reconciliation_inconsistent")
    rt2, _eng2, rec2 = setup(tmp_path / "second")
    rt2.request_halt("manual", "operator", source="cli")
    assert rec2.last_report is not None and rec2.last_report.cause == "halt"


def test_a_scheduled_run_with_nothing_changed_keeps_its_report_and_a_hand_moved_level_shows_within_the_bound(
    tmp_path: Path,
) -> None:
    """Requests sent, positions and deals at the broker and our fills mark what can change the comparison; a level
    moved at the terminal (not through this process) marks nothing, so it shows at the next full comparison,
    at most ``every_seconds`` of real time later."""
    rt, eng, rec = setup(tmp_path, every_seconds=0.3)
    eng.submit_order(order(stop_loss=1.0650, take_profit=1.0800))
    ticket = eng.get_positions_snapshot()[0].ticket
    first = rec.run_reconciliation("schedule")
    assert first.consistent and rec.run_reconciliation("schedule") is first
    terminal = rt.broker.mt5
    assert (
        terminal.order_send({"action": 6, "symbol": "EURUSD", "position": ticket, "sl": 1.0670, "tp": 1.0800}).retcode
        == 10009
    )  # at the terminal, behind this process
    assert rec.run_reconciliation("schedule") is first
    assert rec.run_reconciliation("operator").sltp_mismatch == (ticket,)  # any other cause compares in full
    assert eng.modify_order(ticket, 1.0670, 1.0800)  # a request sent: compared again, consistent again
    again = rec.run_reconciliation("schedule")
    assert again is not first and again.consistent
    manual = terminal.admin_add_position("EURUSD", True, 0.1, magic=0)  # a position more at the broker
    assert rec.run_reconciliation("schedule").foreign == (manual,)
    terminal.order_send({"action": 6, "symbol": "EURUSD", "position": ticket, "sl": 1.0680, "tp": 1.0800})
    kept = rec.run_reconciliation("schedule")
    assert kept.sltp_mismatch == ()
    time.sleep(0.35)
    assert rec.run_reconciliation("schedule").sltp_mismatch == (ticket,)
