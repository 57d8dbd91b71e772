"""The scenario scorer's factors on hand-built bars, the combined score, and the score gate."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeguard import Bar, Signal, hookimpl
from tradeguard.kernel.bars import DTYPE, rolling_atr, true_ranges
from tradeguard.plugins.confluence.scenario_scorer import (
    FACTORS,
    ScenarioScorer,
    TrendTracker,
    VolatilityTracker,
    agreement_factor,
    resampled_closes,
    spread_factor,
    swing_factor,
    trend_factor,
    volatility_factor,
)
from tradeguard.testing import T0, signal


def bars(closes: list[float], *, start: int = 0, spread: int = 0, wick: float = 0.0) -> np.ndarray:
    """H1 bars opening at ``start + 3600 i``, each opening at the previous close."""
    out = np.zeros(len(closes), dtype=DTYPE)
    opens = [closes[0], *closes[:-1]]
    for i, (o, c) in enumerate(zip(opens, closes, strict=True)):
        out[i] = (start + 3600 * i, o, max(o, c) + wick, min(o, c) - wick, c, 0, spread)
    return out


def test_resampling_takes_each_buckets_last_close() -> None:
    closes = [float(c) for c in range(1, 9)]
    assert resampled_closes(bars(closes), 14400).tolist() == [4.0, 8.0]
    assert resampled_closes(bars(closes[:6]), 14400).tolist() == [4.0, 6.0]  # the open bucket counts as it stands


def test_trend_is_the_share_of_timeframes_that_agree() -> None:
    rising_then_dip = [1.0 + 0.01 * i for i in range(40)] + [1.36]
    b = bars(rising_then_dip)
    # H1: 1.36 < mean(1.39, 1.36); H4: 1.36 < mean(1.39, 1.36); D1: 1.36 > mean(1.23, 1.36)
    assert trend_factor(b, +1, 3600, ["H4", "D1"], 2) == pytest.approx(1 / 3)
    assert trend_factor(b, -1, 3600, ["H4", "D1"], 2) == pytest.approx(2 / 3)
    # period 5: H1 mean 1.372 (disagrees with a buy), H4 mean 1.336 (agrees), D1 has only 2 closes: skipped
    assert trend_factor(b, +1, 3600, ["H4", "D1"], 5) == pytest.approx(0.5)
    assert trend_factor(b[:3], +1, 3600, ["D1"], 5) == 0.5  # no timeframe has the data: neutral
    assert trend_factor(b, +1, 14400, ["H1"], 2) == 0.0  # a lower timeframe is not built from higher bars


def test_swing_room_in_atrs() -> None:
    b = bars([1.10, 1.11, 1.115, 1.10, 1.10])  # highs before the last bar: 1.10, 1.11, 1.115, 1.115 (wickless)
    assert swing_factor(b, +1, 1.10, 0.01, 3, 2.0) == pytest.approx(0.75)  # 1.5 ATR of room of 2
    assert swing_factor(b, +1, 1.10, 0.01, 3, 1.0) == 1.0  # capped
    assert swing_factor(b, +1, 1.12, 0.01, 3, 2.0) == 1.0  # above the swing high: a breakout
    assert swing_factor(b, -1, 1.105, 0.01, 3, 2.0) == pytest.approx(0.25)  # lows 1.10: 0.5 ATR of room
    assert swing_factor(b, +1, 1.10, 0.01, 10, 2.0) == 0.5  # not enough bars
    assert swing_factor(b, +1, 1.10, 0.0, 3, 2.0) == 0.5  # no ATR


def test_volatility_percentile_band() -> None:
    ordered = np.arange(1.0, 11.0)
    assert volatility_factor(ordered, 10.0, [0.2, 0.8]) == pytest.approx(0.25)  # pct 0.95
    assert volatility_factor(ordered, 1.0, [0.2, 0.8]) == pytest.approx(0.25)  # pct 0.05
    assert volatility_factor(ordered, 5.0, [0.2, 0.8]) == 1.0  # pct 0.45
    assert volatility_factor(np.array([1.0]), 1.0, [0.2, 0.8]) == 0.5


def test_rolling_atr_and_spread() -> None:
    b = bars([1.0, 1.0, 1.0, 1.0], wick=0.01)  # every true range is 0.02
    assert rolling_atr(b, 2).tolist() == pytest.approx([0.02, 0.02])
    assert spread_factor(0.0001, 0.001, 0.25) == pytest.approx(0.6)
    assert spread_factor(0.001, 0.001, 0.25) == 0.0
    assert spread_factor(0.0001, 0.0, 0.25) == 0.5


def test_agreement_counts_other_strategies_on_the_same_bar() -> None:
    me = signal(strategy="a")
    assert agreement_factor(me, (me,)) == 0.5
    assert agreement_factor(me, (me, signal(strategy="b"))) == 1.0
    assert agreement_factor(me, (me, signal(strategy="b"), signal(strategy="c", side="sell"))) == 0.5
    opposed = (signal(strategy="b", side="sell", stop_loss=1.2), signal(strategy="c", side="sell", stop_loss=1.2))
    assert agreement_factor(me, opposed) == 0.0
    other_bar = signal(strategy="b", bar_time=T0 - timedelta(hours=2))
    assert agreement_factor(me, (me, other_bar, signal(strategy="a", side="sell", stop_loss=1.2))) == 0.5


def _fill_history(rt: Any, count: int = 200) -> None:
    start = T0 - timedelta(hours=count)
    for i in range(count):  # a steady rise with a small wick; spread 10 points
        o, c = 1.0 + 0.001 * i, 1.0 + 0.001 * (i + 1)
        rt.bars.append(
            Bar(
                symbol="EURUSD",
                timeframe="H1",
                time=start + timedelta(hours=i),
                open=o,
                high=c + 0.0005,
                low=o - 0.0005,
                close=c,
                spread=10,
            )
        )


def test_score_is_the_weighted_mean_and_each_contribution_is_recorded(runtime: Any) -> None:
    scorer = ScenarioScorer()
    weights = {"trend": 2.0, "swing": 1.0, "volatility": 1.0, "session": 1.0, "spread": 0.0, "agreement": 1.0}
    rt = runtime(("scenario_scorer", scorer), scenario_scorer={"weights": weights})
    _fill_history(rt)
    s = signal(price=1.2, stop_loss=1.19)  # the last close of the history, a buy with the trend
    raw = scorer.factors(s, rt)
    assert raw["trend"] == 1.0  # H1, H4 and D1 all rising
    assert raw["swing"] == 1.0  # at the top: no swing high above
    assert raw["session"] == 1.0  # closes 10:00 UTC: london
    assert raw["agreement"] == 0.5  # alone
    assert raw["volatility"] == 1.0  # every true range is 0.002: the ATR sits at the 50th percentile
    assert raw["spread"] == pytest.approx(0.8)  # 10 points = 0.0001 = 0.05 ATR, of 0.25
    decision = rt.decide(s)
    (score,) = decision.scores
    assert set(score.factors) == set(FACTORS)
    total = sum(weights.values())
    for name in FACTORS:
        assert score.factors[name] == pytest.approx(weights[name] * raw[name] / total)
    assert score.factors["spread"] == 0.0  # weight 0 switches it off
    assert score.value == pytest.approx(sum(score.factors.values()))
    assert decision.combined_score == pytest.approx(score.value)


def test_a_sell_against_the_trend_scores_lower_and_the_gate_names_the_reason(runtime: Any) -> None:
    scorer = ScenarioScorer()
    rt = runtime(("scenario_scorer", scorer), pipeline={"min_score": 0.75})
    _fill_history(rt)
    buy = rt.decide(signal(price=1.2, stop_loss=1.19))
    sell = rt.decide(signal(side="sell", price=1.2, stop_loss=1.21))
    assert buy.combined_score > sell.combined_score
    assert sell.scores[0].factors["trend"] == 0.0
    assert not sell.approved and sell.stage == "score"
    assert [r.code for r in sell.reasons] == ["score_below_minimum"]
    assert sell.combined_score == pytest.approx(4.3 / 6)  # trend 0, spread 0.8, agreement 0.5, the rest 1
    assert f"{sell.combined_score:.3f} < minimum 0.750" in sell.reasons[0].message
    assert buy.stage != "score"


class _Says:
    def __init__(self, name: str, side: str) -> None:
        self.name, self.side = name, side

    @hookimpl
    def generate_signals(self, bar: Bar, runtime: Any) -> list[Signal]:
        stop = bar.close - 0.01 if self.side == "buy" else bar.close + 0.01
        return [
            Signal(
                strategy=self.name,
                symbol=bar.symbol,
                side=self.side,
                bar_time=bar.time,
                created_at=runtime.clock.now(),
                price=bar.close,
                stop_loss=stop,
            )
        ]


def test_strategies_that_fire_on_the_same_bar_see_each_other(runtime: Any) -> None:
    rt = runtime(
        ("scenario_scorer", ScenarioScorer()),
        ("a", _Says("a", "buy")),
        ("b", _Says("b", "buy")),
        ("c", _Says("c", "sell")),
    )
    _fill_history(rt)
    bar = Bar(symbol="EURUSD", timeframe="H1", time=T0, open=1.2, high=1.2005, low=1.1995, close=1.2, spread=10)
    rt.bars.append(bar)
    decisions = rt.on_bar(bar)
    assert len(decisions) == len(rt.bar_signals) == 3
    pairs = zip(rt.bar_signals, decisions, strict=True)
    agreement = {s.strategy: d.scores[0].factors["agreement"] * 6 for s, d in pairs}
    # a: b agrees, c opposes -> 0.5; b: the same; c: both oppose -> 0 (contributions are raw / 6 factors)
    assert agreement == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.0})


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(st.sampled_from([1, 1, 1, 1, 2, 5, 49]), st.floats(1.0, 1.2)), min_size=2, max_size=600),
    period=st.integers(2, 25),
)
def test_trend_reads_only_the_tail_it_needs_and_agrees_with_the_whole_window(
    rows: list[tuple[int, float]], period: int
) -> None:
    """Higher timeframes are resampled from the last period x (tf / own) bars: with gaps (weekends, a
    missing hour) that tail still holds every close the vote needs."""
    window = bars([close for _, close in rows])
    window["time"] = np.cumsum([3600 * step for step, _ in rows])

    def whole(sign: int) -> float:  # the same vote over the whole window
        agree = votes = 0
        for seconds in (3600, 14400, 86400):
            series = window["close"] if seconds == 3600 else resampled_closes(window, seconds)
            if len(series) >= period and (gap := series[-1] - math.fsum(series[-period:].tolist()) / period):
                votes, agree = votes + 1, agree + ((gap > 0) == (sign > 0))
        return agree / votes if votes else 0.5

    for sign in (1, -1):
        assert trend_factor(window, sign, 3600, ["H4", "D1"], period) == whole(sign)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(st.sampled_from([1, 1, 1, 1, 2, 5, 49]), st.floats(1.0, 1.2)), min_size=1, max_size=400),
    period=st.integers(2, 25),
    chunk=st.integers(1, 40),
)
def test_the_trend_tracker_votes_as_the_resampled_tail_does(
    rows: list[tuple[int, float]], period: int, chunk: int
) -> None:
    """Fed the bars a few at a time, as signals arrive, the tracker casts the same vote as
    ``trend_factor`` over every bar so far, to the bit."""
    window = bars([close for _, close in rows])
    window["time"] = np.cumsum([3600 * step for step, _ in rows])
    tracker = TrendTracker(3600, ["H4", "D1"], period)
    for end in range(chunk, len(window) + chunk, chunk):
        tracker.take(window[tracker.count : end])
        for sign in (1, -1):
            assert tracker.vote(sign) == trend_factor(window[:end], sign, 3600, ["H4", "D1"], period)


def exact_atrs(bars: np.ndarray, period: int) -> list[float]:
    """The oracle: the ``period`` mean of true ranges at every bar from the ``period``-th range on, each sum
    exactly rounded (``math.fsum``), over the whole array at once."""
    ranges = true_ranges(bars).tolist()
    return [math.fsum(ranges[i - period : i]) / period for i in range(period, len(ranges) + 1)]


@settings(max_examples=150, deadline=None)
@given(
    closes=st.lists(st.sampled_from([1.1, 1.1002, 1.1005, 1.101, 1.0998, 1.12]), min_size=1, max_size=300),
    wick=st.sampled_from([0.0, 0.0003]),
    period=st.integers(2, 20),
    window=st.integers(10, 60),
    chunk=st.integers(1, 40),
)
def test_the_volatility_tracker_scores_as_the_tail_does(
    closes: list[float], wick: float, period: int, window: int, chunk: int
) -> None:
    """Fed a few bars at a time, the tracker's ATR and factor are those of the tail's exact ATRs, to the
    bit; few distinct prices, so equal ATRs (the percentile's ties) are common."""
    series = bars(closes, wick=wick)
    tracker = VolatilityTracker(period, window)
    taken = 0
    for end in range(chunk, len(series) + chunk, chunk):
        tracker.take(series[taken:end])
        taken = min(end, len(series))
        atrs = exact_atrs(series[:taken][-window - period :], period)
        assert list(tracker.atrs) == atrs
        assert tracker.factor([0.2, 0.8]) == (volatility_factor(sorted(atrs), atrs[-1], [0.2, 0.8]) if atrs else 0.5)
    whole = rolling_atr(series, period)
    assert list(tracker.atrs) == pytest.approx(whole[-window:].tolist(), rel=1e-12)  # the risk guard's ATR, less exact


def test_the_scorer_keeps_its_trend_tracker_up_to_date_between_signals(runtime: Any) -> None:
    """Signals a bar apart, hundreds of bars apart (more than a trend tail: the tracker starts over)
    and for an older bar (no look-ahead): each vote is the one resampling the bars would give."""
    scorer = ScenarioScorer()
    rt = runtime(("scenario_scorer", scorer))
    start, made = T0 - timedelta(hours=3000), 0
    for burst in (30, 1, 1, 7, 700, 2, 120, 600, 1):
        for _ in range(burst):  # a zigzag with a period unlike any bucket's: the votes keep changing
            c = 1.1 + 0.01 * math.sin(made / 37) + 0.004 * math.sin(made / 5)
            rt.bars.append(
                Bar(
                    symbol="EURUSD",
                    timeframe="H1",
                    time=start + timedelta(hours=made),
                    open=c,
                    high=c,
                    low=c,
                    close=c,
                    spread=10,
                )
            )
            made += 1
        last = start + timedelta(hours=made - 1)
        held = rt.bars.get("EURUSD", "H1", 2000)
        for side, bar_time in (("buy", last), ("sell", last), ("buy", last - timedelta(hours=3))):
            s = signal(side=side, bar_time=bar_time, price=1.1, stop_loss=1.0 if side == "buy" else 1.2)
            upto = held[held["time"] <= int(bar_time.timestamp())]
            expected = trend_factor(upto, 1 if side == "buy" else -1, 3600, ["H4", "D1"], 20)
            assert scorer.factors(s, rt)["trend"] == expected
