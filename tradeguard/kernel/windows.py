"""A sliding window of numbers kept sorted as values come and go.

Plugins that ask an order statistic of a series' recent values on every bar (the health monitor's
usual spread, the scorer's volatility percentile) would otherwise sort the whole window each time;
kept sorted, each new value costs two bisections.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque


def percentile(ordered: list[float], value: float) -> float:
    """``value``'s percentile among ``ordered`` (sorted): the share below it, plus half the share equal to it."""
    below, upto = bisect_left(ordered, value), bisect_right(ordered, value)
    return (below + 0.5 * (upto - below)) / len(ordered)


class SortedWindow:
    """The last ``size`` values in arrival order (``values``) and sorted (``ordered``)."""

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self.ordered: list[float] = []

    def __len__(self) -> int:
        return len(self.values)

    def append(self, value: float) -> None:
        if len(self.values) == self.values.maxlen:
            del self.ordered[bisect_left(self.ordered, self.values[0])]
        self.values.append(value)
        insort(self.ordered, value)

    def median(self) -> float:
        values, mid = self.ordered, len(self.ordered) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
