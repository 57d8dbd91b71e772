"""Signal validation gate: each check at its threshold, and all failing reasons together."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tradeguard import ConfigError, Reason
from tradeguard.plugins.trading.signal_validation_gate import SignalValidationGate
from tradeguard.testing import T0, signal


def gate(runtime: Any, emulator: dict | None = None, **cfg: Any) -> tuple[Any, SignalValidationGate]:
    g = SignalValidationGate()
    return runtime(("signal_validation_gate", g), emulator=emulator, signal_validation_gate=cfg), g


def codes(found: list[Reason]) -> list[str]:
    return [r.code for r in found]


def test_passes_at_the_thresholds(runtime: Any) -> None:
    rt, g = gate(runtime, min_confidence=0.6, max_age_seconds=60, symbols=["EURUSD"], max_spread_points=10)
    assert g.validate_signal(signal(confidence=0.6, created_at=T0 - timedelta(seconds=60)), rt) == []


def test_every_failing_check_is_reported_with_figures(runtime: Any) -> None:
    rt, g = gate(runtime, min_confidence=0.6, max_age_seconds=60, symbols=["GBPUSD"], max_spread_points=9)
    found = g.validate_signal(signal(confidence=0.59, created_at=T0 - timedelta(seconds=61)), rt)
    assert [r.message for r in found] == [
        "confidence_below_minimum: 0.590 < minimum 0.600",
        "symbol_not_allowed: EURUSD not in GBPUSD",
        "stale_signal: age 61 s > limit 60 s",
        "spread_too_wide: 10 points > ceiling 9",
    ]


def test_bar_must_be_closed_and_not_too_old(runtime: Any) -> None:
    rt, g = gate(runtime, max_age_bars=2)
    assert codes(g.validate_signal(signal(bar_time=T0 - timedelta(minutes=30)), rt)) == ["bar_not_closed"]
    assert g.validate_signal(signal(bar_time=T0 - timedelta(hours=3)), rt) == []  # 2 bars after its own
    assert codes(g.validate_signal(signal(bar_time=T0 - timedelta(hours=3, seconds=1)), rt)) == ["stale_signal"]


def test_level_confirmation(runtime: Any) -> None:
    rt, g = gate(runtime, require_level_confirmed=True)
    assert codes(g.validate_signal(signal(), rt)) == ["level_not_confirmed"]
    assert g.validate_signal(signal(metadata={"level_confirmed": True}), rt) == []


def test_higher_timeframe_trend(runtime: Any) -> None:
    rt, g = gate(runtime, higher_timeframe="H4", trend_period=3)
    rt.broker.mt5.replay_step(4 * 24)  # a day of H1 bars: six H4 bars exist
    rates = rt.broker.rates("EURUSD", "H4", 3)
    up = rates["close"][-1] > rates["close"].mean()
    with_trend, against = ("buy", "sell") if up else ("sell", "buy")
    assert g.validate_signal(signal(side=with_trend), rt) == []
    (reason,) = g.validate_signal(signal(side=against), rt)
    assert reason.code == "trend_disagrees" and "H4" in reason.message


def test_trade_mode(runtime: Any) -> None:
    rt, g = gate(runtime)
    rt.broker.mt5.admin_set_trade_mode("EURUSD", 3)  # close only
    rt.broker.refresh_spec("EURUSD")
    assert codes(g.validate_signal(signal(), rt)) == ["symbol_not_tradable"]
    rt.broker.mt5.admin_set_trade_mode("EURUSD", 1)  # long only
    rt.broker.refresh_spec("EURUSD")
    assert g.validate_signal(signal(side="buy"), rt) == []
    assert codes(g.validate_signal(signal(side="sell"), rt)) == ["symbol_not_tradable"]


def test_signals_are_held_while_algo_trading_is_off(runtime: Any) -> None:
    rt, g = gate(runtime)
    assert g.validate_signal(signal(), rt) == []
    rt.broker.mt5.admin_set_algo_trading(False)  # the terminal's toolbar button
    assert codes(g.validate_signal(signal(), rt)) == ["trading_disabled"]
    rt.broker.mt5.admin_set_algo_trading(True)
    assert g.validate_signal(signal(), rt) == []
    unchecked_rt, unchecked = gate(runtime, check_trading_allowed=False)
    unchecked_rt.broker.mt5.admin_set_algo_trading(False)
    assert "trading_disabled" not in codes(unchecked.validate_signal(signal(), unchecked_rt))


def test_cooldown_and_window(runtime: Any) -> None:
    rt, g = gate(runtime, cooldown_seconds=600, max_signals=2, window_seconds=3600)
    assert g.validate_signal(signal(), rt) == []
    assert codes(g.validate_signal(signal(), rt)) == ["cooldown_active"]
    assert g.validate_signal(signal(side="sell"), rt) == []  # the other direction has its own cooldown
    rt.clock.advance(timedelta(seconds=600))
    assert codes(g.validate_signal(signal(), rt)) == ["too_many_signals"]
    rt.clock.advance(timedelta(seconds=3000))  # the first one leaves the window
    assert g.validate_signal(signal(created_at=T0 + timedelta(seconds=3600)), rt) == []


def test_trading_hours_and_news_blackouts(runtime: Any) -> None:
    # T0 is Monday 2024-01-08 10:00 UTC
    rt, g = gate(runtime, trading_hours=["mon-fri 10:00-20:00"], blackouts=["2024-01-08T09:55Z/2024-01-08T10:05Z"])
    assert codes(g.validate_signal(signal(), rt)) == ["news_blackout"]
    rt.clock.advance(timedelta(minutes=5))
    assert g.validate_signal(signal(created_at=T0 + timedelta(minutes=5)), rt) == []
    rt, g = gate(runtime, trading_hours=["tue-fri 07:00-20:00", "mon 11:00-12:00"])
    (reason,) = g.validate_signal(signal(), rt)
    assert reason.message.startswith("outside_trading_hours: Mon 10:00 UTC is outside")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("trading_hours", ["weekdays 7-20"], "expected like"),
        ("blackouts", ["2024-01-08T10:00/2024-01-08T11:00"], "need a time zone"),
        ("higher_timeframe", "H5", "not an MT5 timeframe"),
    ],
)
def test_bad_gate_settings_are_refused(runtime: Any, key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        gate(runtime, **{key: value})
