"""The incremental indicators give the figures a recomputation over the window gives, however long the run."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeguard.indicators import AverageTrueRange, MovingExtreme, MovingSum
from tradeguard.kernel.bars import DTYPE, rolling_atr, true_ranges

prices = st.lists(st.floats(min_value=0.5, max_value=2.0, allow_nan=False), min_size=1, max_size=300)


@settings(max_examples=200, deadline=None)
@given(values=prices, period=st.integers(1, 40))
def test_moving_sum_and_extremes_match_the_window_at_every_bar(values: list[float], period: int) -> None:
    total, high, low = MovingSum(period), MovingExtreme(period), MovingExtreme(period, lowest=True)
    for i, value in enumerate(values):
        for indicator in (total, high, low):
            indicator.update(value)
        window = values[max(0, i + 1 - period) : i + 1]
        assert total.ready == high.ready == low.ready == (i + 1 >= period)
        assert math.isclose(total.mean, math.fsum(window) / len(window), rel_tol=1e-12)
        assert (high.value, low.value) == (max(window), min(window))


def test_a_long_run_does_not_drift() -> None:
    """A million updates of values that do not add exactly: the running sum stays the window's sum."""
    total = MovingSum(30)
    values = [1.1 + (i % 97) * 1e-5 for i in range(1_000_000)]
    for value in values:
        total.update(value)
    assert abs(total.total - math.fsum(values[-30:])) < 1e-12


@settings(max_examples=100, deadline=None)
@given(closes=st.lists(st.floats(min_value=1.0, max_value=1.2), min_size=2, max_size=120), period=st.integers(2, 30))
def test_atr_matches_the_vectorised_rolling_atr(closes: list[float], period: int) -> None:
    bars = np.zeros(len(closes), dtype=DTYPE)
    bars["close"], bars["high"], bars["low"] = closes, [c + 0.001 for c in closes], [c - 0.002 for c in closes]
    atr, expected = AverageTrueRange(period), rolling_atr(bars, period)
    values = []
    for row in bars:
        atr.update(float(row["high"]), float(row["low"]), float(row["close"]))
        if atr.ready:
            values.append(atr.value)
    assert len(values) == len(expected)
    assert np.allclose(values, expected, rtol=1e-12, atol=0)


def test_empty_windows_say_nan_and_a_period_must_be_positive() -> None:
    assert math.isnan(MovingSum(3).mean) and math.isnan(MovingExtreme(3).value)
    for make in (MovingSum, MovingExtreme):
        try:
            make(0)
        except ValueError as exc:
            assert "period" in str(exc)
        else:
            raise AssertionError(f"{make.__name__}(0) accepted")


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.floats(0.5, 2.0), st.floats(0.0, 0.05), st.floats(0.0, 1.0), st.floats(0.5, 2.0)),
        min_size=2,
        max_size=50,
    )
)
def test_true_ranges_equal_the_textbook_formula_to_the_bit(rows: list[tuple[float, float, float, float]]) -> None:
    """max(high, prev) - min(low, prev) is the same float as max(high - low, |high - prev|, |low - prev|)."""
    bars = np.zeros(len(rows), dtype=DTYPE)
    bars["low"] = [low for low, _, _, _ in rows]
    bars["high"] = [low + width for low, width, _, _ in rows]
    bars["close"] = [prev for _, _, _, prev in rows]
    h, lo, prev = bars["high"][1:], bars["low"][1:], bars["close"][:-1]
    textbook = np.maximum(h - lo, np.maximum(np.abs(h - prev), np.abs(lo - prev)))
    assert true_ranges(bars).tolist() == textbook.tolist()
