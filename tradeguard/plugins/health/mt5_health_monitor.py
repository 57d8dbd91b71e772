"""MT5 health monitor (HLT): is the terminal fit to trade, right now?

Checks: terminal connected to its trade server; Algo Trading allowed in the terminal and for the
account; ping; tick age against the runtime clock (stale quotes); spread blow-out against the
symbol's usual spread (each quote sampled once, however often it is checked); symbol trade mode (disabled or
close-only); consecutive API errors.
``aggregate_health()`` folds them into OK / DEGRADED / CRITICAL, publishes 2 / 1 / 0 as
``tradeguard_health_connection_status``, alerts on every degradation and fires ``on_health``.
A lost IPC link is reconnected with backoff; an outage longer than ``outage_halt_seconds``
requests a halt.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, field_validator

from tradeguard import (
    AlertChannel,
    ConfiguredPlugin,
    HealthReport,
    HealthStatus,
    Job,
    PluginSettings,
    Readings,
    Runtime,
    Severity,
    SortedWindow,
    backoff,
    hookimpl,
    on_scrape,
    shown_offset,
)

log = logging.getLogger("tradeguard.health")
_RANK = {HealthStatus.OK: 0, HealthStatus.DEGRADED: 1, HealthStatus.CRITICAL: 2}
_BY_RANK = (HealthStatus.OK, HealthStatus.DEGRADED, HealthStatus.CRITICAL)


#: what a trader reads when the terminal refuses expert trading (10027): which button turns it back on
ALGO_TRADING_OFF = (
    "Algo Trading is disabled: press 'Algo Trading' in the terminal's toolbar (and allow algorithmic trading "
    "in Tools > Options > Expert Advisors)"
)


class HealthSettings(PluginSettings):
    check_seconds: float = Field(default=10.0, gt=0, description="how often health is aggregated")
    max_tick_age_seconds: float = Field(default=120.0, gt=0, description="older quotes are stale (DEGRADED)")
    tick_age_by_symbol: dict[str, float] = Field(
        default_factory=dict,
        description="per symbol, the age its quotes may reach (a market with a daily break: XAUUSD = 3900)",
    )

    @field_validator("tick_age_by_symbol")
    @classmethod
    def _symbols_as_named(cls, ages: dict[str, float]) -> dict[str, float]:
        """Settings keys arrive lower-cased; symbols are named upper-case. Every age is positive."""
        bad = [name for name, age in ages.items() if not age > 0]
        if bad:
            raise ValueError(f"{', '.join(bad)}: an age is a positive number of seconds")
        return {name.upper(): float(age) for name, age in ages.items()}

    max_ping_ms: float = Field(default=500.0, gt=0, description="a slower terminal ping is DEGRADED")
    spread_blowout_multiple: float = Field(default=5.0, gt=1, description="spread above this x its median: DEGRADED")
    api_error_streak: int = Field(default=3, ge=1, description="this many failed checks in a row: CRITICAL")
    reconnect_backoff_seconds: float = Field(default=5.0, gt=0, description="first pause between reconnects; doubles")
    outage_halt_seconds: float = Field(default=300.0, gt=0, description="disconnected this long requests a halt")


class MT5HealthMonitor(ConfiguredPlugin):
    settings_model = HealthSettings
    stage = 1

    def __init__(self) -> None:
        super().__init__()
        self.last: HealthReport | None = None
        self.errors = 0
        self._spreads: dict[str, SortedWindow] = defaultdict(lambda: SortedWindow(500))
        self._sampled: dict[str, datetime] = {}  # per symbol, the time of the quote whose spread was sampled last
        self._blown: dict[str, str] = {}  # per symbol, the spread blow-out that quote showed ("" = none)
        self._clock_alerted: set[timedelta] = set()  # server offsets seen that disagree with the setting
        self._down_since: datetime | None = None
        self._next_reconnect: datetime | None = None
        self._failures = 0  # reconnects tried since the link was last up
        self._halted = False
        self._ping = 0.0  # the last ping read, ms

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime
        self._symbols = tuple(runtime.settings.runtime.symbols)
        m = runtime.metrics  # the last check's readings, read when scraped
        on_scrape(
            m.gauge("tradeguard_health_connection_status", "Terminal health: 2 OK, 1 DEGRADED, 0 CRITICAL"),
            lambda: self.last.status.gauge if self.last else 0,
        )
        on_scrape(
            m.gauge("tradeguard_terminal_ping_seconds", "Terminal ping to its trade server, seconds"),
            lambda: self._ping / 1000,
        )
        self._age = Readings(m.gauge("tradeguard_tick_age_seconds", "Age of the latest quote, seconds", ("symbol",)))
        self._spread = Readings(m.gauge("tradeguard_spread_points", "Current spread, points", ("symbol",)))

    @hookimpl
    def periodic_jobs(self, runtime: Runtime) -> list[Job]:
        return [
            Job(
                name="health.check",
                every=timedelta(seconds=self.cfg.check_seconds),
                run=lambda rt: self.aggregate_health(),
                run_at_start=True,
            )
        ]

    # ------------------------------------------------------------------ the spec's API ----------

    def check_connection(self) -> tuple[bool, bool, str]:
        """(connected, trading allowed, detail); reconnects the IPC link, with backoff, when it is gone."""
        connected, allowed, detail, _ = self._connection()
        return connected, allowed, detail

    def measure_latency(self) -> float:
        """The terminal's last ping to its trade server, in milliseconds."""
        ping = self.rt.broker.terminal().ping_ms
        self._ping = ping
        return ping

    def data_freshness(self, symbol: str) -> float:
        """Seconds since the symbol's latest quote, against the runtime clock."""
        return self._freshness(self.rt.clock.now(), self.rt.broker.quote(symbol))

    def aggregate_health(self) -> HealthReport:
        cfg, now = self.cfg, self.rt.clock.now()
        ping = None
        connected, allowed, detail, terminal = self._connection()
        checks = {"connection": detail}
        rank = 0 if connected and allowed else 2
        try:
            if terminal is None:  # unreachable: the ping read raises, as every call does then
                terminal = self.rt.broker.terminal()
            ping = self._ping = terminal.ping_ms
            if ping > cfg.max_ping_ms:
                checks["latency"] = f"ping {ping:.0f} ms > {cfg.max_ping_ms:g} ms"
                rank = max(rank, 1)
            for symbol in self._symbols:
                rank = max(rank, self._symbol(symbol, now, checks))
            self.errors = 0
        except Exception as exc:
            self.errors += 1
            checks["api"] = f"{self.errors} failed checks in a row: {type(exc).__name__}: {exc}"
            rank = max(rank, 1 if self.errors < cfg.api_error_streak else 2)
        self._down_since = None if connected else (self._down_since or now)
        if self._down_since is not None:
            down = (now - self._down_since).total_seconds()
            checks["outage"] = f"disconnected for {down:.0f} s"
            if down >= cfg.outage_halt_seconds and not self._halted:
                self._halted = True
                self.rt.request_halt(
                    "connection_lost", f"terminal disconnected for {down:.0f} s", source="mt5_health_monitor"
                )
        else:
            self._halted = False
        # every part is typed already: the adapter converted what the terminal said, the rest is ours
        report = HealthReport.trusted(
            time=now, status=_BY_RANK[rank], connected=connected, trade_allowed=allowed, ping_ms=ping, checks=checks
        )
        self._publish(report)
        return report

    # ------------------------------------------------------------------ internals ---------------

    def _connection(self) -> tuple[bool, bool, str, Any]:
        """``check_connection`` and the terminal state it read (None when the terminal was unreachable)."""
        broker = self.rt.broker
        try:
            terminal = broker.terminal()
            account = broker.account()
        except Exception as exc:
            self._reconnect()
            return False, False, f"terminal unreachable: {exc}", None
        allowed = terminal.trade_allowed and account.trade_allowed and account.trade_expert
        if not terminal.connected:
            detail = "no trade-server connection"
        elif not terminal.trade_allowed:
            detail = ALGO_TRADING_OFF
        elif not account.trade_allowed:
            detail = "the account may not trade (an investor password, or the broker disabled it)"
        elif not account.trade_expert:
            detail = "the trade server disables expert trading on this account (10026): only the broker can lift it"
        else:
            detail = "ok"
        return terminal.connected, allowed, detail, terminal

    def _freshness(self, now: datetime, quote: Any) -> float:
        age = (now - quote.time).total_seconds()
        age = self._age[quote.symbol,] = age if age > 0.0 else 0.0
        return age

    def _symbol(self, symbol: str, now: datetime, checks: dict[str, str]) -> int:
        """The symbol's rank (0 OK, 1 DEGRADED): trade mode, tick age and spread blow-out."""
        cfg, rank = self.cfg, 0
        broker = self.rt.broker
        # live: the symbol's rules are read afresh each check (a broker may make it close-only at any time), so
        # the gate sees the change before an order meets it; a simulated market changes them only when told
        spec = broker.symbol_spec(symbol) if self.rt.clock.simulated else broker.refresh_spec(symbol)
        if spec.trade_mode in (0, 3):
            checks[f"{symbol}.trade_mode"] = "disabled" if spec.trade_mode == 0 else "close only"
            rank = 1
        quote = broker.quote(symbol)
        age = self._freshness(now, quote)
        limit = cfg.tick_age_by_symbol.get(symbol, cfg.max_tick_age_seconds)
        if age > limit:
            checks[f"{symbol}.ticks"] = f"last quote {age:.0f} s old > {limit:g} s"
            rank = 1
        if self._sampled.get(symbol) != quote.time:  # a new quote: its spread joins the usual ones, once
            if symbol in self._sampled and not self.rt.clock.simulated:
                self._check_server_clock(quote.time)
            self._sampled[symbol] = quote.time
            spread = self._spread[symbol,] = (quote.ask - quote.bid) / spec.point
            usual = self._spreads[symbol]
            blown = len(usual) >= 10 and spread > cfg.spread_blowout_multiple * usual.median()
            self._blown[symbol] = f"{spread:.0f} points > {cfg.spread_blowout_multiple:g} x usual" if blown else ""
            usual.append(spread)
        if self._blown.get(symbol):
            checks[f"{symbol}.spread"] = self._blown[symbol]
            rank = 1
        return rank

    def _check_server_clock(self, quote_time: datetime) -> None:
        """A quote that just moved is the server's clock now: against the wall clock, to the quarter hour, it
        shows the server's offset. One that disagrees with ``broker.server_timezone`` (a daylight-saving switch
        the setting does not know, a broker that moved its servers) is alerted once per offset seen: every
        deal time and the daily anchor are that far off. Real offsets only (-12 to +14 hours)."""
        broker, now = self.rt.broker, datetime.now(UTC)
        observed, expected = shown_offset(broker.to_server(quote_time), now), broker.zone.offset_at(now)
        if observed is None or observed == expected or observed in self._clock_alerted:
            return
        self._clock_alerted.add(observed)
        hours = observed.total_seconds() / 3600
        self.rt.alert(
            channel=AlertChannel.HEALTH,
            severity=Severity.WARNING,
            module="mt5_health_monitor",
            error_code="server_clock_mismatch",
            message=(
                f"the terminal's ticks run at UTC{hours:+g}h, but broker.server_timezone = {broker.zone.name!r} says "
                f"UTC{expected.total_seconds() / 3600:+g}h now: deal times and the daily anchor are off; set the "
                "server's zone"
            ),
        )

    def _reconnect(self) -> None:
        now = self.rt.clock.now()
        if self._next_reconnect is not None and now < self._next_reconnect:
            return
        self._failures += 1
        pause = backoff(self._failures, self.cfg.reconnect_backoff_seconds)
        self._next_reconnect = now + pause
        try:
            self.rt.broker.connect()
            self._failures, self._next_reconnect = 0, None
            log.warning("terminal reconnected")
        except Exception as exc:
            log.error("reconnect failed", extra={"error": str(exc), "next_in_s": pause.total_seconds()})

    def _publish(self, report: HealthReport) -> None:
        previous, self.last = self.last, report
        if previous is None or report.status is not previous.status:  # for `tradeguard status`; not every check
            self.rt.store.kv_put("health", "last", report.model_dump(mode="json"))
        worse = previous is None or _RANK[report.status] > _RANK[previous.status]
        if worse and report.status is not HealthStatus.OK:  # every degradation is alerted, once
            severity = Severity.CRITICAL if report.status is HealthStatus.CRITICAL else Severity.WARNING
            self.rt.alert(
                channel=AlertChannel.HEALTH,
                severity=severity,
                module="mt5_health_monitor",
                error_code=f"health_{report.status.value.lower()}",
                message=f"terminal health {report.status.value}: {report.checks}",
            )
        self.rt.notify("on_health", report=report)
