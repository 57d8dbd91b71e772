"""Signal validation gate (SIG): refuse signals that must not trade, with every reason at once.

A signal that fails several checks gets all of them back, so a strategy author fixes them in one
round. Each reason is a stable code with the figures in its message.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tradeguard import ConfiguredPlugin, PluginSettings, Reason, Signal, hookimpl


class SignalGateSettings(PluginSettings):
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0, description="signals below this are refused")
    max_age_seconds: float = Field(
        default=0.0, ge=0.0, description="refuse signals older than this (runtime clock); 0 = off"
    )
    symbols: list[str] = Field(default_factory=list, description="tradable symbols; empty = any")


class SignalValidationGate(ConfiguredPlugin):
    settings_model = SignalGateSettings

    @hookimpl
    def validate_signal(self, signal: Signal, runtime: Any) -> list[Reason]:
        cfg = self.cfg
        found = []
        if signal.confidence < cfg.min_confidence:
            found.append(Reason(
                code="confidence_below_minimum",
                message=f"confidence_below_minimum: {signal.confidence:.3f} < minimum {cfg.min_confidence:.3f}",
            ))  # fmt: skip
        if cfg.max_age_seconds:
            age = (runtime.clock.now() - signal.created_at).total_seconds()
            if age > cfg.max_age_seconds:
                found.append(Reason(
                    code="stale_signal", message=f"stale_signal: age {age:.0f} s > limit {cfg.max_age_seconds:.0f} s"
                ))  # fmt: skip
        if cfg.symbols and signal.symbol not in cfg.symbols:
            found.append(Reason(
                code="symbol_not_allowed",
                message=f"symbol_not_allowed: {signal.symbol} not in {', '.join(cfg.symbols)}",
            ))  # fmt: skip
        return found
