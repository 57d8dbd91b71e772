"""The one gate every signal passes: validate -> score -> targets -> size -> risk -> execution.

Fail closed: a plugin that raises, or answers with something the contract does not allow, in any
step rejects the signal with ``plugin_error:<plugin>``. Every pass ends in a ``Decision`` that
records every reason and which plugin gave it, and is journaled through ``runtime.store``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from tradeguard import reasons
from tradeguard.kernel.hooks import HookRunner
from tradeguard.kernel.logging import bind_signal, unbind_signal
from tradeguard.models import (
    Decision,
    NettingEffect,
    OrderIntent,
    OrderType,
    Reason,
    Rejected,
    Score,
    Signal,
    Targets,
)

if TYPE_CHECKING:
    from tradeguard.ports import Runtime

log = logging.getLogger("tradeguard.pipeline")


class ExecutionPort(Protocol):
    """What the pipeline hands approved orders to (the execution engine implements it)."""

    def submit_order(self, order: OrderIntent) -> str:
        """Journal and send ``order``; return its client id. Raising means the order was not accepted."""
        ...


def plugin_error(plugin: str, hook: str, detail: str) -> Reason:
    return Reason(code=f"plugin_error:{plugin}", message=f"plugin_error: {plugin} in {hook}: {detail}", plugin=plugin)


def _error_reason(plugin: str, hook: str, exc: BaseException) -> Reason:
    return plugin_error(plugin, hook, f"raised {type(exc).__name__}: {exc}")


def _as_reason(item: Any, plugin: str) -> Reason:
    if isinstance(item, Reason):
        reason = item if item.plugin else item.model_copy(update={"plugin": plugin})
    elif isinstance(item, str):
        reason = Reason(code=item, message=item, plugin=plugin)
    elif isinstance(item, Rejected):
        reason = item.as_reason(plugin)
    else:
        return plugin_error(plugin, "validate_signal", f"returned {type(item).__name__}, not a Reason")
    if not reasons.is_known(reason.code):
        return Reason(
            code=f"unknown_reason:{plugin}",
            message=f"unknown_reason: {plugin} returned unregistered code {reason.code!r}: {reason.message}",
            plugin=plugin,
        )
    return reason


def score_bucket(score: float | None, buckets: int) -> str:
    """The equal-width bucket label of a combined score, e.g. ``"0.60-0.80"``; ``"none"`` when unscored.

    One labelling for everything that groups decisions by score (insights memory, calibration).
    """
    if score is None:
        return "none"
    i = min(int(score * buckets), buckets - 1)
    return f"{i / buckets:.2f}-{(i + 1) / buckets:.2f}"


class Pipeline:
    def __init__(self, runtime: Runtime, hooks: HookRunner) -> None:
        self.runtime = runtime
        self.hooks = hooks
        self._decision_counters: dict[tuple[bool, str], Any] = {}

    @property
    def _observers(self) -> bool:
        return bool(self.hooks.plans["on_decision"])

    # -- the pass ------------------------------------------------------------------------------

    def decide(self, signal: Signal) -> Decision:
        """Run ``signal`` through every step; hand an approved order to execution; journal the result."""
        token = bind_signal(signal.signal_id)
        rt = self.runtime
        try:
            with rt.read_scope():  # a connected broker only: deciding never connects one
                decision = self._decide(signal)
                self._record(decision)
        finally:
            unbind_signal(token)
        if self._observers:
            rt.notify("on_decision", decision=decision, signal=signal)
        return decision

    def _decide(self, signal: Signal) -> Decision:
        rt = self.runtime
        if rt.holds:
            reason = Reason(code="not_aligned", message=f"not_aligned: pipeline held by {', '.join(sorted(rt.holds))}")
            return self._reject(signal, "validate", [reason])
        hooks = self.hooks
        kw = {"signal": signal, "runtime": rt}

        found: list[Reason] = []
        for plugin, result in hooks.collect("validate_signal", **kw):
            if isinstance(result, BaseException):
                found.append(_error_reason(plugin, "validate_signal", result))
            elif isinstance(result, list | tuple):
                found.extend(_as_reason(item, plugin) for item in result)
            else:
                found.append(plugin_error(plugin, "validate_signal", f"returned {type(result).__name__}"))
        if found:
            return self._reject(signal, "validate", found)

        scores, combined, problem = self._score(kw)
        if problem is not None:
            return self._reject(signal, "score", [problem], scores=scores, combined=combined)

        plugin, result = hooks.first("compute_targets", **kw)
        targets: Targets
        if isinstance(result, Targets):
            targets = result
        elif result is None and signal.stop_loss is not None:
            targets = Targets.trusted(stop_loss=signal.stop_loss, take_profit=signal.take_profit, method="signal")
        elif result is None:
            reason = Reason(code="no_targets", message="no_targets: no plugin computed a stop and the signal has none")
            return self._reject(signal, "targets", [reason], scores=scores, combined=combined)
        else:
            return self._reject(
                signal, "targets", [self._refusal(plugin, "compute_targets", result, Targets)], scores, combined
            )

        plugin, result = hooks.first("size_position", signal=signal, targets=targets, runtime=rt)
        if isinstance(result, bool) or not isinstance(result, int | float):
            if result is None:
                reason = Reason(code="no_size", message="no_size: no plugin sized the position")
            else:
                reason = self._refusal(plugin, "size_position", result, float)
            return self._reject(signal, "size", [reason], scores, combined, targets)
        volume = float(result)
        if not (math.isfinite(volume) and volume > 0):
            reason = plugin_error(plugin, "size_position", f"returned volume {volume!r}")
            return self._reject(signal, "size", [reason], scores, combined, targets)

        # on netting an add or a reversal gives the position this order's levels: it always has a stop (Targets
        # requires one), so the position's protection is never deleted by a zero
        effect = self._netting(signal, volume)
        reduces = effect in (NettingEffect.REDUCE, NettingEffect.CLOSE)
        order = OrderIntent.trusted(
            signal_id=signal.signal_id,
            client_id="",
            strategy=signal.strategy,
            symbol=signal.symbol,
            side=signal.side,
            volume=volume,
            order_type=signal.order_type,
            price=signal.price,
            # a reduce keeps the position's levels whatever the order says: it carries none, and reduces only
            stop_loss=None if reduces else targets.stop_loss,
            take_profit=None if reduces else targets.take_profit,
            position_ticket=None,
            reduce_only=reduces,
            created_at=rt.clock.now(),
            netting=effect,
        )  # every part is already validated (volume checked above)
        vetoed = self.veto(order)
        if vetoed is not None:
            return self._reject(signal, "risk", [vetoed], scores, combined, targets, volume, order)

        if rt.has_broker:  # the execution engine reads the broker afresh
            rt.broker.forget_reads()
        try:
            client_id = rt.execution.submit_order(order)
        except Exception as exc:
            log.error("execution refused an approved order", exc_info=True)
            reason = Reason(code="execution_refused", message=f"execution_refused: {type(exc).__name__}: {exc}")
            # an order journaled before the failure (it may have reached the broker) is named by its decision
            return self._reject(
                signal,
                "execution",
                [reason],
                scores,
                combined,
                targets,
                volume,
                order,
                client_id=getattr(exc, "client_id", ""),
            )
        return Decision.trusted(
            signal_id=signal.signal_id,
            approved=True,
            stage="done",
            reasons=(),
            scores=tuple(scores),
            combined_score=combined,
            targets=targets,
            volume=volume,
            order=order,
            client_id=client_id,
            decided_at=rt.clock.now(),
        )

    def _netting(self, signal: Signal, volume: float) -> NettingEffect | None:
        """On a netting account, what a market order of ``volume`` does to the symbol's one position; None on
        hedging, for a pending order (it acts when it fills), or when no broker answers here."""
        rt = self.runtime
        if not rt.has_broker or signal.order_type is not OrderType.MARKET:
            return None
        broker = rt.broker
        if broker.account().hedging:
            return None
        held = broker.positions(signal.symbol)
        if not held:
            return NettingEffect.OPEN
        position = held[0]
        if position.is_buy == (signal.side.value == "buy"):
            return NettingEffect.ADD
        if volume < position.volume - 1e-9:
            return NettingEffect.REDUCE
        return NettingEffect.CLOSE if volume <= position.volume + 1e-9 else NettingEffect.REVERSE

    def veto(self, order: OrderIntent) -> Reason | None:
        """Ask the ``evaluate_risk`` chain about a complete order: None approves, else the first refusal.

        Also used for orders that do not come from a signal (closes, flatten), so the kill switch
        sees every order. Fail closed: a raising or misbehaving veto is a refusal.
        """
        plugin, result = self.hooks.first("evaluate_risk", order=order, runtime=self.runtime)
        return None if result is None else self._refusal(plugin, "evaluate_risk", result, type(None))

    # -- steps ---------------------------------------------------------------------------------

    def _score(self, kw: dict[str, Any]) -> tuple[list[Score], float | None, Reason | None]:
        scores: list[Score] = []
        for plugin, result in self.hooks.collect("score_signal", **kw):
            if isinstance(result, Score):
                scores.append(result)
            elif isinstance(result, float | int) and not isinstance(result, bool) and 0.0 <= result <= 1.0:
                scores.append(Score(name=plugin, value=float(result)))
            elif isinstance(result, BaseException):
                return scores, None, _error_reason(plugin, "score_signal", result)
            else:
                return scores, None, plugin_error(plugin, "score_signal", f"returned {result!r}, not a Score")
        if not scores:
            return scores, None, None
        cfg = self.runtime.settings.pipeline
        weights = [cfg.score_weights.get(s.name, 1.0) for s in scores]
        total = sum(weights)
        combined = sum(w * s.value for w, s in zip(weights, scores, strict=True)) / total if total else 0.0
        if combined < cfg.min_score:
            msg = f"score_below_minimum: combined {combined:.3f} < minimum {cfg.min_score:.3f}"
            return scores, combined, Reason(code="score_below_minimum", message=msg)
        return scores, combined, None

    def _refusal(self, plugin: str, hook: str, result: Any, expected: type) -> Reason:
        if isinstance(result, Rejected):
            return _as_reason(result, plugin)
        if isinstance(result, BaseException):
            return _error_reason(plugin, hook, result)
        return plugin_error(plugin, hook, f"returned {type(result).__name__}, expected {expected.__name__} or Rejected")

    def _reject(
        self,
        signal: Signal,
        stage: str,
        found: Sequence[Reason],
        scores: Sequence[Score] = (),
        combined: float | None = None,
        targets: Targets | None = None,
        volume: float | None = None,
        order: OrderIntent | None = None,
        client_id: str = "",
    ) -> Decision:
        return Decision.trusted(
            signal_id=signal.signal_id,
            approved=False,
            stage=stage,
            reasons=tuple(found),
            scores=tuple(scores),
            combined_score=combined,
            targets=targets,
            volume=volume,
            order=order,
            client_id=client_id,
            decided_at=self.runtime.clock.now(),
        )

    def _record(self, decision: Decision) -> None:
        rt = self.runtime
        key = (decision.approved, decision.stage)
        counter = self._decision_counters.get(key)
        if counter is None:
            counter = rt.metrics.decisions.labels("approved" if decision.approved else "rejected", decision.stage)
            self._decision_counters[key] = counter
        counter.inc()
        for reason in decision.reasons:
            rt.metrics.count_rejection(reason.code)
        rt.store.record_decision(decision)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "signal approved" if decision.approved else "signal rejected",
                extra={
                    "stage": decision.stage,
                    "reasons": [r.code for r in decision.reasons],
                    "client_id": decision.client_id,
                },
            )
