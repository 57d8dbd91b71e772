"""Runs the plugins' periodic jobs on the runtime clock (replay or wall), one thread, in order.

A job that raises is isolated: reported through the runtime and rescheduled. A job that falls
behind (a long replay gap, a stalled process) runs once, not once per missed interval.
``Job.wall_clock`` jobs (write-behind flushes) are timed by the machine's clock.

Due times are kept as epoch seconds and the earliest of them per clock is remembered, so a pass
with nothing due costs two clock reads: a replay asks on every bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tradeguard.core.clock import Clock, WallClock
from tradeguard.models import Job

INF = float("inf")


def _epoch_of(clock: Clock) -> Callable[[], float]:
    """The clock's epoch seconds: its own ``epoch()`` (both built-in clocks have one), else from ``now()``,
    for a clock written before ``epoch`` joined the protocol."""
    epoch = getattr(clock, "epoch", None)
    return epoch if callable(epoch) else (lambda: clock.now().timestamp())


@dataclass
class _Entry:
    job: Job
    plugin: str
    wall: bool
    every: float  # seconds
    due: float  # epoch seconds on the job's clock


class Scheduler:
    def __init__(
        self, clock: Clock, on_error: Callable[[str, str, BaseException], None], wall: Clock | None = None
    ) -> None:
        self._epochs = (_epoch_of(clock), _epoch_of(wall or WallClock()))  # the market clock's, the wall clock's
        self._on_error = on_error
        self._entries: list[_Entry] = []
        self._next = [INF, INF]  # the earliest due time on the market clock, on the wall clock

    def add(self, job: Job, plugin: str = "") -> None:
        if any(e.job.name == job.name for e in self._entries):
            raise ValueError(f"job {job.name!r} is already scheduled")
        now = self._epochs[job.wall_clock]()
        every = job.every.total_seconds()
        self._entries.append(_Entry(job, plugin, job.wall_clock, every, now if job.run_at_start else now + every))
        self._refresh()

    def _refresh(self) -> None:
        self._next = [INF, INF]
        for e in self._entries:
            self._next[e.wall] = min(self._next[e.wall], e.due)

    @property
    def jobs(self) -> list[str]:
        return [e.job.name for e in self._entries]

    def run_due(self, *args: Any) -> list[str]:
        """Run every job that is due now; return their names (in the order they ran)."""
        market, wall = self._epochs[0](), self._epochs[1]()
        if market < self._next[0] and wall < self._next[1]:
            return []
        ran: list[str] = []
        upcoming = [INF, INF]
        for entry in self._entries:
            now = wall if entry.wall else market
            if entry.due <= now:
                try:
                    entry.job.run(*args)
                except Exception as exc:
                    self._on_error(entry.plugin or entry.job.name, f"job:{entry.job.name}", exc)
                ran.append(entry.job.name)
                entry.due += entry.every
                if entry.due <= now:  # fell behind: run again one interval from now, not in a burst
                    entry.due = now + entry.every
            if entry.due < upcoming[entry.wall]:
                upcoming[entry.wall] = entry.due
        self._next = upcoming
        return ran
