"""The built-in strategies: which bars they follow, their warm-up, and the side of their stop."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tradeguard import Bar
from tradeguard.kernel.bars import BarHistory
from tradeguard.plugins.strategies.donchian_breakout import BreakoutSettings, DonchianBreakout
from tradeguard.plugins.strategies.ma_crossover import CrossoverSettings, MovingAverageCrossover
from tradeguard.testing import T0


class Runtime:
    """What a strategy reads: the bar history and the clock."""

    def __init__(self) -> None:
        self.bars = BarHistory()
        self.clock = self

    def now(self) -> Any:
        return T0


def feed(strategy: Any, closes: list[float], symbol: str = "EURUSD", timeframe: str = "H1") -> list[Any]:
    rt, signals = Runtime(), []
    for i, close in enumerate(closes):
        bar = Bar(
            symbol=symbol,
            timeframe=timeframe,
            time=T0 - timedelta(hours=len(closes) - i),
            open=close,
            high=close + 0.0005,
            low=close - 0.0005,
            close=close,
        )
        rt.bars.append(bar)
        signals += strategy.generate_signals(bar, rt)
    return signals


def configured(plugin: Any, cfg: Any) -> Any:
    plugin.cfg = cfg
    return plugin


def test_donchian_buys_a_breakout_after_its_warm_up_with_the_stop_below() -> None:
    closes = [1.10 + 0.0001 * (i % 3) for i in range(25)] + [1.1050]
    (signal,) = feed(configured(DonchianBreakout(), BreakoutSettings(channel=20)), closes)
    assert signal.side == "buy" and signal.stop_loss < 1.1050
    assert feed(configured(DonchianBreakout(), BreakoutSettings(channel=30)), closes) == []  # still warming up


def test_strategies_ignore_symbols_and_timeframes_they_do_not_follow() -> None:
    closes = [1.10 + 0.0001 * (i % 3) for i in range(25)] + [1.1050]
    only_gbp = configured(DonchianBreakout(), BreakoutSettings(channel=20, symbols=["GBPUSD"]))
    assert feed(only_gbp, closes) == []
    assert feed(configured(DonchianBreakout(), BreakoutSettings(channel=20)), closes, timeframe="M15") == []


def test_crossover_signals_with_an_atr_period_longer_than_the_slow_average() -> None:
    closes = [1.10] * 40 + [1.10 - 0.0005 * i for i in range(1, 10)] + [1.10 + 0.001 * i for i in range(1, 15)]
    cfg = CrossoverSettings(fast=3, slow=8, atr_period=20)
    signals = feed(configured(MovingAverageCrossover(), cfg), closes)
    assert [s.side for s in signals][-1] == "buy" and signals[-1].stop_loss < signals[-1].price


def test_a_strategy_that_missed_bars_rebuilds_its_averages_from_the_history() -> None:
    """Bars that only built history (a restart, the strategy switched off) must not leave stale averages."""
    closes = [1.10 + 0.0003 * i for i in range(30)] + [1.109 - 0.0004 * i for i in range(30)]
    closes += [1.097 + 0.0005 * i for i in range(30)]
    cfg = CrossoverSettings(fast=3, slow=8, atr_period=5)
    rt, gapped, fresh = Runtime(), configured(MovingAverageCrossover(), cfg), configured(MovingAverageCrossover(), cfg)
    said: dict[str, list[Any]] = {"gapped": [], "fresh": []}
    for i, close in enumerate(closes):
        bar = Bar(
            symbol="EURUSD",
            timeframe="H1",
            time=T0 + timedelta(hours=i),
            open=close,
            high=close + 0.0002,
            low=close - 0.0002,
            close=close,
        )
        rt.bars.append(bar)
        if i < 20 or i >= 45:  # the gapped one misses bars 20-44, the fresh one starts at 45
            got = gapped.generate_signals(bar, rt)
            if i >= 45:
                said["gapped"] += got
                said["fresh"] += fresh.generate_signals(bar, rt)
    assert [s.side for s in said["gapped"]] == ["buy"]
    assert [(s.side, s.bar_time, s.stop_loss) for s in said["gapped"]] == [
        (s.side, s.bar_time, s.stop_loss) for s in said["fresh"]
    ]
