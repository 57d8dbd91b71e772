"""Broker metrics (MTR): how the broker treats our orders, from real order events and fills.

* fill ratio: orders filled over orders that reached an outcome (filled, rejected, cancelled, unknown);
* requote and reject rates: over every ``order_send`` (from the engine's retcode counter);
* the retcode distribution (``tradeguard_execution_retcodes_total{retcode}``) and the slippage histogram
  (``tradeguard_slippage_points{symbol}``, deal price vs the price ``order_send`` asked, + worse) belong to the
  engine, the only place that knows the asked price; the slippage histogram has negative buckets, so per
  OpenMetrics it exports buckets and count but no ``_sum``.
"""

from __future__ import annotations

from typing import Any

from tradeguard import OrderEvent, OrderEventKind, hookimpl

OUTCOMES = {OrderEventKind.FILLED, OrderEventKind.REJECTED, OrderEventKind.CANCELLED, OrderEventKind.UNKNOWN}


class BrokerMetrics:
    """No settings of its own: on when the plugin is enabled."""

    stage = 6

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}

    @hookimpl
    def tradeguard_startup(self, runtime: Any) -> None:
        self.rt = runtime
        m = runtime.metrics
        self._ratio = m.gauge("tradeguard_broker_fill_ratio", "Orders filled / orders with an outcome")
        self._requote = m.gauge("tradeguard_broker_requote_rate", "Requotes and price changes / order_send calls")
        self._reject = m.gauge("tradeguard_broker_reject_rate", "Final refusals / order_send calls")

    @hookimpl
    def on_order_event(self, event: OrderEvent, runtime: Any) -> None:
        if event.kind not in OUTCOMES:
            return
        self.outcomes[event.kind.value] = self.outcomes.get(event.kind.value, 0) + 1
        self._ratio.set(self.outcomes.get("filled", 0) / sum(self.outcomes.values()))
        sends = {s.labels["retcode"]: s.value for metric in self.rt.metrics.registry.collect()
                 if metric.name == "tradeguard_execution_retcodes" for s in metric.samples
                 if s.name.endswith("_total")}  # fmt: skip
        total = sum(sends.values())
        if total:
            self._requote.set((sends.get("REQUOTE", 0) + sends.get("PRICE_CHANGED", 0)) / total)
            self._reject.set(sum(v for k, v in sends.items() if k in ("REJECT", "NO_MONEY", "INVALID")) / total)
