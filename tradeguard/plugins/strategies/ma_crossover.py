"""Moving-average crossover: buy when the fast average crosses above the slow one, sell below.

The suggested stop sits ``stop_atr`` ATRs from the close; confidence grows with the gap between
the averages, in ATRs. A strategy is a plugin like any other: it reads the bars the runtime holds
and returns ``Signal``s from ``generate_signals``; the gate, sizing and risk decide the rest.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from tradeguard import Bar, ConfiguredPlugin, Signal, hookimpl
from tradeguard.plugins.strategies.common import StrategySettings, average_true_range, history


class CrossoverSettings(StrategySettings):
    fast: int = Field(default=10, ge=2, le=500, description="fast moving average, bars")
    slow: int = Field(default=30, ge=3, le=2000, description="slow moving average, bars")
    stop_atr: float = Field(default=2.0, gt=0, le=20, description="suggested stop, in ATRs from the close")

    @model_validator(mode="after")
    def _ordered(self) -> CrossoverSettings:
        if self.fast >= self.slow:
            raise ValueError(f"fast {self.fast} must be shorter than slow {self.slow}")
        return self


class MovingAverageCrossover(ConfiguredPlugin):
    settings_model = CrossoverSettings
    stage = 5

    @hookimpl
    def generate_signals(self, bar: Bar, runtime: Any) -> list[Signal]:
        cfg = self.cfg
        bars = history(cfg, bar, runtime, max(cfg.slow, cfg.atr_period) + 1)
        if bars is None:
            return []
        # one cumulative sum answers all four averages (four numpy means cost 4x the Python overhead)
        total = bars["close"][-cfg.slow - 1 :].cumsum().tolist()  # total[-1] - total[-1-n]: the last n closes
        fast_now = (total[-1] - total[-1 - cfg.fast]) / cfg.fast
        fast_before = (total[-2] - total[-2 - cfg.fast]) / cfg.fast
        slow_now, slow_before = (total[-1] - total[0]) / cfg.slow, total[-2] / cfg.slow
        crossed_up = fast_before <= slow_before and fast_now > slow_now
        crossed_down = fast_before >= slow_before and fast_now < slow_now
        if not (crossed_up or crossed_down):
            return []
        atr = average_true_range(bars, cfg.atr_period)
        sign = 1 if crossed_up else -1
        return [Signal(
            strategy="ma_crossover", symbol=bar.symbol, side="buy" if crossed_up else "sell",
            timeframe=bar.timeframe, bar_time=bar.time, created_at=runtime.clock.now(), price=bar.close,
            stop_loss=bar.close - sign * cfg.stop_atr * atr, atr=atr,
            confidence=float(min(1.0, abs(fast_now - slow_now) / atr)) if atr > 0 else 0.5,
        )]  # fmt: skip
