"""Targets: stop methods, R-multiple and fixed targets, rounding, the stops level, and trailing."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tradeguard import Rejected, Targets
from tradeguard.plugins.trading.target_stop_engine import TargetStopEngine
from tradeguard.testing import signal


def targets(runtime: Any, emulator: dict | None = None, **sig: Any) -> Targets | Rejected:
    cfg = sig.pop("cfg", {})
    engine = TargetStopEngine()
    rt = runtime(("target_stop_engine", engine), emulator=emulator, target_stop_engine=cfg)
    return engine.compute_targets(signal(**{"price": 1.0717, **sig}), rt)


def test_signal_stop_and_two_r_target_from_the_ask(runtime: Any) -> None:
    t = targets(runtime, stop_loss=1.0697)  # entry at ask 1.0717, risk 0.0020
    assert (t.stop_loss, t.take_profit, t.method) == (1.0697, 1.0757, "signal")


def test_atr_and_points_stops_for_a_sell(runtime: Any) -> None:
    t = targets(runtime, side="sell", stop_loss=None, atr=0.00123, cfg={"atr_multiple": 1.5, "take_profit_r": 3.0})
    # stop: bid 1.0716 + 1.5 x 0.00123 = 1.073445 -> 1.07345 on the tick; R from the placed stop: 0.00185
    assert (t.stop_loss, t.take_profit) == (1.07345, 1.06605)  # 1.0716 - 3 x 0.00185
    t = targets(runtime, side="sell", stop_loss=None, cfg={"stop_methods": ["points"], "stop_points": 150})
    assert (t.stop_loss, t.method) == (1.0731, "points_150")


def test_a_stop_inside_the_stops_level_is_pushed_out(runtime: Any) -> None:
    t = targets(runtime, stop_loss=1.07155)  # 0.5 pip under the bid, stops level 10 points
    assert t.stop_loss == 1.07149 and t.method == "signal+stops_level"  # bid - (10 + 1) points


def test_fixed_and_signal_targets(runtime: Any) -> None:
    fixed = targets(runtime, stop_loss=1.0697, cfg={"take_profit": "points", "take_profit_points": 300})
    assert fixed.take_profit == 1.0747
    assert targets(runtime, stop_loss=1.0697, take_profit=1.0800, cfg={"take_profit": "signal"}).take_profit == 1.08
    assert targets(runtime, stop_loss=1.0697, cfg={"take_profit": "none"}).take_profit is None


@pytest.mark.parametrize(("side", "stop"), [("buy", 1.0730), ("sell", 1.0690)])
def test_stop_on_the_wrong_side_is_refused(runtime: Any, side: str, stop: float) -> None:
    out = targets(runtime, side=side, stop_loss=stop)
    assert isinstance(out, Rejected) and out.reason == "stop_wrong_side"


def test_no_method_applies(runtime: Any) -> None:
    out = targets(runtime, stop_loss=None, cfg={"stop_methods": ["signal", "atr"]})
    assert isinstance(out, Rejected) and out.reason == "stop_not_placeable"


def _managed(runtime: Any, **cfg: Any) -> tuple[list[float], Any]:
    """Buy 0.1 at 1.0717 with a 20-pip stop (R = 0.0020), then manage it tick by tick while it lives.

    Returns the stop after each tick and the closing deal (a stop that was tightened gets hit)."""
    from tradeguard import OrderIntent
    from tradeguard.execution.execution_engine import ExecutionEngine
    from tradeguard.testing import T0

    engine, tse = ExecutionEngine(), TargetStopEngine()
    rt = runtime(("execution_engine", engine), ("target_stop_engine", tse), target_stop_engine=cfg)
    engine.submit_order(OrderIntent(symbol="EURUSD", side="buy", volume=0.1, stop_loss=1.0697, created_at=T0))
    stops = []
    for _ in range(400):
        rt.broker.mt5.replay_step(1)
        tse.manage_positions()
        positions = engine.get_positions_snapshot()
        if not positions:
            break
        stops.append(positions[0].stop_loss)
    closes = [d for d in rt.broker.mt5.history_deals_get(0, 2**40) if d.entry == 1]
    return stops, closes[0] if closes else None


def test_break_even_moves_the_stop_to_entry_once(runtime: Any) -> None:
    # bar 1 reaches bid 1.07296: +0.63 R, past the 0.5 R break-even
    stops, close = _managed(runtime, break_even_at_r=0.5)
    assert stops[0] == 1.0697 and stops[-1] == 1.0717 and sorted(set(stops)) == [1.0697, 1.0717]
    assert close.reason == 4 and close.comment == "[sl 1.07170]"  # stopped at entry: the loss was avoided


def test_trailing_follows_the_price_and_never_loosens(runtime: Any) -> None:
    stops, close = _managed(runtime, trail_at_r=0.6, trail_distance_points=30)
    assert 1.07266 in stops  # 1.07296 - 30 points, when the trade was +0.63 R
    assert all(b >= a for a, b in itertools.pairwise(stops))  # never loosened as the price fell back
    assert close.reason == 4 and close.profit > 0  # the trailed stop locked in a gain


def test_no_stop_is_moved_within_the_freeze_level(runtime: Any) -> None:
    """A broker's freeze level of 400 points: the price stays within it of the stop in these bars, so the trail
    asks the server nothing (it would refuse every change with 10029) and the stop stays."""
    from tradeguard import OrderIntent
    from tradeguard.execution.execution_engine import ExecutionEngine
    from tradeguard.testing import T0

    engine, tse = ExecutionEngine(), TargetStopEngine()
    frozen = {"symbols": {"EURUSD": {"freeze_level": 400}}}
    cfg = {"trail_at_r": 0.6, "trail_distance_points": 30}
    rt = runtime(("execution_engine", engine), ("target_stop_engine", tse), emulator=frozen, target_stop_engine=cfg)
    engine.submit_order(OrderIntent(symbol="EURUSD", side="buy", volume=0.1, stop_loss=1.0697, created_at=T0))
    asked = []
    modify = engine.modify_order
    engine.modify_order = lambda *a, **k: asked.append(a) or modify(*a, **k)  # type: ignore[method-assign]
    for _ in range(40):
        rt.broker.mt5.replay_step(1)
        tse.manage_positions()
    (position,) = engine.get_positions_snapshot()
    assert position.stop_loss == 1.0697 and asked == []
