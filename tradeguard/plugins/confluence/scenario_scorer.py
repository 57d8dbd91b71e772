"""Scenario scorer (CNF): how much of the market agrees with a signal, in [0, 1].

Six deterministic factors, each in [0, 1], computed on the bars the runtime already holds (no
broker call, no look-ahead: only bars up to the signal bar):

* ``trend``      the signal's direction against the trend on its own and higher timeframes
                 (H4/D1 resampled from the same bars): the share of timeframes that agree;
* ``swing``      room to the nearest opposing swing level (recent high for a buy), in ATRs;
* ``volatility`` the ATR's percentile among recent ATRs: 1 inside the preferred band;
* ``session``    the score of the trading session the signal bar closes in;
* ``spread``     the bar's spread relative to the ATR: 1 at zero, 0 at ``max_spread_atr``;
* ``agreement``  other strategies that fired on the same bar: 0.5 alone, 1 all agree, 0 all oppose.

The score is the weighted mean of the factors; ``Score.factors`` holds each factor's
*contribution* (weight x value / total weight), so they add up to the score and the decision
shows why a signal passed or failed. A factor without enough data is neutral (0.5).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np
from pydantic import Field, field_validator

from tradeguard import (
    OFF_SESSION,
    ConfiguredPlugin,
    PluginSettings,
    Runtime,
    Score,
    Signal,
    SortedWindow,
    hookimpl,
    percentile,
    session_of,
)
from tradeguard.indicators import AverageTrueRange
from tradeguard.models import TIMEFRAME_SECONDS

NEUTRAL = 0.5
FACTORS = ("trend", "swing", "volatility", "session", "spread", "agreement")


class ScorerSettings(PluginSettings):
    weights: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(FACTORS, 1.0), description="factor -> weight (0 switches it off)"
    )
    trend_timeframes: list[str] = Field(
        default_factory=lambda: ["H4", "D1"], description="higher timeframes resampled from the signal's bars"
    )
    trend_period: int = Field(default=20, ge=2, le=500, description="trend moving average, in bars of each timeframe")
    swing_bars: int = Field(default=50, ge=3, le=1000, description="bars searched for the last swing high/low")
    room_atr: float = Field(default=2.0, gt=0, le=50, description="room to the swing level that scores 1, in ATRs")
    atr_period: int = Field(default=14, ge=2, le=200)
    volatility_bars: int = Field(default=100, ge=10, le=1500, description="ATRs the percentile is taken among")
    volatility_band: list[float] = Field(
        default_factory=lambda: [0.2, 0.8], description="ATR percentiles scored 1; outside, falls linearly to 0"
    )
    session_scores: dict[str, float] = Field(
        default_factory=lambda: {"asia": 0.5, "london": 1.0, "overlap": 1.0, "new_york": 0.8, OFF_SESSION: 0.2},
        description="session (pipeline.sessions, or 'off') -> score; unnamed sessions score 0.5",
    )
    max_spread_atr: float = Field(default=0.25, gt=0, le=10, description="spread/ATR at which the spread factor is 0")

    @field_validator("weights")
    @classmethod
    def _known_factors(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(FACTORS))
        if unknown:
            raise ValueError(f"unknown factors {unknown}; known: {list(FACTORS)}")
        if any(not w >= 0 for w in value.values()) or not any(value.values()):
            raise ValueError(f"weights must be >= 0 and not all 0, got {value}")
        return value

    @field_validator("trend_timeframes")
    @classmethod
    def _known_timeframes(cls, value: list[str]) -> list[str]:
        unknown = [tf for tf in value if tf not in TIMEFRAME_SECONDS]
        if unknown:
            raise ValueError(f"unknown timeframes {unknown}; known: {list(TIMEFRAME_SECONDS)}")
        return value

    @field_validator("volatility_band")
    @classmethod
    def _band(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or not 0 < value[0] <= value[1] < 1:
            raise ValueError(f"need 0 < low <= high < 1, got {value}")
        return value

    @field_validator("session_scores")
    @classmethod
    def _unit(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0 <= v <= 1}
        if bad:
            raise ValueError(f"session scores must be in [0, 1], got {bad}")
        return value


# -- the factors: pure functions of numpy bar arrays (oldest first, the signal bar last) --------


def resampled_closes(bars: np.ndarray, seconds: int) -> np.ndarray:
    """The close of each ``seconds`` bucket (the last bar's close in it), buckets in time order."""
    buckets = bars["time"] // seconds
    last_in_bucket = np.flatnonzero(buckets[1:] != buckets[:-1])  # each bar whose successor opens a new bucket
    closes = bars["close"]
    return np.concatenate((closes[last_in_bucket], closes[-1:]))


def trend_factor(bars: np.ndarray, side_sign: int, own_seconds: int, timeframes: list[str], period: int) -> float:
    """Share of timeframes (own + higher) whose close is on the signal's side of its moving average."""
    agree = votes = 0
    for seconds in [own_seconds, *(TIMEFRAME_SECONDS[tf] for tf in timeframes)]:
        if seconds < own_seconds:
            continue  # a lower timeframe cannot be built from these bars
        tail = bars[-period * -(-seconds // own_seconds) :]  # a bucket holds at most ceil(seconds / own) bars
        closes = tail["close"] if seconds == own_seconds else resampled_closes(tail, seconds)
        if len(closes) < period:
            continue
        last = closes[-period:].tolist()  # 20-odd floats: Python's exact sum beats numpy's call overhead
        gap = last[-1] - math.fsum(last) / period
        if gap != 0:
            votes += 1
            agree += (gap > 0) == (side_sign > 0)
    return agree / votes if votes else NEUTRAL


class TrendTracker:
    """The closes the trend vote reads, kept up to date bar by bar instead of resampled per signal.

    For the own timeframe and each higher one, the closes of the last ``period`` buckets (the newest
    bucket's close is its latest bar's, as :func:`resampled_closes` takes it). :meth:`vote` equals
    :func:`trend_factor` over the same bars: a tail of ``period x ceil(tf / own)`` bars always holds
    ``period`` buckets when the whole history does. A scorer asked per signal used to resample some
    500 bars twice each time; this reads each new bar once.
    """

    def __init__(self, own_seconds: int, timeframes: list[str], period: int) -> None:
        self.period = period
        self.count = 0  # bars of the series taken in
        # (seconds, closes of the last buckets, the newest bucket): own first, lower timeframes left out
        self.frames = [
            (seconds, deque[float](maxlen=period), [-1])
            for seconds in [own_seconds, *(TIMEFRAME_SECONDS[tf] for tf in timeframes)]
            if seconds >= own_seconds
        ]

    def take(self, bars: np.ndarray) -> None:
        """Take in ``bars``, the series' bars after those already taken, oldest first."""
        times, closes = bars["time"].tolist(), bars["close"].tolist()
        for seconds, last, newest in self.frames:
            for t, c in zip(times, closes, strict=True):
                bucket = t // seconds
                if bucket == newest[0]:
                    last[-1] = c
                else:
                    last.append(c)
                    newest[0] = bucket
        self.count += len(times)

    def vote(self, side_sign: int) -> float:
        agree = votes = 0
        period = self.period
        for _, last, _ in self.frames:
            if len(last) < period:
                continue
            gap = last[-1] - math.fsum(last) / period
            if gap != 0:
                votes += 1
                agree += (gap > 0) == (side_sign > 0)
        return agree / votes if votes else NEUTRAL


def swing_factor(bars: np.ndarray, side_sign: int, price: float, atr: float, lookback: int, room_atr: float) -> float:
    """Room to the opposing swing level in ATRs, scaled so ``room_atr`` scores 1; past the level scores 1."""
    before = bars[-lookback - 1 : -1]
    if len(before) < lookback or atr <= 0:
        return NEUTRAL
    level = before["high"].max() if side_sign > 0 else before["low"].min()
    room = (level - price) * side_sign / atr
    return 1.0 if room <= 0 else float(min(1.0, room / room_atr))


def volatility_factor(ordered: list[float], last: float, band: list[float]) -> float:
    """1 while the ``last`` ATR's percentile among the ``ordered`` (sorted) ones is inside ``band``, falling
    linearly to 0 outside."""
    if len(ordered) < 2:
        return NEUTRAL
    pct = percentile(ordered, last)
    low, high = band
    if pct < low:
        return pct / low
    if pct > high:
        return (1.0 - pct) / (1.0 - high)
    return 1.0


class VolatilityTracker:
    """The series' last ``window`` ATRs, kept bar by bar and sorted: a scorer asked per signal used to
    rebuild a rolling ATR over a hundred-odd bars with numpy each time."""

    def __init__(self, period: int, window: int) -> None:
        self._atr = AverageTrueRange(period)
        self._window = SortedWindow(window)
        self.atrs = self._window.values  # oldest first

    def take(self, bars: np.ndarray) -> None:
        """Take in ``bars``, the series' bars after those already taken, oldest first."""
        atr = self._atr
        for high, low, close in zip(bars["high"].tolist(), bars["low"].tolist(), bars["close"].tolist(), strict=True):
            atr.update(high, low, close)
            if atr.ready:
                self._window.append(atr.value)

    def factor(self, band: list[float]) -> float:
        return volatility_factor(self._window.ordered, self.atrs[-1], band) if self.atrs else NEUTRAL


def spread_factor(spread_price: float, atr: float, max_ratio: float) -> float:
    if atr <= 0:
        return NEUTRAL
    return float(max(0.0, 1.0 - spread_price / atr / max_ratio))


def agreement_factor(signal: Signal, same_bar: tuple[Signal, ...]) -> float:
    """0.5 when no other strategy fired on this symbol and bar; 1 when all agree; 0 when all oppose."""
    key = (signal.symbol, signal.bar_time)
    others = [s for s in same_bar if (s.symbol, s.bar_time) == key and s.strategy != signal.strategy]
    if not others:
        return NEUTRAL
    agree = sum(s.side == signal.side for s in others)
    return 0.5 + 0.5 * (2 * agree - len(others)) / len(others)


class SeriesTrackers:
    """One series' trackers, fed the same bars; the trend tracker's count is the series' count."""

    def __init__(self, trend: TrendTracker, volatility: VolatilityTracker) -> None:
        self.trend, self.volatility = trend, volatility

    def take(self, bars: np.ndarray) -> None:
        self.trend.take(bars)
        self.volatility.take(bars)


class ScenarioScorer(ConfiguredPlugin):
    settings_model = ScorerSettings
    stage = 5

    def __init__(self) -> None:
        super().__init__()
        self._series: dict[tuple[str, str], SeriesTrackers] = {}

    def _tracked(self, signal: Signal, bars: np.ndarray, total: int) -> SeriesTrackers:
        """The series' trackers, brought up to date with the bars since the last signal. ``bars`` are the
        series' newest (at least a trend tail and a volatility window of them), ``total`` how many it ever had."""
        key = (signal.symbol, signal.timeframe)
        tracked = self._series.get(key)
        missed = total - tracked.trend.count if tracked is not None else total
        if tracked is None or missed > len(bars):  # new, or more came than these bars hold: start over from them
            cfg = self.cfg
            trend = TrendTracker(TIMEFRAME_SECONDS[signal.timeframe], cfg.trend_timeframes, cfg.trend_period)
            tracked = self._series[key] = SeriesTrackers(trend, VolatilityTracker(cfg.atr_period, cfg.volatility_bars))
            trend.count, missed = total - len(bars), len(bars)
        if missed:
            tracked.take(bars[len(bars) - missed :])
        return tracked

    @hookimpl
    def score_signal(self, signal: Signal, runtime: Runtime) -> Score:
        values = self.factors(signal, runtime)
        weights = self.cfg.weights
        total = sum(weights.get(f, 0.0) for f in FACTORS)
        contributions = {f: weights.get(f, 0.0) * values[f] / total for f in FACTORS}
        return Score(name="scenario_scorer", value=min(1.0, sum(contributions.values())), factors=contributions)

    def factors(self, signal: Signal, runtime: Runtime) -> dict[str, float]:
        """Every factor's value in [0, 1] for ``signal``, from the bars up to its bar."""
        cfg = self.cfg
        own = TIMEFRAME_SECONDS[signal.timeframe]
        deepest = max([own, *(TIMEFRAME_SECONDS[tf] for tf in cfg.trend_timeframes)])
        need = max(cfg.trend_period * deepest // own, cfg.swing_bars + 1, cfg.volatility_bars + cfg.atr_period) + 1
        bars = runtime.bars.get(signal.symbol, signal.timeframe, need)
        cutoff = int(signal.bar_time.timestamp())
        sign = 1 if signal.side == "buy" else -1
        if len(bars) and bars["time"][-1] > cutoff:  # the signal is older than the newest bar: no look-ahead
            bars = bars[bars["time"] <= cutoff]
            trend = trend_factor(bars, sign, own, cfg.trend_timeframes, cfg.trend_period)
            past = VolatilityTracker(cfg.atr_period, cfg.volatility_bars)
            past.take(bars[-cfg.volatility_bars - cfg.atr_period :])
            atrs: Sequence[float] = past.atrs
            volatility = past.factor(cfg.volatility_band)
        else:
            tracked = self._tracked(signal, bars, runtime.bars.count(signal.symbol, signal.timeframe))
            atrs = tracked.volatility.atrs
            trend, volatility = tracked.trend.vote(sign), tracked.volatility.factor(cfg.volatility_band)
        atr = atrs[-1] if atrs else (signal.atr or 0.0)
        session = session_of(signal.bar_close, runtime.settings.pipeline.sessions)
        spread = float(bars["spread"][-1]) * runtime.broker.symbol_spec(signal.symbol).point if len(bars) else 0.0
        return {
            "trend": trend,
            "swing": swing_factor(bars, sign, signal.price, atr, cfg.swing_bars, cfg.room_atr),
            "volatility": volatility,
            "session": cfg.session_scores.get(session, NEUTRAL),
            "spread": spread_factor(spread, atr, cfg.max_spread_atr) if len(bars) else NEUTRAL,
            "agreement": agreement_factor(signal, runtime.bar_signals),
        }
