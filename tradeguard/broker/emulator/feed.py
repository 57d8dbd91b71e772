"""One symbol's replay: each bar expanded to a deterministic tick path.

The path is open -> the extreme nearer the open -> the other extreme -> close, at 0, 1/3, 2/3 of
the bar and one second before its end. Bid is the bar's price; ask adds the bar's spread (from
the data's spread column, else the configured spread). Rates handed out are only those the
replay has reached: closed bars, and the forming bar built from the ticks seen so far.
"""

from __future__ import annotations

import numpy as np

from tradeguard.broker.emulator import constants as c
from tradeguard.broker.emulator.structures import RATES_DTYPE

TIMEFRAME_SECONDS = {
    c.TIMEFRAME_M1: 60, c.TIMEFRAME_M2: 120, c.TIMEFRAME_M3: 180, c.TIMEFRAME_M4: 240, c.TIMEFRAME_M5: 300,
    c.TIMEFRAME_M6: 360, c.TIMEFRAME_M10: 600, c.TIMEFRAME_M12: 720, c.TIMEFRAME_M15: 900, c.TIMEFRAME_M20: 1200,
    c.TIMEFRAME_M30: 1800, c.TIMEFRAME_H1: 3600, c.TIMEFRAME_H2: 7200, c.TIMEFRAME_H3: 10800,
    c.TIMEFRAME_H4: 14400, c.TIMEFRAME_H6: 21600, c.TIMEFRAME_H8: 28800, c.TIMEFRAME_H12: 43200,
    c.TIMEFRAME_D1: 86400, c.TIMEFRAME_W1: 604800,
}  # fmt: skip
TICKS_PER_BAR = 4


def detect_timeframe(times: np.ndarray) -> int:
    """The MT5 timeframe constant whose length is the most common gap between bars."""
    if len(times) < 2:
        return c.TIMEFRAME_H1
    gaps, counts = np.unique(np.diff(times), return_counts=True)
    seconds = int(gaps[np.argmax(counts)])
    for tf, length in TIMEFRAME_SECONDS.items():
        if length == seconds:
            return tf
    raise ValueError(f"bars are {seconds} s apart: not an MT5 timeframe")


class Feed:
    def __init__(self, symbol: str, bars: np.ndarray, digits: int, spread_points: int, offset_seconds: int = 0) -> None:
        if bars.dtype != RATES_DTYPE:
            raise TypeError("bars must use the MT5 rates dtype")
        self.symbol = symbol
        self.bars = bars.copy()
        self.bars["time"] += offset_seconds  # data is UTC; the terminal speaks server time
        self.timeframe = detect_timeframe(self.bars["time"])
        self.bar_seconds = TIMEFRAME_SECONDS[self.timeframe]
        point = 10.0**-digits
        o, h, lo, cl = (self.bars[k] for k in ("open", "high", "low", "close"))
        high_first = (h - o) <= (o - lo)
        path = np.stack([o, np.where(high_first, h, lo), np.where(high_first, lo, h), cl], axis=1)
        self.bid = np.round(path.ravel(), digits)
        spreads = np.where(self.bars["spread"] > 0, self.bars["spread"], spread_points).astype(np.float64)
        self.ask = np.round(self.bid + np.repeat(spreads * point, TICKS_PER_BAR), digits)
        step_ms = self.bar_seconds * 1000
        offsets = np.array([0, step_ms // 3, 2 * step_ms // 3, step_ms - 1000], dtype=np.int64)
        self.time_msc = (np.repeat(self.bars["time"] * 1000, TICKS_PER_BAR) + np.tile(offsets, len(self.bars)))

    def __len__(self) -> int:
        return len(self.bid)

    def rates_until(self, tick_index: int) -> np.ndarray:
        """Bars visible when tick ``tick_index`` is the latest: closed bars plus the forming one."""
        if tick_index < 0:
            return np.empty(0, dtype=RATES_DTYPE)
        bar = tick_index // TICKS_PER_BAR
        out = self.bars[: bar + 1].copy()
        seen = self.bid[bar * TICKS_PER_BAR : tick_index + 1]
        forming = out[-1]
        forming["high"], forming["low"], forming["close"] = seen.max(), seen.min(), seen[-1]
        if tick_index % TICKS_PER_BAR != TICKS_PER_BAR - 1:
            forming["tick_volume"] = forming["tick_volume"] * len(seen) // TICKS_PER_BAR
        out[-1] = forming
        return out

    def closed_bar_at(self, tick_index: int) -> int | None:
        """The index of the bar that tick ``tick_index`` closes, or None if it closes none."""
        return tick_index // TICKS_PER_BAR if tick_index % TICKS_PER_BAR == TICKS_PER_BAR - 1 else None
