"""Broker metrics (MTR): how the broker treats our orders, from real order events and the engine's retcode counter.

* fill ratio: orders filled over orders that reached an outcome (filled, rejected, cancelled, unknown);
* requote and reject rates: over every ``order_send`` (from the engine's retcode counter);
* all three are computed when Prometheus scrapes, so the trading thread only counts outcomes;
* the retcode distribution (``tradeguard_execution_retcodes_total{retcode}``) and the slippage histogram
  (``tradeguard_slippage_points{symbol}``, deal price vs the price ``order_send`` asked, + worse) belong to the
  engine, the only place that knows the asked price; the slippage histogram has negative buckets, so per
  OpenMetrics it exports buckets and count but no ``_sum``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tradeguard import OrderEvent, OrderState, Runtime, hookimpl

OUTCOMES = {OrderState.FILLED, OrderState.REJECTED, OrderState.CANCELLED, OrderState.UNKNOWN}


REQUOTES = ("REQUOTE", "PRICE_CHANGED")
REFUSALS = ("REJECT", "NO_MONEY", "INVALID")


class BrokerMetrics:
    """No settings of its own: on when the plugin is enabled."""

    stage = 6

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        # get-or-create: the engine's own counter when it is loaded (it starts first)
        self._retcodes = runtime.metrics.counter(
            "tradeguard_execution_retcodes_total", "order_send outcomes by retcode name", ("retcode",)
        )
        runtime.metrics.registry.register(self)

    @hookimpl
    def on_order_event(self, event: OrderEvent, runtime: Runtime) -> None:
        if event.kind in OUTCOMES:
            self.outcomes[event.kind.value] = self.outcomes.get(event.kind.value, 0) + 1

    def collect(self) -> Iterator[Any]:
        """The ratios, from the counts as they stand at scrape time."""
        from prometheus_client.core import GaugeMetricFamily

        sends = {
            s.labels["retcode"]: s.value
            for metric in self._retcodes.collect()
            for s in metric.samples
            if s.name.endswith("_total")
        }
        total, outcomes = sum(sends.values()), sum(self.outcomes.values())
        rates = {
            "tradeguard_broker_fill_ratio": (
                "Orders filled / orders with an outcome",
                self.outcomes.get("filled", 0) / outcomes if outcomes else 0.0,
            ),
            "tradeguard_broker_requote_rate": (
                "Requotes and price changes / order_send calls",
                sum(sends.get(k, 0) for k in REQUOTES) / total if total else 0.0,
            ),
            "tradeguard_broker_reject_rate": (
                "Final refusals / order_send calls",
                sum(sends.get(k, 0) for k in REFUSALS) / total if total else 0.0,
            ),
        }
        for name, (doc, value) in rates.items():
            yield GaugeMetricFamily(name, doc, value=value)
