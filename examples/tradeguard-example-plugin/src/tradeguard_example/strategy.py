"""A momentum strategy: trade in the direction of a bar whose body dominates its range."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from tradeguard import Bar, PluginSettings, Signal, hookimpl


class MomentumSettings(PluginSettings):
    min_body_fraction: float = Field(default=0.7, gt=0, le=1, description="body / range needed to signal")


class MomentumStrategy:
    @hookimpl
    def tradeguard_settings(self) -> type[MomentumSettings]:
        return MomentumSettings

    @hookimpl
    def generate_signals(self, bar: Bar, runtime: Any) -> list[Signal]:
        cfg = runtime.settings_for(self)
        span = bar.high - bar.low
        body = bar.close - bar.open
        if span <= 0 or abs(body) / span < cfg.min_body_fraction:
            return []
        buy = body > 0
        return [
            Signal(
                strategy="example_momentum",
                symbol=bar.symbol,
                side="buy" if buy else "sell",
                timeframe=bar.timeframe,
                bar_time=bar.time,
                created_at=runtime.clock.now(),
                price=bar.close,
                stop_loss=bar.low if buy else bar.high,
                confidence=abs(body) / span,
                metadata={"spread_points": bar.spread},
            )
        ]
