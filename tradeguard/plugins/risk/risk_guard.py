"""Real-time risk guard (RSK): the veto on every complete order before it reaches execution.

Orders that reduce exposure (closing a position) are never vetoed here: refusing a close makes
risk worse. Limits count what is already open.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tradeguard import ConfiguredPlugin, OrderIntent, PluginSettings, Rejected, hookimpl


class RiskGuardSettings(PluginSettings):
    max_open_positions: int = Field(default=5, ge=0, description="open positions across all symbols")
    max_positions_per_symbol: int = Field(default=2, ge=0, description="open positions on one symbol")
    max_volume_per_order: float = Field(default=10.0, gt=0, description="lots in one order")


class RiskGuard(ConfiguredPlugin):
    settings_model = RiskGuardSettings

    @hookimpl
    def evaluate_risk(self, order: OrderIntent, runtime: Any) -> Rejected | None:
        if order.reduces_exposure:
            return None
        cfg = self.cfg
        if order.volume > cfg.max_volume_per_order:
            return Rejected(
                reason="volume_above_maximum",
                message=f"volume_above_maximum: {order.volume:g} lots > limit {cfg.max_volume_per_order:g}",
            )
        positions = runtime.execution.get_positions_snapshot()
        if len(positions) >= cfg.max_open_positions:
            return Rejected(
                reason="max_open_positions",
                message=f"max_open_positions: {len(positions)} open, limit {cfg.max_open_positions}",
            )
        on_symbol = sum(1 for p in positions if p.symbol == order.symbol)
        if on_symbol >= cfg.max_positions_per_symbol:
            return Rejected(
                reason="max_open_positions",
                message=f"max_open_positions: {on_symbol} open on {order.symbol}, "
                f"limit {cfg.max_positions_per_symbol} per symbol",
            )
        return None
