"""The risk guard's rules, one small class each (Freqtrade's protections are the model): the settings keys it
reads, and its refusal, beside it.

A rule is called with a :class:`Check`, one order's evaluation, which holds what several rules share and
reads each once: the committed exposure (open positions, working pending orders, the unfilled rest of
partial fills), the account. Each rule is off when its limit is 0 or empty and answers ``None`` (pass) or a
``Rejected`` that names its rule and the key that governs it (:func:`reject`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tradeguard import AccountSnapshot, NettingEffect, OrderIntent, Rejected, Runtime, rolling_atr

if TYPE_CHECKING:
    from tradeguard.plugins.risk.risk_guard import RiskGuard

#: the value that switches a rule off, per settings key (a key missing here cannot be switched off, only moved)
SWITCHED_OFF_BY: dict[str, object] = {
    "require_stop": "false",
    "max_risk_per_trade_pct": 0,
    "max_open_positions": 0,
    "max_positions_per_symbol": 0,
    "max_lots_per_symbol": 0,
    "max_notional_per_symbol": 0,
    "max_lots_per_currency": 0,
    "daily_loss_limit_pct": 0,
    "max_drawdown_pct": 0,
    "max_total_stop_risk_pct": 0,
    "min_margin_level_pct": 0,
    "max_orders_per_minute": 0,
    "consecutive_losses": 0,
    "max_group_lots": 0,
    "volatility_multiple": 0,
}


def reject(code: str, message: str, key: str) -> Rejected:
    """A refusal that names its rule and the setting that governs it (and how to switch the rule off)."""
    off = SWITCHED_OFF_BY.get(key)
    how = f"off with risk_guard.{key} = {off}" if off is not None else f"set by risk_guard.{key}"
    return Rejected(reason=code, message=f"{code}: {message} (rule {code}; {how})")


@dataclass
class Exposure:
    """What is committed per symbol: signed lots (+ buy, - sell) and the gross lots."""

    signed: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    gross: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    count: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, symbol: str, is_buy: bool, lots: float, counts: bool = True) -> None:
        self.signed[symbol] += lots if is_buy else -lots
        self.gross[symbol] += lots
        self.count[symbol] += int(counts)


class Check:
    """One order's evaluation: the order, the settings, the guard's state, and what rules share, read once."""

    def __init__(self, guard: RiskGuard, order: OrderIntent) -> None:
        self.guard, self.order = guard, order
        self.cfg: Any = guard.cfg
        self.rt: Runtime = guard.rt

    @cached_property
    def exposure(self) -> Exposure:
        return self.guard.committed()

    def money(self, symbol: str, distance: float, lots: float) -> float:
        return self.rt.broker.symbol_spec(symbol).money(distance, lots)

    def resulting_volume(self) -> float:
        """The volume on the order's stop once it is done: the order's own, or on netting the position it leaves
        (an add: the old volume and the order's; a reversal: what passes the old position)."""
        order = self.order
        if order.netting not in (NettingEffect.ADD, NettingEffect.REVERSE):
            return order.volume
        held = sum(p.volume for p in self.rt.broker.positions(order.symbol))
        return order.volume + held if order.netting is NettingEffect.ADD else max(0.0, order.volume - held)


class Rule(Protocol):
    @property
    def keys(self) -> tuple[str, ...]:
        """The settings keys the rule reads (all in ``[default.risk_guard]``)."""

    def __call__(self, c: Check) -> Rejected | None: ...


class StopAndRiskPerTrade:
    """``missing_stop``: an opening order names its stop; ``max_risk_per_trade``: it risks at most a share of
    equity to that stop. On netting the risk is the resulting position's: an add puts the whole position on the
    order's stop, a reversal leaves only the volume past the old position."""

    keys = ("require_stop", "max_risk_per_trade_pct")

    def __call__(self, c: Check) -> Rejected | None:
        order, cfg = c.order, c.cfg
        if order.stop_loss is None or order.price is None:
            if not cfg.require_stop:
                return None
            return reject("missing_stop", "an opening order without a stop", "require_stop")
        if not cfg.max_risk_per_trade_pct:
            return None
        equity = c.rt.broker.account().equity
        risk = c.money(order.symbol, abs(order.price - order.stop_loss), c.resulting_volume())
        limit = equity * cfg.max_risk_per_trade_pct / 100
        if risk > limit + 1e-9:
            share = f"{cfg.max_risk_per_trade_pct:g}% of equity {equity:.2f}"
            return reject(
                "max_risk_per_trade", f"{risk:.2f} at risk > limit {limit:.2f} ({share})", "max_risk_per_trade_pct"
            )
        return None


class VolumePerOrder:
    """``volume_above_maximum``: lots in one order."""

    keys = ("max_volume_per_order",)

    def __call__(self, c: Check) -> Rejected | None:
        cap = c.cfg.max_volume_per_order
        if c.order.volume > cap:
            return reject("volume_above_maximum", f"{c.order.volume:g} lots > limit {cap:g}", "max_volume_per_order")
        return None


class OpenPositions:
    """``max_open_positions``: positions and pending orders, in all and on the order's symbol."""

    keys = ("max_open_positions", "max_positions_per_symbol")

    def __call__(self, c: Check) -> Rejected | None:
        if c.order.netting in (NettingEffect.ADD, NettingEffect.REVERSE):
            return None  # netting: the symbol's one position grows or turns; no position is added
        cfg, exp, symbol = c.cfg, c.exposure, c.order.symbol
        total = sum(exp.count.values())
        if cfg.max_open_positions and total >= cfg.max_open_positions:
            return reject("max_open_positions", f"{total} open, limit {cfg.max_open_positions}", "max_open_positions")
        on_symbol = exp.count[symbol]
        if cfg.max_positions_per_symbol and on_symbol >= cfg.max_positions_per_symbol:
            return reject(
                "max_open_positions",
                f"{on_symbol} open on {symbol}, limit {cfg.max_positions_per_symbol} per symbol",
                "max_positions_per_symbol",
            )
        return None


class SymbolExposure:
    """``max_exposure_symbol``: committed lots, and their notional, on the order's symbol."""

    keys = ("max_lots_per_symbol", "max_notional_per_symbol")

    def __call__(self, c: Check) -> Rejected | None:
        cfg, order = c.cfg, c.order
        lots = c.exposure.gross[order.symbol] + order.volume
        if cfg.max_lots_per_symbol and lots > cfg.max_lots_per_symbol + 1e-9:
            return reject(
                "max_exposure_symbol",
                f"{lots:g} lots on {order.symbol} > limit {cfg.max_lots_per_symbol:g}",
                "max_lots_per_symbol",
            )
        if cfg.max_notional_per_symbol and order.price:
            notional = c.money(order.symbol, order.price, lots)
            if notional > cfg.max_notional_per_symbol:
                return reject(
                    "max_exposure_symbol",
                    f"notional {notional:,.0f} on {order.symbol} > limit {cfg.max_notional_per_symbol:,.0f}",
                    "max_notional_per_symbol",
                )
        return None


class CurrencyExposure:
    """``max_exposure_currency``: committed lots touching each currency of the order's symbol."""

    keys = ("max_lots_per_currency",)

    def __call__(self, c: Check) -> Rejected | None:
        cap = c.cfg.max_lots_per_currency
        if not cap:
            return None
        broker, order = c.rt.broker, c.order
        per_ccy: dict[str, float] = defaultdict(float)
        for symbol, gross in [*c.exposure.gross.items(), (order.symbol, order.volume)]:
            spec = broker.symbol_spec(symbol)
            per_ccy[spec.currency_base] += gross
            per_ccy[spec.currency_profit] += gross
        spec = broker.symbol_spec(order.symbol)
        for ccy in (spec.currency_base, spec.currency_profit):
            if per_ccy[ccy] > cap + 1e-9:
                return reject(
                    "max_exposure_currency",
                    f"{per_ccy[ccy]:g} lots touching {ccy} > limit {cap:g}",
                    "max_lots_per_currency",
                )
        return None


class LossLimits:
    """``daily_loss_limit`` and ``max_drawdown``, on the worse of the last snapshot and the account now.

    The snapshot gives the anchors (the day's opening equity, the peak); the equity is read live, so a
    stalled account tracker cannot leave the limits judging an old equity. A snapshot from before the
    current server day's midnight has yesterday's anchor, which counts today's loss short after a winning
    day: with a daily limit set, openings wait (``account_stale``) until the tracker captures the new day.
    """

    keys = ("daily_loss_limit_pct", "max_drawdown_pct")

    def __call__(self, c: Check) -> Rejected | None:
        s = c.guard.snapshot
        if s is None:
            return None
        cfg, broker = c.cfg, c.rt.broker
        if cfg.daily_loss_limit_pct and s.time < (midnight := broker.server_midnight(broker.now())):
            return reject(
                "account_stale",
                f"the last account snapshot ({s.time:%Y-%m-%d %H:%M} UTC) is "
                f"from before server midnight ({midnight:%Y-%m-%d %H:%M} UTC): "
                "the day's opening equity is not known yet",
                "daily_loss_limit_pct",
            )
        equity = broker.account().equity
        daily = max(s.daily_drawdown_pct, AccountSnapshot.loss_pct(s.day_start_equity, equity))
        peak = max(s.peak_equity, equity)
        drawdown = max(s.drawdown_pct, AccountSnapshot.loss_pct(peak, equity))
        if cfg.daily_loss_limit_pct and daily >= cfg.daily_loss_limit_pct:
            return reject(
                "daily_loss_limit",
                f"{daily:.2f}% lost since server midnight (limit {cfg.daily_loss_limit_pct:g}%)",
                "daily_loss_limit_pct",
            )
        if cfg.max_drawdown_pct and drawdown >= cfg.max_drawdown_pct:
            return reject(
                "max_drawdown",
                f"{drawdown:.2f}% below peak equity {peak:.2f} (limit {cfg.max_drawdown_pct:g}%)",
                "max_drawdown_pct",
            )
        return None


class WorstCaseStops:
    """``max_total_stop_risk``: the loss if every stop (open positions, working orders, this order) is hit,
    against a share of equity; ``daily_loss_limit``: against what is left of today's loss limit."""

    keys = ("max_total_stop_risk_pct", "daily_loss_limit_pct")

    def __call__(self, c: Check) -> Rejected | None:
        cfg, order, s = c.cfg, c.order, c.guard.snapshot
        daily_aware = cfg.daily_loss_limit_pct and s is not None
        if not (cfg.max_total_stop_risk_pct or daily_aware) or order.stop_loss is None or order.price is None:
            return None
        broker = c.rt.broker
        total = c.money(order.symbol, abs(order.price - order.stop_loss), order.volume)
        for p in broker.positions():
            if not p.sl:
                key = "max_total_stop_risk_pct" if cfg.max_total_stop_risk_pct else "daily_loss_limit_pct"
                code = "max_total_stop_risk" if cfg.max_total_stop_risk_pct else "daily_loss_limit"
                return reject(code, f"position {p.ticket} has no stop: the worst case is unbounded", key)
            sign = 1 if p.is_buy else -1
            total += c.money(p.symbol, max(0.0, sign * (p.price_current - p.sl)), p.volume)
        for o in broker.orders():
            if o.sl:
                total += c.money(o.symbol, abs(o.price_open - o.sl), o.volume_current)
        equity = broker.account().equity
        if cfg.max_total_stop_risk_pct and total > equity * cfg.max_total_stop_risk_pct / 100:
            share = f"{cfg.max_total_stop_risk_pct:g}% of equity {equity:.2f}"
            return reject(
                "max_total_stop_risk", f"{total:.2f} lost if every stop is hit > {share}", "max_total_stop_risk_pct"
            )
        if daily_aware and s is not None:
            allowance = s.day_start_equity * cfg.daily_loss_limit_pct / 100 - max(0.0, s.day_start_equity - equity)
            if total > allowance:
                return reject(
                    "daily_loss_limit",
                    f"{total:.2f} lost if every stop is hit > the {allowance:.2f} left of today's loss limit",
                    "daily_loss_limit_pct",
                )
        return None


class MarginFloor:
    """``margin_level_floor``: the margin level once the order's margin is taken."""

    keys = ("min_margin_level_pct",)

    def __call__(self, c: Check) -> Rejected | None:
        floor, order = c.cfg.min_margin_level_pct, c.order
        if not floor or order.price is None:
            return None
        broker = c.rt.broker
        account = broker.account()
        need = broker.calc_margin(order.side.value == "buy", order.symbol, order.volume, order.price)
        after = account.margin + need
        level = account.equity / after * 100 if after else float("inf")
        if level < floor:
            return reject(
                "margin_level_floor",
                f"margin level after the order {level:.1f}% < floor {floor:g}%",
                "min_margin_level_pct",
            )
        return None


class OrderPace:
    """``orders_per_minute``: orders the guard approved in the last minute."""

    keys = ("max_orders_per_minute",)

    def __call__(self, c: Check) -> Rejected | None:
        limit, approved = c.cfg.max_orders_per_minute, c.guard.approved
        if not limit:
            return None
        now = c.rt.clock.now()
        while approved and (now - approved[0]).total_seconds() >= 60:
            approved.popleft()
        if len(approved) >= limit:
            return reject(
                "orders_per_minute",
                f"{len(approved)} orders in the last minute, limit {limit}",
                "max_orders_per_minute",
            )
        return None


class LossStreakPause:
    """``consecutive_losses``: a pause after that many losing closes in a row (the guard counts them)."""

    keys = ("consecutive_losses", "pause_minutes")

    def __call__(self, c: Check) -> Rejected | None:
        guard = c.guard
        if guard.paused_until is not None and c.rt.clock.now() < guard.paused_until:
            return reject(
                "consecutive_losses",
                f"{guard.loss_streak} losing trades in a row; paused until {guard.paused_until.isoformat()}",
                "consecutive_losses",
            )
        return None


class GroupExposure:
    """``sector_exposure``: same-direction lots of the symbols that move with the order's (its sector, or
    returns correlated at least ``correlation_threshold``)."""

    keys = ("max_group_lots", "sectors", "correlation_threshold", "correlation_timeframe", "correlation_bars")

    def __call__(self, c: Check) -> Rejected | None:
        cap, order = c.cfg.max_group_lots, c.order
        if not cap:
            return None
        direction = 1.0 if order.side.value == "buy" else -1.0
        same = order.volume
        for symbol, signed in c.exposure.signed.items():
            sign = 1.0 if symbol == order.symbol else self._group_sign(c, order.symbol, symbol)
            if sign is not None and signed * sign * direction > 0:
                same += abs(signed)
        if same > cap + 1e-9:
            return reject(
                "sector_exposure",
                f"{same:g} lots moving with {order.symbol} {order.side.value} > group cap {cap:g}",
                "max_group_lots",
            )
        return None

    @staticmethod
    def _group_sign(c: Check, symbol: str, other: str) -> float | None:
        """+1/-1 when ``other`` moves with/against ``symbol`` (same sector, or correlated returns), else None."""
        cfg = c.cfg
        for members in cfg.sectors.values():
            if symbol in members and other in members:
                return 1.0
        if not cfg.correlation_threshold:
            return None
        try:
            a = c.rt.broker.rates(symbol, cfg.correlation_timeframe, cfg.correlation_bars)
            b = c.rt.broker.rates(other, cfg.correlation_timeframe, cfg.correlation_bars)
        except Exception:  # a symbol without history cannot be grouped by correlation
            return None
        _, ia, ib = np.intersect1d(a["time"], b["time"], return_indices=True)
        if len(ia) < 10:
            return None
        corr = float(np.corrcoef(np.diff(np.log(a["close"][ia])), np.diff(np.log(b["close"][ib])))[0, 1])
        return float(np.sign(corr)) if abs(corr) >= cfg.correlation_threshold else None


class VolatilityHalt:
    """``volatility_halt``: no new entries while the ATR of the closed bars is above a multiple of its median."""

    keys = ("volatility_multiple", "volatility_timeframe", "atr_period", "volatility_norm_bars")

    def __call__(self, c: Check) -> Rejected | None:
        cfg = c.cfg
        if not cfg.volatility_multiple:
            return None
        bars = cfg.volatility_norm_bars + cfg.atr_period + 2
        rates = c.rt.broker.rates(c.order.symbol, cfg.volatility_timeframe, bars)
        series = rolling_atr(rates[:-1], cfg.atr_period)  # closed bars only
        if len(series) < 2:
            return None
        now, norm = float(series[-1]), float(np.median(series))
        if norm > 0 and now > cfg.volatility_multiple * norm:
            return reject(
                "volatility_halt",
                f"ATR({cfg.atr_period}) {now:.5f} > {cfg.volatility_multiple:g} x its median {norm:.5f}",
                "volatility_multiple",
            )
        return None


#: every rule, in the order they are asked: the first refusal is the answer
RULES: tuple[Rule, ...] = (
    StopAndRiskPerTrade(),
    VolumePerOrder(),
    OpenPositions(),
    SymbolExposure(),
    CurrencyExposure(),
    LossLimits(),
    WorstCaseStops(),
    MarginFloor(),
    OrderPace(),
    LossStreakPause(),
    GroupExposure(),
    VolatilityHalt(),
)
