"""What every surface of the operator's desk (the control API, the console, Telegram) reads and does.

Each surface runs in a thread of its own and gets a :class:`Desk` of its own, with its own connection to the
journal (one owner each). It acts only through the runtime's own services, as the CLI does beside a running
process: a latch through the store, which the kill switch adopts (at the next decision, or within a second),
acts on, alerts and the audit trail chains; an order through the store's operator requests, which the
trading loop carries out on the execution engine (journaled, the kill switch's admission rule applied, alerted,
audited). Alerts a
surface raises are queued and said on the trading thread (:meth:`Desk.say_alerts`, a job), where the alert
manager and its store live.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Any

from tradeguard import (
    REQUEST_TTL_SECONDS,
    AlertChannel,
    KillState,
    Runtime,
    Severity,
    SQLiteStore,
    kill_switch_record,
    read_status,
)

#: how long an order waits for the trading loop to carry it out: as long as the loop would still take it
ANSWER_SECONDS = REQUEST_TTL_SECONDS


@dataclass
class Caller:
    """Who acts, through which surface, and how they proved it (recorded with every action)."""

    name: str
    scopes: tuple[str, ...]
    via: str  # api, console, telegram
    auth: str
    csrf: str = ""


class Desk:
    def __init__(self, runtime: Runtime, module: str) -> None:
        self.rt, self.module = runtime, module
        self._store: SQLiteStore | None = None
        self._alerts: queue.SimpleQueue[tuple[Severity, str, str]] = queue.SimpleQueue()

    def store(self) -> SQLiteStore:
        """This surface's own connection to the journal (WAL: it reads beside the trading loop's writes)."""
        if self._store is None:
            self._store = SQLiteStore(self.rt.sqlite_store().path)
        return self._store

    # -- reading ------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The journal's status (kill switch, account, positions, orders, health, reconciliation, alerts), with
        the pending orders, the loss limits and the latest alerts."""
        store = self.store()
        status = read_status(store)
        status["pending_orders"] = [
            {"client_id": r[0], "symbol": r[1], "side": r[2], "volume": r[3], "price": r[4], "state": r[5]}
            for r in store.query(
                "SELECT client_id, symbol, side, volume, price, state FROM orders "
                "WHERE state IN ('accepted', 'partially_filled') AND order_type <> 'market' ORDER BY client_id"
            )
        ]
        risk = self.rt.settings.tables().get("risk_guard")
        status["limits"] = {
            "daily_loss_limit_pct": getattr(risk, "daily_loss_limit_pct", 0.0),
            "max_drawdown_pct": getattr(risk, "max_drawdown_pct", 0.0),
        }
        status["recent_alerts"] = [
            {"time": r[0], "severity": r[1], "message": r[2]}
            for r in store.query(
                "SELECT MAX(created), MAX(severity), json_extract(record, '$.message') FROM alert_outbox "
                "GROUP BY record ORDER BY MAX(id) DESC LIMIT 10"
            )
        ]
        status.pop("audit_anchor", None)  # the chain's head is the audit's business, not the desk's
        return status

    def decisions(self, limit: int) -> list[dict[str, Any]]:
        rows = self.store().query(
            "SELECT decided_at, signal_id, approved, stage, reasons, client_id FROM decisions ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {"time": r[0], "signal_id": r[1], "approved": bool(r[2]), "stage": r[3], "reasons": r[4], "client_id": r[5]}
            for r in rows
        ]

    # -- acting -------------------------------------------------------------------------------------

    def latch(self, state: KillState, reason: str, who: Caller) -> dict[str, Any]:
        """Latch the kill switch (only tighter), as ``tradeguard kill`` does beside a running process."""
        store = self.store()
        before = store.tighten_kill_state(state.value, "manual", reason, who.name, via=who.via, auth=who.auth)
        if before is not None:  # as tight already (checked and written in one transaction: never loosened)
            current = kill_switch_record(before)
            return {"ok": True, "result": f"already {current['state']} ({current['trigger']})", "kill_switch": current}
        latched = kill_switch_record(store.kill_state())
        return {"ok": True, "result": f"{state.value} by {who.name}", "kill_switch": latched}

    def hand_over(self, action: str, args: dict[str, Any], reason: str, who: Caller, auth: str = "") -> int:
        """An order for the trading loop (it owns the broker); the request's id."""
        return self.store().add_request(action, args, who.name, who.via, auth or who.auth, reason)

    def outcome(self, request: int) -> dict[str, Any] | None:
        """What came of a request, or None while the trading loop has not answered."""
        status, result = self.store().request_outcome(request)
        return {"ok": status == "done", "result": result} if status in ("done", "failed") else None

    def give_up(self, request: int) -> dict[str, Any]:
        """After :data:`ANSWER_SECONDS`: withdrawn if the trading loop never took it, else what it says."""
        if self.store().withdraw_request(request):
            return {"ok": False, "result": f"not carried out: the trading loop did not take it in {ANSWER_SECONDS:g} s"}
        return self.outcome(request) or {"ok": False, "result": "taken by the trading loop: see status"}

    def order(self, action: str, args: dict[str, Any], reason: str, who: Caller, auth: str = "") -> dict[str, Any]:
        """:meth:`hand_over` and wait for the outcome (a surface whose thread may block: Telegram's)."""
        request = self.hand_over(action, args, reason, who, auth)
        deadline = time.monotonic() + ANSWER_SECONDS
        while time.monotonic() < deadline:
            done = self.outcome(request)
            if done is not None:
                return done
            time.sleep(0.1)
        return self.give_up(request)

    # -- alerts -------------------------------------------------------------------------------------

    def alert(self, severity: Severity, code: str, message: str) -> None:
        """Queue an alert from the surface's thread."""
        self._alerts.put((severity, code, message))

    def say_alerts(self) -> None:
        """On the trading thread (a job): say what the surface queued."""
        while not self._alerts.empty():
            severity, code, message = self._alerts.get_nowait()
            self.rt.alert(
                channel=AlertChannel.SYSTEM, severity=severity, module=self.module, error_code=code, message=message
            )
