"""What the runtime does when its store stops taking writes (disk full, I/O error, read-only file).

Fail closed, loudly: the first failed commit holds the pipeline at once (every signal refused; the
order that met it was refused before it reached the broker, its intent could not be journaled). On
the trading thread, within a second, the kill switch latches (``triggers.store_failure``: REDUCE_ONLY
or HALTED) and a CRITICAL alert goes out (the alert manager delivers it directly when its outbox
cannot be written either). Every second a small write probes the file. Once one succeeds, what the
broker did meanwhile (stops, targets, closes at the terminal) is imported before the hold is lifted;
the latch stays until an operator resets it, like every latch.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tradeguard.models import AlertChannel, Severity
from tradeguard.store.sqlite import Store, StoreError, StoreUnwritable

if TYPE_CHECKING:
    from tradeguard.kernel.runtime import Runtime

log = logging.getLogger("tradeguard.store")
HOLD = "store_unwritable"


class StoreWatch:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.down: str | None = None  # the failure the runtime has reacted to (latched, alerted)
        self._noted: str | None = None  # a failure another thread met, until check() has reacted to it
        self._told: set[tuple[str, str]] = set()  # (plugin, hook) whose failed writes were logged in this outage

    def failed(self, problem: StoreUnwritable) -> None:
        """The store's ``on_failure``: called from the thread whose write failed, so it only holds the pipeline and
        notes the failure; the note stays until the trading thread has reacted, whatever commits in between."""
        self._noted = str(problem)
        self.rt.hold(HOLD)
        log.critical("store cannot be written: openings held", extra={"error": str(problem)})

    def plugin_failed(self, plugin: str, hook: str, problem: StoreUnwritable) -> None:
        """A plugin's write met the failure: logged once per plugin and hook while it lasts, not on every try."""
        if (plugin, hook) not in self._told:
            self._told.add((plugin, hook))
            log.warning(
                "plugin could not write to the store", extra={"plugin": plugin, "hook": hook, "error": str(problem)}
            )

    def check(self) -> None:
        """A job on the trading thread, each second: react to a failure, probe the file, recover."""
        store = self.rt.store
        failure = store.failure if isinstance(store, Store) else None  # memory cannot fill up
        noted, self._noted = self._noted, None
        if self.down is None and failure is None and noted is None:
            return
        if self.down is None:
            self._react(failure or noted or "")
            return
        try:  # the probe is the pending work itself: a small write that fits proves nothing about a flush
            store.kv_put("store", "probe", self.rt.clock.now().isoformat())
            store.flush()
            imported = self._catch_up()
        except StoreError as exc:
            log.warning("store still cannot be written", extra={"error": str(exc)})
            return
        was, self.down = self.down, None
        self._told.clear()
        self.rt.release(HOLD)
        self.rt.alert(
            channel=AlertChannel.SYSTEM,
            severity=Severity.WARNING,
            module="store",
            error_code="store_recovered",
            message=f"the store takes writes again ({imported} broker deals imported since: {was}); "
            "openings resume when the kill switch is reset",
        )

    def _react(self, why: str) -> None:
        self.down = why
        self.rt.hold(HOLD)
        self.rt.request_halt("store_failure", f"the journal cannot be written: {why}", source="store")

    def _catch_up(self) -> int:
        """Import the broker's deals of the outage (and read every disagreeing position by id)."""
        execution = self.rt.execution
        if execution.journal is None:  # paper execution: no broker to catch up with
            return 0
        return len(execution.poll_fills(heal=True))
