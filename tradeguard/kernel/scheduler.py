"""Runs the plugins' periodic jobs on the runtime clock (replay or wall), one thread, in order.

A job that raises is isolated: reported through the runtime and rescheduled. A job that falls
behind (a long replay gap, a stalled process) runs once, not once per missed interval.
``Job.wall_clock`` jobs (write-behind flushes) are timed by the machine's clock.

Each job is timed by one of two lanes, the runtime's clock or the wall's; jobs run in the order they were
added. Due times are kept as epoch seconds and each lane remembers its earliest, so a pass with nothing
due costs two clock reads: a replay asks on every bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tradeguard.kernel.clock import Clock, WallClock
from tradeguard.models import Job

INF = float("inf")


@dataclass
class _Lane:
    """One clock's jobs: the clock, and the earliest time one of its jobs is due."""

    clock: Clock
    next_due: float = INF
    now: float = 0.0  # read once per pass


@dataclass
class _Entry:
    job: Job
    plugin: str
    lane: _Lane
    every: float  # seconds
    due: float  # epoch seconds on its lane's clock


class Scheduler:
    def __init__(
        self, clock: Clock, on_error: Callable[[str, str, BaseException], None], wall: Clock | None = None
    ) -> None:
        self._market = _Lane(clock)  # the runtime's clock: the market's in a replay
        self._wall = _Lane(wall or WallClock())  # the machine's: write-behind flushes, the latch's refresh
        self._on_error = on_error
        self._entries: list[_Entry] = []  # in the order they were added: the order they run in

    def add(self, job: Job, plugin: str = "") -> None:
        if job.name in self.jobs:
            raise ValueError(f"job {job.name!r} is already scheduled")
        lane = self._wall if job.wall_clock else self._market
        now = lane.clock.epoch()
        every = job.every.total_seconds()
        entry = _Entry(job, plugin, lane, every, now if job.run_at_start else now + every)
        self._entries.append(entry)
        lane.next_due = min(lane.next_due, entry.due)

    @property
    def jobs(self) -> list[str]:
        return [e.job.name for e in self._entries]

    def run_due(self, *args: Any) -> list[str]:
        """Run every job that is due now; return their names (in the order they ran)."""
        market, wall = self._market, self._wall
        market.now, wall.now = market.clock.epoch(), wall.clock.epoch()
        if market.now < market.next_due and wall.now < wall.next_due:
            return []
        ran: list[str] = []
        market.next_due = wall.next_due = INF
        for entry in self._entries:
            lane = entry.lane
            if entry.due <= lane.now:
                try:
                    entry.job.run(*args)
                except Exception as exc:
                    self._on_error(entry.plugin or entry.job.name, f"job:{entry.job.name}", exc)
                ran.append(entry.job.name)
                entry.due += entry.every
                if entry.due <= lane.now:  # fell behind: run again one interval from now, not in a burst
                    entry.due = lane.now + entry.every
            lane.next_due = min(lane.next_due, entry.due)
        return ran
