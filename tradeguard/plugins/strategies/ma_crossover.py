"""Moving-average crossover: buy when the fast average crosses above the slow one, sell below.

It enters at market (the close), or with ``entry = "limit"`` by a limit order ``limit_atr`` ATRs better than
the close (a pull-back). The suggested stop sits ``stop_atr`` ATRs from the entry; confidence grows with the gap between
the averages, in ATRs. A strategy is a plugin like any other: it follows the bars the runtime holds
and returns ``Signal``s from ``generate_signals``; the gate, sizing and risk decide the rest. Its
averages are incremental (``tradeguard.indicators``): a bar costs the same whatever the periods.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tradeguard import Bar, ConfiguredPlugin, OrderType, Runtime, Signal, hookimpl
from tradeguard.indicators import AverageTrueRange, MovingSum
from tradeguard.plugins.strategies.common import Follower, StrategySettings


class CrossoverSettings(StrategySettings):
    fast: int = Field(default=10, ge=2, le=500, description="fast moving average, bars")
    slow: int = Field(default=30, ge=3, le=2000, description="slow moving average, bars")
    stop_atr: float = Field(default=2.0, gt=0, le=20, description="suggested stop, in ATRs from the entry")
    entry: Literal["market", "limit"] = Field(default="market", description="at market, or a limit order")
    limit_atr: float = Field(default=0.3, gt=0, le=10, description="a limit entry's distance from the close, ATRs")

    @model_validator(mode="after")
    def _ordered(self) -> CrossoverSettings:
        if self.fast >= self.slow:
            raise ValueError(f"fast {self.fast} must be shorter than slow {self.slow}")
        return self


class Averages:
    """One series' two moving averages and ATR, and the averages as they stood a bar before."""

    def __init__(self, cfg: CrossoverSettings) -> None:
        self.fast, self.slow, self.atr = MovingSum(cfg.fast), MovingSum(cfg.slow), AverageTrueRange(cfg.atr_period)
        self.warm_up = max(cfg.slow, cfg.atr_period) + 1
        self.before: tuple[float, float] | None = None  # (fast, slow) after the previous bar

    def update(self, high: float, low: float, close: float) -> None:
        self.before = (self.fast.mean, self.slow.mean) if self.slow.ready else None
        self.fast.update(close)
        self.slow.update(close)
        self.atr.update(high, low, close)


class MovingAverageCrossover(ConfiguredPlugin):
    settings_model = CrossoverSettings
    stage = 5

    def __init__(self) -> None:
        super().__init__()
        self.follower: Follower[CrossoverSettings, Averages] = Follower(Averages)

    @hookimpl
    def generate_signals(self, bar: Bar, runtime: Runtime) -> list[Signal]:
        cfg = self.cfg
        state = self.follower.feed(cfg, bar, runtime)
        if state is None or state.before is None or not state.atr.ready:
            return []
        (fast_before, slow_before), fast_now, slow_now = state.before, state.fast.mean, state.slow.mean
        crossed_up = fast_before <= slow_before and fast_now > slow_now
        crossed_down = fast_before >= slow_before and fast_now < slow_now
        if not (crossed_up or crossed_down):
            return []
        atr, sign = state.atr.value, 1 if crossed_up else -1
        limit = cfg.entry == "limit"
        entry = bar.close - sign * cfg.limit_atr * atr if limit else bar.close
        return [
            Signal(
                strategy="ma_crossover",
                symbol=bar.symbol,
                side="buy" if crossed_up else "sell",
                timeframe=bar.timeframe,
                bar_time=bar.time,
                created_at=runtime.clock.now(),
                price=entry,
                order_type=OrderType.LIMIT if limit else OrderType.MARKET,
                stop_loss=entry - sign * cfg.stop_atr * atr,
                atr=atr,
                confidence=float(min(1.0, abs(fast_now - slow_now) / atr)) if atr > 0 else 0.5,
            )
        ]
