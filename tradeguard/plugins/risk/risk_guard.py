"""Real-time risk guard (RSK): the veto on every complete order, before it reaches execution.

One method per rule, each off when its limit is 0 or empty; the first breach is the answer, with
its figures. Limits count what is already *committed*: open positions, working pending orders and
the unfilled rest of partial fills. Orders that reduce exposure are never vetoed (refusing a close
makes risk worse). Daily loss and drawdown are hard limits: tripping one also requests a halt.

Rules, in order: missing stop, risk per trade, volume per order, open positions (total, per
symbol), exposure per symbol (lots, notional) and per currency, daily loss (from broker-server
midnight, floating included; openings wait for the new day's first snapshot), drawdown from
peak, worst-case loss if every stop is hit, margin level after the order, orders per minute,
consecutive-loss pause, sector/correlated-group exposure, volatility halt.

The spec's API: :meth:`evaluate` (``Approved`` or ``Rejected``), :meth:`register_fill`,
:meth:`update_equity`.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from pydantic import Field

from tradeguard import (
    AccountSnapshot,
    AlertChannel,
    ConfiguredPlugin,
    DealEntry,
    Fill,
    OrderEvent,
    OrderEventKind,
    OrderIntent,
    PluginSettings,
    Rejected,
    Runtime,
    Severity,
    hookimpl,
    rolling_atr,
    server_midnight,
)

log = logging.getLogger("tradeguard.risk_guard")
BUY_ORDER_TYPES = (0, 2, 4, 6)


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


class RiskGuardSettings(PluginSettings):
    require_stop: bool = Field(default=True, description="refuse opening orders without a stop loss")
    max_risk_per_trade_pct: float = Field(default=1.0, ge=0, le=100, description="% of equity at risk; 0 = off")
    max_volume_per_order: float = Field(default=10.0, gt=0, description="lots in one order")
    max_open_positions: int = Field(default=5, ge=0, description="positions + pending orders, all symbols")
    max_positions_per_symbol: int = Field(default=2, ge=0, description="positions + pending orders on one symbol")
    max_lots_per_symbol: float = Field(default=0.0, ge=0, description="committed lots on one symbol; 0 = off")
    max_notional_per_symbol: float = Field(default=0.0, ge=0, description="account currency; 0 = off")
    max_lots_per_currency: float = Field(default=0.0, ge=0, description="committed lots touching one currency; 0 = off")
    daily_loss_limit_pct: float = Field(default=5.0, ge=0, le=100, description="loss since server midnight; 0 = off")
    max_drawdown_pct: float = Field(default=10.0, ge=0, le=100, description="drawdown from peak equity; 0 = off")
    max_total_stop_risk_pct: float = Field(
        default=0.0, ge=0, le=100, description="loss if every stop is hit, % of equity; 0 = off"
    )
    min_margin_level_pct: float = Field(default=200.0, ge=0, description="margin level after the order; 0 = off")
    max_orders_per_minute: int = Field(default=30, ge=0, description="approved orders per minute; 0 = off")
    consecutive_losses: int = Field(default=0, ge=0, description="losing closes in a row that pause; 0 = off")
    pause_minutes: float = Field(default=60.0, gt=0, description="how long that pause lasts")
    sectors: dict[str, list[str]] = Field(default_factory=dict, description="group name -> symbols")
    correlation_threshold: float = Field(default=0.0, ge=0, le=1, description="|corr| that groups symbols; 0 = off")
    correlation_timeframe: str = Field(default="H1")
    correlation_bars: int = Field(default=100, ge=10, le=5000)
    max_group_lots: float = Field(default=0.0, ge=0, description="same-direction lots per group; 0 = off")
    volatility_multiple: float = Field(default=0.0, ge=0, description="halt entries when ATR > this x norm; 0 = off")
    volatility_timeframe: str = Field(default="H1")
    atr_period: int = Field(default=14, ge=2, le=200)
    volatility_norm_bars: int = Field(default=100, ge=10, le=5000)
    loss_alert_r: float = Field(
        default=1.5,
        ge=0,
        description="ERROR alert when a closed trade lost more than this "
        "many times the risk it was sized on (a stop filled past a gap); 0 = off",
    )


@dataclass(frozen=True)
class Approved:
    """The guard's yes: the order may go to execution."""

    order: OrderIntent


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


class RiskGuard(ConfiguredPlugin):
    settings_model = RiskGuardSettings
    stage = 2

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: AccountSnapshot | None = None
        self.loss_streak = 0
        self.paused_until: datetime | None = None
        self._approved: deque[datetime] = deque()
        self._partial: set[str] = set()
        self._tripped: set[str] = set()

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime
        limits = runtime.metrics.gauge(
            "tradeguard_risk_limit_pct",
            "Configured loss limits, percent (0 = off); for alert rules such as drawdown near its limit",
            ("limit",),
        )
        limits.labels("max_drawdown").set(self.cfg.max_drawdown_pct)
        limits.labels("daily_loss").set(self.cfg.daily_loss_limit_pct)

    # ------------------------------------------------------------------ the spec's API ----------

    def update_equity(self, snapshot: AccountSnapshot) -> None:
        self.snapshot = snapshot
        self._check_hard_limits(snapshot)

    def register_fill(self, fill: Fill) -> None:
        """Track the losing streak from closing deals (and pause trading when it is long enough); say when a
        trade lost far more than it was sized to."""
        if fill.entry is DealEntry.IN:
            return
        self._beyond_plan(fill)
        pnl = fill.profit + fill.commission + fill.swap
        self.loss_streak = self.loss_streak + 1 if pnl < 0 else 0
        if self.cfg.consecutive_losses and self.loss_streak >= self.cfg.consecutive_losses:
            self.paused_until = fill.time + timedelta(minutes=self.cfg.pause_minutes)
            log.warning(
                "trading paused after losses",
                extra={"streak": self.loss_streak, "until": self.paused_until.isoformat()},
            )

    def _beyond_plan(self, fill: Fill) -> None:
        result, limit = fill.outcome, self.cfg.loss_alert_r
        if not (limit and result and result.trade_closed and result.r_multiple is not None):
            return
        if result.r_multiple >= -limit:
            return
        slipped = ""
        if result.slippage_points is not None:
            slipped = (
                f"; its {result.closed_by.value} filled {result.slippage_points:+,.1f} points "
                f"({result.slippage_money:+,.2f}) past {result.level:g}"
            )
        self.rt.alert(
            channel=AlertChannel.RISK,
            severity=Severity.ERROR,
            module="risk_guard",
            error_code="loss_beyond_plan",
            symbol=fill.symbol,
            message=f"position {fill.position_id} ({fill.client_id or 'not ours'}) closed at "
            f"{result.r_multiple:+.2f}R: {result.money:+,.2f} against {result.planned_risk:,.2f} "
            f"planned{slipped} (risk_guard.loss_alert_r = {limit:g})",
        )

    def evaluate(self, order: OrderIntent) -> Approved | Rejected:
        if order.reduces_exposure:
            return Approved(order)
        for rule in self._rules:
            verdict = rule(order)
            if verdict is not None:
                return verdict
        self._approved.append(self.rt.clock.now())
        return Approved(order)

    # ------------------------------------------------------------------ hooks -------------------

    @hookimpl
    def evaluate_risk(self, order: OrderIntent, runtime: Runtime) -> Rejected | None:
        verdict = self.evaluate(order)
        return verdict if isinstance(verdict, Rejected) else None

    @hookimpl
    def on_fill(self, fill: Fill, runtime: Runtime) -> None:
        self.register_fill(fill)

    @hookimpl
    def on_account_snapshot(self, snapshot: AccountSnapshot, runtime: Runtime) -> None:
        self.update_equity(snapshot)

    @hookimpl
    def on_order_event(self, event: OrderEvent, runtime: Runtime) -> None:
        """Remember which orders have an unfilled rest that may still fill (it counts as committed)."""
        if event.kind is OrderEventKind.PARTIALLY_FILLED:
            self._partial.add(event.client_id)
        elif event.kind in (
            OrderEventKind.FILLED,
            OrderEventKind.CANCELLED,
            OrderEventKind.EXPIRED,
            OrderEventKind.REJECTED,
        ):
            self._partial.discard(event.client_id)

    # ------------------------------------------------------------------ context -----------------

    @property
    def _rules(self) -> tuple[Callable[[OrderIntent], Rejected | None], ...]:
        return (
            self._stop_and_risk,
            self._volume,
            self._counts_and_exposure,
            self._hard_limits,
            self._stop_risk_total,
            self._margin_level,
            self._pace,
            self._streak,
            self._groups,
            self._volatility,
        )

    def _committed(self) -> Exposure:
        broker = self.rt.broker
        exp = Exposure()
        for p in broker.positions():
            exp.add(p.symbol, p.is_buy, p.volume)
        working = set()
        for o in broker.orders():
            exp.add(o.symbol, o.type in BUY_ORDER_TYPES, o.volume_current)
            working.add(o.comment)
        journal = self.rt.execution.journal
        if self._partial and journal is not None:
            for cid in self._partial - working:  # a rest still working at the broker is counted above
                entry = journal.get(cid)
                if entry is not None and entry.state.value == "partially_filled":
                    exp.add(entry.symbol, entry.side.value == "buy", entry.volume - entry.filled_volume, counts=False)
        return exp

    @staticmethod
    def _reject(code: str, message: str, key: str) -> Rejected:
        """A refusal that names its rule and the setting that governs it (and how to switch the rule off)."""
        off = SWITCHED_OFF_BY.get(key)
        how = f"off with risk_guard.{key} = {off}" if off is not None else f"set by risk_guard.{key}"
        return Rejected(reason=code, message=f"{code}: {message} (rule {code}; {how})")

    def _money(self, symbol: str, distance: float, lots: float) -> float:
        spec = self.rt.broker.symbol_spec(symbol)
        return distance / spec.tick_size * spec.tick_value * lots

    # ------------------------------------------------------------------ rules -------------------

    def _stop_and_risk(self, order: OrderIntent) -> Rejected | None:
        cfg = self.cfg
        if order.stop_loss is None or order.price is None:
            if not cfg.require_stop:
                return None
            return self._reject("missing_stop", "an opening order without a stop", "require_stop")
        if not cfg.max_risk_per_trade_pct:
            return None
        equity = self.rt.broker.account().equity
        risk = self._money(order.symbol, abs(order.price - order.stop_loss), order.volume)
        limit = equity * cfg.max_risk_per_trade_pct / 100
        if risk > limit + 1e-9:
            share = f"{cfg.max_risk_per_trade_pct:g}% of equity {equity:.2f}"
            return self._reject(
                "max_risk_per_trade", f"{risk:.2f} at risk > limit {limit:.2f} ({share})", "max_risk_per_trade_pct"
            )
        return None

    def _volume(self, order: OrderIntent) -> Rejected | None:
        if order.volume > self.cfg.max_volume_per_order:
            return self._reject(
                "volume_above_maximum",
                f"{order.volume:g} lots > limit {self.cfg.max_volume_per_order:g}",
                "max_volume_per_order",
            )
        return None

    def _counts_and_exposure(self, order: OrderIntent) -> Rejected | None:
        cfg = self.cfg
        exp = self._committed()
        self._exposure = exp
        total = sum(exp.count.values())
        if total >= cfg.max_open_positions:
            return self._reject(
                "max_open_positions", f"{total} open, limit {cfg.max_open_positions}", "max_open_positions"
            )
        on_symbol = exp.count[order.symbol]
        if on_symbol >= cfg.max_positions_per_symbol:
            return self._reject(
                "max_open_positions",
                f"{on_symbol} open on {order.symbol}, limit {cfg.max_positions_per_symbol} per symbol",
                "max_positions_per_symbol",
            )
        lots = exp.gross[order.symbol] + order.volume
        if cfg.max_lots_per_symbol and lots > cfg.max_lots_per_symbol + 1e-9:
            return self._reject(
                "max_exposure_symbol",
                f"{lots:g} lots on {order.symbol} > limit {cfg.max_lots_per_symbol:g}",
                "max_lots_per_symbol",
            )
        if cfg.max_notional_per_symbol and order.price:
            notional = self._money(order.symbol, order.price, lots)
            if notional > cfg.max_notional_per_symbol:
                return self._reject(
                    "max_exposure_symbol",
                    f"notional {notional:,.0f} on {order.symbol} > limit {cfg.max_notional_per_symbol:,.0f}",
                    "max_notional_per_symbol",
                )
        if cfg.max_lots_per_currency:
            per_ccy: dict[str, float] = defaultdict(float)
            broker = self.rt.broker
            for symbol, gross in [*exp.gross.items(), (order.symbol, order.volume)]:
                spec = broker.symbol_spec(symbol)
                per_ccy[spec.currency_base] += gross
                per_ccy[spec.currency_profit] += gross
            spec = broker.symbol_spec(order.symbol)
            for ccy in (spec.currency_base, spec.currency_profit):
                if per_ccy[ccy] > cfg.max_lots_per_currency + 1e-9:
                    return self._reject(
                        "max_exposure_currency",
                        f"{per_ccy[ccy]:g} lots touching {ccy} > limit {cfg.max_lots_per_currency:g}",
                        "max_lots_per_currency",
                    )
        return None

    def _hard_limits(self, order: OrderIntent) -> Rejected | None:
        """The daily loss and drawdown limits, on the worse of the last snapshot and the account now.

        The snapshot gives the anchors (the day's opening equity, the peak); the equity is read live,
        so a stalled account tracker (a capture that keeps failing) cannot leave the limits judging
        an old equity. A snapshot from before the current server day's midnight has yesterday's
        anchor, which counts today's loss short after a winning day: with a daily limit set, openings
        wait (``account_stale``) until the tracker captures the new day (its next pass always does).
        """
        s = self.snapshot
        if s is None:
            return None
        cfg, broker = self.cfg, self.rt.broker
        if cfg.daily_loss_limit_pct and s.time < (midnight := server_midnight(broker.now(), broker.offset)):
            return self._reject(
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
            return self._reject(
                "daily_loss_limit",
                f"{daily:.2f}% lost since server midnight (limit {cfg.daily_loss_limit_pct:g}%)",
                "daily_loss_limit_pct",
            )
        if cfg.max_drawdown_pct and drawdown >= cfg.max_drawdown_pct:
            return self._reject(
                "max_drawdown",
                f"{drawdown:.2f}% below peak equity {peak:.2f} (limit {cfg.max_drawdown_pct:g}%)",
                "max_drawdown_pct",
            )
        return None

    def _check_hard_limits(self, s: AccountSnapshot) -> None:
        """A hard limit breached by the account itself requests a halt (once per breach)."""
        cfg = self.cfg
        for code, value, limit in (
            ("daily_loss_limit", s.daily_drawdown_pct, cfg.daily_loss_limit_pct),
            ("max_drawdown", s.drawdown_pct, cfg.max_drawdown_pct),
        ):
            if limit and value >= limit:
                if code not in self._tripped:
                    self._tripped.add(code)
                    # what it latches: [default.triggers] daily_loss / drawdown
                    self.rt.request_halt(code, f"{value:.2f}% >= limit {limit:g}%", source="risk_guard")
            else:
                self._tripped.discard(code)

    def _stop_risk_total(self, order: OrderIntent) -> Rejected | None:
        cfg = self.cfg
        daily_aware = cfg.daily_loss_limit_pct and self.snapshot is not None
        if not (cfg.max_total_stop_risk_pct or daily_aware) or order.stop_loss is None or order.price is None:
            return None
        broker = self.rt.broker
        total = self._money(order.symbol, abs(order.price - order.stop_loss), order.volume)
        for p in broker.positions():
            if not p.sl:
                key = "max_total_stop_risk_pct" if cfg.max_total_stop_risk_pct else "daily_loss_limit_pct"
                code = "max_total_stop_risk" if cfg.max_total_stop_risk_pct else "daily_loss_limit"
                return self._reject(code, f"position {p.ticket} has no stop: the worst case is unbounded", key)
            sign = 1 if p.is_buy else -1
            total += self._money(p.symbol, max(0.0, sign * (p.price_current - p.sl)), p.volume)
        for o in broker.orders():
            if o.sl:
                total += self._money(o.symbol, abs(o.price_open - o.sl), o.volume_current)
        equity = broker.account().equity
        if cfg.max_total_stop_risk_pct and total > equity * cfg.max_total_stop_risk_pct / 100:
            share = f"{cfg.max_total_stop_risk_pct:g}% of equity {equity:.2f}"
            return self._reject(
                "max_total_stop_risk", f"{total:.2f} lost if every stop is hit > {share}", "max_total_stop_risk_pct"
            )
        s = self.snapshot
        if daily_aware and s is not None:
            allowance = s.day_start_equity * cfg.daily_loss_limit_pct / 100 - max(0.0, s.day_start_equity - equity)
            if total > allowance:
                return self._reject(
                    "daily_loss_limit",
                    f"{total:.2f} lost if every stop is hit > the {allowance:.2f} left of today's loss limit",
                    "daily_loss_limit_pct",
                )
        return None

    def _margin_level(self, order: OrderIntent) -> Rejected | None:
        floor = self.cfg.min_margin_level_pct
        if not floor or order.price is None:
            return None
        broker = self.rt.broker
        account = broker.account()
        need = broker.calc_margin(order.side.value == "buy", order.symbol, order.volume, order.price)
        after = account.margin + need
        level = account.equity / after * 100 if after else float("inf")
        if level < floor:
            return self._reject(
                "margin_level_floor",
                f"margin level after the order {level:.1f}% < floor {floor:g}%",
                "min_margin_level_pct",
            )
        return None

    def _pace(self, order: OrderIntent) -> Rejected | None:
        limit = self.cfg.max_orders_per_minute
        if not limit:
            return None
        now = self.rt.clock.now()
        while self._approved and (now - self._approved[0]).total_seconds() >= 60:
            self._approved.popleft()
        if len(self._approved) >= limit:
            return self._reject(
                "orders_per_minute",
                f"{len(self._approved)} orders in the last minute, limit {limit}",
                "max_orders_per_minute",
            )
        return None

    def _streak(self, order: OrderIntent) -> Rejected | None:
        if self.paused_until is not None and self.rt.clock.now() < self.paused_until:
            return self._reject(
                "consecutive_losses",
                f"{self.loss_streak} losing trades in a row; paused until {self.paused_until.isoformat()}",
                "consecutive_losses",
            )
        return None

    def _group_sign(self, symbol: str, other: str) -> float | None:
        """+1/-1 when ``other`` moves with/against ``symbol`` (same sector, or correlated returns), else None."""
        for members in self.cfg.sectors.values():
            if symbol in members and other in members:
                return 1.0
        if not self.cfg.correlation_threshold or symbol == other:
            return 1.0 if symbol == other else None
        try:
            a = self.rt.broker.rates(symbol, self.cfg.correlation_timeframe, self.cfg.correlation_bars)
            b = self.rt.broker.rates(other, self.cfg.correlation_timeframe, self.cfg.correlation_bars)
        except Exception:  # a symbol without history cannot be grouped by correlation
            return None
        _, ia, ib = np.intersect1d(a["time"], b["time"], return_indices=True)
        if len(ia) < 10:
            return None
        corr = float(np.corrcoef(np.diff(np.log(a["close"][ia])), np.diff(np.log(b["close"][ib])))[0, 1])
        return float(np.sign(corr)) if abs(corr) >= self.cfg.correlation_threshold else None

    def _groups(self, order: OrderIntent) -> Rejected | None:
        cap = self.cfg.max_group_lots
        if not cap:
            return None
        direction = 1.0 if order.side.value == "buy" else -1.0
        same = order.volume
        for symbol, signed in self._exposure.signed.items():
            sign = None if symbol == order.symbol else self._group_sign(order.symbol, symbol)
            if symbol == order.symbol:
                sign = 1.0
            if sign is not None and signed * sign * direction > 0:
                same += abs(signed)
        if same > cap + 1e-9:
            return self._reject(
                "sector_exposure",
                f"{same:g} lots moving with {order.symbol} {order.side.value} > group cap {cap:g}",
                "max_group_lots",
            )
        return None

    def _volatility(self, order: OrderIntent) -> Rejected | None:
        cfg = self.cfg
        if not cfg.volatility_multiple:
            return None
        bars = cfg.volatility_norm_bars + cfg.atr_period + 2
        rates = self.rt.broker.rates(order.symbol, cfg.volatility_timeframe, bars)
        series = rolling_atr(rates[:-1], cfg.atr_period)  # closed bars only
        if len(series) < 2:
            return None
        now, norm = float(series[-1]), float(np.median(series))
        if norm > 0 and now > cfg.volatility_multiple * norm:
            return self._reject(
                "volatility_halt",
                f"ATR({cfg.atr_period}) {now:.5f} > {cfg.volatility_multiple:g} x its median {norm:.5f}",
                "volatility_multiple",
            )
        return None
