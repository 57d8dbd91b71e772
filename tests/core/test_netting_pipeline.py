"""On a netting account the pipeline knows what an order does to the symbol's one position before it is sent
(issue 27, part 2): the decision records an open, add, reduce, close or reversal; a reduce carries no levels and
passes as reducing; the risk is the resulting position's; an add or a reversal always carries its stop (the
position takes it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tradeguard import NettingEffect, Signal, Targets, hookimpl
from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.plugins.risk.risk_guard import RiskGuard
from tradeguard.plugins.trading.target_stop_engine import TargetStopEngine
from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime, signal

from ..plugins.risk.conftest import OFF


class Lots:
    """Sizes each signal by its ``metadata["lots"]``."""

    @hookimpl
    def size_position(self, signal: Signal, targets: Targets) -> float:
        return float(signal.metadata["lots"])


def netting(tmp_path: Path, **risk: Any) -> Any:
    return make_runtime(
        ("kill_switch", KillSwitch()),
        ("risk_guard", RiskGuard()),
        ("target_stop_engine", TargetStopEngine()),
        ("execution_engine", ExecutionEngine()),
        ("lots", Lots()),
        settings={
            "broker": {"emulator": {"margin_mode": "netting"}},
            "risk_guard": {**OFF, **risk},
            "target_stop_engine": {"stop_methods": ["signal", "atr", "points"]},
            "runtime": {"data_dir": str(tmp_path)},
        },
        store=Store(tmp_path / "journal.db"),
    )


def at_market(rt: Any, side: str, lots: float, stop: float | None, **extra: Any) -> Any:
    quote = rt.broker.quote("EURUSD")
    price = quote.ask if side == "buy" else quote.bid
    return rt.decide(
        signal(side=side, price=price, stop_loss=stop, metadata={"lots": lots}, created_at=rt.clock.now(), **extra)
    )


def test_each_effect_is_recorded_and_the_position_follows_mt5s_rules(tmp_path: Path) -> None:
    rt = netting(tmp_path)
    bid = rt.broker.quote("EURUSD").bid
    opened = at_market(rt, "buy", 0.3, round(bid - 0.0100, 5))
    assert opened.approved and opened.order.netting is NettingEffect.OPEN
    added = at_market(rt, "buy", 0.1, round(bid - 0.0060, 5))
    assert added.approved and added.order.netting is NettingEffect.ADD and added.order.stop_loss
    (position,) = rt.broker.positions()
    assert position.volume == pytest.approx(0.4) and position.sl == round(bid - 0.0060, 5)  # the add's stop
    reduced = at_market(rt, "sell", 0.1, round(bid + 0.0100, 5))
    assert reduced.approved and reduced.order.netting is NettingEffect.REDUCE
    assert reduced.order.reduce_only and reduced.order.stop_loss is None and reduced.order.take_profit is None
    (position,) = rt.broker.positions()
    assert position.volume == pytest.approx(0.3) and position.sl == round(bid - 0.0060, 5)  # kept
    reversed_ = at_market(rt, "sell", 0.5, round(bid + 0.0080, 5))
    assert reversed_.approved and reversed_.order.netting is NettingEffect.REVERSE and reversed_.order.stop_loss
    (position,) = rt.broker.positions()
    assert (position.is_buy, position.volume, position.sl) == (False, pytest.approx(0.2), round(bid + 0.0080, 5))
    closed = at_market(rt, "buy", 0.2, round(bid - 0.0100, 5))
    assert closed.approved and closed.order.netting is NettingEffect.CLOSE and rt.broker.positions() == []


def test_the_risk_is_the_resulting_positions(tmp_path: Path) -> None:
    rt = netting(tmp_path, max_risk_per_trade_pct=1.0)  # 100 of 10,000
    bid = rt.broker.quote("EURUSD").bid
    assert at_market(rt, "buy", 0.5, round(bid - 0.0015, 5)).approved  # 0.5 lots x 150 points: about 75
    add = at_market(rt, "buy", 0.2, round(bid - 0.0015, 5))  # alone about 30; the whole position: about 105
    assert not add.approved and add.reasons[0].base == "max_risk_per_trade"
    turn = at_market(rt, "sell", 1.1, round(bid + 0.0015, 5))  # the 0.6 lots past the long: about 90
    assert turn.approved and turn.order.netting is NettingEffect.REVERSE


def test_an_add_is_no_new_position_for_the_position_counts(tmp_path: Path) -> None:
    rt = netting(tmp_path, max_open_positions=1, max_positions_per_symbol=1)
    bid = rt.broker.quote("EURUSD").bid
    assert at_market(rt, "buy", 0.1, round(bid - 0.0100, 5)).approved
    added = at_market(rt, "buy", 0.1, round(bid - 0.0100, 5))  # one position still: it grows
    assert added.approved and added.order.netting is NettingEffect.ADD
    other = rt.decide(signal(symbol="GBPUSD", price=1.27, stop_loss=1.26, metadata={"lots": 0.1}))
    assert not other.approved and other.reasons[0].base == "max_open_positions"  # a second position is one
