"""The chaos suite: the served emulator, the trader SIGKILLed at seeded random moments, hedging and netting,
a full disk, a damaged store; the journal compared with the broker's own records after each round."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tradeguard.chaos import ChaosPlan, ChaosReport, ChaosRound

from ..helpers import tmpfs

pytest.importorskip("mt5linux", reason="mt5linux is installed by `make test` (pip install --no-deps mt5linux)")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MB tmpfs for the trader's data: a real disk that fills up."""
    with tmpfs(tmp_path / "disk", "64m") as mounted:
        yield mounted


def fills(report: ChaosReport, round_: ChaosRound) -> list[tuple[str, str]]:
    import sqlite3

    with closing(sqlite3.connect(round_.db)) as con:
        return [(str(e), str(c)) for e, c in con.execute("SELECT entry, comment FROM fills")]


def check(round_: ChaosRound, report: ChaosReport, kills: int) -> None:
    assert report.failures() == []
    assert report.kills >= kills  # every planned kill landed on a live process
    entries = fills(report, round_)
    assert report.deals >= 30 and report.orders >= 20, "too little traded to prove anything"
    assert any(c.startswith(("[sl", "[tp")) for _, c in entries), "no stop or target was hit"
    assert report.manual_closes >= 1 and any(c == "closed at the terminal" for _, c in entries)
    assert report.corrupt_refusals and all("is damaged" in line for line in report.corrupt_refusals)
    assert report.alignment_seconds, "no restart aligned"


def test_hedging_storm_with_a_full_disk(tmp_path: Path, disk: Path) -> None:
    kills = int(os.environ.get("TRADEGUARD_CHAOS_KILLS", "30"))
    round_ = ChaosRound(
        ChaosPlan(workdir=tmp_path / "h", margin_mode="hedging", kills=kills, seed=11, corrupt_every=10, disk=disk)
    )
    report = round_.run()
    check(round_, report, kills)
    disk = report.disk_full
    assert disk["trader_alive"] and disk["latch"] == ("REDUCE_ONLY", "store_failure") and disk["reset"] == 0, disk


def test_netting_storm_with_reversals(tmp_path: Path) -> None:
    kills = int(os.environ.get("TRADEGUARD_CHAOS_KILLS", "30"))
    round_ = ChaosRound(
        ChaosPlan(workdir=tmp_path / "n", margin_mode="netting", kills=kills, seed=12, corrupt_every=10)
    )
    report = round_.run()
    check(round_, report, kills)
    assert any(e == "inout" for e, _ in fills(report, round_)), "no netting reversal happened"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_long_storm(tmp_path: Path, mode: str) -> None:
    """The soak in test form: ten times the kills (CI runs the bounded rounds above)."""
    round_ = ChaosRound(
        ChaosPlan(
            workdir=tmp_path / mode,
            margin_mode=mode,
            kills=300,
            seed=21,  # type: ignore[arg-type]
            corrupt_every=25,
        )
    )
    report = round_.run()
    check(round_, report, 300)


def test_a_dst_server_under_hostile_faults_keeps_the_journal_equal_to_the_broker(tmp_path: Path) -> None:
    """Issue 27's done-when: the served emulator keeps New York + 7 and crosses 2017-11-05 (UTC+3 to UTC+2) under
    the hostile fault profile, the trader SIGKILLed as it goes; the journal ends equal to the broker's records,
    the day's P&L counted from the server's midnight on both sides."""
    from datetime import UTC, datetime

    from tradeguard.broker.data import SAMPLE, load_bars

    bars = load_bars(SAMPLE)
    start, end = datetime(2017, 11, 2, tzinfo=UTC).timestamp(), datetime(2017, 11, 17, tzinfo=UTC).timestamp()
    window = bars[(bars["time"] >= start) & (bars["time"] < end)]
    data = tmp_path / "EURUSD_H1.csv"
    lines = ["time,open,high,low,close,tick_volume"] + [
        f"{datetime.fromtimestamp(int(b['time']), UTC):%Y-%m-%d %H:%M:%S},{b['open']},{b['high']},{b['low']},"
        f"{b['close']},{b['tick_volume']}"
        for b in window
    ]
    data.write_text("\n".join(lines) + "\n")
    round_ = ChaosRound(
        ChaosPlan(
            workdir=tmp_path / "dst",
            kills=8,
            seed=27,
            faults="hostile",
            server_timezone="new_york_close",
            data=data,
            manual_close_share=0.0,
        )
    )
    report = round_.run()
    assert report.failures() == []
    assert report.kills >= 8 and report.deals >= 10, (report.kills, report.deals)
    import sqlite3

    with closing(sqlite3.connect(round_.db)) as con:
        times = sorted(str(t) for (t,) in con.execute("SELECT time FROM fills"))
    assert times[0] < "2017-11-05" < times[-1], (times[0], times[-1])  # the journal spans the switch
