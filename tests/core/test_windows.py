"""The sorted sliding window answers as sorting the last values afresh would."""

from __future__ import annotations

import statistics

from hypothesis import given
from hypothesis import strategies as st

from tradeguard.kernel.windows import SortedWindow, percentile


@given(st.integers(1, 12), st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=80))
def test_the_window_holds_the_last_values_in_order_and_their_median(size: int, values: list[float]) -> None:
    rolling = SortedWindow(size)
    for i, value in enumerate(values):
        rolling.append(value)
        window = values[max(0, i + 1 - size) : i + 1]
        assert list(rolling.values) == window and rolling.ordered == sorted(window)
        assert (len(rolling), rolling.median()) == (len(window), statistics.median(window))


def test_percentile_counts_half_of_the_ties() -> None:
    ordered = [1.0, 2.0, 2.0, 3.0]
    assert (percentile(ordered, 0.5), percentile(ordered, 2.0), percentile(ordered, 3.0)) == (0.0, 0.5, 0.875)
