"""Position sizing (SIZ): how many lots, rounded *down* to the symbol's step, never sized up.

Methods:

* ``fixed`` - ``fixed_lots``;
* ``risk_pct`` - lose ``risk_pct`` of equity (or balance) if the stop is hit:
  ``lots = budget / (stop distance / tick size * tick value)``;
* ``volatility`` - one ATR of adverse move costs ``volatility_target_pct`` of equity.

A strategy's ``risk_hint`` scales the budget, capped at ``max_risk_hint`` (never above the limits).
The result is floored to the volume step and capped at the symbol's and the configured maximum; if
even the minimum lot exceeds the budget the signal is refused, never sized up. The margin the
order needs (``order_calc_margin``) must fit the free margin; the size comes down to fit it.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from tradeguard import ConfiguredPlugin, PluginSettings, Rejected, Runtime, Signal, Targets, hookimpl


class SizingSettings(PluginSettings):
    method: Literal["fixed", "risk_pct", "volatility"] = Field(default="risk_pct", description="how lots are chosen")
    fixed_lots: float = Field(default=0.1, gt=0, description="lots per signal for method fixed")
    risk_pct: float = Field(default=1.0, gt=0, le=100, description="money at risk per trade, % of the base")
    risk_base: Literal["equity", "balance"] = Field(default="equity", description="what risk_pct is a share of")
    volatility_target_pct: float = Field(default=0.5, gt=0, le=100, description="one ATR costs this % of equity")
    max_risk_hint: float = Field(default=1.0, gt=0, le=10, description="cap on the signal's risk_hint multiplier")
    max_lots: float = Field(default=100.0, gt=0, description="largest size ever sent")
    check_margin: bool = Field(default=True, description="size down to what the free margin can carry")


def floor_to_step(volume: float, step: float) -> float:
    """Round down to a multiple of ``step``, tolerant of binary fractions (0.3/0.1 = 2.9999...)."""
    return round(math.floor(volume / step + 1e-9) * step, 8)


class PositionSizing(ConfiguredPlugin):
    settings_model = SizingSettings
    stage = 2

    @hookimpl
    def size_position(self, signal: Signal, targets: Targets, runtime: Runtime) -> float | Rejected:
        cfg = self.cfg
        broker = runtime.broker
        spec = broker.symbol_spec(signal.symbol)
        account = broker.account()
        hint = min(signal.risk_hint or 1.0, cfg.max_risk_hint)
        money_per_lot = spec.money(abs(signal.price - targets.stop_loss), 1.0)
        if cfg.method == "fixed":
            wanted, budget = cfg.fixed_lots * hint, None
        elif cfg.method == "risk_pct":
            base = account.equity if cfg.risk_base == "equity" else account.balance
            budget = base * cfg.risk_pct / 100 * hint
            wanted = budget / money_per_lot
        else:
            if signal.atr is None:
                return Rejected(reason="no_size", message="no_size: volatility sizing needs the signal's ATR")
            budget = account.equity * cfg.volatility_target_pct / 100 * hint
            wanted = budget / spec.money(signal.atr, 1.0)
        volume = floor_to_step(min(wanted, cfg.max_lots, spec.volume_max), spec.volume_step)
        if volume < spec.volume_min:
            limit = f"budget {budget:.2f} buys {wanted:.4f} lots" if budget is not None else f"{wanted:g} lots"
            return Rejected(
                reason="volume_below_minimum",
                message=f"volume_below_minimum: {limit} < minimum {spec.volume_min:g} "
                f"({money_per_lot:.2f} per lot at risk)",
            )
        if cfg.check_margin:
            per_lot = broker.calc_margin(signal.side.value == "buy", signal.symbol, 1.0, signal.price)
            if per_lot > 0 and volume * per_lot > account.margin_free:
                volume = floor_to_step(account.margin_free / per_lot, spec.volume_step)
                if volume < spec.volume_min:
                    need = spec.volume_min * per_lot
                    return Rejected(
                        reason="margin_insufficient",
                        message=f"margin_insufficient: free margin {account.margin_free:.2f} < {need:.2f} "
                        f"for the minimum {spec.volume_min:g} lots",
                    )
        return volume
