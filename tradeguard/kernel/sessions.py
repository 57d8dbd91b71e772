"""Trading sessions by UTC hour: one table that scorers, the insights memory and reports share.

Sessions are half-open hour ranges ``[start, end)`` in UTC; a range may wrap midnight
(``[22, 2]``). Hours no session covers belong to ``"off"``. The first matching session wins,
so an overlap session listed before the two it overlaps takes those hours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

OFF_SESSION = "off"

DEFAULT_SESSIONS: dict[str, list[int]] = {
    "asia": [0, 7],
    "overlap": [12, 16],
    "london": [7, 16],
    "new_york": [12, 21],
}


def session_of(when: datetime, sessions: Mapping[str, Sequence[int]] = DEFAULT_SESSIONS) -> str:
    """The session ``when`` (aware, any zone) falls in, judged on its UTC hour."""
    hour = when.timestamp() // 3600 % 24
    for name, (start, end) in sessions.items():
        inside = start <= hour < end if start <= end else (hour >= start or hour < end)
        if inside:
            return name
    return OFF_SESSION


def check_sessions(value: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    """Validate a sessions table: each value two whole UTC hours in 0..24, start != end."""
    bad = {
        name: hours
        for name, hours in value.items()
        if len(hours) != 2 or not all(0 <= h <= 24 for h in hours) or hours[0] == hours[1] or name == OFF_SESSION
    }
    if bad:
        raise ValueError(f"each session is [start_hour, end_hour) in UTC 0..24, start != end, not named 'off': {bad}")
    return {name: list(hours) for name, hours in value.items()}
