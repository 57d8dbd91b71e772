"""Alert manager (the spec's AdvancedAlertManager): dedup, rate limit, routing, durable delivery.

On the trading thread ``on_alert`` only does dictionary work and a queue put: repeats of the same
(module, error_code, symbol) inside ``dedup_seconds`` and CRITICAL alerts of one (module,
error_code) inside ``critical_rate_limit_seconds`` are counted, not sent. When a window ends its
count goes out as one summary, so nothing is dropped silently. A delivery thread writes every
routed alert to the store's outbox *before* sending it, retries with backoff (or the destination's
``retry_after``), dead-letters after ``max_attempts`` and, after a restart, sends what the last
process could not.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from tradeguard import (
    Alert,
    ConfiguredPlugin,
    Job,
    PluginSettings,
    Runtime,
    Severity,
    SQLiteStore,
    StoreUnwritable,
    backoff,
    hookimpl,
)
from tradeguard.plugins.alerting.channels import SEVERITY_RANK, DeliveryError, Destination, routes, send
from tradeguard.plugins.alerting.outbox import Outbox, wall_now

WAKE: dict[str, Any] = {}  # put on the queue at shutdown so the delivery thread stops waiting (by identity)
log = logging.getLogger("tradeguard.alert.manager")


class AlertManagerSettings(PluginSettings):
    dedup_seconds: float = Field(default=300.0, ge=0, description="same module/error/symbol inside this is counted")
    critical_rate_limit_seconds: float = Field(default=30.0, ge=0, description="one CRITICAL per type per window")
    max_attempts: int = Field(default=8, ge=1, description="delivery tries before a row is dead-lettered")
    retry_seconds: float = Field(default=5.0, gt=0, description="first retry pause; doubles, at most 300 s")
    poll_seconds: float = Field(default=1.0, gt=0, description="how often the delivery thread looks at the outbox")
    destinations: dict[str, Destination] = Field(default_factory=dict, description="name -> destination")


@dataclass
class _Window:
    opened: datetime
    length: timedelta
    suppressed: int = 0
    worst: Severity = Severity.INFO
    last: Alert | None = None


class AlertManager(ConfiguredPlugin):
    settings_model = AlertManagerSettings
    stage = 3

    def __init__(self) -> None:
        super().__init__()
        self.queue: queue.SimpleQueue[Alert | dict[str, Any]] = queue.SimpleQueue()
        self.windows: dict[tuple[str, ...], _Window] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unrecorded: set[int] = set()  # outbox rows delivered whose 'sent' the store could not take yet

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        if not isinstance(runtime.store, SQLiteStore):
            raise ValueError("alert_manager needs the SQLite store: its outbox must survive a restart")
        self.rt = runtime
        self.outbox = Outbox(runtime.store)
        self._dedup = timedelta(seconds=self.cfg.dedup_seconds)
        self._rate = timedelta(seconds=self.cfg.critical_rate_limit_seconds)
        counter = runtime.metrics.counter(
            "tradeguard_alerts_total",
            "Alerts by destination and outcome (sent, failed, dead; suppressed under destination '-')",
            ("destination", "outcome"),
        )
        self._count = counter
        self._suppressed = counter.labels("-", "suppressed")
        self._thread = threading.Thread(target=self._run, name="tradeguard-alerts", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ trading thread ----------

    @hookimpl
    def on_alert(self, alert: Alert, runtime: Runtime) -> None:
        now = alert.time
        if self._held(("dedup", *alert.dedup_key), self._dedup, alert, now):
            return
        if alert.severity is Severity.CRITICAL and self._held(
            ("rate", alert.module, alert.error_code), self._rate, alert, now
        ):
            return
        self.queue.put(alert)

    def _held(self, key: tuple[str, ...], length: timedelta, alert: Alert, now: datetime) -> bool:
        """Open a window for ``key`` (False: send) or count ``alert`` into the open one (True: held)."""
        window = self.windows.get(key)
        if window is not None and now - window.opened < window.length:
            window.suppressed += 1
            window.last = alert
            if SEVERITY_RANK[alert.severity] > SEVERITY_RANK[window.worst]:
                window.worst = alert.severity
            self._suppressed.inc()
            return True
        if window is not None:
            self._summarise(key, window)
        if length:
            self.windows[key] = _Window(opened=now, length=length)
        return False

    def _summarise(self, key: tuple[str, ...], window: _Window) -> None:
        if not window.suppressed or window.last is None:
            return
        last = window.last
        self.queue.put(
            {
                "time": last.time.isoformat(),
                "channel": last.channel.value,
                "severity": window.worst.value,
                "module": last.module,
                "error_code": last.error_code,
                "symbol": last.symbol if key[0] == "dedup" else "",
                "message": f"{window.suppressed} more {last.error_code} alert(s) held back by the "
                f"{'dedup' if key[0] == 'dedup' else 'rate limit'} window since {window.opened:%H:%M:%S}; "
                f"last: {last.message}",
                "context": {"suppressed": window.suppressed, "summary": True},
            }
        )

    def close_windows(self, now: datetime) -> None:
        """Send the summaries of every window that has ended (a periodic job, on the runtime clock)."""
        for key, window in list(self.windows.items()):
            if now - window.opened >= window.length:
                del self.windows[key]
                self._summarise(key, window)

    @hookimpl
    def periodic_jobs(self, runtime: Runtime) -> list[Job]:
        every = timedelta(seconds=max(1.0, min(self.cfg.dedup_seconds, self.cfg.critical_rate_limit_seconds) / 3))
        return [Job(name="alerting.summaries", every=every, run=lambda rt: self.close_windows(rt.clock.now()))]

    # ------------------------------------------------------------------ delivery thread ---------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._take(block=True)
                self.deliver_due()
            except Exception:  # the thread must outlive any one failure; the rows stay in the outbox
                log.exception("alert delivery pass failed")

    def _take(self, block: bool) -> None:
        """Move queued alerts into the outbox, one row per destination that wants them."""
        try:
            item = self.queue.get(timeout=self.cfg.poll_seconds) if block else self.queue.get_nowait()
        except queue.Empty:
            return
        batch = [item]
        while True:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                break
        now = wall_now()
        for it in batch:
            if it is WAKE:
                continue
            record = it.model_dump(mode="json") if isinstance(it, Alert) else it
            names = [name for name, dest in self.cfg.destinations.items() if routes(dest, record)]
            if not names:
                continue
            try:
                self.outbox.add(names, record, now)
            except StoreUnwritable as exc:  # the outbox cannot hold it: straight to the destinations, once
                log.critical("alert outbox cannot be written; delivering directly", extra={"error": str(exc)})
                self._send_directly(names, record)

    def _send_directly(self, names: list[str], record: dict[str, Any]) -> None:
        """One attempt per destination, without the outbox (the store takes no writes): better once than never."""
        for name in names:
            try:
                send(self.cfg.destinations[name], record)
                self._count.labels(name, "sent").inc()
            except DeliveryError as exc:
                self._count.labels(name, "failed").inc()
                log.error(
                    "alert not delivered",
                    extra={"destination": name, "error": str(exc), "error_code": record.get("error_code")},
                )

    def deliver_due(self) -> int:
        """Try every outbox row whose time has come; return how many were sent."""
        sent = 0
        for row_id in sorted(self._unrecorded):  # sent while the store took no writes: record it, never resend
            self.outbox.sent(row_id)
            self._unrecorded.discard(row_id)
        for row_id, name, record, attempts in self.outbox.due(wall_now()):
            dest = self.cfg.destinations.get(name)
            if dest is None:
                self.outbox.failed(row_id, f"destination {name!r} is no longer configured", None)
                self._count.labels(name, "dead").inc()
                continue
            try:
                send(dest, record)
            except DeliveryError as exc:
                tries = attempts + 1
                dead = tries >= self.cfg.max_attempts
                retry_at = (
                    None
                    if dead
                    else wall_now()
                    + (
                        timedelta(seconds=exc.retry_after)
                        if exc.retry_after is not None
                        else backoff(tries, self.cfg.retry_seconds)
                    )
                )
                self.outbox.failed(row_id, str(exc), retry_at)
                self._count.labels(name, "dead" if dead else "failed").inc()
                if dead:
                    log.error(
                        "alert dead-lettered",
                        extra={"destination": name, "error": str(exc), "error_code": record.get("error_code")},
                    )
                continue
            self._count.labels(name, "sent").inc()
            sent += 1
            try:
                self.outbox.sent(row_id)
            except StoreUnwritable:
                self._unrecorded.add(row_id)
                raise
        return sent

    @hookimpl
    def tradeguard_shutdown(self, runtime: Runtime) -> None:
        self._stop.set()
        self.queue.put(WAKE)  # the delivery thread may be waiting on the queue: wake it now
        if self._thread is not None:
            self._thread.join(timeout=self.cfg.poll_seconds + 30)
        self.close_windows(datetime.max.replace(tzinfo=runtime.clock.now().tzinfo))
        self._take(block=False)
        self.deliver_due()
