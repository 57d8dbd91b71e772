"""Target/stop engine (TGT): where the stop and the target go, or why no stop can be placed.

The stop comes from the first method in ``stop_methods`` that applies: the signal's own level,
an ATR multiple (the signal's ATR), or a fixed distance in points. The target is an R multiple of
the stop distance, a fixed distance, or the signal's own. Every level is rounded to the symbol's
tick and pushed outside the broker's stops level (measured from the current bid/ask), never
inside it. A stop on the wrong side of the entry is refused, never flipped.

Position management (a periodic job) moves stops to break-even and trails them, through the
execution engine, and never loosens a stop.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from tradeguard import ConfiguredPlugin, Job, PluginSettings, Rejected, Runtime, Signal, Targets, hookimpl

log = logging.getLogger("tradeguard.targets")


class TargetSettings(PluginSettings):
    stop_methods: list[Literal["signal", "atr", "points"]] = Field(
        default=["signal", "atr", "points"], description="tried in order; the first that applies"
    )
    atr_multiple: float = Field(default=2.0, gt=0, le=50, description="stop distance in ATRs")
    stop_points: int = Field(default=0, ge=0, description="fixed stop distance in points; 0 = method off")
    take_profit: Literal["r_multiple", "points", "signal", "none"] = Field(default="r_multiple")
    take_profit_r: float = Field(default=2.0, gt=0, le=50, description="target at this multiple of the risk")
    take_profit_points: int = Field(default=0, ge=0, description="fixed target distance in points")
    manage_every_seconds: float = Field(default=60.0, gt=0, description="how often open positions are managed")
    break_even_at_r: float = Field(default=0.0, ge=0, description="move the stop to entry after this many R; 0 = off")
    break_even_offset_points: int = Field(default=0, ge=0, description="lock in this many points at break-even")
    trail_at_r: float = Field(default=0.0, ge=0, description="start trailing after this many R; 0 = off")
    trail_distance_points: int = Field(default=0, ge=0, description="trail this far behind the price")


class TargetStopEngine(ConfiguredPlugin):
    settings_model = TargetSettings
    stage = 4

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime

    @hookimpl
    def compute_targets(self, signal: Signal, runtime: Runtime) -> Targets | Rejected | None:
        cfg = self.cfg
        spec = runtime.broker.symbol_spec(signal.symbol)
        quote = runtime.broker.quote(signal.symbol)
        sign = signal.side.sign
        entry = quote.ask if sign > 0 else quote.bid
        ref = quote.bid if sign > 0 else quote.ask  # MT5 measures a position's stops from the closing side
        stop, method = None, ""
        for m in cfg.stop_methods:
            if m == "signal" and signal.stop_loss is not None:
                stop, method = signal.stop_loss, "signal"
            elif m == "atr" and signal.atr is not None:
                stop, method = entry - sign * cfg.atr_multiple * signal.atr, f"atr_x{cfg.atr_multiple:g}"
            elif m == "points" and cfg.stop_points:
                stop, method = entry - sign * cfg.stop_points * spec.point, f"points_{cfg.stop_points}"
            if stop is not None:
                break
        if stop is None:
            methods = ", ".join(cfg.stop_methods)
            return Rejected(
                reason="stop_not_placeable", message=f"stop_not_placeable: none of {methods} applies to this signal"
            )
        if sign * (entry - stop) <= 0 or stop <= 0:
            return Rejected(
                reason="stop_wrong_side", message=f"stop_wrong_side: {signal.side.value} at {entry} with stop {stop}"
            )
        gap = spec.stops_distance + spec.point  # at least one point beyond the stops level
        if sign * (ref - stop) < gap:
            stop = ref - sign * gap
            method += "+stops_level"
        stop = spec.round_price(stop)
        if stop <= 0:
            return Rejected(reason="stop_not_placeable", message=f"stop_not_placeable: stop {stop} is not a price")
        risk = sign * (entry - stop)
        take = self._target(signal, spec, entry, risk, sign)
        if take is not None and sign * (take - ref) < gap:
            take = ref + sign * gap
        return Targets(stop_loss=stop, take_profit=spec.round_price(take) if take else None, method=method)

    def _target(self, signal: Signal, spec: Any, entry: float, risk: float, sign: int) -> float | None:
        cfg = self.cfg
        if cfg.take_profit == "signal" and signal.take_profit is not None and sign * (signal.take_profit - entry) > 0:
            return signal.take_profit
        if cfg.take_profit == "points" and cfg.take_profit_points:
            return entry + sign * float(cfg.take_profit_points * spec.point)
        if cfg.take_profit in ("r_multiple", "signal"):
            return entry + sign * float(cfg.take_profit_r) * risk
        return None

    # ------------------------------------------------------------------ position management -----

    @hookimpl
    def periodic_jobs(self, runtime: Runtime) -> list[Job]:
        if not (self.cfg.break_even_at_r or self.cfg.trail_at_r):
            return []
        return [
            Job(
                name="targets.manage",
                every=timedelta(seconds=self.cfg.manage_every_seconds),
                run=lambda rt: self.manage_positions(),
            )
        ]

    def manage_positions(self) -> list[tuple[int, float]]:
        """Tighten stops (break-even, trailing) on our positions; returns ``(ticket, new stop)`` moves."""
        engine = self.rt.execution
        cfg, moves = self.cfg, []
        for p in engine.get_positions_snapshot():
            if p.stop_loss is None:
                continue  # unprotected positions are the reconciler's to re-arm
            spec = self.rt.broker.symbol_spec(p.symbol)
            quote = self.rt.broker.quote(p.symbol)
            sign = p.side.sign
            price = quote.bid if sign > 0 else quote.ask
            initial = self.rt.store.kv_get("initial_stop", str(p.ticket))
            if initial is None:  # remember the first stop: R is measured against it
                initial = p.stop_loss
                self.rt.store.kv_put("initial_stop", str(p.ticket), initial)
            risk = sign * (p.price_open - initial)
            if risk <= 0:
                continue
            gained = sign * (price - p.price_open) / risk
            candidate = p.stop_loss
            if cfg.break_even_at_r and gained >= cfg.break_even_at_r:
                candidate = _tighter(candidate, p.price_open + sign * cfg.break_even_offset_points * spec.point, sign)
            if cfg.trail_at_r and cfg.trail_distance_points and gained >= cfg.trail_at_r:
                candidate = _tighter(candidate, price - sign * cfg.trail_distance_points * spec.point, sign)
            candidate = spec.round_price(candidate)
            if sign * (price - candidate) < spec.stops_distance + spec.point:
                continue  # too close to the market to place now
            frozen = spec.freeze_distance
            if frozen and any(level and abs(price - level) <= frozen for level in (p.stop_loss, p.take_profit)):
                continue  # within the freeze level of a level: the server refuses any change (10029)
            if sign * (candidate - p.stop_loss) > spec.point / 2 and engine.modify_order(
                p.ticket, candidate, p.take_profit
            ):
                moves.append((p.ticket, candidate))
        return moves


def _tighter(current: float, proposed: float, sign: int) -> float:
    """The stop that risks less: higher for a buy, lower for a sell. A stop is never loosened."""
    return max(current, proposed) if sign > 0 else min(current, proposed)
