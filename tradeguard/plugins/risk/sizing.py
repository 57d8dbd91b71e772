"""Position sizing (SIZ): how many lots, rounded *down* to the volume step, never sized up.

A strategy's risk hint scales the size within ``max_risk_hint``; a size that rounds below the
minimum lot is refused rather than raised to it.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator

from tradeguard import ConfiguredPlugin, PluginSettings, Rejected, Signal, Targets, hookimpl


class SizingSettings(PluginSettings):
    fixed_lots: float = Field(default=0.1, gt=0, description="lots per signal before the risk hint")
    max_risk_hint: float = Field(default=1.0, gt=0, le=10, description="cap on the signal's risk_hint multiplier")
    volume_step: float = Field(default=0.01, gt=0, description="lot step the size is rounded down to")
    volume_min: float = Field(default=0.01, gt=0, description="smallest tradable size")
    volume_max: float = Field(default=100.0, gt=0, description="largest size ever sent")

    @model_validator(mode="after")
    def _ordered(self) -> SizingSettings:
        if self.volume_min > self.volume_max:
            raise ValueError(f"volume_min {self.volume_min} > volume_max {self.volume_max}")
        return self


def floor_to_step(volume: float, step: float) -> float:
    """Round down to a multiple of ``step``, tolerant of binary fractions (0.3/0.1 = 2.9999...)."""
    return round(math.floor(volume / step + 1e-9) * step, 8)


class PositionSizing(ConfiguredPlugin):
    settings_model = SizingSettings

    @hookimpl
    def size_position(self, signal: Signal, targets: Targets, runtime: Any) -> float | Rejected:
        cfg = self.cfg
        hint = min(signal.risk_hint or 1.0, cfg.max_risk_hint)
        wanted = min(cfg.fixed_lots * hint, cfg.volume_max)
        volume = floor_to_step(wanted, cfg.volume_step)
        if volume < cfg.volume_min:
            return Rejected(
                reason="volume_below_minimum",
                message=f"volume_below_minimum: {wanted:g} lots rounds to {volume:g} < minimum {cfg.volume_min:g}",
            )
        return volume
