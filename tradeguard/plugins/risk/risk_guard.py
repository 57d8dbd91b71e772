"""Real-time risk guard (RSK): the veto on every complete order, before it reaches execution.

One class per rule (plugins/risk/rules.py), each off when its limit is 0 or empty; the first breach is
the answer, with its figures. Limits count what is already *committed*: open positions, working pending orders and
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
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field

from tradeguard import (
    AccountSnapshot,
    AlertChannel,
    ConfiguredPlugin,
    DealEntry,
    Fill,
    OrderEvent,
    OrderIntent,
    OrderState,
    PluginSettings,
    Rejected,
    Runtime,
    Severity,
    Side,
    hookimpl,
)
from tradeguard.plugins.risk.rules import RULES, Check, Exposure

log = logging.getLogger("tradeguard.risk_guard")


class RiskGuardSettings(PluginSettings):
    require_stop: bool = Field(default=True, description="refuse opening orders without a stop loss")
    max_risk_per_trade_pct: float = Field(default=1.0, ge=0, le=100, description="% of equity at risk; 0 = off")
    max_volume_per_order: float = Field(default=10.0, gt=0, description="lots in one order")
    max_open_positions: int = Field(default=5, ge=0, description="positions + pending orders, all symbols; 0 = off")
    max_positions_per_symbol: int = Field(
        default=2, ge=0, description="positions + pending orders on one symbol; 0 = off"
    )
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


class RiskGuard(ConfiguredPlugin):
    settings_model = RiskGuardSettings
    stage = 2

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: AccountSnapshot | None = None
        self.loss_streak = 0
        self.paused_until: datetime | None = None
        self.approved: deque[datetime] = deque()  # when orders were approved, the last minute's (OrderPace)
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
        check = Check(self, order)
        for rule in RULES:
            verdict = rule(check)
            if verdict is not None:
                return verdict
        self.approved.append(self.rt.clock.now())
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
        if event.kind is OrderState.PARTIALLY_FILLED:
            self._partial.add(event.client_id)
        elif event.kind in (
            OrderState.FILLED,
            OrderState.CANCELLED,
            OrderState.EXPIRED,
            OrderState.REJECTED,
        ):
            self._partial.discard(event.client_id)

    # ------------------------------------------------------------------ what the rules share ------

    def committed(self) -> Exposure:
        """What is committed per symbol: open positions, working pending orders, and the unfilled rest of
        partial fills that may still fill."""
        broker = self.rt.broker
        exp = Exposure()
        for p in broker.positions():
            exp.add(p.symbol, p.is_buy, p.volume)
        working = set()
        for o in broker.orders():
            exp.add(o.symbol, o.side is Side.BUY, o.volume_current)
            working.add(o.comment)
        journal = self.rt.execution.journal
        if self._partial and journal is not None:
            for cid in self._partial - working:  # a rest still working at the broker is counted above
                entry = journal.get(cid)
                if entry is not None and entry.state.value == "partially_filled":
                    exp.add(entry.symbol, entry.side.value == "buy", entry.volume - entry.filled_volume, counts=False)
        return exp

    def _check_hard_limits(self, s: AccountSnapshot) -> None:
        """A hard limit breached by the account itself requests a halt (once per breach); what it latches is
        the triggers table's ``daily_loss_limit`` / ``max_drawdown`` row."""
        cfg = self.cfg
        for code, value, limit in (
            ("daily_loss_limit", s.daily_drawdown_pct, cfg.daily_loss_limit_pct),
            ("max_drawdown", s.drawdown_pct, cfg.max_drawdown_pct),
        ):
            if limit and value >= limit:
                if code not in self._tripped:
                    self._tripped.add(code)
                    self.rt.request_halt(code, f"{value:.2f}% >= limit {limit:g}%", source="risk_guard")
            else:
                self._tripped.discard(code)
