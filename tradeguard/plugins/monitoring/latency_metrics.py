"""Latency metrics (LAT): how long each step took, as Prometheus histograms, from real events.

* signal -> decision: the signal's creation to its decision (runtime clock: strategy and queue time);
* decision -> send: the engine's own measure, from ``submit_order`` to ``order_send``
  (``tradeguard_decision_to_send_seconds``, recorded by the execution engine);
* ``order_send`` round trip: ``tradeguard_execution_latency_seconds`` (the execution engine);
* fill -> journal: the broker's deal time to the moment the deal was journaled (runtime clock).

These four histograms are also written to the store as bucket counts, every five minutes (when they changed)
and at shutdown, so ``tradeguard report`` can draw them after
the process is gone. On a simulated clock (a replay) the two runtime-clock intervals are the market's time, not
latencies: they are not observed, and the store says so for the report.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tradeguard import Decision, Fill, Job, Runtime, Signal, hookimpl

BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
NAMESPACE = "latency_metrics"
SAVE_EVERY = timedelta(minutes=5)
#: the histograms the report draws: this plugin's and the execution engine's
SAVED = (
    "tradeguard_signal_to_decision_seconds",
    "tradeguard_decision_to_send_seconds",
    "tradeguard_execution_latency_seconds",
    "tradeguard_fill_to_journal_seconds",
)


class LatencyMetrics:
    """No settings of its own: on when the plugin is enabled."""

    stage = 6

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._saved = 0.0
        self._market_clock = runtime.clock.simulated
        runtime.store.kv_put(NAMESPACE, "market_clock", self._market_clock)
        m = runtime.metrics
        self._decide = m.histogram(
            "tradeguard_signal_to_decision_seconds", "Signal creation to decision", buckets=BUCKETS
        )
        self._journal = m.histogram(
            "tradeguard_fill_to_journal_seconds", "Broker deal time to journal", buckets=BUCKETS
        )

    @hookimpl
    def on_decision(self, decision: Decision, signal: Signal, runtime: Runtime) -> None:
        if self._market_clock:
            return
        self._decide.observe(max(0.0, (decision.decided_at - signal.created_at).total_seconds()))

    @hookimpl
    def on_fill(self, fill: Fill, runtime: Runtime) -> None:
        if self._market_clock:
            return
        self._journal.observe(max(0.0, (runtime.clock.now() - fill.time).total_seconds()))

    @hookimpl
    def periodic_jobs(self, runtime: Runtime) -> list[Job]:
        return [Job(name="latency_metrics.save", every=SAVE_EVERY, run=lambda rt: self.save(), wall_clock=True)]

    @hookimpl
    def tradeguard_shutdown(self, runtime: Runtime) -> None:
        self.save()

    def save(self) -> None:
        """Write the histograms when they changed since the last save (a replay calls this every bar)."""
        metrics = self.rt.metrics
        series = [metrics.series(name) for name in SAVED]
        found = histograms([h for h in series if h is not None])
        seen = sum(h["count"] for h in found.values())
        if seen != self._saved:
            self.rt.store.kv_put(NAMESPACE, "histograms", found)
            self._saved = seen


def histograms(series: list[Any]) -> dict[str, dict[str, Any]]:
    """Each histogram summed over its labels: upper bounds, per-bucket counts, count, sum."""
    out: dict[str, dict[str, Any]] = {}
    for family in (f for h in series for f in h.collect()):
        cumulative: dict[float, float] = {}
        total = count = 0.0
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                cumulative[bound] = cumulative.get(bound, 0.0) + sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
        if not count:
            continue
        bounds = sorted(cumulative)
        counts = [cumulative[b] - (cumulative[bounds[i - 1]] if i else 0.0) for i, b in enumerate(bounds)]
        out[family.name] = {
            "bounds": bounds,
            "counts": counts,
            "count": count,
            "sum": total,
            "help": family.documentation,
        }
    return out
