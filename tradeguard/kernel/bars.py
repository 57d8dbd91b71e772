"""The bars the runtime already holds: a rolling window per symbol and timeframe.

Strategies and scorers read recent history here instead of asking the broker on every bar.
Appending is O(1) (a ring of numpy columns); reads return the last ``n`` bars, oldest first.
The true range and ATR of such arrays (or of MT5 rates, which have the same columns) live here
too, so every plugin that needs them computes them the same way.
"""

from __future__ import annotations

import functools

import numpy as np

from tradeguard.models import Bar

COLUMNS = ("time", "open", "high", "low", "close", "tick_volume", "spread")
DTYPE = np.dtype(
    [
        ("time", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("tick_volume", "<i8"),
        ("spread", "<i4"),
    ]
)


def true_ranges(bars: np.ndarray) -> np.ndarray:
    """True range of every bar but the first (which has no previous close)."""
    prev = bars["close"][:-1]  # max(h - lo, |h - prev|, |lo - prev|), in three array operations instead of seven
    ranges: np.ndarray = np.maximum(bars["high"][1:], prev) - np.minimum(bars["low"][1:], prev)
    return ranges


def rolling_atr(bars: np.ndarray, period: int) -> np.ndarray:
    """Simple average true range over ``period`` bars, one value per bar from the ``period``-th on."""
    tr = true_ranges(bars)
    if len(tr) < period:
        return np.empty(0)
    return np.convolve(tr, _mean_kernel(period), mode="valid")


@functools.cache
def _mean_kernel(period: int) -> np.ndarray:
    """The convolution kernel of a ``period`` mean, made once (a scorer asks for one per signal)."""
    kernel = np.ones(period) / period
    kernel.flags.writeable = False
    return kernel


class _Series:
    def __init__(self, capacity: int) -> None:
        self.data = np.zeros(capacity * 2, dtype=DTYPE)
        self.capacity = capacity
        self.start = self.end = 0
        self.count = 0  # bars ever appended: a reader can tell whether it missed any

    def append(self, bar: Bar) -> None:
        if self.end == len(self.data):  # slide the window back to the front: amortised O(1)
            keep = self.data[self.end - self.capacity + 1 : self.end].copy()
            self.data[: len(keep)] = keep
            self.start, self.end = 0, len(keep)
        self.data[self.end] = (int(bar.epoch), bar.open, bar.high, bar.low, bar.close, bar.tick_volume, bar.spread)
        self.end += 1
        self.count += 1
        self.start = max(self.start, self.end - self.capacity)

    def last(self, n: int) -> np.ndarray:
        return self.data[max(self.start, self.end - n) : self.end]


class BarHistory:
    def __init__(self, capacity: int = 2000) -> None:
        self.capacity = capacity
        self._series: dict[tuple[str, str], _Series] = {}

    def append(self, bar: Bar) -> None:
        """Add a closed bar."""
        key = (bar.symbol, bar.timeframe)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self.capacity)
        series.append(bar)

    def get(self, symbol: str, timeframe: str, n: int) -> np.ndarray:
        """The last ``n`` closed bars (``time`` in UTC epoch seconds), oldest first; empty if none."""
        series = self._series.get((symbol, timeframe))
        return series.last(n) if series is not None else np.empty(0, dtype=DTYPE)

    def count(self, symbol: str, timeframe: str) -> int:
        """How many bars of the series were ever appended (not only those still held)."""
        series = self._series.get((symbol, timeframe))
        return series.count if series is not None else 0
