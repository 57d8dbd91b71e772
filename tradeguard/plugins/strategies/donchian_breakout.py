"""Donchian breakout: buy a close above the highest high of the last N bars, sell one below the lowest low.

The suggested stop is the middle of the channel, or ``stop_atr`` ATRs away when that is closer.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tradeguard import Bar, ConfiguredPlugin, Signal, hookimpl
from tradeguard.plugins.strategies.common import StrategySettings, average_true_range, history


class BreakoutSettings(StrategySettings):
    channel: int = Field(default=20, ge=2, le=1000, description="Donchian channel length, bars")
    stop_atr: float = Field(default=2.0, gt=0, le=20, description="the farthest the suggested stop may be, in ATRs")


class DonchianBreakout(ConfiguredPlugin):
    settings_model = BreakoutSettings
    stage = 5

    @hookimpl
    def generate_signals(self, bar: Bar, runtime: Any) -> list[Signal]:
        cfg = self.cfg
        bars = history(cfg, bar, runtime, max(cfg.channel, cfg.atr_period) + 1)
        if bars is None:
            return []
        prior = bars[-cfg.channel - 1 : -1]  # the channel before this bar
        high, low = float(prior["high"].max()), float(prior["low"].min())
        if bar.close > high:
            sign, side = 1, "buy"
        elif bar.close < low:
            sign, side = -1, "sell"
        else:
            return []
        atr = average_true_range(bars, cfg.atr_period)
        middle = (high + low) / 2
        stop = max(middle, bar.close - cfg.stop_atr * atr) if sign > 0 else min(middle, bar.close + cfg.stop_atr * atr)
        return [Signal(strategy="donchian_breakout", symbol=bar.symbol, side=side, timeframe=bar.timeframe,
                       bar_time=bar.time, created_at=runtime.clock.now(), price=bar.close, stop_loss=stop, atr=atr,
                       confidence=0.6, metadata={"level_confirmed": True})]  # fmt: skip
