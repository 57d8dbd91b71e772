"""Every deal of ours reaches the journal once, however far the market moved between two polls.

Over the served emulator (its own process, the mt5linux client), as an operator runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tradeguard import OrderIntent
from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.plugins.account.position_reconciler import PositionReconciler
from tradeguard.plugins.account.state_alignment import StateAlignment
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.store.sqlite import Store
from tradeguard.testing import T0, crash, make_runtime

from ..served import Served, served_emulator

pytest.importorskip("mt5linux", reason="mt5linux is installed by `make test` (pip install --no-deps mt5linux)")

MAGIC = 20261125
BAR_TICKS = 4  # the emulator replays an H1 bar as four ticks


def trader(served: Served, db: Path, **engine: Any) -> tuple[Any, ExecutionEngine, PositionReconciler]:
    eng, rec = ExecutionEngine(), PositionReconciler()
    rt = make_runtime(
        ("kill_switch", KillSwitch()),
        ("execution_engine", eng),
        ("position_reconciler", rec),
        ("state_alignment", StateAlignment()),
        settings={"broker": {"module": "mt5linux", "port": served.port}, "execution_engine": engine},
        store=Store(db),
    )
    return rt, eng, rec


def buy(rt: Any, stop_points: int, volume: float = 0.1) -> OrderIntent:
    bid = rt.broker.quote("EURUSD").bid
    return OrderIntent(
        symbol="EURUSD", side="buy", volume=volume, stop_loss=round(bid - stop_points * 1e-5, 5), created_at=T0
    )


def step_until_flat(served: Served, limit: int = 4000) -> int:
    """Advance the served market until the broker holds no position; the ticks it took."""
    term = served.terminal
    for n in range(1, limit + 1):
        assert term.replay_step(1), "the data ended before the stop was hit"
        if term.positions_total() == 0:
            return n
    raise AssertionError("the stop was never hit")


def test_a_stop_out_hours_before_a_later_fill_is_journaled(tmp_path: Path) -> None:
    """The reported loss: a stop hit that no poll saw, then a fill of ours journaled at send time hours
    later. A window that starts an hour before the newest journaled fill never reads the stop again."""
    with served_emulator(tmp_path) as served:
        rt, eng, _rec = trader(served, tmp_path / "j.db")
        first = eng.submit_order(buy(rt, stop_points=150))
        step_until_flat(served)  # the broker stops it out; no poll runs
        assert served.terminal.replay_step(6 * BAR_TICKS)  # six hours pass
        eng.submit_order(buy(rt, stop_points=3000))  # journaled at send time, hours after the stop
        eng.poll_fills()
        broker = sorted(int(d.ticket) for d in served.our_deals(MAGIC))
        journal = eng.journal.fills()
        assert sorted(f.deal_ticket for f in journal) == broker and len(broker) == 3
        stop = next(f for f in journal if f.entry.value == "out")
        assert stop.client_id == first and stop.profit < 0
        held = {pid: h.net for pid, h in eng.held_positions().items()}
        assert held == {p.identifier: p.volume for p in rt.broker.positions()}
        rt.stop()


def test_deals_made_while_down_are_imported_before_the_first_signal(tmp_path: Path) -> None:
    """Alignment backfills every deal since the last imported one, for positions closed while no process ran."""
    with served_emulator(tmp_path) as served:
        db = tmp_path / "j.db"
        rt, eng, _rec = trader(served, db)
        opened = [eng.submit_order(buy(rt, stop_points=150 + 40 * i)) for i in range(3)]
        crash(rt)  # the process dies with three positions open
        step_until_flat(served)
        assert served.terminal.replay_step(48 * BAR_TICKS)  # two days pass
        rt2, eng2, rec2 = trader(served, db)
        assert not rt2.holds  # aligned: the pipeline is open
        closes = [f for f in eng2.journal.fills() if f.entry.value == "out"]
        assert sorted(f.client_id for f in closes) == opened
        assert sorted(f.deal_ticket for f in eng2.journal.fills()) == sorted(
            int(d.ticket) for d in served.our_deals(MAGIC)
        )
        assert rec2.last_report is not None and rec2.last_report.consistent
        assert eng2.held_positions() == {}
        rt2.stop()


def test_a_netting_reversal_is_attributed_to_the_order_that_reversed(tmp_path: Path) -> None:
    """After buy 0.1 then sell 0.3 with a stop, the short's stop-loss deal belongs to the sell order, although
    the position keeps the buy order's identifier and comment."""
    with served_emulator(tmp_path, '[default.broker.emulator]\nmargin_mode = "netting"\n') as served:
        rt, eng, rec = trader(served, tmp_path / "j.db")
        eng.submit_order(OrderIntent(symbol="EURUSD", side="buy", volume=0.1, created_at=T0))
        ask = rt.broker.quote("EURUSD").ask
        reversing = eng.submit_order(
            OrderIntent(symbol="EURUSD", side="sell", volume=0.3, created_at=T0, stop_loss=round(ask + 0.0015, 5))
        )
        (position,) = rt.broker.positions()
        assert (position.volume, position.is_buy) == (0.2, False)
        step_until_flat(served)
        (stop,) = [f for f in eng.poll_fills() if f.entry.value == "out"]
        assert stop.client_id == reversing and stop.volume == 0.2
        assert rec.run_reconciliation("t").consistent
        rt.stop()
