"""Execution engine (EXE): the one path from an approved order to MT5, with no duplicate and no lost fill.

Every intent is journaled (durably) before it is sent; the request carries this instance's
``magic`` and the client id as its comment. The retcode class decides what happens next:

* success - record the deals; a partial fill's rest is cancelled or re-sent, per policy;
* retry_price / retry_backoff - re-send with a fresh price / after a pause, bounded in count and time;
* ambiguous (timeout, no connection, ``None``) - look the order up at the broker by magic and comment
  first; only when it is certainly absent is it sent again; still unresolved: state ``unknown``;
* final - rejected, with the retcode's name.

Fills are recorded unique by deal ticket, so ``on_fill`` fires once per deal, across restarts too.

Why no deal of ours can be missed (:meth:`ExecutionEngine.poll_fills`), two independent reads:

* the history window starts at a durable cursor: the newest deal time the broker showed in a
  completed read, less ``history_tolerance_seconds`` for deals that reach the history late. Only a
  poll moves it, never a fill journaled at send time (a later fill of ours says nothing about an
  earlier stop-out nobody has read yet), and only once every deal of the read is journaled;
* whenever the broker's deals moved, and whenever the reconciler, alignment or a store recovery
  asks, every position the journal holds open whose net volume the broker does not show, and every
  broker position with our magic the journal does not hold, is read by position id
  (``history_deals_get(position=)``): whatever the window could have missed, this reads by identity.

A deal is ours when one of our orders made it (our magic and client id) or it changes a position the
journal holds (a stop, a target, a stop-out; a manual close at the terminal carries magic 0). Deals
are journaled in ticket order, unique by ticket.
The kill switch is honoured here as well as in the pipeline: REDUCE_ONLY admits only exposure-
reducing orders and SL/TP changes; HALTED admits cancels and, when configured, closes.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from tradeguard import (
    AlertChannel,
    ConfiguredPlugin,
    DealEntry,
    Fill,
    Job,
    KillState,
    OrderEvent,
    OrderIntent,
    OrderState,
    PluginSettings,
    Position,
    Runtime,
    Severity,
    Side,
    TradeOutcome,
    hookimpl,
)
from tradeguard.broker.retcodes import RetcodeClass
from tradeguard.broker.types import HISTORY_END, HISTORY_START, BrokerDeal, BrokerError, SendResult
from tradeguard.errors import StartupError, TradeguardError
from tradeguard.execution import outcomes
from tradeguard.execution.journal import Journal, Settle, Transition
from tradeguard.kernel.clock import backoff
from tradeguard.kernel.logging import bind_client, unbind_client
from tradeguard.kernel.metrics import seed
from tradeguard.ports import Held, JournalEntry
from tradeguard.store.sqlite import Store

log = logging.getLogger("tradeguard.execution")

CURSOR_KEY = "deal_cursor"  # kv: the history cursor (see ExecutionEngine.poll_fills)


class ExecutionRefused(TradeguardError):
    """The engine would not send an order (kill switch, unknown position); nothing reached the broker."""


class EngineSettings(PluginSettings):
    deviation_points: int = Field(default=20, ge=0, description="largest slippage accepted, in points")
    max_price_retries: int = Field(default=3, ge=0, le=20, description="re-sends after requote/price changed")
    max_backoff_retries: int = Field(default=3, ge=0, le=20, description="re-sends after too-many-requests")
    backoff_seconds: float = Field(default=0.25, ge=0, le=60, description="first pause after 10024; doubles")
    max_retry_seconds: float = Field(default=10.0, gt=0, description="no re-send after this long since the first")
    max_ambiguous_resends: int = Field(default=2, ge=0, le=10, description="re-sends after a lookup found nothing")
    ambiguous_pause_seconds: float = Field(default=0.5, ge=0, le=60, description="wait before the second lookup")
    partial_policy: Literal["cancel_rest", "resubmit_rest"] = Field(
        default="cancel_rest", description="what to do with the unfilled rest of an IOC partial fill"
    )
    max_partial_resubmits: int = Field(default=3, ge=0, le=20)
    pending_sla_seconds: float = Field(default=0.0, ge=0, description="cancel pending orders older than this; 0 = off")
    unconfirmed_sla_seconds: float = Field(default=60.0, gt=0, description="resolve unconfirmed orders after this")
    poll_fills_seconds: float = Field(default=60.0, gt=0, description="how often the broker's deals are read")
    history_tolerance_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="each read of the deal history starts this long before the newest deal "
        "seen: deals that reach the history late are still read",
    )
    sla_check_seconds: float = Field(default=30.0, gt=0, description="how often the SLA is enforced")


class ExecutionEngine(ConfiguredPlugin):
    settings_model = EngineSettings
    stage = 2

    # ------------------------------------------------------------------ lifecycle ---------------

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self._attempts = 0
        self._submitted_at = 0.0
        if not isinstance(runtime.store, Store):
            raise StartupError("execution_engine needs the SQLite store (settings [store])")
        self.rt = runtime
        self.broker = runtime.broker
        settings = runtime.settings  # a latch without the kill switch loaded (a test's runtime) keeps its default
        self._closes_when_halted = settings.kill_switch.allow_closes_when_halted if "kill_switch" in settings else True
        self.magic = int(runtime.settings.runtime.magic)
        self.journal = Journal(runtime.store, runtime.settings.runtime.instance)
        cursor = runtime.store.kv_get("execution", CURSOR_KEY)
        #: the newest deal time of the last completed history read (durable: see the module docstring)
        self._cursor: datetime | None = datetime.fromisoformat(cursor) if cursor else None
        self._seen_deals: set[int] = set()  # deal tickets of the last window, and those journaled since
        self._polled: int | None = None  # the broker's deal count at the last completed poll
        #: the journal's open positions: position id -> (symbol, net signed volume: buy +, sell -), from every fill
        self._held: dict[int, Held] = {
            int(pid): Held(symbol, round(float(net), 8))
            for pid, symbol, net in runtime.store.query(
                "SELECT position_id, MAX(symbol), SUM(CASE side WHEN 'buy' THEN volume ELSE -volume END) AS net "
                "FROM fills GROUP BY position_id HAVING abs(net) > 1e-9"
            )
        }
        self._levels: dict[int, tuple[float, float]] = {}  # position id -> expected SL/TP (see expected_levels)
        m = runtime.metrics
        self._ok = m.counter("tradeguard_execution_submit_success_total", "Orders the broker accepted or filled")
        self._fail = seed(
            m.counter("tradeguard_execution_submit_fail_total", "Orders that ended rejected or unknown", ("reason",)),
            [("rejected",), ("unknown",)],
        )
        self._latency = m.histogram("tradeguard_execution_latency_seconds", "order_send round trip")
        self._to_send = m.histogram("tradeguard_decision_to_send_seconds", "submit_order to order_send, in process")
        self._slippage = m.histogram(
            "tradeguard_slippage_points",
            "Deal price vs the price order_send asked, points (+ worse)",
            ("symbol",),
            buckets=(-20, -5, -1, 0, 1, 5, 20, 100),
        )
        self._stop_slippage = m.histogram(
            "tradeguard_stop_slippage_points",
            "Closing deal price past the stop or target it executed, points (+ worse), by what closed it",
            ("closed_by",),
            buckets=(-20, -5, 0, 5, 20, 100, 300, 1000),
        )
        self._r_multiple = m.histogram(
            "tradeguard_trade_r_multiple",
            "Closed trades' money over the risk they were sized on",
            buckets=(-10, -5, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 2, 3, 5),
        )
        self._retcodes = m.counter(
            "tradeguard_execution_retcodes_total", "order_send outcomes by retcode name", ("retcode",)
        )
        runtime.provide_execution(self)

    @hookimpl
    def tradeguard_shutdown(self, runtime: Runtime) -> None:
        """Journal the deals the broker made since the last poll before the process goes away."""
        self.poll_fills()

    @hookimpl
    def periodic_jobs(self, runtime: Runtime) -> list[Job]:
        cfg = self.cfg
        return [
            Job(
                name="execution.poll_fills",
                every=timedelta(seconds=cfg.poll_fills_seconds),
                run=lambda rt: self.poll_fills(),
            ),
            Job(
                name="execution.enforce_sla",
                every=timedelta(seconds=cfg.sla_check_seconds),
                run=lambda rt: self.enforce_sla(),
            ),
        ]

    def _now(self) -> datetime:
        return self.rt.clock.now()

    def _event(
        self, client_id: str, kind: OrderState, symbol: str, retcode: int | None = None, message: str = ""
    ) -> None:
        event = OrderEvent.trusted(
            client_id=client_id, kind=kind, time=self._now(), symbol=symbol, retcode=retcode, message=message
        )  # the engine's own, already typed values
        self.rt.notify("on_order_event", event=event)

    def _move_order(
        self,
        entry_id: str,
        state: OrderState,
        symbol: str,
        retcode: int | None = None,
        message: str = "",
        broker_order: int | None = None,
    ) -> None:
        before = self.journal.transition(
            entry_id,
            state,
            self._now(),
            retcode=retcode,
            message=message,
            broker_order=broker_order,
            attempts=self._attempts or None,
        )
        self._announce_move(entry_id, before, state, symbol, retcode, message)

    def _announce_move(
        self, entry_id: str, before: OrderState, state: OrderState, symbol: str, retcode: int | None, message: str
    ) -> None:
        """Announce a committed move: its order event, and the order outcome metrics."""
        if before is not state:
            if state is not OrderState.NEW:  # every other state has its event of the same name
                self._event(entry_id, state, symbol, retcode, message)
            if state is OrderState.REJECTED or state is OrderState.UNKNOWN:
                self._fail.labels(state.value).inc()
            elif state in (OrderState.ACCEPTED, OrderState.FILLED) and before in (
                OrderState.SUBMITTED,
                OrderState.UNKNOWN,
            ):
                self._ok.inc()

    # ------------------------------------------------------------------ kill switch -------------

    def kill_state(self) -> KillState:
        latched = self.rt.store.kill_state()
        return KillState(latched[0]) if latched else KillState.ACTIVE

    def _kill_refusal(self, order: OrderIntent) -> str | None:
        state = self.kill_state()
        if state.admits(order, self._closes_when_halted):  # the kill switch's own rule and setting
            return None
        return f"kill switch {state.value}: {'closes are not admitted' if order.reduces_exposure else 'no new orders'}"

    # ------------------------------------------------------------------ submission ------------------

    def submit_order(self, order: OrderIntent) -> str:
        """Journal, check and send ``order``; return its client id (its fate is in the journal and events)."""
        self._submitted_at = time.perf_counter()
        refusal = self._kill_refusal(order)
        if refusal:
            raise ExecutionRefused(refusal)
        # bad input raises OrderRefused here, before anything is journaled
        request = self.broker.order_request(order, self.magic, self.cfg.deviation_points)
        client_id = self.journal.create(order, self._now())
        request["comment"] = client_id
        token = bind_client(client_id)
        try:
            check = self.broker.check(request)
            if not check.passed:
                self._move_order(
                    client_id,
                    OrderState.REJECTED,
                    order.symbol,
                    check.retcode,
                    f"{check.name}: {check.comment} (order_check)",
                )
                return client_id
            try:
                self._send_loop(client_id, order, request)
            finally:
                self._attempts = 0  # the count belongs to this order's send loop only
        except Exception as exc:  # after its intent was journaled: the decision names the order it made
            exc.client_id = client_id  # type: ignore[attr-defined]
            raise
        finally:
            unbind_client(token)
        return client_id

    def _send(self, client_id: str, request: dict[str, Any], attempt: int) -> SendResult:
        """One ``order_send``. Nothing is written first: the intent's journal entry (``new``) is the durable
        record that protects it; the outcome is written with the attempt count right after."""
        self._attempts = attempt
        if attempt == 1 and self._submitted_at:
            self._to_send.observe(time.perf_counter() - self._submitted_at)
        result = self.broker.send(request)
        self._latency.observe(result.seconds)
        self._retcodes.labels(result.name).inc()
        return result

    def _send_loop(self, client_id: str, order: OrderIntent, request: dict[str, Any]) -> None:
        cfg = self.cfg
        self._attempts = 0
        started = time.monotonic()
        price_retries = backoff_retries = resends = partials = attempt = 0
        self._event(client_id, OrderState.SUBMITTED, order.symbol)
        while True:
            attempt += 1
            res = self._send(client_id, request, attempt)
            in_time = time.monotonic() - started < cfg.max_retry_seconds
            if res.category is RetcodeClass.SUCCESS:
                rest = self._on_success(client_id, order, request, res)
                if rest and partials < cfg.max_partial_resubmits:
                    partials += 1
                    request = self.broker.repriced({**request, "volume": rest})
                    continue
                if rest:  # resubmits used up: nothing works at the broker for the rest, so it is given up
                    why = f"rest of {rest:g} lots not sent: max_partial_resubmits ({cfg.max_partial_resubmits}) used"
                    self._move_order(client_id, OrderState.CANCELLED, order.symbol, res.retcode, why)
                return
            if res.category is RetcodeClass.RETRY_PRICE and price_retries < cfg.max_price_retries and in_time:
                price_retries += 1
                request = self.broker.repriced(request)
                continue
            if res.category is RetcodeClass.RETRY_BACKOFF and backoff_retries < cfg.max_backoff_retries and in_time:
                backoff_retries += 1
                self.rt.sleep(backoff(backoff_retries, cfg.backoff_seconds, cap=math.inf).total_seconds())
                continue
            if res.category is RetcodeClass.AMBIGUOUS:
                if self.resolve(client_id):
                    return
                self.rt.sleep(cfg.ambiguous_pause_seconds)
                if self.resolve(client_id):  # look twice before sending again
                    return
                if resends < cfg.max_ambiguous_resends and in_time:
                    resends += 1
                    request = self.broker.repriced(request)
                    continue
                self._move_order(
                    client_id, OrderState.UNKNOWN, order.symbol, res.retcode, f"{res.name}: outcome unknown"
                )
                self.rt.alert(
                    channel=AlertChannel.EXECUTION,
                    severity=Severity.CRITICAL,
                    module="execution_engine",
                    error_code="order_unknown",
                    symbol=order.symbol,
                    message=f"order {client_id}: {res.name}, not found at the broker; resolving by SLA",
                )
                return
            self._move_order(
                client_id,
                OrderState.REJECTED,
                order.symbol,
                res.retcode,
                f"{res.name}: {res.comment or (res.last_error or '')}",
            )
            return

    def _on_success(self, client_id: str, order: OrderIntent, request: dict[str, Any], res: SendResult) -> float:
        """Record what the broker did; return the volume still to send under ``resubmit_rest`` (else 0)."""
        if res.placed:
            self._move_order(
                client_id, OrderState.ACCEPTED, order.symbol, res.retcode, res.name, broker_order=res.order
            )
            return 0.0
        spec = self.broker.symbol_spec(order.symbol)
        asked = request.get("price") or self.broker.side_price(order.symbol, order.side)

        def filled(entry: JournalEntry) -> Transition | None:
            """Committed with the order's last deal: ``filled``, when nothing worth sending is left."""
            if entry.state.terminal or spec.floor_volume(order.volume - entry.filled_volume) >= spec.volume_min:
                return None
            return Transition(OrderState.FILLED, self._now(), res.retcode, res.name, res.order, self._attempts or None)

        try:
            deals = self.broker.deals_for_order(res.order)
        except BrokerError:  # executed, its deals unreadable for now: as a lagging deal, the poll journals it
            deals = []
        for i, deal in enumerate(deals):
            fill, left = self._journal_deal(deal, client_id, filled if i == len(deals) - 1 else None)
            if fill is not None:
                worse = (deal.price - asked) * order.side.sign / spec.point
                self._slippage.labels(order.symbol).observe(round(worse, 1))
            if left is not None:
                self._announce_move(client_id, left, OrderState.FILLED, order.symbol, res.retcode, res.name)
                return 0.0
        # what this request executed is the server's answer (its deals may lag behind it in the history, and an
        # earlier request's deal may still be missing from the journal): the rest is worked out from it alone
        sent = float(request["volume"])
        found = sum(d.volume for d in deals)
        executed = max(res.volume, found)
        if executed <= spec.volume_step / 2 and res.done:  # DONE naming no volume: the whole request
            executed = sent
        lagging = found < executed - spec.volume_step / 2
        note = f"{res.name}: {executed:g} lots done; the deal is not in the history yet" if lagging else res.name
        rest: float = spec.floor_volume(sent - executed)
        if rest < spec.volume_min:
            self._move_order(client_id, OrderState.FILLED, order.symbol, res.retcode, note, broker_order=res.order)
            return 0.0
        self._move_order(
            client_id,
            OrderState.PARTIALLY_FILLED,
            order.symbol,
            res.retcode,
            f"{note}: {executed:g} of {sent:g}",
            broker_order=res.order,
        )
        if self.broker.keeps_rest(request):  # the rest keeps working at the broker
            return 0.0
        if self.cfg.partial_policy == "resubmit_rest":
            return rest
        self._move_order(
            client_id,
            OrderState.CANCELLED,
            order.symbol,
            res.retcode,
            f"rest of {rest:g} lots cancelled by the broker (IOC)",
        )
        return 0.0

    def _journal_deal(
        self, deal: BrokerDeal, client_id: str = "", settle: Settle | None = None
    ) -> tuple[Fill | None, OrderState | None]:
        """Journal one broker deal (with ``settle``'s transition, if any: see ``Journal.record_fill``); fire
        ``on_fill`` if it is new. Returns the fill if new, and the state the order left if it moved."""
        if deal.side is None:  # money moved, no trade
            return None, None
        # the order's own deal (named by the caller, or by the comment MT5 copies from the order), or a later
        # deal of the position it opened (the broker's stop, take profit, stop-out): attributed, not executed
        executes = bool(client_id) or self.journal.owns(deal.comment)
        cid = client_id or (deal.comment if executes else self.journal.client_for_position(deal.position_id))
        side = deal.side
        held = self._held.get(deal.position_id)
        before = held.net if held else 0.0
        risk, result = self._against_plan(deal, cid if executes else "", before, side.sign * deal.volume)
        fill = Fill(
            deal_ticket=deal.ticket,
            order_ticket=deal.order,
            position_id=deal.position_id,
            client_id=cid,
            symbol=deal.symbol,
            side=side,
            entry=deal.entry,
            volume=deal.volume,
            price=deal.price,
            commission=deal.commission,
            swap=deal.swap,
            profit=deal.profit,
            magic=deal.magic,
            comment=deal.comment,
            time=deal.time,
            planned_risk=risk,
            outcome=result,
        )
        new, left = self.journal.record_fill(fill, settle, executes=executes)
        if not new:
            return None, left
        self._seen_deals.add(fill.deal_ticket)
        if executes and fill.entry in (DealEntry.IN, DealEntry.INOUT):  # our order opened lots: its SL/TP rule
            self._forget_levels(fill.position_id)
        net = round(before + side.sign * fill.volume, 8)
        if abs(net) > 1e-9:
            self._held[fill.position_id] = Held(fill.symbol, net)
        else:
            self._held.pop(fill.position_id, None)
        if result is not None:
            self._observe(result)
        self.rt.notify("on_fill", fill=fill)
        if not executes:
            self._foreign(fill)
        return fill, left

    def _against_plan(
        self, deal: BrokerDeal, client_id: str, net_before: float, signed: float
    ) -> tuple[float | None, TradeOutcome | None]:
        """The planned risk of the deal's opening lots (an order of ours, ``client_id``, that named a stop) and
        the outcome of its closing lots (see execution/outcomes.py). Best effort: a deal is journaled whatever
        its figures can be worked out from (a symbol the terminal no longer lists, a spec with no tick size)."""
        closing, opening = outcomes.split(net_before, signed)
        try:
            spec = self.broker.symbol_spec(deal.symbol)
            risk = None
            if opening and client_id and (entry := self.journal.get(client_id)) is not None:
                # sized on the order's price; an order that named none (a market order by hand) on its fill
                risk = outcomes.planned_risk(entry.price or deal.price, entry.stop_loss, opening, spec)
            if not closing:
                return risk, None
            trade = outcomes.trade_so_far(self.journal.position_deals(deal.position_id))
            levels = self.expected_levels(deal.position_id)
            return risk, outcomes.outcome(deal, net_before, closing, levels, spec, trade)
        except Exception as exc:  # the figures are extras: never a reason not to journal the deal
            log.warning("deal journaled without its outcome", extra={"deal": deal.ticket, "error": str(exc)})
            return None, None

    def _forget_levels(self, position_id: int) -> None:
        """The position's SL/TP are the opening order's from now on (a netting add or reversal brings its own)."""
        self._levels.pop(position_id, None)
        if self.rt.store.kv_get("sltp", str(position_id)) is not None:
            self.rt.store.kv_put("sltp", str(position_id), None)

    def _observe(self, result: TradeOutcome) -> None:
        if result.slippage_points is not None:
            self._stop_slippage.labels(result.closed_by.value).observe(result.slippage_points)
        if result.trade_closed and result.r_multiple is not None:
            self._r_multiple.observe(result.r_multiple)

    def _ours(self, deal: BrokerDeal) -> bool:
        """A deal of one of our orders (our magic and client id), or one on a position the journal holds: a
        stop, a target, a stop-out, a close at the terminal (magic 0). A deal with our magic that no order of
        ours made is not journaled: the reconciler reports its position as unknown."""
        return deal.position_id in self._held or (deal.magic == self.magic and self.journal.owns(deal.comment))

    def held_positions(self) -> dict[int, Held]:
        """The journal's open positions, by position id: symbol and net signed volume (buy +, sell -)."""
        return dict(self._held)

    def resolve(self, client_id: str) -> bool:
        """Find ``client_id`` at the broker (magic + comment); bring the journal in line. False if absent."""
        entry = self.journal.get(client_id)
        if entry is None:
            raise KeyError(client_id)
        # search from whichever is earlier, the journal's clock or the broker's: they need not agree
        since = min(entry.created_at, self.broker.quote(entry.symbol).time)
        working, positions, history, deals = self.broker.find_by_comment(self.magic, client_id, since)
        for deal in deals:
            self._journal_deal(deal, client_id)
        entry = self.journal.get(client_id)
        assert entry is not None
        if deals:
            spec = self.broker.symbol_spec(entry.symbol)
            full = entry.filled_volume >= entry.volume - spec.volume_step / 2
            done = next((o for o in history if o.ticket == deals[0].order), None)
            rest_cancelled = done is not None and done.state is OrderState.CANCELLED
            state = (
                OrderState.FILLED if full else OrderState.CANCELLED if rest_cancelled else OrderState.PARTIALLY_FILLED
            )
            self._move_if_elsewhere(entry, state, deals[0].order, "found at the broker")
            return True
        if working:
            self._move_if_elsewhere(entry, OrderState.ACCEPTED, working[0].ticket, "found working at the broker")
            return True
        if history:
            ended = history[-1].state
            if ended in (OrderState.FILLED, OrderState.PARTIALLY_FILLED):  # done, its deal not in the history yet
                why = "found filled in the broker's history; its deal is not there yet"
                self._move_if_elsewhere(entry, ended, history[-1].ticket, why)
                return True
            self._move_if_elsewhere(
                entry,
                ended if ended in (OrderState.REJECTED, OrderState.EXPIRED) else OrderState.CANCELLED,
                history[-1].ticket,
                "found in the broker's history",
            )
            return True
        return bool(positions)

    def _move_if_elsewhere(self, entry: JournalEntry, state: OrderState, broker_order: int, why: str) -> None:
        """Move ``entry`` to ``state`` unless it is there already (what the broker shows settles it)."""
        if entry.state is state:
            return
        self._move_order(entry.client_id, state, entry.symbol, message=why, broker_order=broker_order)

    def mark_lost(self, client_id: str, why: str) -> None:
        """An order the broker never saw (crash before send, lost request): rejected, with the reason."""
        entry = self.journal.get(client_id)
        if entry is not None and not entry.state.terminal:
            self._move_if_elsewhere(entry, OrderState.REJECTED, 0, why)

    def poll_fills(self, *, heal: bool = False) -> list[Fill]:
        """Journal and announce, once each, the broker's deals of ours not journaled yet (see the module
        docstring for why none can be missed); returns the new fills, in ticket order.

        When the broker counts as many deals as at the last completed poll, nothing was added and the
        history is not read (``heal`` reads the journal's open positions by id all the same). A read
        or a journal write that fails raises, and the next poll starts again from the same cursor."""
        total = self.broker.deals_count()
        new: list[Fill] = []
        try:
            if total != self._polled:
                new += self._read_window()
            if heal or total != self._polled:
                new += self._read_positions()
            self._polled = total
        finally:  # what was journaled before a failure settles its orders all the same
            for cid in {f.client_id for f in new} - {""}:
                self._update_from_fills(cid)
        return new

    def _read_window(self) -> list[Fill]:
        """The deal history from the cursor (less the tolerance) on; the cursor moves once all of it is journaled."""
        tolerance = timedelta(seconds=self.cfg.history_tolerance_seconds)
        start = self._cursor - tolerance if self._cursor else HISTORY_START
        deals = sorted(self.broker.history_deals(start, HISTORY_END), key=lambda d: d.ticket)
        new: list[Fill] = []
        for deal in deals:
            if deal.ticket in self._seen_deals or not self._ours(deal):
                continue
            fill, _ = self._journal_deal(deal)
            if fill is not None:
                new.append(fill)
        self._seen_deals = {d.ticket for d in deals} | {f.deal_ticket for f in new}
        newest = max((d.time for d in deals), default=None)
        if newest is not None and (self._cursor is None or newest > self._cursor):
            self.rt.store.kv_put("execution", CURSOR_KEY, newest.isoformat())
            self._cursor = newest
        return new

    def _read_positions(self) -> list[Fill]:
        """Read by position id every position where journal and broker disagree: one the journal holds
        open at another net volume (or not at all) at the broker, or one with our magic the journal lacks."""
        shown: dict[int, float] = defaultdict(float)
        for p in self.broker.positions():
            if p.magic == self.magic or p.identifier in self._held:
                shown[p.identifier] += p.volume if p.is_buy else -p.volume
        held = {pid: h.net for pid, h in self._held.items()}
        differing = {pid for pid in held.keys() | shown.keys() if abs(shown.get(pid, 0.0) - held.get(pid, 0.0)) > 1e-9}
        new: list[Fill] = []
        for pid in sorted(differing):
            deals = sorted(self.broker.deals_for_position(pid), key=lambda d: d.ticket)
            if pid not in self._held and not any(self.journal.owns(d.comment) for d in deals):
                continue  # our magic, but no order of ours opened it: the reconciler reports it as unknown
            for deal in deals:  # not skipped by the window's tickets: those include deals judged not ours then
                fill, _ = self._journal_deal(deal)
                if fill is not None:
                    new.append(fill)
        if new:
            log.warning("deals imported by position", extra={"deals": [f.deal_ticket for f in new]})
        return new

    def _foreign(self, fill: Fill) -> None:
        """A deal on one of our positions that neither we nor the broker's stop, target or stop-out made: a
        person at the terminal or another EA changed it. Journaled (it is the truth), and said."""
        if fill.magic != self.magic and not fill.comment.startswith(("[sl", "[tp", "[so")):
            self.rt.alert(
                channel=AlertChannel.EXECUTION,
                severity=Severity.WARNING,
                module="execution_engine",
                error_code="position_changed_outside",
                symbol=fill.symbol,
                message=f"position {fill.position_id}: {fill.side.value} {fill.volume:g} by magic "
                f"{fill.magic} ({fill.comment or 'no comment'}), not by tradeguard",
            )

    def _update_from_fills(self, client_id: str) -> None:
        entry = self.journal.get(client_id)
        if entry is None or entry.state.terminal:
            return
        spec = self.broker.symbol_spec(entry.symbol)
        if entry.filled_volume >= entry.volume - spec.volume_step / 2:
            self._move_if_elsewhere(entry, OrderState.FILLED, entry.broker_order, "filled at the broker")
        elif entry.filled_volume > 0 and entry.state is not OrderState.PARTIALLY_FILLED:
            self._move_if_elsewhere(entry, OrderState.PARTIALLY_FILLED, entry.broker_order, "part filled at the broker")

    def enforce_sla(self) -> None:
        """Cancel pending orders past their SLA; resolve unconfirmed ones, reporting those never found."""
        now = self._now()
        for entry in self.journal.open_entries():
            age = (now - entry.updated_at).total_seconds()
            if (
                entry.state is OrderState.ACCEPTED
                and self.cfg.pending_sla_seconds
                and ((now - entry.created_at).total_seconds() > self.cfg.pending_sla_seconds)
            ):
                self.cancel_order(entry.client_id, reason="pending SLA exceeded")
            elif (
                entry.state in (OrderState.NEW, OrderState.SUBMITTED, OrderState.UNKNOWN)
                and (age > self.cfg.unconfirmed_sla_seconds)
                and not self.resolve(entry.client_id)
            ):
                self.mark_lost(entry.client_id, "not found at the broker within the SLA")
                self.rt.alert(
                    channel=AlertChannel.EXECUTION,
                    severity=Severity.ERROR,
                    module="execution_engine",
                    error_code="order_lost",
                    symbol=entry.symbol,
                    message=f"order {entry.client_id} never reached the broker; marked rejected",
                )

    # ------------------------------------------------------------------ operator orders ---------

    def modify_order(self, ticket: int, stop_loss: float | None, take_profit: float | None) -> bool:
        """Change a position's SL/TP (allowed in every kill-switch state). True when the broker took it."""
        position = next((p for p in self.broker.positions() if p.ticket == ticket), None)
        if position is None:
            raise ExecutionRefused(f"position {ticket}: not open")
        if position.magic != self.magic:
            raise ExecutionRefused(f"position {ticket}: magic {position.magic} is not ours; never traded against")
        req = self.broker.sltp_request(position.symbol, ticket, stop_loss, take_profit)
        res = self.broker.send(req)
        self._retcodes.labels(res.name).inc()
        accepted = res.category is RetcodeClass.SUCCESS or res.unchanged
        if accepted:  # what the journal now expects at the broker (the reconciler compares)
            self.rt.store.kv_put("sltp", str(ticket), [req.get("sl", 0.0), req.get("tp", 0.0)])
            self._levels[ticket] = (float(req.get("sl", 0.0)), float(req.get("tp", 0.0)))
        return accepted

    def expected_levels(self, position_id: int) -> tuple[float, float] | None:
        """The SL/TP the journal expects on a position: the last modification, else the opening order's.

        Read from the store once per position, then kept (``modify_order`` updates it): the
        reconciler asks for every open position on every run.
        """
        if position_id in self._levels:
            return self._levels[position_id]
        levels = self.rt.store.kv_get("sltp", str(position_id))
        if levels is not None:
            found: tuple[float, float] | None = (float(levels[0]), float(levels[1]))
        else:
            cid = self.journal.client_for_position(position_id)
            entry = self.journal.get(cid) if cid else None
            found = (
                None
                if entry is None or entry.position_ticket is not None
                else (entry.stop_loss or 0.0, entry.take_profit or 0.0)
            )
        if found is not None:
            self._levels[position_id] = found
        return found

    def cancel_order(self, client_id: str, reason: str = "cancelled") -> bool:
        """Remove a working pending order (allowed in every kill-switch state)."""
        entry = self.journal.get(client_id)
        if entry is None or entry.state not in (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED):
            return False
        res = self.broker.send(self.broker.remove_request(entry.broker_order))
        if res.category is RetcodeClass.SUCCESS:
            self._move_order(client_id, OrderState.CANCELLED, entry.symbol, res.retcode, reason)
            return True
        return self.resolve(client_id) and self.journal.get(client_id).state.terminal  # type: ignore[union-attr]

    def close_position(self, ticket: int, volume: float | None = None, why: str = "close") -> str:
        """Close (or reduce) one of our positions: by ticket on hedging, an opposite deal on netting. ``why`` is
        journaled as the order's strategy ("close": an operator's; "flatten": everything at once)."""
        position = next((p for p in self.broker.positions() if p.ticket == ticket), None)
        if position is None:
            raise ExecutionRefused(f"position {ticket}: not open")
        if position.magic != self.magic:
            raise ExecutionRefused(f"position {ticket}: magic {position.magic} is not ours; never traded against")
        if volume is not None and volume > position.volume + 1e-9:  # more would open the other way (netting)
            raise ExecutionRefused(f"position {ticket}: {volume:g} lots asked, {position.volume:g} open")
        order = OrderIntent(
            symbol=position.symbol,
            side=Side.SELL if position.is_buy else Side.BUY,
            volume=volume or position.volume,
            position_ticket=ticket,
            reduce_only=True,
            created_at=self._now(),
            strategy=why,
        )
        return self.submit_order(order)

    def flatten_all(self) -> list[str]:
        """Cancel every working order of ours, then close every position of ours (the kill switch's flatten)."""
        done = [
            e.client_id
            for e in self.journal.open_entries()
            if e.state is OrderState.ACCEPTED and self.cancel_order(e.client_id, "flatten")
        ]
        for position in self.broker.positions():
            if position.magic == self.magic:
                done.append(self.close_position(position.ticket, why="flatten"))
        return done

    # ------------------------------------------------------------------ views ---------------------

    def get_open_orders(self) -> list[JournalEntry]:
        return self.journal.open_entries()

    def get_positions_snapshot(self) -> list[Position]:
        """Our open positions at the broker (magic = this instance), as tradeguard models."""
        return [
            Position(
                ticket=p.ticket,
                symbol=p.symbol,
                side=Side.BUY if p.is_buy else Side.SELL,
                volume=p.volume,
                price_open=p.price_open,
                stop_loss=p.sl or None,
                take_profit=p.tp or None,
                magic=p.magic,
                comment=p.comment,
                client_id=p.comment if self.journal.owns(p.comment) else "",
                opened_at=p.time,
            )
            for p in self.broker.positions()
            if p.magic == self.magic
        ]
