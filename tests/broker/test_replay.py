"""The emulator replays the whole shipped sample; bars come out after their close, never before."""

from __future__ import annotations

import numpy as np

from tradeguard.broker.data import SAMPLE, load_bars
from tradeguard.broker.emulator import constants as c
from tradeguard.broker.emulator.terminal import Terminal


def test_full_shipped_file_replays_bar_by_bar_without_look_ahead() -> None:
    term = Terminal()
    assert term.initialize()
    source = load_bars(SAMPLE)
    seen = 0
    for bar in term.replay_bars():
        if seen % 500 == 0:  # at a bar's close the terminal shows exactly the bars up to it
            rates = term.copy_rates_from_pos("EURUSD", c.TIMEFRAME_H1, 0, 10_000)
            assert rates[-1]["time"] == bar["time"] and len(rates) == seen + 1
            assert np.array_equal(rates[-1:][["open", "high", "low", "close"]], source[seen : seen + 1][
                ["open", "high", "low", "close"]])  # fmt: skip
            assert term.symbol_info_tick("EURUSD").bid == bar["close"]
        seen += 1
    assert seen == len(source) == 5000
    assert term.replay_step(1) == 0  # the data has ended


def test_forming_bar_shows_only_the_ticks_seen_so_far() -> None:
    term = Terminal()
    term.initialize()
    term.replay_step(1)  # open and first extreme of bar 0
    (forming,) = term.copy_rates_from_pos("EURUSD", c.TIMEFRAME_H1, 0, 1)
    first = load_bars(SAMPLE)[0]
    assert forming["open"] == first["open"] and forming["close"] in (first["high"], first["low"])
    assert (forming["high"], forming["low"]) != (first["high"], first["low"])
