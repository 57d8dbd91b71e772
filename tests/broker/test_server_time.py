"""The broker's server clock across daylight saving: New York + 7, an IANA zone and a fixed offset, both ways,
including the hour that is skipped and the hour that repeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradeguard.broker.server_time import ServerZone, from_offset_hours


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "offset_hours", "midnight"),
    [
        ("2017-03-10T12:00", 2, "2017-03-09T22:00"),  # US winter time: server midnight is 22:00 UTC
        ("2017-03-13T12:00", 3, "2017-03-12T21:00"),  # after 2017-03-12: summer, 21:00 UTC
        ("2017-11-03T20:59", 3, "2017-11-02T21:00"),
        ("2017-11-03T21:00", 3, "2017-11-03T21:00"),  # the last summer midnight
        ("2017-11-06T12:00", 2, "2017-11-05T22:00"),  # after 2017-11-05: winter again
        ("2018-03-12T12:00", 3, "2018-03-11T21:00"),
    ],
)
def test_new_york_close_moves_with_the_us_dates(instant: str, offset_hours: int, midnight: str) -> None:
    zone = ServerZone("new_york_close")
    when = utc(instant)
    assert zone.offset_at(when) == timedelta(hours=offset_hours)
    assert zone.to_server(when) == int(when.timestamp()) + offset_hours * 3600
    assert zone.to_utc(zone.to_server(when)) == when
    assert zone.midnight(when) == utc(midnight)


def test_every_hour_of_a_year_round_trips_but_the_repeated_ones() -> None:
    zone = ServerZone("new_york_close")
    when, end, repeated = utc("2017-01-01T00:30"), utc("2018-01-01T00:00"), 0
    while when < end:
        back = zone.to_utc(zone.to_server(when))
        if back != when:  # the autumn hour whose server times come twice: read as the first pass
            repeated += 1
            assert back == when - timedelta(hours=1) and when.date().isoformat() == "2017-11-05"
        when += timedelta(hours=1)
    assert repeated == 1


def test_the_skipped_and_the_repeated_hour() -> None:
    zone = ServerZone("Europe/Athens")  # EET/EEST: 2017-03-26 03:00 -> 04:00, 2017-10-29 04:00 -> 03:00
    skipped = int(datetime(2017, 3, 26, 3, 30, tzinfo=UTC).timestamp())  # a server time that never was
    assert zone.to_utc(skipped) == utc("2017-03-26T01:30")  # read with the offset before the switch (+2)
    repeated = int(datetime(2017, 10, 29, 3, 30, tzinfo=UTC).timestamp())  # a server time that came twice
    assert zone.to_utc(repeated) == utc("2017-10-29T00:30")  # its first pass (+3)
    assert zone.to_server(utc("2017-10-29T00:30")) == zone.to_server(utc("2017-10-29T01:30"))


def test_fixed_offsets_and_the_deprecated_hours() -> None:
    assert ServerZone("+02:00").fixed == timedelta(hours=2) and ServerZone("UTC").fixed == timedelta(0)
    assert ServerZone("-05:30").offset_at(utc("2017-07-01T00:00")) == -timedelta(hours=5, minutes=30)
    assert ServerZone("new_york_close").fixed is None
    assert (from_offset_hours(3), from_offset_hours(-4.5), from_offset_hours(0)) == ("+03:00", "-04:30", "+00:00")
    for bad in ("Mars/Base", "+15:00", "+02:75", ""):
        with pytest.raises(ValueError, match=r"time zone|offset"):
            ServerZone(bad)


def test_two_zones_are_the_same_clock_only_if_they_switch_alike() -> None:
    ny, athens = ServerZone("new_york_close"), ServerZone("Europe/Athens")
    january, july = utc("2017-01-15T12:00"), utc("2017-07-15T12:00")
    assert ny.offset_at(january) == athens.offset_at(january) and ny.offset_at(july) == athens.offset_at(july)
    assert not ny.same_clock(athens)  # they switch weeks apart in March and October
    assert ServerZone("+03:00").same_clock(ServerZone("Europe/Moscow")) and ServerZone("UTC").same_clock(
        ServerZone("+00:00")
    )
