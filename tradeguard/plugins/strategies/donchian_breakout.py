"""Donchian breakout: buy a close above the highest high of the last N bars, sell one below the lowest low.

The suggested stop is the middle of the channel, or ``stop_atr`` ATRs away when that is closer.
"""

from __future__ import annotations

from pydantic import Field

from tradeguard import Bar, ConfiguredPlugin, Runtime, Signal, hookimpl
from tradeguard.indicators import AverageTrueRange, MovingExtreme
from tradeguard.plugins.strategies.common import Follower, StrategySettings


class BreakoutSettings(StrategySettings):
    channel: int = Field(default=20, ge=2, le=1000, description="Donchian channel length, bars")
    stop_atr: float = Field(default=2.0, gt=0, le=20, description="the farthest the suggested stop may be, in ATRs")


class Channel:
    """One series' Donchian channel and ATR, and the channel as it stood before the latest bar."""

    def __init__(self, cfg: BreakoutSettings) -> None:
        self.high, self.low = MovingExtreme(cfg.channel), MovingExtreme(cfg.channel, lowest=True)
        self.atr = AverageTrueRange(cfg.atr_period)
        self.warm_up = max(cfg.channel, cfg.atr_period) + 1
        self.prior: tuple[float, float] | None = None  # (highest high, lowest low) of the channel before

    def update(self, high: float, low: float, close: float) -> None:
        self.prior = (self.high.value, self.low.value) if self.high.ready else None
        self.high.update(high)
        self.low.update(low)
        self.atr.update(high, low, close)


class DonchianBreakout(ConfiguredPlugin):
    settings_model = BreakoutSettings
    stage = 5

    def __init__(self) -> None:
        super().__init__()
        self.follower: Follower[BreakoutSettings, Channel] = Follower(Channel)

    @hookimpl
    def generate_signals(self, bar: Bar, runtime: Runtime) -> list[Signal]:
        cfg = self.cfg
        state = self.follower.feed(cfg, bar, runtime)
        if state is None or state.prior is None or not state.atr.ready:
            return []
        high, low = state.prior
        if bar.close > high:
            sign, side = 1, "buy"
        elif bar.close < low:
            sign, side = -1, "sell"
        else:
            return []
        atr, middle = state.atr.value, (high + low) / 2
        stop = max(middle, bar.close - cfg.stop_atr * atr) if sign > 0 else min(middle, bar.close + cfg.stop_atr * atr)
        return [
            Signal(
                strategy="donchian_breakout",
                symbol=bar.symbol,
                side=side,
                timeframe=bar.timeframe,
                bar_time=bar.time,
                created_at=runtime.clock.now(),
                price=bar.close,
                stop_loss=stop,
                atr=atr,
                confidence=0.6,
                metadata={"level_confirmed": True},
            )
        ]
