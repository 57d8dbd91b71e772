"""Risk guard rules at and around each threshold, with hand-computed figures.

Account: 10,000 USD; EURUSD ask 1.0717 (1 lot: 1 USD per point, margin 1,071.60 USD).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tradeguard import AccountSnapshot, DealEntry, Fill, OrderIntent, Rejected
from tradeguard.kernel.bars import rolling_atr as atr
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.plugins.risk.risk_guard import Approved, RiskGuard
from tradeguard.testing import T0

from .conftest import OFF, snapshot


def guard(runtime: Any, emulator: dict | None = None, **cfg: Any) -> tuple[Any, RiskGuard]:
    g = RiskGuard()
    rt = runtime(("kill_switch", KillSwitch()), ("risk_guard", g), emulator=emulator, risk_guard={**OFF, **cfg})
    return rt, g


def order(
    volume: float = 0.1,
    side: str = "buy",
    symbol: str = "EURUSD",
    price: float = 1.0717,
    stop: float | None = 1.0697,
    **kw: Any,
) -> OrderIntent:
    return OrderIntent(symbol=symbol, side=side, volume=volume, price=price, stop_loss=stop, created_at=T0, **kw)


def code(verdict: Approved | Rejected) -> str:
    return "approved" if isinstance(verdict, Approved) else verdict.reason


def fill_at(rt: Any, volume: float, side: int = 0, sl: float = 0.0, symbol: str = "EURUSD") -> Any:
    res = rt.broker.send(rt.broker.prepare({"action": 1, "symbol": symbol, "volume": volume, "type": side, "sl": sl}))
    assert res.retcode == 10009, res
    return res


def test_risk_per_trade_at_and_above_the_limit(runtime: Any) -> None:
    _rt, g = guard(runtime, max_risk_per_trade_pct=1.0)  # 100 USD
    assert code(g.evaluate(order(0.5))) == "approved"  # 0.5 lots x 200 points x 1 USD = 100.00
    verdict = g.evaluate(order(0.51))
    assert verdict.reason == "max_risk_per_trade"
    assert verdict.message == (
        "max_risk_per_trade: 102.00 at risk > limit 100.00 (1% of equity 10000.00) "
        "(rule max_risk_per_trade; off with risk_guard.max_risk_per_trade_pct = 0)"
    )
    assert code(g.evaluate(order(stop=None))) == "missing_stop"


def test_volume_open_positions_and_pending_orders_count(runtime: Any) -> None:
    rt, g = guard(runtime, max_volume_per_order=1.0, max_open_positions=2, max_positions_per_symbol=2)
    assert code(g.evaluate(order(1.0))) == "approved" and code(g.evaluate(order(1.01))) == "volume_above_maximum"
    fill_at(rt, 0.1)
    rt.broker.send(rt.broker.prepare({"action": 5, "symbol": "EURUSD", "volume": 0.1, "type": 2, "price": 1.06}))
    # a position and a pending order
    assert g.evaluate(order()).message.startswith("max_open_positions: 2 open, limit 2")


def test_exposure_per_symbol_and_currency(runtime: Any) -> None:
    rt, g = guard(runtime, max_lots_per_symbol=1.0, max_lots_per_currency=1.5, max_notional_per_symbol=110_000)
    fill_at(rt, 0.5)
    assert code(g.evaluate(order(0.5))) == "approved"  # 1.0 lots on EURUSD, notional 107,170
    assert g.evaluate(order(0.51)).message.startswith("max_exposure_symbol: 1.01 lots on EURUSD > limit 1")
    rt, g = guard(runtime, max_lots_per_symbol=5.0, max_notional_per_symbol=110_000)
    fill_at(rt, 0.5)
    assert code(g.evaluate(order(0.55))) == "max_exposure_symbol"  # 1.05 x 107,170 = 112,528 > 110,000
    rt, g = guard(runtime, max_lots_per_currency=1.5)
    fill_at(rt, 1.0)
    assert code(g.evaluate(order(0.5, symbol="USDJPY", price=150.012, stop=149.5))) == "approved"  # USD 1.5
    assert g.evaluate(order(0.6, symbol="USDJPY", price=150.012, stop=149.5)).message.startswith(
        "max_exposure_currency: 1.6 lots touching USD > limit 1.5"
    )


def test_daily_loss_and_drawdown_are_hard_limits_that_request_a_halt(runtime: Any) -> None:
    rt, g = guard(runtime, daily_loss_limit_pct=5.0, max_drawdown_pct=10.0)
    g.update_equity(snapshot(daily=4.99, dd=9.99))
    assert code(g.evaluate(order())) == "approved" and rt.store.kill_state() is None
    g.update_equity(snapshot(daily=5.0, dd=9.99))
    assert g.evaluate(order()).message.startswith("daily_loss_limit: 5.00% lost since server midnight (limit 5%)")
    assert rt.store.kill_state()[:2] == ("REDUCE_ONLY", "daily_loss_limit")
    g = RiskGuard()
    rt = runtime(
        ("kill_switch", KillSwitch()),
        ("risk_guard", g),
        risk_guard={**OFF, "max_drawdown_pct": 10.0},
        triggers={"max_drawdown": {"state": "HALTED"}},
    )  # what the trip latches is the triggers table's
    g.update_equity(snapshot(dd=10.0))
    assert code(g.evaluate(order())) == "max_drawdown" and rt.store.kill_state()[:2] == ("HALTED", "max_drawdown")


def test_worst_case_loss_if_every_stop_is_hit(runtime: Any) -> None:
    rt, g = guard(runtime, max_total_stop_risk_pct=3.0)
    fill_at(rt, 1.0, sl=1.0696)  # from bid 1.0716 to its stop: 20 points x 1 lot = 200 USD; the spread cost 10
    assert code(g.evaluate(order(0.49))) == "approved"  # 200 + 98 = 298 <= 3% of equity 9,990 = 299.70
    assert g.evaluate(order(0.5)).message.startswith(
        "max_total_stop_risk: 300.00 lost if every stop is hit > 3% of equity 9990.00"
    )
    fill_at(rt, 0.1)  # no stop: the worst case is unbounded
    assert "has no stop" in g.evaluate(order(0.01)).message


def test_worst_case_must_fit_what_is_left_of_the_daily_limit(runtime: Any) -> None:
    _rt, g = guard(runtime, daily_loss_limit_pct=2.0)  # 200 USD a day
    g.update_equity(
        AccountSnapshot(
            time=T0, balance=10_000, equity=10_000, day_start_equity=10_150, peak_equity=10_150, daily_drawdown_pct=1.48
        )
    )
    # 203 allowed today, 150 already lost: 53 left; 0.26 lots x 200 points = 52
    assert code(g.evaluate(order(0.26))) == "approved"
    refused = g.evaluate(order(0.27))  # governed by the daily limit: named so (max_total_stop_risk_pct is 0 here)
    assert refused.reason == "daily_loss_limit" and "risk_guard.daily_loss_limit_pct" in refused.message


def test_margin_level_floor_after_the_order(runtime: Any) -> None:
    _rt, g = guard(runtime, min_margin_level_pct=500.0)
    # equity 10,000; 1.86 lots need 1,993.18 margin: level 501.7 %; 1.87 lots: 499.0 %
    assert code(g.evaluate(order(1.86, stop=None))) == "missing_stop"
    assert code(g.evaluate(order(1.86, stop=1.0600))) == "approved"
    floor = g.evaluate(order(1.87, stop=1.0600)).message
    assert floor.startswith("margin_level_floor: margin level after the order 499.")


def test_orders_per_minute(runtime: Any) -> None:
    rt, g = guard(runtime, max_orders_per_minute=2)
    assert [code(g.evaluate(order())) for _ in range(3)] == ["approved", "approved", "orders_per_minute"]
    rt.clock.advance(timedelta(seconds=60))
    assert code(g.evaluate(order())) == "approved"


def test_consecutive_losses_pause(runtime: Any) -> None:
    rt, g = guard(runtime, consecutive_losses=2, pause_minutes=30)

    def close(profit: float, n: int) -> Fill:
        return Fill(
            deal_ticket=n,
            order_ticket=n,
            position_id=1,
            symbol="EURUSD",
            side="sell",
            entry=DealEntry.OUT,
            volume=0.1,
            price=1.07,
            profit=profit,
            time=T0,
        )

    g.register_fill(close(-5, 1))
    g.register_fill(close(+3, 2))  # a win resets the streak
    g.register_fill(close(-5, 3))
    assert code(g.evaluate(order())) == "approved"
    g.register_fill(close(-1, 4))
    assert code(g.evaluate(order())) == "consecutive_losses"
    rt.clock.advance(timedelta(minutes=30))
    assert code(g.evaluate(order())) == "approved"


def test_same_direction_exposure_per_sector(runtime: Any) -> None:
    rt, g = guard(runtime, sectors={"usd_majors": ["EURUSD", "GBPUSD"]}, max_group_lots=1.0)
    fill_at(rt, 0.5)  # EURUSD buy
    gbp = {"symbol": "GBPUSD", "price": 1.27012, "stop": 1.268}
    assert code(g.evaluate(order(0.5, **gbp))) == "approved"
    assert g.evaluate(order(0.6, **gbp)).message.startswith(
        "sector_exposure: 1.1 lots moving with GBPUSD buy > group cap 1"
    )
    assert code(g.evaluate(order(0.6, side="sell", symbol="GBPUSD", price=1.27, stop=1.272))) == "approved"
    assert code(g.evaluate(order(0.6, symbol="XAUUSD", price=2000.25, stop=1990))) == "approved"  # another group


def test_volatility_halt_around_the_threshold(runtime: Any) -> None:
    rt, _g = guard(runtime, volatility_multiple=1.0, atr_period=14, volatility_norm_bars=100)
    rt.broker.mt5.replay_step(4 * 200)
    series = atr(rt.broker.rates("EURUSD", "H1", 116)[:-1], 14)
    ratio = series[-1] / float(__import__("numpy").median(series))
    for multiple, expected in ((ratio * 0.99, "volatility_halt"), (ratio * 1.01, "approved")):
        rt2, g2 = guard(runtime, volatility_multiple=multiple, atr_period=14, volatility_norm_bars=100)
        rt2.broker.mt5.replay_step(4 * 200)
        assert code(g2.evaluate(order(0.01, price=rt2.broker.quote("EURUSD").ask, stop=1.0))) == expected


def test_reducing_orders_are_never_vetoed(runtime: Any) -> None:
    _rt, g = guard(runtime, max_open_positions=0, max_volume_per_order=0.01, max_risk_per_trade_pct=0.001)
    assert code(g.evaluate(order(5.0, side="sell", stop=None, position_ticket=3))) == "approved"


def test_unfilled_rest_of_a_partial_fill_is_committed(runtime: Any) -> None:
    from tradeguard.execution.execution_engine import ExecutionEngine

    eng, g = ExecutionEngine(), RiskGuard()
    runtime(
        ("execution_engine", eng),
        ("risk_guard", g),
        emulator={
            "liquidity_lots": 0.3,
            "symbols": {"EURUSD": {"exemode": 3, "filling_mode": 0}},
        },  # exchange execution: RETURN filling
        risk_guard={**OFF, "max_lots_per_symbol": 1.5},
    )
    eng.submit_order(OrderIntent(symbol="EURUSD", side="buy", volume=1.2, stop_loss=1.06, created_at=T0))
    assert g.committed().gross["EURUSD"] == pytest.approx(1.2)  # 0.3 filled + 0.9 still working
    assert code(g.evaluate(order(0.3))) == "approved" and code(g.evaluate(order(0.31))) == "max_exposure_symbol"


def test_a_stalled_account_tracker_cannot_hide_a_loss_from_the_hard_limits(runtime: Any) -> None:
    """The limits take the worse of the last snapshot and the account now: a capture that keeps failing
    (as one did when the emulator reported a -1e19 margin level) must not leave them judging an old equity."""
    rt, g = guard(runtime, daily_loss_limit_pct=0.03, max_drawdown_pct=0.05)
    g.update_equity(snapshot())  # the last capture that worked: flat at 10,000
    tight = order(stop=1.0716)  # 0.10 USD at risk: inside what is left of the day's limit
    assert code(g.evaluate(tight)) == "approved"
    fill_at(rt, 0.4)  # bought at the ask: the spread (10 points, 4 USD) is a loss no capture has seen
    equity = rt.broker.account().equity
    lost = round((10_000 - equity) / 100, 4)
    assert lost == 0.04  # a daily loss past its limit, a drawdown not yet past its own
    assert g.evaluate(tight).message.startswith(
        f"daily_loss_limit: {lost:.2f}% lost since server midnight (limit 0.03%)"
    )


def test_openings_wait_for_the_new_server_days_first_snapshot(runtime: Any) -> None:
    """Yesterday's snapshot carries yesterday's opening equity: after a winning day it would count today's
    loss short, so with a daily limit set openings wait until the tracker captures the new day."""
    rt, g = guard(runtime, daily_loss_limit_pct=3.0)
    midnight = rt.broker.server_midnight(rt.broker.now())
    before = AccountSnapshot(
        time=midnight - timedelta(seconds=1), balance=10_000, equity=10_000, day_start_equity=9_000, peak_equity=10_000
    )
    g.update_equity(before)
    verdict = g.evaluate(order())
    assert verdict.reason == "account_stale"
    assert verdict.message.startswith(f"account_stale: the last account snapshot ({before.time:%Y-%m-%d %H:%M} UTC)")
    assert code(g.evaluate(order(side="sell", reduce_only=True))) == "approved"  # closing is never refused
    g.update_equity(before.model_copy(update={"time": midnight, "day_start_equity": 10_000}))
    assert code(g.evaluate(order())) == "approved"
    _rt, g = guard(runtime, daily_loss_limit_pct=0.0)  # no daily limit: no day anchor to wait for
    g.update_equity(before)
    assert code(g.evaluate(order())) == "approved"


def test_a_count_limit_of_zero_is_off_as_its_refusal_says(runtime: Any) -> None:
    """``max_open_positions = 0`` refused every order while its refusal said 0 switches the rule off."""
    _, g = guard(runtime, max_open_positions=0, max_positions_per_symbol=0)
    assert isinstance(g.evaluate(order()), Approved)
