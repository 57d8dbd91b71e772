"""Latency metrics (LAT): how long each step took, as Prometheus histograms, from real events.

* signal -> decision: the signal's creation to its decision (runtime clock: strategy and queue time);
* decision -> send: the engine's own measure, from ``submit_order`` to ``order_send``
  (``tradeguard_decision_to_send_seconds``, recorded by the execution engine);
* ``order_send`` round trip: ``tradeguard_execution_latency_seconds`` (the execution engine);
* fill -> journal: the broker's deal time to the moment the deal was journaled (runtime clock).
"""

from __future__ import annotations

from typing import Any

from tradeguard import Decision, Fill, Signal, hookimpl

BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)


class LatencyMetrics:
    """No settings of its own: on when the plugin is enabled."""

    stage = 6

    @hookimpl
    def tradeguard_startup(self, runtime: Any) -> None:
        m = runtime.metrics
        self._decide = m.histogram("tradeguard_signal_to_decision_seconds", "Signal creation to decision",
                                   buckets=BUCKETS)  # fmt: skip
        self._journal = m.histogram("tradeguard_fill_to_journal_seconds", "Broker deal time to journal",
                                    buckets=BUCKETS)  # fmt: skip

    @hookimpl
    def on_decision(self, decision: Decision, signal: Signal, runtime: Any) -> None:
        self._decide.observe(max(0.0, (decision.decided_at - signal.created_at).total_seconds()))

    @hookimpl
    def on_fill(self, fill: Fill, runtime: Any) -> None:
        self._journal.observe(max(0.0, (runtime.clock.now() - fill.time).total_seconds()))
