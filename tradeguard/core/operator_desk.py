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

if TYPE_CHECKING:
    from tradeguard.core.runtime import Runtime

log = logging.getLogger("tradeguard.operator")
ACTIONS = ("flatten", "close", "modify")


class OperatorDesk:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def execute(self, action: str, args: dict[str, Any], *, operator: str, via: str, auth: str = "",
                reason: str = "") -> OperatorAction:  # fmt: skip
        """Carry out one operator order now (on the thread that owns the broker); audited and alerted."""
        engine = self.rt.execution
        target = str(args.get("ticket", ""))
        try:
            if action not in ACTIONS:
                raise TradeguardError(f"unknown operator order {action!r} (one of {', '.join(ACTIONS)})")
            if not hasattr(engine, "flatten_all"):
                raise TradeguardError("no execution engine: nothing to trade through")
            if action == "flatten":
                sent = engine.flatten_all()
                result = f"cancelled and closed: {', '.join(sent) or 'nothing was open'}"
            elif action == "close":
                result = f"close sent as {engine.close_position(int(args['ticket']), args.get('volume'))}"
            else:
                done = engine.modify_order(int(args["ticket"]), args.get("stop_loss"), args.get("take_profit"))
                result = "stops changed" if done else "the broker refused the change"
            ok = action != "modify" or result == "stops changed"
        except (TradeguardError, KeyError, ValueError) as exc:
            ok, result = False, f"refused: {exc}"
        done = OperatorAction(time=self.rt.clock.now(), action=action, operator=operator, via=via, auth=auth,  # type: ignore[arg-type]
                              reason=reason, target=target, ok=ok, result=result)  # fmt: skip
        self.rt.notify("on_operator_action", action=done)
        severity = Severity.CRITICAL if action == "flatten" else Severity.WARNING
        self.rt.alert(channel=AlertChannel.RISK, severity=severity, module="operator", error_code=f"operator_{action}",
                      message=f"{action}{' ' + target if target else ''} by {operator} via {via} ({reason}): {result}",
                      operator=operator, via=via, ok=ok)  # fmt: skip
        log.warning("operator order", extra={"action": action, "operator": operator, "via": via, "ok": ok})
        return done

    def serve_requests(self) -> None:
        """A job of the trading process: carry out the orders other processes handed over, oldest first."""
        store = self.rt.store
        if not hasattr(store, "pending_requests"):
            return
        for request in store.pending_requests():
            done = self.execute(request["action"], request["args"], operator=request["operator"],
                                via=request["via"], auth=request["auth"], reason=request["reason"])  # fmt: skip
            store.finish_request(request["id"], done.ok, done.result)
