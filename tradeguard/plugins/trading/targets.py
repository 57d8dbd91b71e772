"""Target/stop engine (TGT): where the stop and the target go, or why no stop can be placed.

The stop comes from the signal's own level when it has one (and ``use_signal_stop``), else from
an ATR multiple; the take profit is an R multiple of the stop distance unless the signal names a
valid one. A stop on the wrong side of the entry is refused, never flipped.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tradeguard import ConfiguredPlugin, PluginSettings, Rejected, Signal, Targets, hookimpl


class TargetSettings(PluginSettings):
    use_signal_stop: bool = Field(default=True, description="prefer the signal's own stop level")
    atr_multiple: float = Field(default=2.0, gt=0, le=50, description="stop distance in ATRs when computed")
    take_profit_r: float = Field(default=2.0, gt=0, le=50, description="take profit at this multiple of the risk")


class TargetStopEngine(ConfiguredPlugin):
    settings_model = TargetSettings

    @hookimpl
    def compute_targets(self, signal: Signal, runtime: Any) -> Targets | Rejected | None:
        cfg = self.cfg
        entry, sign = signal.price, signal.side.sign
        if signal.stop_loss is not None and cfg.use_signal_stop:
            stop, method = signal.stop_loss, "signal_stop"
        elif signal.atr is not None:
            stop, method = entry - sign * cfg.atr_multiple * signal.atr, f"atr_x{cfg.atr_multiple:g}"
        else:
            return None
        distance = sign * (entry - stop)
        if distance <= 0 or stop <= 0:
            return Rejected(
                reason="stop_wrong_side",
                message=f"stop_wrong_side: {signal.side.value} at {entry} with stop {stop}",
            )
        take = signal.take_profit
        if take is None or sign * (take - entry) <= 0:
            take = entry + sign * cfg.take_profit_r * distance
        return Targets(stop_loss=stop, take_profit=take if take > 0 else None, method=method)
