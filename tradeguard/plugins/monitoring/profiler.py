"""Performance profiler (PRF): time spent per plugin per hook, so a slow third-party plugin is named.

It switches on the hook runner's timing (a wrapper per implementation: two clock reads per call,
nothing at all when this plugin is off). The figures are exported at scrape time as
``tradeguard_plugin_hook_seconds_total``, ``tradeguard_plugin_hook_calls_total`` and
``tradeguard_plugin_hook_max_seconds`` (labels ``plugin``, ``hook``), and written to the store
so ``tradeguard status`` (another process) can print the slowest ones as a table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field

from tradeguard import PluginSettings, Runtime, WriteBehindPlugin, hookimpl

NAMESPACE = "profiler"


class ProfilerSettings(PluginSettings):
    flush_seconds: float = Field(default=60.0, gt=0, description="how often the table is written to the store")


class _Collector:
    """Reads the live stats when Prometheus scrapes; nothing is copied on the trading thread."""

    def __init__(self, stats: dict[tuple[str, str], Any]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        labels = ["plugin", "hook"]
        seconds = CounterMetricFamily("tradeguard_plugin_hook_seconds", "Time in each plugin's hook", labels=labels)
        calls = CounterMetricFamily("tradeguard_plugin_hook_calls", "Calls of each plugin's hook", labels=labels)
        slowest = GaugeMetricFamily(
            "tradeguard_plugin_hook_max_seconds", "Slowest call of each plugin's hook", labels=labels
        )
        for (plugin, hook), s in list(self.stats.items()):
            if s.calls:
                seconds.add_metric([plugin, hook], s.total)
                calls.add_metric([plugin, hook], s.calls)
                slowest.add_metric([plugin, hook], s.max)
        yield from (seconds, calls, slowest)


class Profiler(WriteBehindPlugin):
    namespace = NAMESPACE
    settings_model = ProfilerSettings
    stage = 6

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime
        self.stats = runtime.hook_timings()
        runtime.metrics.registry.register(_Collector(self.stats))

    def table(self) -> list[dict[str, Any]]:
        """Every timed (plugin, hook), most total time first."""
        rows = [
            {
                "plugin": plugin,
                "hook": hook,
                "calls": s.calls,
                "total_s": s.total,
                "mean_us": s.total / s.calls * 1e6,
                "max_us": s.max * 1e6,
            }
            for (plugin, hook), s in list(self.stats.items())
            if s.calls
        ]
        return sorted(rows, key=lambda r: r["total_s"], reverse=True)

    def flush(self) -> None:
        """Written every time: the stats move with every hook call, and no hook announces that."""
        self.save()

    def save(self) -> None:
        self.rt.store.kv_put(NAMESPACE, "table", self.table())
