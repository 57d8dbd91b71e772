"""The emulator replays the whole shipped sample; bars come out after their close, never before."""

from __future__ import annotations

import numpy as np

from tradeguard.broker import constants
from tradeguard.broker.data import SAMPLE, load_bars
from tradeguard.broker.emulator.terminal import Terminal


def test_full_shipped_file_replays_bar_by_bar_without_look_ahead() -> None:
    term = Terminal()
    assert term.initialize()
    source = load_bars(SAMPLE)
    seen = 0
    for _symbol, bar in term.replay_bars():
        if seen % 500 == 0:  # at a bar's close the terminal shows exactly the bars up to it
            rates = term.copy_rates_from_pos("EURUSD", constants.TIMEFRAME_H1, 0, 10_000)
            assert rates[-1]["time"] == bar["time"] and len(rates) == seen + 1
            assert np.array_equal(
                rates[-1:][["open", "high", "low", "close"]], source[seen : seen + 1][["open", "high", "low", "close"]]
            )
            assert term.symbol_info_tick("EURUSD").bid == bar["close"]
        seen += 1
    assert seen == len(source) == 5000
    assert term.replay_step(1) == 0  # the data has ended


def test_forming_bar_shows_only_the_ticks_seen_so_far() -> None:
    term = Terminal()
    term.initialize()
    term.replay_step(1)  # open and first extreme of bar 0
    (forming,) = term.copy_rates_from_pos("EURUSD", constants.TIMEFRAME_H1, 0, 1)
    first = load_bars(SAMPLE)[0]
    assert forming["open"] == first["open"] and forming["close"] in (first["high"], first["low"])
    assert (forming["high"], forming["low"]) != (first["high"], first["low"])


def test_tick_file_replay_builds_bars_from_the_ticks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lines = ["time,bid,ask"]
    # three M1 bars: 10:00 (3 ticks), 10:01 (2 ticks), 10:03 (1 tick; 10:02 has none)
    for stamp, bid in (
        ("10:00:05", 1.1000),
        ("10:00:30", 1.1010),
        ("10:00:59", 1.0995),
        ("10:01:10", 1.1002),
        ("10:01:50", 1.1004),
        ("10:03:00", 1.1001),
    ):
        lines.append(f"2024-01-02 {stamp},{bid},{bid + 0.0001:.5f}")
    f = tmp_path / "ticks.csv"
    f.write_text("\n".join(lines) + "\n")
    term = Terminal()
    assert term.initialize(data=str(f), timeframe="M1", stops_level=0) is False  # unknown key: refused
    assert term.initialize(data=str(f), timeframe="M1"), term.last_error()
    closed = [(b["open"], b["high"], b["low"], b["close"], b["tick_volume"]) for _symbol, b in term.replay_bars()]
    assert closed == [
        (1.1, 1.101, 1.0995, 1.0995, 3),
        (1.1002, 1.1004, 1.1002, 1.1004, 2),
        (1.1001, 1.1001, 1.1001, 1.1001, 1),
    ]  # the data's end closes the last bar
    rates = term.copy_rates_from_pos("EURUSD", constants.TIMEFRAME_M1, 0, 10)
    assert len(rates) == 3 and rates[-1]["close"] == 1.1001
    tick = term.symbol_info_tick("EURUSD")
    assert (tick.bid, tick.ask, tick.time_msc % 60_000) == (1.1001, 1.1002, 0)
    buy = term.order_send({"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "type_filling": 1})
    assert buy.retcode == 10018  # the ticks have ended: market closed


def test_a_terminal_bar_with_a_nan_price_is_alerted_and_left_out() -> None:
    """Live bars come from the terminal, not from a validated file: a NaN close never reaches a strategy."""
    from tradeguard import hookimpl
    from tradeguard.broker.data import RATES_DTYPE
    from tradeguard.replay.loop import _checked_bar
    from tradeguard.testing import make_runtime

    class Alerts:
        def __init__(self) -> None:
            self.seen: list = []

        @hookimpl
        def on_alert(self, alert, runtime) -> None:  # type: ignore[no-untyped-def]
            self.seen.append(alert)

    alerts = Alerts()
    rt = make_runtime(("alerts", alerts))
    good = np.array([(1_700_000_000, 1.1, 1.2, 1.0, 1.15, 10, 5, 0)], dtype=RATES_DTYPE)[0]
    bad = np.array([(1_700_003_600, 1.1, 1.2, 1.0, float("nan"), 10, 5, 0)], dtype=RATES_DTYPE)[0]
    assert _checked_bar(rt, "EURUSD", "H1", good).close == 1.15
    assert _checked_bar(rt, "EURUSD", "H1", bad) is None
    (alert,) = alerts.seen
    assert (alert.error_code, alert.symbol) == ("bad_bar", "EURUSD") and "close" in alert.message
