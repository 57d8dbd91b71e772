"""The broker's clock across daylight saving, end to end (issue 27, part 1): a replay whose server keeps New York
+ 7 moves the daily anchor with the US switch; a terminal export in server time loads as the UTC bars it is; an
adapter that disagrees with the emulator's clock refuses to start, naming both; derivation is for real terminals."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tradeguard import AccountSnapshot, Runtime, hookimpl
from tradeguard.broker import constants
from tradeguard.broker.data import PORTFOLIO, SAMPLE, load_bars
from tradeguard.broker.emulator.terminal import Terminal
from tradeguard.broker.server_time import ServerZone
from tradeguard.kernel.clock import ReplayClock
from tradeguard.kernel.runtime import Runtime as Kernel
from tradeguard.kernel.settings import ConfigError
from tradeguard.replay.loop import replay

from ..conftest import REPO
from ..helpers import tradeguard

NY_CLOSE = "new_york_close"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Anchors:
    """The account tracker's daily anchor at each snapshot."""

    def __init__(self) -> None:
        self.seen: set[datetime] = set()

    @hookimpl
    def on_account_snapshot(self, snapshot: AccountSnapshot, runtime: Runtime) -> None:
        began = runtime.pm.get_plugin("account_tracker").day_began
        if began is not None:
            self.seen.add(began)


def build(tmp_path: Path, broker_zone: str, server_zone: str, *plugins: tuple[str, object]) -> Kernel:
    overrides: dict[str, Any] = {
        "broker": {"server_timezone": broker_zone, "emulator": {"server_timezone": server_zone}},
        "runtime": {"data_dir": str(tmp_path)},
        "logging": {"level": "ERROR"},
        "metrics_server": {"port": 0},
    }
    return Kernel.build(
        None, read_files=False, plugins=plugins, overrides=overrides, clock=ReplayClock(utc("1970-01-02T00:00"))
    )


def test_the_daily_anchor_moves_with_the_us_switch(tmp_path: Path) -> None:
    anchors = Anchors()
    rt = build(tmp_path, NY_CLOSE, NY_CLOSE, ("anchors", anchors))
    replay(rt, start=int(utc("2017-10-30T00:00").timestamp()), end=int(utc("2017-11-10T00:00").timestamp()))
    summer = {utc("2017-10-31T21:00"), utc("2017-11-01T21:00"), utc("2017-11-02T21:00")}  # to Friday's: 21:00 UTC
    winter = {utc("2017-11-05T22:00"), utc("2017-11-06T22:00"), utc("2017-11-07T22:00")}  # from Monday's: 22:00
    assert summer <= anchors.seen and winter <= anchors.seen
    assert not any(a.hour not in (21, 22) for a in anchors.seen)
    assert utc("2017-11-05T21:00") not in anchors.seen and utc("2017-11-02T22:00") not in anchors.seen


def test_bars_keep_their_utc_times_through_a_dst_server(tmp_path: Path) -> None:
    """The emulator moves UTC data onto its New York + 7 clock; the adapter brings every bar back to UTC."""
    rt = build(tmp_path, NY_CLOSE, NY_CLOSE)
    sample = load_bars(SAMPLE)
    rates = rt.broker.mt5.copy_rates_range(  # type: ignore[attr-defined]
        "EURUSD", constants.TIMEFRAME_H1, utc("2017-01-01T00:00"), utc("2019-01-01T00:00")
    )
    assert len(rates) == 1  # the replay has reached the first bar only
    term = rt.emulator()
    assert term is not None
    times = term.market.feeds["EURUSD"].bars["time"]
    back = np.array([int(rt.broker.to_utc(int(t)).timestamp()) for t in times])
    assert np.array_equal(back, sample["time"])
    assert set(np.unique(times - sample["time"]).tolist()) == {7200, 10800}  # +2 in the US winter, +3 in summer


def test_a_terminal_export_in_server_time_loads_as_the_utc_bars() -> None:
    server = load_bars(PORTFOLIO / "server_time" / "USDJPY_H1_server_time.csv")
    expected = load_bars(PORTFOLIO / "USDJPY_H1.csv")
    columns = ["time", "open", "high", "low", "close"]
    for zone, equal in ((NY_CLOSE, True), ("+02:00", False), ("+03:00", False)):
        converted = server.copy()
        converted["time"] = ServerZone(zone).to_utc_epochs(server["time"])
        window = converted[(converted["time"] >= expected["time"][0]) & (converted["time"] <= expected["time"][-1])]
        assert np.array_equal(window[columns], expected[columns]) is equal, zone
    term = Terminal()  # the emulator told the data's zone reads the export as the UTC file
    export = str(PORTFOLIO / "server_time" / "USDJPY_H1_server_time.csv")
    loaded = term.initialize(data=export, symbol="USDJPY", data_timezone=NY_CLOSE)
    assert loaded, term.last_error()
    bars = term.market.feeds["USDJPY"].bars
    inside = bars[(bars["time"] >= expected["time"][0]) & (bars["time"] <= expected["time"][-1])]
    assert np.array_equal(inside[columns], expected[columns])


def test_an_adapter_that_disagrees_with_the_emulators_clock_refuses_to_start(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        '[default.broker]\nserver_timezone = "+00:00"\n[default.broker.emulator]\nserver_timezone = "+03:00"\n'
        f'[default.runtime]\ndata_dir = "{tmp_path / "var"}"\n'
    )
    done = tradeguard(settings, "replay", "--to", "2017-05-01", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "broker.server_timezone = '+00:00', but the emulator's server keeps '+03:00'" in done.stderr
    settings.write_text(settings.read_text().replace('"+00:00"', '"+03:00"'))
    agreed = tradeguard(settings, "replay", "--to", "2017-05-01", "--json", cwd=tmp_path)
    assert agreed.returncode == 0, agreed.stderr[-2000:]
    assert '"first_bar": "2017-04-19T09:00:00+00:00"' in agreed.stdout  # the UTC times the data has


def test_derivation_is_for_a_real_terminal_and_the_old_key_still_reads() -> None:
    with pytest.raises(ConfigError, match="derive_server_offset works against a real terminal only"):
        Kernel.build(None, read_files=False, overrides={"broker": {"derive_server_offset": True}})
    rt = Kernel.build(
        None, read_files=False, overrides={"broker": {"server_offset_hours": 3, "emulator": {"server_offset_hours": 3}}}
    )
    assert rt.settings.broker.server_timezone == "+03:00" and rt.settings.broker.emulator.server_timezone == "+03:00"
    with pytest.raises(ConfigError, match=r"server_offset_hours is replaced by broker\.server_timezone"):
        Kernel.build(
            None, read_files=False, overrides={"broker": {"server_offset_hours": 3, "server_timezone": "+03:00"}}
        )
    with pytest.raises(ConfigError, match=r"broker\.server_timezone = 'Mars/Base'"):
        Kernel.build(None, read_files=False, overrides={"broker": {"server_timezone": "Mars/Base"}})


def test_the_repository_settings_name_a_zone() -> None:
    text = (REPO / "settings.toml").read_text()
    assert 'server_timezone = "+00:00"' in text and "server_offset_hours = " not in text.replace("# (server", "")
