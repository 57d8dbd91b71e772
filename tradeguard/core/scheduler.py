"""Runs the plugins' periodic jobs on the runtime clock (replay or wall), one thread, in order.

A job that raises is isolated: reported through the runtime and rescheduled. A job that falls
behind (a long replay gap, a stalled process) runs once, not once per missed interval.
``Job.wall_clock`` jobs (write-behind flushes) are timed by the machine's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tradeguard.core.clock import Clock, WallClock
from tradeguard.models import Job


@dataclass
class _Entry:
    job: Job
    plugin: str
    due: datetime


class Scheduler:
    def __init__(self, clock: Clock, on_error: Callable[[str, str, BaseException], None],
                 wall: Clock | None = None) -> None:  # fmt: skip
        self._clock = clock
        self._wall = wall or WallClock()
        self._on_error = on_error
        self._entries: list[_Entry] = []

    def _now(self, job: Job) -> datetime:
        return (self._wall if job.wall_clock else self._clock).now()

    def add(self, job: Job, plugin: str = "") -> None:
        now = self._now(job)
        if any(e.job.name == job.name for e in self._entries):
            raise ValueError(f"job {job.name!r} is already scheduled")
        self._entries.append(_Entry(job, plugin, now if job.run_at_start else now + job.every))

    @property
    def jobs(self) -> list[str]:
        return [e.job.name for e in self._entries]

    def run_due(self, *args: Any) -> list[str]:
        """Run every job that is due now; return their names (in the order they ran)."""
        market, wall = self._clock.now(), self._wall.now()
        ran: list[str] = []
        for entry in self._entries:
            now = wall if entry.job.wall_clock else market
            if entry.due > now:
                continue
            try:
                entry.job.run(*args)
            except Exception as exc:
                self._on_error(entry.plugin or entry.job.name, f"job:{entry.job.name}", exc)
            ran.append(entry.job.name)
            entry.due += entry.job.every
            if entry.due <= now:  # fell behind: run again one interval from now, not in a burst
                entry.due = now + entry.job.every
        return ran
