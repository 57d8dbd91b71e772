"""Incremental indicators: constant work per closed bar, whatever the window's length.

A strategy that recomputes its averages from the window on every bar pays for the whole window
each time; these keep running state instead, as NautilusTrader's and LEAN's indicators do. Each is
fed one value (or bar) per closed bar, oldest first, and says when its window is ``ready``.
:mod:`tradeguard.kernel.bars` holds the vectorised forms over an array of bars; both give the same
figures (tests hold them to it).
"""

from __future__ import annotations

import math
from collections import deque


class MovingSum:
    """The sum and mean of the last ``period`` values.

    The running sum is re-added exactly (``math.fsum``) once per window, so the rounding of the
    additions and subtractions in between never builds up over a long run."""

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.period = period
        self.total = 0.0
        self._window: deque[float] = deque(maxlen=period)
        self._drift = 0  # updates since the last exact sum

    @property
    def ready(self) -> bool:
        return len(self._window) == self.period

    @property
    def mean(self) -> float:
        return self.total / len(self._window) if self._window else math.nan

    def update(self, value: float) -> None:
        window = self._window
        if len(window) == self.period:
            self.total -= window[0]
        window.append(value)
        self._drift += 1
        if self._drift >= self.period:
            self.total, self._drift = math.fsum(window), 0
        else:
            self.total += value


class MovingExtreme:
    """The highest (or, with ``lowest=True``, the lowest) of the last ``period`` values.

    A monotonic queue: each value enters and leaves it once, so an update is amortised O(1)."""

    def __init__(self, period: int, *, lowest: bool = False) -> None:
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.period = period
        self._sign = -1.0 if lowest else 1.0  # the lowest value is the highest negated
        self._queue: deque[tuple[int, float]] = deque()  # (update number, signed value), decreasing
        self._count = 0

    @property
    def ready(self) -> bool:
        return self._count >= self.period

    @property
    def value(self) -> float:
        return self._sign * self._queue[0][1] if self._queue else math.nan

    def update(self, value: float) -> None:
        signed, queue = self._sign * value, self._queue
        while queue and queue[-1][1] <= signed:
            queue.pop()
        self._count += 1
        queue.append((self._count, signed))
        if queue[0][0] <= self._count - self.period:
            queue.popleft()


class AverageTrueRange:
    """The simple mean of the last ``period`` true ranges (``period + 1`` bars: the first has no
    previous close), as :func:`tradeguard.kernel.bars.rolling_atr` computes over an array.

    Each mean is summed exactly (``math.fsum`` over ``period`` ranges): equal windows give equal ATRs
    whatever came before them, so a percentile among ATRs sees ties as ties."""

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.period = period
        self._ranges: deque[float] = deque(maxlen=period)
        self._close: float | None = None
        self.value = math.nan

    @property
    def ready(self) -> bool:
        return len(self._ranges) == self.period

    def update(self, high: float, low: float, close: float) -> None:
        previous, self._close = self._close, close
        if previous is None:
            return
        ranges = self._ranges
        ranges.append(max(high, previous) - min(low, previous))  # max(h - l, |h - prev|, |l - prev|), exactly
        if len(ranges) == self.period:
            self.value = math.fsum(ranges) / self.period
