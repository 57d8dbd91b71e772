"""Kill switch (KSW): a latch that only tightens until an operator resets it.

States and what each still allows:

* ``ACTIVE`` - everything the other checks allow;
* ``REDUCE_ONLY`` - only orders that reduce exposure (closes) and SL/TP changes;
* ``HALTED`` - no new orders; closes only if ``allow_closes_when_halted``. Entering it cancels our
  working pending orders (``cancel_pending_on_latch``, on REDUCE_ONLY too: they would open exposure) and,
  if asked, flattens every position.

Triggers: a halt requested by anyone (``runtime.request_halt``, the CLI through the store), daily
drawdown and drawdown from peak (account snapshots), the margin call and a stop-out deal, connection
lost longer than N seconds and latency above a threshold (health reports), a streak of rejected or
unknown orders, an inconsistent reconciliation, and a storm of plugin errors. What each automatic
trigger latches, and whether it flattens, is one table: ``[default.triggers]`` (kernel/triggers.py).

The latch lives in the store: it survives restarts and other processes see it (and may set it).
:meth:`KillSwitch.reset` needs the operator secret, checked against a scrypt hash kept in settings
(never the secret itself); it is refused while the trigger's condition still holds unless forced
with a reason, and is recorded with who and why.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from tradeguard import (
    AccountSnapshot,
    Alert,
    AlertChannel,
    ConfiguredPlugin,
    Execution,
    Fill,
    HaltEvent,
    HealthReport,
    Job,
    KillState,
    OrderEvent,
    OrderIntent,
    OrderState,
    PluginSettings,
    ReconciliationReport,
    Rejected,
    Runtime,
    Severity,
    SQLiteStore,
    TradeguardError,
    action_for,
    hookimpl,
    server_midnight,
    validated_for_live,
    verify_secret,
)

log = logging.getLogger("tradeguard.kill_switch")
#: the triggers of a daily loss (the risk guard's hard limit, the kill switch's own): daily_loss_latch_ends applies
DAILY_LOSS_TRIGGERS = ("daily_loss_limit",)


class ResetRefused(TradeguardError):
    """The kill switch stays latched: wrong secret, no secret configured, or the trigger still holds."""


class KillSwitchSettings(PluginSettings):
    allow_closes_when_halted: bool = Field(default=True, description="let exposure-reducing orders through HALTED")
    cancel_pending_on_latch: bool = Field(
        default=True, description="entering REDUCE_ONLY or HALTED cancels our working pending orders (openings)"
    )
    flatten_on_halt: bool = Field(default=False, description="entering HALTED also closes every position of ours")
    daily_loss_latch_ends: Literal["operator", "next_server_day"] = Field(
        default="operator",
        description="a daily-loss latch ends by an operator's reset, or at the next server "
        "midnight (as prop-firm rules work; audited and alerted); drawdown, stop-out and manual latches stay",
    )
    daily_drawdown_pct: float = Field(default=0.0, ge=0, le=100, description="trip at this daily loss; 0 = off")
    max_drawdown_pct: float = Field(default=0.0, ge=0, le=100, description="trip at this drawdown; 0 = off")
    connection_loss_seconds: float = Field(default=0.0, ge=0, description="trip when disconnected this long; 0 = off")
    latency_ms: float = Field(default=0.0, ge=0, description="trip when the terminal ping exceeds this; 0 = off")
    error_streak: int = Field(default=0, ge=0, description="trip after this many rejected/unknown orders in a row")
    reconciliation_issues: int = Field(default=0, ge=0, description="trip on an inconsistent reconciliation this big")
    plugin_error_storm: int = Field(default=0, ge=0, description="trip after this many plugin errors in the window")
    plugin_error_window_seconds: float = Field(default=60.0, gt=0)
    latch_refresh_seconds: float = Field(default=1.0, gt=0, description="how often the store's latch is re-read")
    operator_secret_hash: SecretStr = Field(
        default=SecretStr(""),
        validate_default=True,
        description="scrypt hash from `tradeguard hash-secret`; required live",
    )

    @field_validator("operator_secret_hash")
    @classmethod
    def _required_live(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        """Live, a latched switch with no secret to check could never be reset: `config check` says so. The
        operator's commands (``kill`` above all) are not held to it: they trade nothing."""
        if validated_for_live(info, trading=True) and not value.get_secret_value():
            raise ValueError(
                "not set: live, a latched kill switch could never be reset "
                "(tradeguard hash-secret makes one for .secrets.toml)"
            )
        return value


class KillSwitch(ConfiguredPlugin):
    settings_model = KillSwitchSettings
    stage = 3
    rt: Runtime

    def __init__(self) -> None:
        super().__init__()
        self.state = KillState.ACTIVE
        self.trigger = ""
        self._gauge: Any = None
        self._store: Any = None  # and ``rt``: both set when attached (tradeguard_startup or an operator command)
        self.snapshot: AccountSnapshot | None = None
        self.health: HealthReport | None = None
        self.reconciliation: ReconciliationReport | None = None
        self.errors_in_row = 0
        self._disconnected_since: datetime | None = None
        self._plugin_errors: deque[datetime] = deque()
        self._below_margin_call = False  # the last snapshot's margin level was at or under the margin call
        self._latched_by: set[str] = set()  # every trigger that asked for the current latch
        #: a latch the store could not take (disk full): written by the next refresh that can
        self._unwritten: dict[str, Any] | None = None
        self._announces = False  # this process announces kill-switch events (it owns the journal)
        self._announced = 0  # the last kill-switch event announced

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.attach(runtime, announces=True)
        self.refresh_latch()
        if self.state is not KillState.ACTIVE and getattr(runtime, "role", "trading") == "trading":
            log.critical("kill switch restored latched", extra={"state": self.state.value, "trigger": self.trigger})
        self._gauge.set(0 if self.state is KillState.ACTIVE else 1)

    def attach(self, runtime: Runtime, *, announces: bool) -> None:
        """Bind to the runtime's store. ``announces``: this process owns the journal (a trading process, or an
        operator command with none running) and announces every kill-switch event, its own and those another
        process recorded (``tradeguard kill`` beside a running process): a CRITICAL alert each, once."""
        self.cfg = runtime.settings_for(self)
        self.rt = runtime
        self._store = runtime.store
        self._gauge = runtime.metrics.kill_switch_active
        self._announces = announces
        announced = self._store.kv_get("kill_switch", "announced")
        if announced is None:  # a journal from before announcements: its history is not news
            events = self._store.kill_events_after(0)
            announced = events[-1]["event_id"] if events else 0
            if announces:
                self._store.kv_put("kill_switch", "announced", announced)  # from here on, every event is
        self._announced = int(announced)
        latched = self._store.kill_state()
        if latched is not None:
            self.state, self.trigger = KillState(latched[0]), latched[1]
            self._latched_by = {latched[1]} if self.state is not KillState.ACTIVE else set()
        self._last_conditions()

    def _last_conditions(self) -> None:
        """The last stored account snapshot and reconciliation: a reset judges its trigger's condition on them
        (an operator's command has no account tracker or reconciler of its own; the hooks replace them)."""
        if isinstance(self._store, SQLiteStore) and self.snapshot is None:
            self.snapshot = self._store.last_stored_snapshot()
        last = self._store.kv_get("reconciliation", "last")
        if last is not None and self.reconciliation is None:
            self.reconciliation = ReconciliationReport.model_validate(last)

    def announce(self) -> None:
        """A CRITICAL alert on the RISK channel for each operator event not announced yet (kill, reset, refused
        reset); automatic latches were alerted when requested (``request_halt``)."""
        if not self._announces:
            return
        events = self._store.kill_events_after(self._announced)
        for event in events:
            if event["via"] != "automatic":
                code = {"reset": "kill_switch_reset", "reset_refused": "reset_refused"}.get(
                    event["trigger"], "kill_switch_latched"
                )
                who = f"{event['operator'] or 'unnamed'} via {event['via'] or 'the store'}"
                self.rt.alert(
                    channel=AlertChannel.RISK,
                    severity=Severity.CRITICAL,
                    module="kill_switch",
                    error_code=code,
                    message=f"{event['from_state']} -> {event['to_state']} by {who}: {event['message']}",
                    **{k: event[k] for k in ("event_id", "operator", "via", "auth")},
                )
        if events:
            self._store.kv_put("kill_switch", "announced", events[-1]["event_id"])
            self._announced = events[-1]["event_id"]

    @hookimpl
    def periodic_jobs(self, runtime: Runtime) -> list[Job]:
        return [
            Job(
                name="kill_switch.refresh",
                every=timedelta(seconds=self.cfg.latch_refresh_seconds),
                run=lambda rt: self.refresh_latch(),
                wall_clock=True,
            )
        ]  # (another process's `kill`)

    def refresh_latch(self) -> None:
        """Adopt the store's latch: another process (``tradeguard kill`` / ``reset``) may have moved it. A latch
        the store could not take yet is written first, and until it is, nothing the store says loosens it."""
        if self._unwritten is not None:
            try:
                self._store.set_kill_state(**self._unwritten)
            except TradeguardError:
                return
            log.critical("kill switch latch written to the store", extra={"state": self._unwritten["state"]})
            self._unwritten = None
        if self._store is not None:
            self.announce()
        latched = self._store.kill_state() if self._store is not None else None
        if latched is None:
            return
        state = KillState(latched[0])
        if state is not self.state:
            tighter = state.rank > self.state.rank
            self.state, self.trigger = state, latched[1]
            self._latched_by.add(latched[1])
            if self._gauge is not None:
                self._gauge.set(0 if state is KillState.ACTIVE else 1)
            if state is KillState.ACTIVE:
                self._latched_by.clear()
            log.critical("kill switch changed in the store", extra={"state": state.value, "trigger": latched[1]})
            if tighter and self._announces:  # another process's kill: act on it here
                self._on_latched(state, flatten=False)

    # ------------------------------------------------------------------ transitions -------------

    def transition(
        self,
        state: KillState,
        trigger: str,
        message: str,
        flatten: bool = False,
        *,
        operator: str = "",
        via: str = "automatic",
    ) -> bool:
        """Latch to ``state`` if it is tighter than the current one; return whether anything changed."""
        self._latched_by.add(trigger)  # every trigger that asked, also one the latch already covers
        if state.rank <= self.state.rank:
            log.info("kill switch already at least as tight", extra={"state": self.state.value, "asked": state.value})
            if flatten:  # the trigger's row closes everything whatever the latch was
                self._flatten()
            return False
        previous, self.state, self.trigger = self.state, state, trigger
        if self._store is not None:
            latch = {
                "state": state.value,
                "trigger": trigger,
                "message": message,
                "operator": operator,
                "when": self.rt.clock.now(),
                "via": via,
                "auth": "none" if via != "automatic" else "",
            }
            try:
                self._store.set_kill_state(**latch)
            except TradeguardError as exc:  # the store cannot take it now: latched here, written when it can
                self._unwritten = latch
                log.critical("kill switch latch not written to the store yet", extra={"error": str(exc)})
            else:
                with contextlib.suppress(TradeguardError):  # announced at the next refresh if not now
                    self.announce()
        if self._gauge is not None:
            self._gauge.set(1)
        details = {"from": previous.value, "to": state.value, "trigger": trigger, "detail": message}
        log.critical("kill switch latched", extra=details)
        self._on_latched(state, flatten)
        return True

    def _engine(self) -> Execution | None:
        engine = self.rt.execution if self._store is not None else None
        if engine is None or engine.journal is None:  # no broker behind it (an operator command)
            log.warning(
                "kill switch latched with no execution engine here: working orders were not cancelled nor "
                "positions closed; the trading process does it when it adopts the latch"
            )
            return None
        return engine

    def _flatten(self) -> None:
        engine = self._engine()
        if engine is not None:
            engine.flatten_all()

    def _on_latched(self, state: KillState, flatten: bool) -> None:
        """What a new latch does to what is working: every position closed when its trigger's row asks (or, on
        HALTED, ``flatten_on_halt``); else our working pending orders cancelled (``cancel_pending_on_latch``):
        each would open exposure the latch no longer admits."""
        engine = self._engine()
        if engine is None:
            return
        if flatten or (state is KillState.HALTED and self.cfg.flatten_on_halt):
            engine.flatten_all()
        elif self.cfg.cancel_pending_on_latch:
            for entry in engine.get_open_orders():
                if entry.state.value in ("accepted", "partially_filled"):
                    engine.cancel_order(entry.client_id, reason=f"kill switch {state.value}")

    def _trip(self, trigger: str, message: str) -> None:
        """Ask for the latch ``[default.triggers]`` names for ``trigger``, unless the switch is that tight already
        (the condition holds on every snapshot: one request, not one each; a row that flattens asks once per
        latch) or the row is OFF (``config check``
        says such a threshold never acts)."""
        action = action_for(self.rt.settings, trigger)
        if action is None or action.state == "OFF":
            return
        tighter = KillState(action.state).rank > self.state.rank
        if tighter or (action.flatten and trigger not in self._latched_by):  # a flatten: once per latch
            self.rt.request_halt(trigger, message, source="kill_switch")

    def condition_holds(self) -> str:
        """Why the current trigger still holds ('' when it does not): a reset waits for it to clear."""
        cfg, s, t = self.cfg, self.snapshot, self.trigger
        if (
            t == "daily_loss_limit"
            and s is not None
            and cfg.daily_drawdown_pct
            and (s.daily_drawdown_pct >= cfg.daily_drawdown_pct)
        ):
            return f"daily drawdown {s.daily_drawdown_pct:.2f}% >= {cfg.daily_drawdown_pct:g}%"
        if t in ("max_drawdown",) and s is not None and cfg.max_drawdown_pct and s.drawdown_pct >= cfg.max_drawdown_pct:
            return f"drawdown {s.drawdown_pct:.2f}% >= {cfg.max_drawdown_pct:g}%"
        if t == "connection_lost" and self._disconnected_since is not None:
            return f"terminal disconnected since {self._disconnected_since.isoformat()}"
        if (
            t == "reconciliation_inconsistent"
            and self.reconciliation is not None
            and (not self.reconciliation.consistent)
        ):
            return "the last reconciliation was inconsistent"
        return ""

    def reset(self, operator: str, secret: str, reason: str, *, force: bool = False, via: str = "cli") -> None:
        """Back to ACTIVE: needs the operator secret; refused while the trigger holds unless forced."""
        stored = self.cfg.operator_secret_hash.get_secret_value()
        if not stored:
            raise ResetRefused("no operator secret is configured (kill_switch.operator_secret_hash)")
        if not operator or not reason:
            raise ResetRefused("a reset needs the operator's name and a reason")
        if not verify_secret(secret, stored):
            self._refused(operator, f"reset by {operator} refused: wrong secret ({reason})", via, "wrong secret")
            raise ResetRefused("wrong operator secret")
        self.reset_authorized(operator, reason, force=force, via=via)

    def reset_authorized(self, operator: str, reason: str, *, force: bool = False, via: str = "cli") -> None:
        """Back to ACTIVE for an operator whose secret was checked already (by :meth:`reset`, or by the control
        API before it handed the reset to the trading process: the secret itself never travels). Refused while
        the trigger holds unless forced."""
        holding = self.condition_holds()
        if holding and not force:
            self._refused(
                operator,
                f"reset by {operator} refused: the trigger {self.trigger} still holds ({holding})",
                via,
                "operator secret",
            )
            raise ResetRefused(f"the trigger {self.trigger} still holds ({holding}); force it with a reason")
        if self.state is KillState.ACTIVE and (self._store.kill_state() or ("ACTIVE",))[0] == "ACTIVE":
            raise ResetRefused("the kill switch is already ACTIVE: nothing to reset")
        note = f"reset by {operator}: {reason}" + (f" (forced while {holding})" if holding else "")
        auth = "operator secret" + (", forced" if holding else "")
        self._to_active(note, operator, self.rt.clock.now(), via, auth)
        self.errors_in_row = 0
        log.critical("kill switch reset", extra={"operator": operator, "reason": reason, "forced": bool(holding)})
        self.announce()

    def _to_active(self, note: str, operator: str, when: datetime, via: str, auth: str) -> None:
        """Back to ACTIVE, in the store first (a reset by an operator or by the schedule)."""
        self._store.set_kill_state(
            KillState.ACTIVE.value, "reset", note, operator=operator, when=when, via=via, auth=auth
        )
        self.state, self.trigger = KillState.ACTIVE, ""
        self._latched_by.clear()
        if self._gauge is not None:
            self._gauge.set(0)

    def _refused(self, operator: str, message: str, via: str, auth: str) -> None:
        """A refused reset is an operator action too: recorded, announced, chained."""
        self._store.record_kill_event("reset_refused", message, operator, via=via, auth=auth, when=self.rt.clock.now())
        self.announce()

    # ------------------------------------------------------------------ triggers ----------------

    @hookimpl
    def on_halt(self, event: HaltEvent, runtime: Runtime) -> None:
        self.transition(event.state, event.trigger, event.message, flatten=event.flatten)

    @hookimpl
    def on_account_snapshot(self, snapshot: AccountSnapshot, runtime: Runtime) -> None:
        self.snapshot = snapshot
        cfg = self.cfg
        self._new_day(snapshot)
        self._margin_call(snapshot)
        if cfg.daily_drawdown_pct and snapshot.daily_drawdown_pct >= cfg.daily_drawdown_pct:
            self._trip(
                "daily_loss_limit",
                f"{snapshot.daily_drawdown_pct:.2f}% since server midnight >= {cfg.daily_drawdown_pct:g}%",
            )
        if cfg.max_drawdown_pct and snapshot.drawdown_pct >= cfg.max_drawdown_pct:
            self._trip("max_drawdown", f"{snapshot.drawdown_pct:.2f}% from peak >= {cfg.max_drawdown_pct:g}%")

    def _new_day(self, snapshot: AccountSnapshot) -> None:
        """With ``daily_loss_latch_ends = "next_server_day"``, a latch a daily loss set lifts at the first snapshot
        of a later server day: recorded as a reset by the schedule, announced (CRITICAL) and chained."""
        if self.cfg.daily_loss_latch_ends != "next_server_day" or not self._latched_by <= set(DAILY_LOSS_TRIGGERS):
            return  # another trigger (a stop-out, a manual kill) asked too: that one waits for an operator
        latched = self._store.kill_state()
        if latched is None or latched[1] not in DAILY_LOSS_TRIGGERS:
            return
        midnight = (
            self.rt.broker.server_midnight(snapshot.time)
            if self.rt.has_broker
            else server_midnight(snapshot.time, timedelta(0))
        )
        if datetime.fromisoformat(latched[3]) >= midnight:
            return
        note = f"the daily-loss latch of {latched[3][:16]} ends with the server day (daily_loss_latch_ends)"
        self._to_active(note, "next_server_day", snapshot.time, "schedule", "setting")
        log.critical("kill switch reset at the new server day", extra={"since": latched[3]})
        self.announce()

    def _margin_call(self, snapshot: AccountSnapshot) -> None:
        """Crossing the broker's margin-call level (account_info's margin_so_call) is an ERROR alert, once per
        crossing, and latches what ``triggers.margin_call`` says: the next step down is the broker closing
        positions."""
        below = False
        if snapshot.margin > 0:
            try:
                call = float(self.rt.broker.account().margin_so_call)
            except Exception:  # no broker to ask (a unit test's runtime, a broken link): nothing to compare
                return
            below = 0 < snapshot.margin_level <= call
            if below and not self._below_margin_call:
                message = f"margin level {snapshot.margin_level:.2f}% reached the broker's margin call at {call:g}%"
                self.rt.alert(
                    channel=AlertChannel.RISK,
                    severity=Severity.ERROR,
                    module="kill_switch",
                    error_code="margin_call",
                    message=message,
                )
                action = self.rt.settings.triggers.margin_call
                if action.state != "OFF":  # the ERROR above says it: no second, CRITICAL, alert of a request
                    self.transition(KillState(action.state), "margin_call", message, flatten=action.flatten)
        self._below_margin_call = below

    @hookimpl
    def on_fill(self, fill: Fill, runtime: Runtime) -> None:
        """A stop-out deal (MT5 comments it ``[so 47.18%]``) is a CRITICAL alert and latches what
        ``triggers.stop_out`` says: the broker is closing ours."""
        if not fill.comment.startswith("[so"):
            return
        action = self.rt.settings.triggers.stop_out
        message = (
            f"stop-out: the broker closed {fill.volume:g} {fill.symbol} for margin {fill.comment} ({fill.profit:+.2f})"
        )
        if action.state != "OFF" and KillState(action.state).rank > self.state.rank:
            self.rt.request_halt("stop_out", message, source="kill_switch")
            return
        self.rt.alert(
            channel=AlertChannel.RISK,
            severity=Severity.CRITICAL,
            module="kill_switch",
            error_code="stop_out",
            message=message,
        )  # latched already, or OFF: still news
        if action.state != "OFF" and action.flatten:
            self._flatten()

    @hookimpl
    def on_health(self, report: HealthReport, runtime: Runtime) -> None:
        self.health = report
        cfg = self.cfg
        if report.connected:
            self._disconnected_since = None
        elif self._disconnected_since is None:
            self._disconnected_since = report.time
        if cfg.connection_loss_seconds and self._disconnected_since is not None:
            lost = (report.time - self._disconnected_since).total_seconds()
            if lost >= cfg.connection_loss_seconds:
                self._trip("connection_lost", f"terminal disconnected for {lost:.0f} s")
        if cfg.latency_ms and report.ping_ms is not None and report.ping_ms > cfg.latency_ms:
            self._trip("latency", f"ping {report.ping_ms:.0f} ms > {cfg.latency_ms:g} ms")

    @hookimpl
    def on_order_event(self, event: OrderEvent, runtime: Runtime) -> None:
        if event.kind in (OrderState.REJECTED, OrderState.UNKNOWN):
            self.errors_in_row += 1
            if self.cfg.error_streak and self.errors_in_row >= self.cfg.error_streak:
                self._trip("execution_errors", f"{self.errors_in_row} orders rejected or unknown in a row")
        elif event.kind in (OrderState.FILLED, OrderState.ACCEPTED):
            self.errors_in_row = 0

    @hookimpl
    def on_reconciliation(self, report: ReconciliationReport, runtime: Runtime) -> None:
        self.reconciliation = report
        issues = len(report.missing) + len(report.unknown) + len(report.volume_drift) + len(report.sltp_mismatch)
        if self.cfg.reconciliation_issues and issues >= self.cfg.reconciliation_issues:
            self._trip(
                "reconciliation_inconsistent", f"{issues} inconsistencies between journal and broker ({report.cause})"
            )

    @hookimpl
    def on_alert(self, alert: Alert, runtime: Runtime) -> None:
        if alert.error_code != "plugin_error" or not self.cfg.plugin_error_storm:
            return
        now = alert.time
        self._plugin_errors.append(now)
        while (now - self._plugin_errors[0]).total_seconds() > self.cfg.plugin_error_window_seconds:
            self._plugin_errors.popleft()
        if len(self._plugin_errors) >= self.cfg.plugin_error_storm:
            self._trip(
                "plugin_error_storm",
                f"{len(self._plugin_errors)} plugin errors in {self.cfg.plugin_error_window_seconds:g} s",
            )

    # ------------------------------------------------------------------ the veto ----------------

    @hookimpl(tryfirst=True)
    def evaluate_risk(self, order: OrderIntent, runtime: Runtime) -> Rejected | None:
        state, trigger = self.state, self.trigger
        if state.admits(order, self.cfg.allow_closes_when_halted) and self._store is not None:
            # another surface (the CLI, the control API, Telegram, the fleet) may have latched it since the last
            # refresh: the execution engine would refuse on the store's word; refuse here, saying why. Adopting it
            # (cancelling, alerting) stays the refresh job's, outside any decision.
            stored = self._store.kill_state()
            if stored is not None and KillState(stored[0]).rank > state.rank:
                state, trigger = KillState(stored[0]), stored[1]
        if state.admits(order, self.cfg.allow_closes_when_halted):
            return None
        if state is KillState.REDUCE_ONLY:
            message = f"kill_switch_reduce_only: latched by {trigger}; opening orders refused"
            return Rejected(reason="kill_switch_reduce_only", message=message)
        return Rejected(reason="kill_switch_halted", message=f"kill_switch_halted: latched by {trigger}")
