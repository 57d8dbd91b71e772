"""The broker's server clock: which zone it keeps, and conversions between its times and UTC.

MT5 hands out times as the server's wall clock encoded as if it were UTC ("server epochs"). Most brokers keep
New York time + 7 hours, so that server midnight is 17:00 in New York: UTC+3 while the US is on daylight saving
time, UTC+2 otherwise, switching on the US dates. Others keep a European zone, or a fixed offset. A
:class:`ServerZone` is one of those, named as the settings name it:

* a fixed offset: ``"+02:00"``, ``"-05:30"``, ``"UTC"``;
* an IANA zone: ``"Europe/Athens"``;
* ``"new_york_close"``: New York + 7 hours.

Across a switch: a server time in the hour that is skipped (spring) is read with the offset before the switch;
one in the hour that repeats (autumn) as its first occurrence, so every instant round-trips but those of the
repeated hour's second pass, which the server's own clock cannot tell apart (for New York + 7, a Sunday morning,
when markets are shut).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

log = logging.getLogger("tradeguard.settings")

NEW_YORK_CLOSE = "new_york_close"
_NEW_YORK = "America/New_York"
_SHIFT = {NEW_YORK_CLOSE: timedelta(hours=7)}  # zones kept as another zone's wall clock plus a shift
_FIXED = re.compile(r"^(?P<sign>[+-])(?P<hours>\d{1,2}):?(?P<minutes>\d{2})$")


class ServerZone:
    """A server clock's zone (see the module docstring). Immutable; equal when named alike."""

    def __init__(self, name: str) -> None:
        self.name = name.strip()
        self._zone, self._shift = _parse(self.name)
        fixed = self.fixed
        self._fixed_seconds = None if fixed is None else fixed.total_seconds()

    def __repr__(self) -> str:
        return f"ServerZone({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServerZone) and self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def fixed(self) -> timedelta | None:
        """The offset, when it never changes (a fixed-offset zone); None for a zone with daylight saving."""
        if isinstance(self._zone, timezone) and not self._shift:
            return self._zone.utcoffset(None)
        return None

    def offset_at(self, when: datetime) -> timedelta:
        """Server time minus UTC at the instant ``when`` (aware)."""
        local = when.astimezone(self._zone)
        offset = local.utcoffset()
        assert offset is not None  # an aware zone always has one
        return offset + self._shift

    def to_server(self, when: datetime) -> int:
        """The server epoch (its wall clock encoded as UTC) of the instant ``when``, in whole seconds."""
        return int(when.timestamp() + self.offset_at(when).total_seconds())

    def to_utc(self, server_epoch: float) -> datetime:
        """The UTC instant a server epoch names."""
        if self._fixed_seconds is not None:  # the common case, and a replay's every bar: one subtraction
            return datetime.fromtimestamp(server_epoch - self._fixed_seconds, UTC)
        wall = datetime.fromtimestamp(server_epoch, UTC).replace(tzinfo=None) - self._shift
        return wall.replace(tzinfo=self._zone, fold=0).astimezone(UTC)

    def midnight(self, when: datetime) -> datetime:
        """The UTC instant of the server midnight that began the server day ``when`` falls in."""
        day = datetime.fromtimestamp(self.to_server(when), UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return self.to_utc(day.timestamp())

    def same_clock(self, other: ServerZone) -> bool:
        """Whether ``other`` keeps this clock: the same offset every six hours of 2015 to 2030 (two zones that
        agree in January and July may still switch a week apart, as New York + 7 and Athens do)."""
        if self.name == other.name:
            return True
        start, step = datetime(2015, 1, 1, tzinfo=UTC), timedelta(hours=6)
        return all(self.offset_at(start + k * step) == other.offset_at(start + k * step) for k in range(4 * 366 * 16))

    def to_server_epochs(self, utc_epochs: np.ndarray) -> np.ndarray:
        """Whole UTC epoch seconds as server epochs (the emulator's data, moved onto its server's clock)."""
        fixed = self.fixed
        if fixed is not None:
            return utc_epochs + int(fixed.total_seconds())
        return _per_hour(utc_epochs, lambda t: self.to_server(datetime.fromtimestamp(t, UTC)) - t)

    def to_utc_epochs(self, server_epochs: np.ndarray) -> np.ndarray:
        """Server epochs as whole UTC epoch seconds (a terminal's export, read in UTC)."""
        fixed = self.fixed
        if fixed is not None:
            return server_epochs - int(fixed.total_seconds())
        return _per_hour(server_epochs, lambda t: int(self.to_utc(t).timestamp()) - t)


def _per_hour(epochs: np.ndarray, shift: Callable[[int], int]) -> np.ndarray:
    """``epochs`` each moved by ``shift`` of its hour (zones switch on whole hours): one conversion per hour."""
    hours, index = np.unique(np.asarray(epochs, dtype=np.int64) // 3600, return_inverse=True)
    shifts = np.array([shift(int(h) * 3600) for h in hours.tolist()], dtype=np.int64)
    return np.asarray(epochs, dtype=np.int64) + shifts[index]


def _parse(name: str) -> tuple[tzinfo, timedelta]:
    if name in _SHIFT:
        return ZoneInfo(_NEW_YORK), _SHIFT[name]
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC, timedelta(0)
    fixed = _FIXED.match(name)
    if fixed:
        hours, minutes = int(fixed["hours"]), int(fixed["minutes"])
        offset = timedelta(hours=hours, minutes=minutes) * (-1 if fixed["sign"] == "-" else 1)
        if minutes >= 60 or not timedelta(hours=-12) <= offset <= timedelta(hours=14):
            raise ValueError(f"{name!r}: an offset is -12:00 to +14:00")
        return timezone(offset), timedelta(0)
    try:
        return ZoneInfo(name), timedelta(0)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not a time zone: give an offset (+02:00), an IANA zone (Europe/Athens) or {NEW_YORK_CLOSE!r}"
        ) from None


def shown_offset(server_epoch: float, now: datetime) -> timedelta | None:
    """The server clock's offset a tick that has just moved shows: its server time against the wall clock
    ``now``, to the quarter hour; None when that is no real offset (-12 to +14 hours: a shut market's old tick)."""
    offset = timedelta(seconds=round((server_epoch - now.timestamp()) / 900) * 900)
    return offset if timedelta(hours=-12) <= offset <= timedelta(hours=14) else None


def from_offset_hours(hours: float) -> str:
    """The fixed-offset zone name of ``hours`` (the deprecated ``server_offset_hours``): 2 -> "+02:00"."""
    minutes = round(hours * 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def zone_setting(values: Any, where: str) -> Any:
    """A settings table's ``server_timezone``, with the deprecated ``server_offset_hours`` turned into it (kept
    for one release, with a warning); both given is refused, naming ``where`` (the table)."""
    if not isinstance(values, dict) or "server_offset_hours" not in values:
        return values
    if "server_timezone" in values:
        raise ValueError(
            f"{where}.server_offset_hours is replaced by {where}.server_timezone: set only server_timezone"
        )
    rest = {k: v for k, v in values.items() if k != "server_offset_hours"}
    hours = values["server_offset_hours"]
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not -12 <= hours <= 14:
        raise ValueError(f"{where}.server_offset_hours = {hours!r}: hours from -12 to 14 (deprecated: server_timezone)")
    zone = from_offset_hours(hours)
    log.warning(
        f"{where}.server_offset_hours is deprecated: set {where}.server_timezone = {zone!r}",
        extra={"setting": f"{where}.server_offset_hours"},
    )
    return {**rest, "server_timezone": zone}
