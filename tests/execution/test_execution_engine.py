"""The execution engine over the emulator, with a real SQLite journal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tradeguard import IllegalStateTransition, KillState
from tradeguard.broker.types import OrderRefused
from tradeguard.execution.execution_engine import ExecutionRefused
from tradeguard.execution.journal import Journal
from tradeguard.execution.states import check_transition
from tradeguard.models import OrderState
from tradeguard.testing import crash

from .conftest import buy, sell

Make = Callable[..., tuple]


def test_market_order_is_journaled_filled_and_announced_once(engine_runtime: Make) -> None:
    _rt, eng, rec = engine_runtime()
    cid = eng.submit_order(buy(stop_loss=1.0690, take_profit=1.0760))
    entry = eng.journal.get(cid)
    assert cid == "tg-00000001" and entry.state is OrderState.FILLED and entry.filled_volume == 0.1
    assert rec.kinds(cid) == ["submitted", "filled"]
    (fill,) = rec.fills
    assert (fill.client_id, fill.volume, fill.price, fill.entry.value) == (cid, 0.1, 1.0717, "in")
    (pos,) = eng.get_positions_snapshot()
    assert (pos.client_id, pos.stop_loss, pos.take_profit, pos.magic) == (cid, 1.069, 1.076, 20261125)
    assert eng.poll_fills() == [] and len(rec.fills) == 1  # the same deal is never announced twice


def test_a_market_fill_and_its_filled_state_are_one_commit(engine_runtime: Make) -> None:
    """Two durable writes per market order: the intent before order_send, then the deal with the state it
    settles, together (a crash can no longer leave the fill journaled and the order still open)."""
    rt, eng, rec = engine_runtime()
    commits: list[str] = []
    rt.store.db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    cid = eng.submit_order(buy())
    rt.store.db.set_trace_callback(None)
    assert len(commits) == 2
    assert eng.journal.get(cid).state is OrderState.FILLED and rec.kinds(cid) == ["submitted", "filled"]
    (row,) = rt.store.query("SELECT state, filled_volume FROM orders")
    assert tuple(row) == ("filled", 0.1)
    events = [tuple(r) for r in rt.store.query("SELECT from_state, to_state FROM order_events ORDER BY id")]
    assert events == [("new", "submitted"), ("submitted", "filled")]


def test_order_refused_locally_is_never_journaled(engine_runtime: Make) -> None:
    rt, eng, _rec = engine_runtime()
    with pytest.raises(OrderRefused) as exc:
        eng.submit_order(buy(volume=0.015))
    assert exc.value.field == "volume" and eng.journal.entries() == []
    assert rt.broker.mt5.history_deals_get(0, 2**40) == ()


def test_order_check_failure_rejects_without_sending(engine_runtime: Make) -> None:
    rt, eng, _rec = engine_runtime(emulator={"balance": 100.0})
    cid = eng.submit_order(buy(volume=1.0))
    entry = eng.journal.get(cid)
    assert entry.state is OrderState.REJECTED and entry.last_retcode == 10019 and "NO_MONEY" in entry.last_message
    assert entry.attempts == 0 and rt.broker.positions() == []


def test_pending_order_is_accepted_then_filled_by_polling(engine_runtime: Make) -> None:
    rt, eng, rec = engine_runtime()
    cid = eng.submit_order(buy(order_type="limit", price=1.0700, stop_loss=1.0650))
    assert eng.journal.get(cid).state is OrderState.ACCEPTED and rec.fills == []
    term = rt.broker.mt5
    while not rt.broker.positions():
        assert term.replay_step(1)
    assert [f.client_id for f in eng.poll_fills()] == [cid]
    assert eng.journal.get(cid).state is OrderState.FILLED and rec.kinds(cid) == ["submitted", "accepted", "filled"]


def test_requotes_are_retried_then_rejected_with_the_name(engine_runtime: Make) -> None:
    rt, eng, _rec = engine_runtime(emulator={"faults": {"requote_rate": 1.0}}, engine={"max_price_retries": 2})
    cid = eng.submit_order(buy())
    entry = eng.journal.get(cid)
    assert entry.state is OrderState.REJECTED and entry.attempts == 3 and entry.last_message.startswith("REQUOTE")
    assert rt.metrics.registry.get_sample_value("tradeguard_execution_retcodes_total", {"retcode": "REQUOTE"}) == 3


def test_too_many_requests_is_resent_after_doubling_pauses(engine_runtime: Make) -> None:
    rt, eng, _rec = engine_runtime(
        emulator={"faults": {"too_many_requests_rate": 1.0}}, engine={"max_backoff_retries": 3, "backoff_seconds": 0.25}
    )
    pauses: list[float] = []
    rt.sleep = pauses.append
    entry = eng.journal.get(eng.submit_order(buy()))
    assert pauses == [0.25, 0.5, 1.0]
    assert (entry.state, entry.attempts, entry.last_retcode) == (OrderState.REJECTED, 4, 10024)


def test_final_rejection_is_not_retried(engine_runtime: Make) -> None:
    _rt, eng, rec = engine_runtime(emulator={"faults": {"reject_rate": 1.0}})
    cid = eng.submit_order(buy())
    entry = eng.journal.get(cid)
    assert (entry.state, entry.attempts, entry.last_retcode) == (OrderState.REJECTED, 1, 10006)
    assert rec.kinds(cid) == ["submitted", "rejected"]


def test_timeout_that_executed_is_found_not_resent(engine_runtime: Make) -> None:
    rt, eng, rec = engine_runtime(emulator={"faults": {"timeout_executed_rate": 1.0}})
    cid = eng.submit_order(buy())
    entry = eng.journal.get(cid)
    assert entry.state is OrderState.FILLED and entry.attempts == 1
    assert len(rt.broker.positions()) == 1 and [f.client_id for f in rec.fills] == [cid]


def test_timeout_that_did_not_execute_is_looked_up_then_sent_again(engine_runtime: Make) -> None:
    rt, eng, _rec = engine_runtime(emulator={"faults": {"timeout_lost_rate": 0.5, "seed": 4}})
    outcomes = [eng.journal.get(eng.submit_order(buy(volume=0.01))) for _ in range(40)]
    filled = [e for e in outcomes if e.state is OrderState.FILLED]
    assert {e.state for e in outcomes} <= {OrderState.FILLED, OrderState.UNKNOWN}
    assert any(e.attempts > 1 for e in filled)  # some were lost and re-sent ...
    positions = rt.broker.positions()
    assert sorted(p.comment for p in positions) == sorted(e.client_id for e in filled)  # ... never twice
    unknown = [e for e in outcomes if e.state is OrderState.UNKNOWN]
    assert unknown, "seed 4 loses three sends in a row at least once"
    rt.clock.advance(__import__("datetime").timedelta(minutes=5))
    eng.enforce_sla()
    assert all(eng.journal.get(e.client_id).state is OrderState.REJECTED for e in unknown)


def test_disconnected_orders_end_unknown_then_the_sla_resolves_them(engine_runtime: Make) -> None:
    rt, eng, rec = engine_runtime(
        emulator={"faults": {"disconnect_rate": 1.0, "disconnect_seconds": 600}},
        engine={"unconfirmed_sla_seconds": 1.0},
    )
    cid = eng.submit_order(buy())
    assert eng.journal.get(cid).state is OrderState.UNKNOWN
    assert rec.kinds(cid)[-1] == "unknown" and rt.broker.positions() == []
    rt.clock.advance(__import__("datetime").timedelta(seconds=5))
    eng.enforce_sla()
    assert eng.journal.get(cid).state is OrderState.REJECTED


def test_partial_fill_rest_cancelled_or_resubmitted(engine_runtime: Make) -> None:
    rt, eng, rec = engine_runtime(emulator={"liquidity_lots": 0.3})
    cid = eng.submit_order(buy(volume=1.0))
    entry = eng.journal.get(cid)
    assert (entry.state, entry.filled_volume) == (OrderState.CANCELLED, 0.3)
    assert rec.kinds(cid) == ["submitted", "partially_filled", "cancelled"]

    rt, eng, rec = engine_runtime(
        emulator={"liquidity_lots": 0.3},
        engine={"partial_policy": "resubmit_rest"},
        db=Path(rt.store.path).with_name("second.db"),
    )
    cid = eng.submit_order(buy(volume=1.0))
    entry = eng.journal.get(cid)
    assert (entry.state, entry.filled_volume) == (OrderState.FILLED, 1.0)  # the first send and three re-sends
    assert [f.volume for f in rec.fills] == [0.3, 0.3, 0.3, 0.1]


def test_a_stop_loss_close_is_the_openers_fill_not_more_of_its_volume(engine_runtime: Make) -> None:
    """The broker closes a position at its stop: the deal is attributed to the order that opened it (for
    P&L), but it does not execute that order again (its filled volume once read twice its volume)."""
    rt, eng, rec = engine_runtime()
    cid = eng.submit_order(buy(volume=0.1, stop_loss=1.0712))
    term = rt.broker.mt5
    while rt.broker.positions():
        assert term.replay_step(1), "the stop was never reached"
    (close,) = eng.poll_fills()
    assert (close.client_id, close.entry.value, close.volume) == (cid, "out", 0.1) and len(rec.fills) == 2
    entry = eng.journal.get(cid)
    assert (entry.state, entry.filled_volume) == (OrderState.FILLED, 0.1)
    assert tuple(rt.store.query("SELECT filled_volume FROM orders WHERE client_id = ?", (cid,))[0]) == (0.1,)


def test_close_cancel_and_flatten(engine_runtime: Make) -> None:
    rt, eng, _rec = engine_runtime()
    opened = eng.submit_order(buy(volume=0.3))
    ticket = eng.get_positions_snapshot()[0].ticket
    closer = eng.close_position(ticket, volume=0.1)
    assert eng.journal.get(closer).state is OrderState.FILLED
    assert [p.volume for p in eng.get_positions_snapshot()] == [0.2]
    pending = eng.submit_order(sell(order_type="limit", price=1.0800))
    assert eng.cancel_order(pending) and eng.journal.get(pending).state is OrderState.CANCELLED
    eng.submit_order(sell(order_type="stop", price=1.0600))
    eng.submit_order(sell(volume=0.1))
    done = eng.flatten_all()
    assert len(done) == 3 and eng.get_positions_snapshot() == [] and rt.broker.orders() == []
    assert eng.journal.get(opened).state is OrderState.FILLED


def test_netting_close_is_an_opposite_deal(engine_runtime: Make) -> None:
    _rt, eng, rec = engine_runtime(emulator={"margin_mode": "netting"})
    eng.submit_order(buy(volume=0.2))
    ticket = eng.get_positions_snapshot()[0].ticket
    eng.close_position(ticket)
    assert eng.get_positions_snapshot() == [] and [f.entry.value for f in rec.fills] == ["in", "out"]


def test_foreign_positions_are_never_traded_against(engine_runtime: Make) -> None:
    rt, eng, _rec = engine_runtime()
    manual = rt.broker.mt5.admin_add_position("EURUSD", True, 0.5, magic=0)
    with pytest.raises(ExecutionRefused, match="not ours"):
        eng.close_position(manual)
    assert eng.flatten_all() == [] and len(rt.broker.positions()) == 1


def test_kill_switch_states_are_honoured_by_the_engine(engine_runtime: Make) -> None:
    rt, eng, _rec = engine_runtime()
    eng.submit_order(buy())
    ticket = eng.get_positions_snapshot()[0].ticket
    rt.request_halt("daily_loss_limit", "test", source="t", state=KillState.REDUCE_ONLY)
    assert rt.store.kill_state()[0] == "REDUCE_ONLY"
    with pytest.raises(ExecutionRefused, match="REDUCE_ONLY: no new orders"):
        eng.submit_order(buy())
    assert eng.modify_order(ticket, 1.0690, 0.0)  # SL/TP changes pass
    rt.request_halt("manual", "stop", source="cli")
    closer = eng.close_position(ticket)  # closes pass while HALTED (kill_switch.allow_closes_when_halted)
    assert eng.journal.get(closer).state is OrderState.FILLED


def test_fills_are_announced_once_across_a_restart(engine_runtime: Make, tmp_path: Path) -> None:
    rt, eng, _rec = engine_runtime()
    eng.submit_order(buy())
    terminal = rt.broker
    crash(rt)
    rt2, eng2, rec2 = engine_runtime(db=Path(rt.store.path))
    rt2.broker = terminal  # the same broker, a fresh process's engine over the same journal
    eng2.broker = terminal
    assert eng2.poll_fills() == [] and rec2.fills == []
    assert eng2.submit_order(buy()) == "tg-00000002"  # client ids never repeat


def test_state_machine_refuses_illegal_moves() -> None:
    check_transition("x", OrderState.NEW, OrderState.SUBMITTED)
    illegal = (
        (OrderState.FILLED, OrderState.CANCELLED),
        (OrderState.NEW, OrderState.FILLED),
        (OrderState.REJECTED, OrderState.SUBMITTED),
        (OrderState.ACCEPTED, OrderState.NEW),
    )
    for current, target in illegal:
        with pytest.raises(IllegalStateTransition, match=f"{current.value} -> {target.value}"):
            check_transition("x", current, target)


def test_the_journal_mirror_answers_what_the_file_holds(engine_runtime: Make) -> None:
    """Filled, accepted, cancelled, closed and stopped-out orders: the engine's journal answers from memory,
    a fresh journal over the same file from the file, and they agree, a refused move included."""
    rt, eng, _rec = engine_runtime(emulator={"margin_mode": "hedging"})
    assert eng.journal.open_entries() == []  # read from the file now, kept in memory from here on
    opened = eng.submit_order(buy(volume=0.3, stop_loss=1.0690))
    eng.submit_order(buy(order_type="limit", price=1.0600))
    cancelled = eng.submit_order(sell(order_type="limit", price=1.0800))
    eng.cancel_order(cancelled)
    eng.close_position(eng.get_positions_snapshot()[0].ticket, volume=0.1)
    with pytest.raises(IllegalStateTransition):
        eng.journal.transition(opened, OrderState.ACCEPTED, rt.clock.now())  # rolled back: nothing to mirror
    term = rt.broker.mt5
    while rt.broker.positions():  # the stop closes the rest at the broker; the poll journals it
        assert term.replay_step(1)
    eng.poll_fills()
    fresh = Journal(rt.store, "tg")
    ids = [e.client_id for e in fresh.entries()]
    assert len(ids) == 4 and [eng.journal.get(c) for c in ids] == [fresh.get(c) for c in ids]
    assert eng.journal.open_entries() == fresh.open_entries() and len(fresh.open_entries()) == 1
    positions = {f.position_id for f in fresh.fills()}
    assert [eng.journal.client_for_position(p) for p in positions] == [fresh.client_for_position(p) for p in positions]
    assert {eng.journal.client_for_position(p) for p in positions} == {opened}


def test_the_journal_mirror_keeps_only_the_latest_orders(engine_runtime: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its bound the mirror forgets the oldest orders and openers; asked for them, it reads the file."""
    monkeypatch.setattr("tradeguard.execution.journal.MIRROR_ROWS", 2)
    _rt, eng, _rec = engine_runtime()
    ids = [eng.submit_order(buy(volume=0.1)) for _ in range(4)]
    tickets = [p.ticket for p in eng.get_positions_snapshot()]
    assert len(eng.journal._rows) == 2 and len(eng.journal._owner) == 2
    fresh = Journal(eng.journal.store, "tg")
    entries = [eng.journal.get(c) for c in ids]
    assert entries == [fresh.get(c) for c in ids] and all(e.state is OrderState.FILLED for e in entries)
    assert [eng.journal.client_for_position(t) for t in tickets] == ids
    assert len(eng.journal._rows) == 2
