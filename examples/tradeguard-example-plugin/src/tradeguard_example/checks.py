"""An extra gate check: refuse signals taken while the spread is too wide."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from tradeguard import PluginSettings, Reason, Signal, hookimpl


class MaxSpreadSettings(PluginSettings):
    max_points: int = Field(default=20, ge=0, description="largest spread, in points, a signal may carry")


class MaxSpread:
    @hookimpl
    def tradeguard_settings(self) -> type[MaxSpreadSettings]:
        return MaxSpreadSettings

    @hookimpl
    def validate_signal(self, signal: Signal, runtime: Any) -> list[Reason]:
        limit = runtime.settings_for(self).max_points
        spread = signal.metadata.get("spread_points")
        if spread is not None and spread > limit:
            return [Reason(code="spread_too_wide", message=f"spread_too_wide: {spread} points > limit {limit}")]
        return []
