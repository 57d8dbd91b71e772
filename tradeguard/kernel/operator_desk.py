"""Operator orders (flatten, close a position, change its stops) through the runtime's own services.

The process that trades owns the broker, so it carries out every operator order: given directly
(``tradeguard flatten`` with no trading process builds one for the moment) or handed over through
the store's ``operator_requests`` (a command beside a running process, later the control API), which
the trading loop serves each second. Each order goes through the execution engine (journaled, the
kill switch honoured), is announced through ``on_operator_action`` (the audit trail chains it: who,
via what, how authenticated, why, what came of it) and alerted: CRITICAL for a flatten, WARNING for
a close or a stop change.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tradeguard.errors import TradeguardError
from tradeguard.models import AlertChannel, OperatorAction, Severity
from tradeguard.store.sqlite import Store

if TYPE_CHECKING:
    from tradeguard.kernel.runtime import Runtime

log = logging.getLogger("tradeguard.operator")
ACTIONS = ("flatten", "close", "modify", "cancel", "reset")
#: a request older than this is not carried out: its operator was told it timed out (the CLI waits 15 s)
REQUEST_TTL_SECONDS = 15.0


class OperatorDesk:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def execute(
        self, action: str, args: dict[str, Any], *, operator: str, via: str, auth: str = "", reason: str = ""
    ) -> OperatorAction:
        """Carry out one operator order now (on the thread that owns the broker); audited and alerted."""
        engine = self.rt.execution
        target = str(args.get("ticket", ""))
        try:
            if action not in ACTIONS:
                raise TradeguardError(f"unknown operator order {action!r} (one of {', '.join(ACTIONS)})")
            if engine.journal is None:
                raise TradeguardError("no execution engine: nothing to trade through")
            ok, result = getattr(self, f"_{action}")(engine, args)
        except (TradeguardError, KeyError, ValueError, TypeError) as exc:  # refused before anything was sent
            ok, result = False, f"refused: {exc}"
        except Exception as exc:  # after a send, maybe: what the journal and the broker show is the answer
            ok, result = False, f"failed ({type(exc).__name__}: {exc}); check status before ordering again"
        done = OperatorAction(
            time=self.rt.clock.now(),
            action=action,
            operator=operator,
            via=via,
            auth=auth,
            reason=reason,
            target=target,
            ok=ok,
            result=result,
        )
        self.rt.notify("on_operator_action", action=done)
        severity = Severity.CRITICAL if action == "flatten" else Severity.WARNING
        self.rt.alert(
            channel=AlertChannel.RISK,
            severity=severity,
            module="operator",
            error_code=f"operator_{action}",
            message=f"{action}{' ' + target if target else ''} by {operator} via {via} ({reason}): {result}",
            operator=operator,
            via=via,
            ok=ok,
        )
        log.warning("operator order", extra={"action": action, "operator": operator, "via": via, "ok": ok})
        return done

    def _flatten(self, engine: Any, args: dict[str, Any]) -> tuple[bool, str]:
        sent = engine.flatten_all()
        engine.broker.forget_reads()
        left = [p.ticket for p in engine.broker.positions() if p.magic == engine.magic]
        states = [f"{cid} {self._state(engine, cid)}" for cid in sent]
        done = f"sent: {', '.join(states) or 'nothing was open'}"
        return (not left, done if not left else f"{done}; STILL OPEN: {left}")

    def _close(self, engine: Any, args: dict[str, Any]) -> tuple[bool, str]:
        cid = engine.close_position(int(args["ticket"]), args.get("volume"))
        state = self._state(engine, cid)
        return state == "filled", f"close {cid} {state}"

    def _modify(self, engine: Any, args: dict[str, Any]) -> tuple[bool, str]:
        ticket = int(args["ticket"])
        held = next((p for p in engine.broker.positions() if p.ticket == ticket), None)
        if held is None:
            raise TradeguardError(f"position {ticket}: not open")
        stop = args.get("stop_loss") if args.get("stop_loss") is not None else (held.sl or None)  # kept if not given
        target = args.get("take_profit") if args.get("take_profit") is not None else (held.tp or None)
        done = engine.modify_order(ticket, stop, target)
        return done, f"stops now sl {stop or 0:g} tp {target or 0:g}" if done else "the broker refused the change"

    def _cancel(self, engine: Any, args: dict[str, Any]) -> tuple[bool, str]:
        """Cancel every working pending order of ours (exits and stops stay as they are)."""
        working = [e for e in engine.get_open_orders() if e.state.value in ("accepted", "partially_filled")]
        done = [e.client_id for e in working if engine.cancel_order(e.client_id, reason="operator cancel")]
        left = [e.client_id for e in working if e.client_id not in done]
        text = f"cancelled: {', '.join(done) or 'nothing was working'}"
        return (not left, text if not left else f"{text}; STILL WORKING: {left}")

    def _reset(self, engine: Any, args: dict[str, Any]) -> tuple[bool, str]:
        """The kill switch back to ACTIVE: the caller checked the operator secret (it never travels here)."""
        kill_switch = self.rt.pm.get_plugin("kill_switch")
        if kill_switch is None:
            raise TradeguardError("the kill_switch plugin is not loaded")
        kill_switch.reset_authorized(
            args["operator"], args["reason"], force=bool(args.get("force")), via=str(args.get("via", "api"))
        )
        return True, "kill switch ACTIVE"

    @staticmethod
    def _state(engine: Any, client_id: str) -> str:
        entry = engine.journal.get(client_id)
        return entry.state.value if entry is not None else "not journaled"

    def serve_requests(self) -> None:
        """A job of the trading process: carry out the orders other processes handed over, oldest first."""
        store = self.rt.store
        if not isinstance(store, Store):  # orders are handed over through the journal's table
            return
        for request in store.pending_requests():
            if not store.claim_request(request["id"], REQUEST_TTL_SECONDS):
                continue  # expired (its operator was told it was not carried out) or withdrawn
            done = self.execute(
                request["action"],
                request["args"],
                operator=request["operator"],
                via=request["via"],
                auth=request["auth"],
                reason=request["reason"],
            )
            store.finish_request(request["id"], done.ok, done.result)
