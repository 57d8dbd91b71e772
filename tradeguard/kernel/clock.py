"""The runtime clock: wall time in paper/live, replayed time in replay; always UTC-aware.

Everything that asks "what time is it" (staleness, cooldowns, schedules, daily limits) asks
``runtime.clock.now()``, so the same code paths run in replay and live.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    #: True when the clock keeps a market's time (a replay, a simulated market), not the machine's
    simulated: bool

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def epoch(self) -> float:
        """The current time in epoch seconds: ``now().timestamp()``, for the scheduler's every-bar question."""
        ...


class WallClock:
    """The machine's clock, in UTC."""

    simulated = False

    def now(self) -> datetime:
        return datetime.now(UTC)

    def epoch(self) -> float:
        return time.time()


class ReplayClock:
    """A clock moved by the replay (or a test); it never goes backwards."""

    simulated = True

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)

    def now(self) -> datetime:
        return self._now

    def epoch(self) -> float:
        return self._now.timestamp()

    def set(self, when: datetime) -> None:
        when = _aware(when)
        if when < self._now:
            raise ValueError(f"clock cannot go back from {self._now.isoformat()} to {when.isoformat()}")
        self._now = when

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)


def server_midnight(now_utc: datetime, offset: timedelta) -> datetime:
    """The UTC instant of the current broker-server day's midnight (``offset``: server time - UTC).

    Daily limits count from here: the broker's day, not UTC's."""
    server_now = now_utc + offset
    return server_now.replace(hour=0, minute=0, second=0, microsecond=0) - offset


def backoff(attempts: int, first: float, cap: float = 300.0) -> timedelta:
    """The pause after the ``attempts``-th failure in a row: ``first`` seconds, doubling, at most ``cap``."""
    return timedelta(seconds=min(cap, first * 2 ** max(0, attempts - 1)))


def _aware(when: datetime) -> datetime:
    if when.tzinfo is UTC:  # already what it must be (the replay sets the clock on every bar)
        return when
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when.isoformat()}: tradeguard keeps time in UTC-aware datetimes")
    return when.astimezone(UTC)
