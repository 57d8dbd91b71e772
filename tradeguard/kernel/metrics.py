"""The metrics service: one prometheus-client registry per runtime, fixed names for the base set.

Plugins get their own series through :meth:`Metrics.counter` / :meth:`gauge` /
:meth:`histogram` (get-or-create, so two plugins asking for the same name share it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tradeguard import reasons

M = TypeVar("M", Counter, Gauge, Histogram)

#: Latency buckets (seconds) from 10 µs to 10 s: a decision is µs, an order_send round trip is ms.
LATENCY_BUCKETS = (
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Children(dict[tuple[str, ...], Any]):
    """A labelled series' children, looked up once per label values: ``labels()`` validates, converts
    and locks on every call, which per-bar jobs pay for nothing. ``children[("EURUSD",)].set(x)``."""

    def __init__(self, series: Counter | Gauge | Histogram) -> None:
        super().__init__()
        self.series = series

    def __missing__(self, values: tuple[str, ...]) -> Any:
        child = self[values] = self.series.labels(*values)
        return child


class Readings(dict[tuple[str, ...], float]):
    """The last reading per label values, which a labelled gauge reports when scraped.

    A job that re-reads a figure every pass (a quote's age, a spread) stores a float; the gauge's
    child, made once per label values, reads it back at scrape time, instead of a locked update per pass.
    """

    def __init__(self, gauge: Gauge) -> None:
        super().__init__()
        self._children = Children(gauge)

    def __setitem__(self, values: tuple[str, ...], reading: float) -> None:
        if values not in self:
            self._children[values].set_function(lambda: self[values])
        super().__setitem__(values, reading)


#: the pipeline stages a signal can be rejected at (``Decision.stage``)
DECISION_STAGES = ("validate", "score", "targets", "size", "risk", "execution")


def seed(counter: Counter, label_sets: Sequence[tuple[str, ...]]) -> Counter:
    """Create ``counter``'s children for ``label_sets`` at 0, so that each series exists before its first count."""
    for values in label_sets:
        counter.labels(*values)
    return counter


def on_scrape(gauge: Gauge, read: Callable[[], float]) -> Gauge:
    """``gauge`` reports ``read()`` when scraped: for figures a plugin already keeps (the last snapshot)."""
    gauge.set_function(read)
    return gauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._series: dict[str, Counter | Gauge | Histogram] = {}
        self.risk_rejections = self.counter(
            "tradeguard_risk_rejections_total",
            "Rejection reasons of refused signals and orders, by code (qualifier in its own label)",
            ("reason", "qualifier"),
        )
        self.decisions = self.counter(
            "tradeguard_decisions_total",
            "Pipeline decisions by outcome and the stage that decided",
            ("outcome", "stage"),
        )
        self.plugin_errors = self.counter(
            "tradeguard_plugin_errors_total",
            "Exceptions raised by plugins, by plugin and hook",
            ("plugin", "hook"),
        )
        self.kill_switch_active = self.gauge(
            "tradeguard_kill_switch_active", "1 while the kill switch is not ACTIVE (REDUCE_ONLY or HALTED)"
        )
        # every known label set exists at 0 from start-up: a panel or rate() over a counter that has not
        # counted yet would read "no data" on a healthy system
        seed(self.decisions, [("approved", "done")] + [("rejected", stage) for stage in DECISION_STAGES])
        seed(self.risk_rejections, [(code, "") for code in reasons.REASONS])

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return self._get(Counter, name, doc, labels)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return self._get(Gauge, name, doc, labels)

    def histogram(
        self, name: str, doc: str, labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> Histogram:
        return self._get(Histogram, name, doc, labels, buckets=tuple(buckets))

    def series(self, name: str) -> Counter | Gauge | Histogram | None:
        """A series registered under ``name`` (counters without ``_total``), or None."""
        return self._series.get(name.removesuffix("_total"))

    def _get(self, kind: type[M], name: str, doc: str, labels: Sequence[str], **kw: Any) -> M:
        key = name.removesuffix("_total") if kind is Counter else name
        existing = self._series.get(key)
        if existing is not None:
            if not isinstance(existing, kind):
                raise ValueError(f"metric {name!r} already registered as {type(existing).__name__}")
            return existing
        series = kind(name, doc, tuple(labels), registry=self.registry, **kw)
        self._series[key] = series
        return series

    def count_rejection(self, reason: str) -> None:
        code, qualifier = reasons.split(reason)
        self.risk_rejections.labels(code, qualifier).inc()
