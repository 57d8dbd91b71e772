"""Margin events are risk events: the margin call latches REDUCE_ONLY with an ERROR alert; a stop-out deal
latches HALTED and reaches a local webhook as CRITICAL (issue 24, item 3)."""

from __future__ import annotations

import time
from pathlib import Path

from tradeguard import KillState, OrderIntent
from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.plugins.account.account_tracker import AccountTracker
from tradeguard.plugins.alerting.alert_manager import AlertManager
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.store.sqlite import Store
from tradeguard.testing import T0, make_runtime

from ...receiver import Receiver


def test_a_slide_into_a_stop_out_latches_reduce_only_then_halted(tmp_path: Path, receiver: Receiver) -> None:
    eng, switch, tracker = ExecutionEngine(), KillSwitch(), AccountTracker()
    destinations = {"desk": {"kind": "webhook", "url": receiver.url, "min_severity": "ERROR"}}
    rt = make_runtime(
        ("kill_switch", switch),
        ("execution_engine", eng),
        ("account_tracker", tracker),
        ("alert_manager", AlertManager()),
        store=Store(tmp_path / "m.db"),
        settings={
            "broker": {"emulator": {"balance": 1000.0, "leverage": 100}},
            "alert_manager": {"destinations": destinations, "poll_seconds": 0.02},
        },
    )
    eng.submit_order(OrderIntent(symbol="EURUSD", side="sell", volume=0.8, created_at=T0))  # no stop: a slide
    term, states = rt.broker.mt5, []
    while rt.broker.positions():
        assert term.replay_step(1), "the data ended before the stop-out"
        tracker.capture()
        eng.poll_fills()
        if not states or states[-1] != switch.state:
            states.append(switch.state)
    assert states == [KillState.ACTIVE, KillState.REDUCE_ONLY, KillState.HALTED]
    assert rt.store.kill_state()[:2] == ("HALTED", "stop_out")
    (stop_out,) = [f for f in eng.journal.fills() if f.comment.startswith("[so")]
    assert stop_out.profit < 0
    deadline = time.monotonic() + 10
    while not {"margin_call", "stop_out"} <= {b.get("error_code") for _, b in receiver.posts}:
        assert time.monotonic() < deadline, receiver.posts
        time.sleep(0.02)
    time.sleep(0.2)
    codes = ("margin_call", "stop_out")
    sent = [(b["error_code"], b["severity"]) for _, b in receiver.posts if b["error_code"] in codes]
    assert sent == [("margin_call", "ERROR"), ("stop_out", "CRITICAL")]  # once each
    rt.stop()
