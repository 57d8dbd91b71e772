"""One symbol's replay: each bar expanded to a deterministic tick path.

The path is open -> the extreme nearer the open -> the other extreme -> close, at 0, 1/3, 2/3 of
the bar and one second before its end. Bid is the bar's price; ask adds the bar's spread (from
the data's spread column, else the configured spread). Rates handed out are only those the
replay has reached: closed bars, and the forming bar built from the ticks seen so far.
"""

from __future__ import annotations

import numpy as np

from tradeguard.broker import constants
from tradeguard.broker.emulator.structures import RATES_DTYPE

TIMEFRAME_SECONDS = {
    constants.TIMEFRAME_M1: 60,
    constants.TIMEFRAME_M2: 120,
    constants.TIMEFRAME_M3: 180,
    constants.TIMEFRAME_M4: 240,
    constants.TIMEFRAME_M5: 300,
    constants.TIMEFRAME_M6: 360,
    constants.TIMEFRAME_M10: 600,
    constants.TIMEFRAME_M12: 720,
    constants.TIMEFRAME_M15: 900,
    constants.TIMEFRAME_M20: 1200,
    constants.TIMEFRAME_M30: 1800,
    constants.TIMEFRAME_H1: 3600,
    constants.TIMEFRAME_H2: 7200,
    constants.TIMEFRAME_H3: 10800,
    constants.TIMEFRAME_H4: 14400,
    constants.TIMEFRAME_H6: 21600,
    constants.TIMEFRAME_H8: 28800,
    constants.TIMEFRAME_H12: 43200,
    constants.TIMEFRAME_D1: 86400,
    constants.TIMEFRAME_W1: 604800,
}
TICKS_PER_BAR = 4


def detect_timeframe(times: np.ndarray) -> int:
    """The MT5 timeframe constant whose length is the most common gap between bars."""
    if len(times) < 2:
        return constants.TIMEFRAME_H1
    gaps, counts = np.unique(np.diff(times), return_counts=True)
    seconds = int(gaps[np.argmax(counts)])
    for tf, length in TIMEFRAME_SECONDS.items():
        if length == seconds:
            return tf
    raise ValueError(f"bars are {seconds} s apart: not an MT5 timeframe")


class Feed:
    """Tick arrays (bid, ask, time) and the bars they form, with the mapping between the two."""

    def __init__(
        self,
        symbol: str,
        bars: np.ndarray,
        bid: np.ndarray,
        ask: np.ndarray,
        time_msc: np.ndarray,
        bar_of_tick: np.ndarray,
        from_ticks: bool,
    ) -> None:
        self.symbol = symbol
        self.bars = bars
        self.timeframe = detect_timeframe(bars["time"]) if not from_ticks else self._tf_of(bars)
        self.bar_seconds = TIMEFRAME_SECONDS[self.timeframe]
        self.bid, self.ask, self.time_msc = bid, ask, time_msc
        self.bar_of_tick = bar_of_tick
        self.bar_end = np.r_[bar_of_tick[1:] != bar_of_tick[:-1], True]
        self.bar_start = np.r_[True, bar_of_tick[1:] != bar_of_tick[:-1]]
        self.first_tick = np.flatnonzero(self.bar_start)

    @staticmethod
    def _tf_of(bars: np.ndarray) -> int:
        return bars.dtype.metadata["timeframe"] if bars.dtype.metadata else constants.TIMEFRAME_H1

    @classmethod
    def from_bars(
        cls, symbol: str, bars: np.ndarray, digits: int, spread_points: int, offset_seconds: int | np.ndarray = 0
    ) -> Feed:
        """Each bar becomes open -> nearer extreme -> other extreme -> close. ``offset_seconds`` moves the bars'
        times onto the server's clock (one figure, or one per bar where the server keeps daylight saving)."""
        if bars.dtype != RATES_DTYPE:
            raise TypeError("bars must use the MT5 rates dtype")
        bars = bars.copy()
        bars["time"] += offset_seconds  # data is UTC; the terminal speaks server time
        seconds = TIMEFRAME_SECONDS[detect_timeframe(bars["time"])]
        point = 10.0**-digits
        o, h, lo, cl = (bars[k] for k in ("open", "high", "low", "close"))
        high_first = (h - o) <= (o - lo)
        path = np.stack([o, np.where(high_first, h, lo), np.where(high_first, lo, h), cl], axis=1)
        bid = np.round(path.ravel(), digits)
        spreads = np.where(bars["spread"] > 0, bars["spread"], spread_points).astype(np.float64)
        ask = np.round(bid + np.repeat(spreads * point, TICKS_PER_BAR), digits)
        step_ms = seconds * 1000
        offsets = np.array([0, step_ms // 3, 2 * step_ms // 3, step_ms - 1000], dtype=np.int64)
        time_msc = np.repeat(bars["time"] * 1000, TICKS_PER_BAR) + np.tile(offsets, len(bars))
        return cls(symbol, bars, bid, ask, time_msc, np.repeat(np.arange(len(bars)), TICKS_PER_BAR), False)

    @classmethod
    def from_ticks(
        cls, symbol: str, ticks: np.ndarray, digits: int, timeframe: int, offset_seconds: int | np.ndarray = 0
    ) -> Feed:
        """Replay the ticks as they are; bars of ``timeframe`` are built from their bids. ``offset_seconds``: as
        for :meth:`from_bars`, one figure or one per tick."""
        seconds = TIMEFRAME_SECONDS[timeframe]
        time_msc = ticks["time_msc"] + offset_seconds * 1000
        bid, ask = ticks["bid"].copy(), ticks["ask"].copy()
        bucket = time_msc // 1000 // seconds * seconds
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        ends = np.r_[starts[1:], len(bid)]
        bars = np.zeros(len(starts), dtype=np.dtype(RATES_DTYPE, metadata={"timeframe": timeframe}))
        bars["time"] = bucket[starts]
        bars["open"], bars["close"] = bid[starts], bid[ends - 1]
        bars["high"], bars["low"] = np.maximum.reduceat(bid, starts), np.minimum.reduceat(bid, starts)
        bars["tick_volume"] = ends - starts
        bars["spread"] = np.round((ask[starts] - bid[starts]) * 10.0**digits).astype(np.int32)
        bar_of_tick = np.repeat(np.arange(len(starts)), ends - starts)
        return cls(symbol, bars, bid, ask, time_msc, bar_of_tick, True)

    def __len__(self) -> int:
        return len(self.bid)

    def rates_until(self, tick_index: int) -> np.ndarray:
        """Bars visible when tick ``tick_index`` is the latest: closed bars plus the forming one."""
        if tick_index < 0:
            return np.empty(0, dtype=RATES_DTYPE)
        bar = int(self.bar_of_tick[tick_index])
        out = self.bars[: bar + 1].astype(RATES_DTYPE)
        first = int(self.first_tick[bar])
        seen = self.bid[first : tick_index + 1]
        forming = out[-1]
        forming["high"], forming["low"], forming["close"] = seen.max(), seen.min(), seen[-1]
        if not self.bar_end[tick_index]:
            total = int(self.first_tick[bar + 1]) - first if bar + 1 < len(self.first_tick) else len(self.bid) - first
            forming["tick_volume"] = forming["tick_volume"] * len(seen) // total
        out[-1] = forming
        return out
