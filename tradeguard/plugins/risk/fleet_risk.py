"""Fleet limits (issue 28): many accounts, each its own process, under one budget and one kill switch.

With ``[default.fleet] url`` set, this plugin joins the account to its fleet (a PostgreSQL database, see
``tradeguard/fleet``) and:

* **publishes** what the fleet needs on every fill, order event, account snapshot and kill-switch change: the
  account's equity and day P&L (from its server midnight, converted to ``fleet.currency``), its book (positions
  and working orders, with the currencies each touches), its kill state, and a heartbeat;
* **reserves** each opening order's share of the fleet's budget as the last veto of ``evaluate_risk``: lots per
  symbol and per currency, open positions, with the fleet's daily loss and drawdown checked at the same moment.
  The reservation is atomic across accounts and is released when the order is accounted for in the published
  book (filled, placed), or refused, cancelled, rejected; a process that dies holding one loses it when its
  lease runs out;
* **adopts the fleet's kill switch**: the veto refuses openings the moment the listener hears the fleet latch,
  and the latch is written into this account's own kill switch (which then acts on it, alerts it and chains it
  in the audit trail), so a process started later starts latched;
* **fails closed**: without the database, openings are refused (``fleet_unreachable``), alerted after
  ``fleet.fail_closed_seconds``; exits and stops keep working; openings resume once the account's state has
  been published again.

At ``warn_at_pct`` of a fleet limit one WARNING goes out for the whole fleet, once per limit and server day. A
loss limit reached, or an exposure limit exceeded (only orders the budget never saw can do that: a manual trade,
another tool), latches the fleet as ``[default.triggers] fleet_limit`` says (REDUCE_ONLY by default).
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tradeguard import (
    AccountFigures,
    AccountSnapshot,
    AlertChannel,
    Ask,
    BookRow,
    ConfiguredPlugin,
    Decision,
    Fill,
    FleetKill,
    FleetLimits,
    FleetLink,
    FleetUnreachable,
    HaltEvent,
    Job,
    NettingEffect,
    OrderEvent,
    OrderIntent,
    OrderState,
    Rejected,
    Runtime,
    Severity,
    Signal,
    StartupError,
    TradeguardError,
    action_for,
    hookimpl,
)

log = logging.getLogger("tradeguard.fleet_risk")
_RANK = {"ACTIVE": 0, "REDUCE_ONLY": 1, "HALTED": 2}
#: the local latches a fleet's reset lifts (an account's own triggers wait for its own operator)
FLEET_TRIGGERS = ("fleet_kill", "fleet_limit")
#: order states after which the published book accounts for the order (or it will never trade)
_SETTLED = frozenset(
    {
        OrderState.ACCEPTED,
        OrderState.PARTIALLY_FILLED,
        OrderState.FILLED,
        OrderState.CANCELLED,
        OrderState.REJECTED,
        OrderState.EXPIRED,
    }
)
#: limits judged as reached at 100% (a loss); the others only when exceeded
_LOSS_LIMITS = ("daily_loss", "max_drawdown_pct")


class FleetRiskSettings(FleetLimits):
    """``[default.fleet_risk]``: the fleet's limits (see ``FleetLimits``); they act only with ``fleet.url`` set."""


class FleetRisk(ConfiguredPlugin):
    settings_model = FleetRiskSettings
    stage = 2  # before the kill switch (3) reads its latch: a fleet latch is written into it first

    def __init__(self) -> None:
        super().__init__()
        self.link: FleetLink | None = None
        self.rt: Runtime
        self._held: dict[str, int] = {}  # signal id -> reservation id
        self._adopted = -1  # the fleet kill event last written into this account's kill switch
        self._published_kill: tuple[str, str] | None = None
        self._alerted_out = False
        self._metrics: dict[str, Any] = {}

    # -- start and stop -----------------------------------------------------------------------------

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime
        fleet = runtime.settings.fleet
        if not fleet.enabled:
            return
        self.link = FleetLink(fleet, fleet.label(runtime.broker.account().login), self.cfg.model_dump())
        self._metrics = {
            "out": runtime.metrics.gauge("tradeguard_fleet_unreachable", "1 while the fleet database is out of reach"),
            "kill": runtime.metrics.gauge(
                "tradeguard_fleet_kill_latched", "1 while the fleet's kill switch is latched"
            ),
            "use": runtime.metrics.gauge(
                "tradeguard_fleet_limit_use_ratio", "each fleet limit's use (1 = reached)", ["limit"]
            ),
            "reserve": runtime.metrics.histogram(
                "tradeguard_fleet_reserve_seconds", "one opening order's fleet check and reservation"
            ),
        }
        try:
            self.link.rejoin(self._figures(None), self._book(), *self._local_kill())
        except FleetUnreachable as exc:
            log.error("fleet database unreachable at start: openings wait for it", extra={"error": str(exc)})
        except TradeguardError as exc:  # a second process on the account, another currency: never trade so
            raise StartupError(f"fleet {fleet.name!r}: {exc}") from exc
        self.link.start()
        self._adopt_kill()  # a process started after a fleet kill starts latched

    @hookimpl
    def tradeguard_shutdown(self, runtime: Runtime) -> None:
        if self.link is not None:
            self.link.stop()

    @hookimpl
    def periodic_jobs(self, runtime: Runtime) -> list[Job]:
        if self.link is None:
            return []
        every = timedelta(seconds=runtime.settings.fleet.heartbeat_seconds)
        return [Job(name="fleet.sync", every=every, run=lambda rt: self.sync(), wall_clock=True)]

    # -- what this account is -------------------------------------------------------------------------

    def _figures(self, snapshot: AccountSnapshot | None) -> AccountFigures:
        broker = self.rt.broker
        account = broker.account()
        day_start = snapshot.day_start_equity if snapshot is not None else account.equity
        equity = snapshot.equity if snapshot is not None else account.equity
        balance = snapshot.balance if snapshot is not None else account.balance
        return AccountFigures(
            login=account.login,
            server=account.server,
            currency=account.currency,
            to_fleet=self._rate(account.currency),
            equity=equity,
            balance=balance,
            day_start_equity=day_start,
        )

    def _rate(self, currency: str) -> float:
        """One unit of the account's currency in the fleet's, from the broker's own quote."""
        fleet = self.rt.settings.fleet.currency
        if currency == fleet:
            return 1.0
        broker = self.rt.broker
        for symbol, invert in ((currency + fleet, False), (fleet + currency, True)):
            try:
                quote = broker.quote(symbol)
            except TradeguardError:
                continue
            if quote.bid > 0 and quote.ask > 0:
                return 1 / quote.ask if invert else quote.bid
        raise StartupError(
            f"the account is in {currency} and the fleet reports in {fleet} (fleet.currency): the broker quotes "
            f"neither {currency}{fleet} nor {fleet}{currency} to convert"
        )

    def _book(self) -> list[BookRow]:
        broker = self.rt.broker
        broker.forget_reads()
        rows = []
        for p in broker.positions():
            spec = broker.symbol_spec(p.symbol)
            side = "buy" if p.is_buy else "sell"
            rows.append(
                BookRow("position", p.ticket, p.symbol, side, p.volume, spec.currency_base, spec.currency_profit)
            )
        for o in broker.orders():
            spec = broker.symbol_spec(o.symbol)
            rows.append(
                BookRow(
                    "order",
                    o.ticket,
                    o.symbol,
                    o.side.value,
                    o.volume_current,
                    spec.currency_base,
                    spec.currency_profit,
                )
            )
        return rows

    def _local_kill(self) -> tuple[str, str]:
        latched = self.rt.store.kill_state()
        return (latched[0], latched[1]) if latched is not None else ("ACTIVE", "")

    # -- the veto -------------------------------------------------------------------------------------

    @hookimpl(trylast=True)
    def evaluate_risk(self, order: OrderIntent, runtime: Runtime) -> Rejected | None:
        """The last veto: only an order every other check approved takes a share of the fleet's budget."""
        link = self.link
        if link is None or order.reduces_exposure:
            return None
        kill = link.kill
        if kill.latched:
            return Rejected(
                reason="fleet_kill",
                message=f"fleet_kill: the fleet is {kill.state} ({kill.trigger} by {kill.operator}: {kill.message})",
            )
        spec = runtime.broker.symbol_spec(order.symbol)
        ask = Ask(
            signal_id=order.signal_id,
            symbol=order.symbol,
            lots=order.volume,
            currency_base=spec.currency_base,
            currency_profit=spec.currency_profit,
            positions=0 if order.netting is NettingEffect.ADD else 1,
        )
        started = time.perf_counter()
        answer = link.reserve(ask)
        self._metrics["reserve"].observe(time.perf_counter() - started)
        if isinstance(answer, int):
            self._held[order.signal_id] = answer
            return None
        return Rejected(reason=answer.code, message=answer.message)

    # -- releasing and publishing ---------------------------------------------------------------------

    @hookimpl
    def on_decision(self, decision: Decision, signal: Signal, runtime: Runtime) -> None:
        held = self._held.get(decision.signal_id)
        if held is None:
            return
        journal = runtime.execution.journal
        entry = journal.get(decision.client_id) if decision.client_id and journal is not None else None
        if not decision.approved or entry is None or entry.state in _SETTLED:
            self._publish_book(release=[self._held.pop(decision.signal_id)])
        # else: the order is in flight (submitted, unknown): its reservation waits for its settling event

    @hookimpl
    def on_order_event(self, event: OrderEvent, runtime: Runtime) -> None:
        if self.link is None:
            return
        release: list[int] = []
        journal = runtime.execution.journal
        if event.kind in _SETTLED and self._held and journal is not None:
            entry = journal.get(event.client_id)
            if entry is not None and entry.signal_id in self._held:
                release.append(self._held.pop(entry.signal_id))
        self._publish_book(release)

    @hookimpl
    def on_fill(self, fill: Fill, runtime: Runtime) -> None:
        if self.link is not None:
            self._publish_book()

    @hookimpl
    def on_account_snapshot(self, snapshot: AccountSnapshot, runtime: Runtime) -> None:
        if self.link is None or self.link.out:
            return
        link = self.link
        with contextlib.suppress(FleetUnreachable):  # out: the sync job re-publishes all once the database is back
            link.call(link.db.publish_account, link.account, self._figures(snapshot), *self._local_kill())

    @hookimpl
    def on_halt(self, event: HaltEvent, runtime: Runtime) -> None:
        self._published_kill = None  # the sync job publishes the new state at its next pass

    def _publish_book(self, release: list[int] | None = None) -> None:
        link = self.link
        if link is None or link.out:
            return  # what was held expires with its lease; the sync job re-publishes the book
        with contextlib.suppress(FleetUnreachable):
            link.call(link.db.publish_book, link.account, self._book(), release or [])

    # -- the sync job: heartbeat, kill switch, outage, limits -----------------------------------------

    def sync(self) -> None:
        link = self.link
        assert link is not None
        if link.out:
            self._while_out(link)
            return
        try:
            link.heartbeat()
            kill = self._local_kill()
            if kill != self._published_kill:
                snapshot = getattr(self.rt.store, "last_stored_snapshot", lambda: None)()
                link.call(link.db.publish_account, link.account, self._figures(snapshot), *kill)
                self._published_kill = kill
            self._adopt_kill()
            self._judge_limits(link)
        except FleetUnreachable:
            self._while_out(link)
        self._metrics["out"].set(1 if link.out else 0)
        self._metrics["kill"].set(1 if link.kill.latched else 0)

    def _while_out(self, link: FleetLink) -> None:
        """Out of reach: alert once after ``fail_closed_seconds``; try to re-publish everything."""
        out_for = link.out_for()
        if out_for >= self.rt.settings.fleet.fail_closed_seconds and not self._alerted_out:
            self._alerted_out = True
            self._alert(
                Severity.ERROR,
                "fleet_unreachable",
                f"the fleet database has been out of reach for {out_for:.1f} s: openings refused, positions managed "
                f"as before ({link.why_out})",
            )
        snapshot = getattr(self.rt.store, "last_stored_snapshot", lambda: None)()
        try:
            link.rejoin(self._figures(snapshot), self._book(), *self._local_kill())
        except FleetUnreachable:
            return
        self._published_kill = None
        self._held.clear()  # what was reserved before the outage expires with its lease (claim dropped it)
        if self._alerted_out:
            self._alerted_out = False
            self._alert(
                Severity.WARNING,
                "fleet_reachable",
                f"the fleet database is reachable again after {out_for:.1f} s; this account's state is published: "
                "openings resume",
            )
        self._adopt_kill()

    def _adopt_kill(self) -> None:
        """Write the fleet's kill switch into this account's: a latch when the fleet's is tighter, a reset of a latch
        the fleet set when the fleet was reset. The kill switch adopts it within a second, acts on it (cancels
        working orders), alerts it and the audit trail chains it, with the fleet operator's name."""
        link = self.link
        assert link is not None
        kill: FleetKill = link.kill
        if kill.event == self._adopted:
            return
        state, trigger = self._local_kill()
        fleet = self.rt.settings.fleet.name
        who, via = kill.operator or "fleet", f"fleet:{kill.via or 'automatic'}"
        if kill.latched and _RANK[kill.state] > _RANK[state]:
            message = f"fleet {fleet} {kill.state} ({kill.trigger}): {kill.message}"
            self.rt.store.set_kill_state(kill.state, kill.trigger, message, operator=who, via=via, auth=kill.auth)
        elif not kill.latched and state != "ACTIVE" and trigger in FLEET_TRIGGERS:
            message = f"fleet {fleet} reset: {kill.message}"
            self.rt.store.set_kill_state("ACTIVE", "reset", message, operator=who, via=via, auth=kill.auth)
        self._adopted = kill.event

    def _judge_limits(self, link: FleetLink) -> None:
        """Each limit's use: a WARNING for the fleet at ``warn_at_pct`` (once per limit and server day), the
        fleet's latch at 100%."""
        totals = link.call(link.db.totals)
        day = datetime.fromtimestamp(self.rt.broker.to_server(self.rt.clock.now()), UTC).date()
        for name, used, cap in totals.uses():
            ratio = used / cap
            self._metrics["use"].labels(name).set(ratio)
            breached = ratio >= 1 if name in _LOSS_LIMITS else ratio > 1 + 1e-9
            if breached and not totals.kill.latched:
                self._trip(link, name, used, cap)
            elif ratio * 100 >= self.cfg.warn_at_pct and link.call(link.db.warn_once, name, day, link.account):
                self._alert(
                    Severity.WARNING,
                    "fleet_limit_warning",
                    f"fleet {link.cfg.name}: {name} at {ratio * 100:.0f}% ({used:,.2f} of {cap:,.2f})",
                )

    def _trip(self, link: FleetLink, name: str, used: float, cap: float) -> None:
        message = f"fleet {link.cfg.name}: {name} {used:,.2f} >= {cap:,.2f}"
        action = action_for(self.rt.settings, "fleet_limit")
        assert action is not None
        if action.state == "OFF":
            self._alert(Severity.ERROR, "fleet_limit", f"{message} (nothing latched: triggers.fleet_limit.state = OFF)")
            return
        done = link.call(
            link.db.kill,
            action.state,
            "fleet_limit",
            message,
            operator=link.account,
            via="automatic",
            auth="",
            account=link.account,
        )
        if done is not None:
            self._alert(Severity.CRITICAL, "fleet_limit", f"{message}: the fleet latches {action.state}")

    def _alert(self, severity: Severity, code: str, message: str) -> None:
        self.rt.alert(
            channel=AlertChannel.RISK, severity=severity, module="fleet_risk", error_code=code, message=message
        )
