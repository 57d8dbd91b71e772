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
* **adopts the fleet's kill switch**: the veto refuses openings the moment the listener hears the fleet latch
  (a process started later hears it before its first decision), and at the next pass the latch is written into
  this account's own kill switch, which then acts on it (cancels working orders), alerts it and chains it in the
  audit trail. A fleet reset lifts only what the fleet latched: a latch of the account's own that the fleet's
  overwrote comes back;
* **fails closed**: without the database, openings are refused (``fleet_unreachable``), alerted after
  ``fleet.fail_closed_seconds``; exits and stops keep working; openings resume once the account's state has
  been published again.

The fleet's limits are the database's (``tradeguard fleet limits``): this plugin's table seeds a new fleet, and a
process whose table differs is told so (WARNING) and follows the fleet's. At ``warn_at_pct`` of a fleet limit
one WARNING goes out for the whole fleet, once per limit and server day. A loss limit reached, or an exposure
limit exceeded in the published book (only orders the budget never saw can do that: a manual trade, another
tool; the book is re-read every heartbeat), latches the fleet as ``[default.triggers] fleet_limit`` says
(REDUCE_ONLY by default).
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, date, datetime, timedelta
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
    Job,
    KillState,
    NettingEffect,
    OrderEvent,
    OrderIntent,
    OrderState,
    Rejected,
    Runtime,
    Severity,
    Signal,
    SQLiteStore,
    StartupError,
    TradeguardError,
    action_for,
    hookimpl,
)

log = logging.getLogger("tradeguard.fleet_risk")
#: the local latches a fleet's reset lifts (an account's own triggers wait for its own operator)
FLEET_TRIGGERS = ("fleet_kill", "fleet_limit")
#: order states after which the published book shows the order (filled, or working as a pending order), or the
#: order will never trade: its reservation is released with that publication
_SETTLED = frozenset(
    {OrderState.ACCEPTED, OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.EXPIRED}
)
#: limits judged as reached at 100% (a loss); the others only when exceeded
_LOSS_LIMITS = ("daily_loss", "max_drawdown_pct")
#: where the local latch the fleet's overwrote is kept, to come back at the fleet's reset
_BEFORE = ("fleet_risk", "latch_before_fleet")


class FleetRisk(ConfiguredPlugin):
    settings_model = FleetLimits  # [default.fleet_risk]: they act only with fleet.url set
    stage = 2  # before the kill switch (3): the first decision already sees the fleet's state

    def __init__(self) -> None:
        super().__init__()
        self.link: FleetLink | None = None
        self.rt: Runtime
        self._held: dict[str, int] = {}  # signal id -> reservation id
        self._adopted = 0  # the fleet kill event last written into this account's kill switch
        self._published: tuple[Any, ...] | None = None  # the last book published
        self._snapshot: AccountSnapshot | None = None
        self._alerted_out = False
        self._told: set[str] = set()  # one-time news: limits differing, the listener restarted
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
        gauge, histogram = runtime.metrics.gauge, runtime.metrics.histogram
        self._metrics = {
            "out": gauge("tradeguard_fleet_unreachable", "1 while the fleet database is out of reach"),
            "kill": gauge("tradeguard_fleet_kill_latched", "1 while the fleet's kill switch is latched"),
            "use": gauge("tradeguard_fleet_limit_use_ratio", "each fleet limit's use (1 = reached)", ["limit"]),
            "reserve": histogram("tradeguard_fleet_reserve_seconds", "one opening order's fleet check"),
        }
        self._snapshot = self._stored_snapshot()
        try:
            self.link.rejoin(self._figures(), self._book(), *self._local_kill())
        except FleetUnreachable as exc:
            log.error("fleet database unreachable at start: openings wait for it", extra={"error": str(exc)})
        except TradeguardError as exc:  # a second process on the account, another currency: never trade so
            raise StartupError(f"fleet {fleet.name!r}: {exc}") from exc
        self.link.start()

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

    def _stored_snapshot(self) -> AccountSnapshot | None:
        store = self.rt.store
        return store.last_stored_snapshot() if isinstance(store, SQLiteStore) else None

    def _figures(self) -> AccountFigures:
        """The account's money now (the broker's equity), anchored on the account tracker's last snapshot: the
        day's opening equity and the peak, which deposits and withdrawals move."""
        account = self.rt.broker.account()
        snap = self._snapshot
        return AccountFigures(
            login=account.login,
            server=account.server,
            currency=account.currency,
            to_fleet=self._rate(account.currency),
            equity=account.equity,
            balance=account.balance,
            day_start_equity=snap.day_start_equity if snap is not None else account.equity,
            peak_equity=snap.peak_equity if snap is not None else account.equity,
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
        """Every position and working order on the account (ours or not: all of it is the fleet's exposure)."""
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
            self._hold(order.signal_id, answer)
            return None
        return Rejected(reason=answer.code, message=answer.message)

    def _hold(self, signal_id: str, reservation: int | None) -> None:
        """Hold (or with None, stop holding) a reservation; the listener renews the leases of those held."""
        if reservation is None:
            self._held.pop(signal_id, None)
        else:
            self._held[signal_id] = reservation
        assert self.link is not None
        self.link.held = frozenset(self._held.values())

    # -- releasing and publishing ---------------------------------------------------------------------

    @hookimpl
    def on_decision(self, decision: Decision, signal: Signal, runtime: Runtime) -> None:
        held = self._held.get(decision.signal_id)
        if held is None:
            return
        journal = runtime.execution.journal
        entry = journal.get(decision.client_id) if decision.client_id and journal is not None else None
        if not decision.approved or entry is None or entry.state in _SETTLED:
            self._publish_book(decision.signal_id, release=True)
        # else: the order is in flight (submitted, partly filled, unknown): its reservation waits for its events

    @hookimpl
    def on_order_event(self, event: OrderEvent, runtime: Runtime) -> None:
        if self.link is None or event.kind in (OrderState.NEW, OrderState.SUBMITTED):
            return  # nothing at the broker changed yet
        journal = runtime.execution.journal
        entry = journal.get(event.client_id) if journal is not None else None
        signal_id = entry.signal_id if entry is not None and entry.signal_id in self._held else ""
        if signal_id and event.kind is OrderState.PARTIALLY_FILLED and entry is not None:
            self._publish_book(signal_id, rest=max(0.0, entry.volume - entry.filled_volume))
        else:
            self._publish_book(signal_id, release=bool(signal_id) and event.kind in _SETTLED)

    @hookimpl
    def on_fill(self, fill: Fill, runtime: Runtime) -> None:
        if self.link is not None:
            self._publish_book()

    @hookimpl
    def on_account_snapshot(self, snapshot: AccountSnapshot, runtime: Runtime) -> None:
        self._snapshot = snapshot
        link = self.link
        if link is None or link.out:
            return
        with contextlib.suppress(FleetUnreachable):  # out: the sync job re-publishes all once the database is back
            link.call(link.db.publish_account, link.account, self._figures(), *self._local_kill())

    def _publish_book(self, signal_id: str = "", *, release: bool = False, rest: float | None = None) -> None:
        """Publish the book; with ``release`` the reservation of ``signal_id`` goes with it, with ``rest`` it shrinks
        to the lots still to fill. The reservation is let go only once the publication went through: while out,
        it is kept (and renewed) until the next re-publication settles everything."""
        link = self.link
        if link is None or link.out:
            return
        reservation = self._held.get(signal_id) if signal_id else None
        releasing = [reservation] if release and reservation is not None else []
        shrink = {reservation: rest} if rest is not None and reservation is not None else None
        book = self._book()
        try:
            link.call(link.db.publish_book, link.account, book, release=releasing, shrink=shrink)
        except FleetUnreachable:
            return
        self._published = tuple(book)
        if releasing:
            self._hold(signal_id, None)

    # -- the sync job: heartbeat, kill switch, outage, limits -----------------------------------------

    def sync(self) -> None:
        link = self.link
        assert link is not None
        if not link.listening():
            self._tell("listener", Severity.ERROR, "fleet_listener", "the fleet listener thread had stopped: restarted")
            link.start()
        if link.out:
            self._while_out(link)
        else:
            try:
                link.call(link.db.publish_account, link.account, self._figures(), *self._local_kill())  # + heartbeat
                link.heartbeat()
                if tuple(self._book()) != self._published:  # a manual trade, a stop hit between our own events
                    self._publish_book()
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
        try:
            book = self._book()
            link.rejoin(self._figures(), book, *self._local_kill())
        except FleetUnreachable:
            return
        self._published = tuple(book)
        self._held.clear()  # the book just published shows what each of them became: all released with it
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
        """Write the fleet's kill switch into this account's: a latch when the fleet's is tighter (the account's own
        latch it overwrites is kept aside), and at the fleet's reset, what the fleet latched lifted (the account's
        own latch back, if there was one). The kill switch adopts it within a second, acts on it (cancels working
        orders), alerts it and the audit trail chains it, with the fleet operator's name."""
        link = self.link
        assert link is not None
        kill: FleetKill = link.kill
        if not link.joined or kill.event <= self._adopted:
            return  # not read from the fleet yet (out since start): nothing to adopt, above all no reset
        store, fleet = self.rt.store, self.rt.settings.fleet.name
        latched = store.kill_state()
        state, trigger = (latched[0], latched[1]) if latched is not None else ("ACTIVE", "")
        who, via = kill.operator or "fleet", f"fleet:{kill.via or 'automatic'}"
        if kill.latched and KillState(kill.state).rank > KillState(state).rank:
            if state != "ACTIVE" and trigger not in FLEET_TRIGGERS:
                store.kv_put(*_BEFORE, list(latched or ()))
            message = f"fleet {fleet} {kill.state} ({kill.trigger}): {kill.message}"
            store.set_kill_state(kill.state, kill.trigger, message, operator=who, via=via, auth=kill.auth)
            row = action_for(self.rt.settings, kill.trigger)  # fleet_limit's row may close every position too
            if row is not None and row.flatten:
                self.rt.execution.flatten_all()
        elif not kill.latched and trigger in FLEET_TRIGGERS:
            before = store.kv_get(*_BEFORE)
            if before:
                message = f"fleet {fleet} reset: {kill.message}; the account's own latch stays ({before[2]})"
                store.set_kill_state(before[0], before[1], message, operator=who, via=via, auth=kill.auth)
            else:
                message = f"fleet {fleet} reset: {kill.message}"
                store.set_kill_state("ACTIVE", "reset", message, operator=who, via=via, auth=kill.auth)
            store.kv_put(*_BEFORE, None)
        self._adopted = kill.event

    def _judge_limits(self, link: FleetLink) -> None:
        """Each limit's use: a WARNING for the fleet at ``warn_at_pct`` (once per limit and server day), the
        fleet's latch at 100%. The limits are the fleet's (the database's), not this process's table."""
        totals = link.call(link.db.totals)
        if totals.limits != link.local_limits:
            mine = link.local_limits
            differ = [
                f"{k} {mine.get(k)} here, {v} there" for k, v in sorted(totals.limits.items()) if mine.get(k) != v
            ]
            self._tell(
                "limits",
                Severity.WARNING,
                "fleet_limits_differ",
                f"fleet {link.cfg.name}'s limits are not this process's [fleet_risk] table: {'; '.join(differ)}; "
                "the fleet's apply (tradeguard fleet limits changes them)",
            )
        day = datetime.fromtimestamp(self.rt.broker.to_server(self.rt.clock.now()), UTC).date()
        warn_at = float(totals.limits.get("warn_at_pct", 80.0))
        for name, used, cap in totals.uses():
            ratio = used / cap
            self._metrics["use"].labels(name).set(ratio)
            breached = ratio >= 1 if name in _LOSS_LIMITS else ratio > 1 + 1e-9
            if breached and not totals.kill.latched:
                self._trip(link, name, used, cap, day)
            elif ratio * 100 >= warn_at and link.call(link.db.once, name, day, link.account):
                self._alert(
                    Severity.WARNING,
                    "fleet_limit_warning",
                    f"fleet {link.cfg.name}: {name} at {ratio * 100:.0f}% ({used:,.2f} of {cap:,.2f})",
                )

    def _trip(self, link: FleetLink, name: str, used: float, cap: float, day: date) -> None:
        message = f"fleet {link.cfg.name}: {name} {used:,.2f} >= {cap:,.2f}"
        action = action_for(self.rt.settings, "fleet_limit")
        assert action is not None
        if action.state == "OFF":
            if link.call(link.db.once, f"trip:{name}", day, link.account):  # once for the fleet, not every pass
                self._alert(Severity.ERROR, "fleet_limit", f"{message} (nothing latched: triggers.fleet_limit = OFF)")
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

    def _tell(self, what: str, severity: Severity, code: str, message: str) -> None:
        """News this process tells once."""
        if what not in self._told:
            self._told.add(what)
            self._alert(severity, code, message)

    def _alert(self, severity: Severity, code: str, message: str) -> None:
        rt = self.rt
        rt.alert(channel=AlertChannel.RISK, severity=severity, module="fleet_risk", error_code=code, message=message)
