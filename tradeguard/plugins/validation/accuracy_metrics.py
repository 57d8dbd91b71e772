"""Accuracy metrics (VAL): what followed every signal, taken or rejected.

Each decided signal is labelled from the bars that close *after* its bar (never the signal bar
or earlier: no look-ahead, and no look-back either):

* ``win``      the target was reached before the stop;
* ``loss``     the stop was reached first, or both in the same bar (a bar does not say which
               came first, so the label is the conservative one); its R is -1, or worse when the
               bar opened past the stop (a gap fills the stop at the open, as the broker does);
* ``expired``  neither within ``horizon_bars``; its R is the close of the last bar against the entry.

Levels come from the decision's targets when the pipeline got that far, else the signal's own
stop/target, else ``stop_atr`` ATRs and ``reward_r`` R from the signal's ATR. A signal with
none of these is not judged (counted as ``unjudged``).

Rejected signals are judged too: per rejection reason, losses are what the gate saved us from
and wins what it cost us. Per strategy: hit rate of taken and rejected signals (precision of
the gate). Calibration: per combined-score bucket, the mean score against the observed hit rate,
and the Brier score. All are exported as metrics and kept in the store for the report. Pending
signals and the tables survive a restart; the list of recent labelled signals is in memory only.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from tradeguard import (
    Bar,
    Children,
    Decision,
    PluginSettings,
    Runtime,
    Signal,
    WriteBehindPlugin,
    hookimpl,
    score_bucket,
)

NAMESPACE = "accuracy_metrics"
OUTCOMES = ("win", "loss", "expired")


class AccuracySettings(PluginSettings):
    horizon_bars: int = Field(default=24, ge=1, le=10_000, description="bars a signal has to reach its target or stop")
    stop_atr: float = Field(default=2.0, gt=0, le=50, description="stop in ATRs if neither pipeline nor signal set one")
    reward_r: float = Field(default=2.0, gt=0, le=50, description="target in R if neither pipeline nor signal set one")
    score_buckets: int = Field(default=10, ge=1, le=100, description="equal-width calibration buckets of the score")
    max_outcomes_kept: int = Field(
        default=1000, ge=10, le=1_000_000, description="labelled signals kept in memory; tables count all"
    )
    flush_seconds: float = Field(default=60.0, gt=0, description="how often state is written to the store")


@dataclass
class Pending:
    """A signal waiting for its outcome."""

    signal_id: str
    strategy: str
    symbol: str
    timeframe: str
    side: str
    bar_time: int  # epoch seconds of the signal bar's open
    taken: bool
    reason: str  # the first rejection reason's code; "" when taken
    score: float | None
    entry: float
    stop: float
    target: float
    bars: int = 0
    outcome: str = ""
    r: float = 0.0

    @property
    def risk(self) -> float:
        return abs(self.entry - self.stop)

    def judge(self, bar: Bar, horizon: int) -> bool:
        """Look at one later bar; True once labelled. A bar that opens past the stop or target (a gap) exits
        at its open, as the broker fills a stop there: the R is what the trade realised, not -1 per stop."""
        sign = 1.0 if self.side == "buy" else -1.0
        opened = bar.open * sign
        self.bars += 1
        if opened >= self.target * sign:  # gapped past the target: filled at the open, whatever follows
            exit_at, self.outcome = bar.open, "win"
        elif opened <= self.stop * sign:  # gapped past the stop
            exit_at, self.outcome = bar.open, "loss"
        elif (bar.low if sign > 0 else bar.high) * sign <= self.stop * sign:  # first, when both: conservative
            exit_at, self.outcome = self.stop, "loss"
        elif (bar.high if sign > 0 else bar.low) * sign >= self.target * sign:
            exit_at, self.outcome = self.target, "win"
        elif self.bars >= horizon:
            exit_at, self.outcome = bar.close, "expired"
        else:
            return False
        self.r = (exit_at - self.entry) * sign / self.risk
        return True


@dataclass
class Tally:
    win: int = 0
    loss: int = 0
    expired: int = 0
    sum_r: float = 0.0
    sum_score: float = 0.0
    brier: float = 0.0

    @property
    def n(self) -> int:
        return self.win + self.loss + self.expired

    def add(self, p: Pending) -> None:
        setattr(self, p.outcome, getattr(self, p.outcome) + 1)
        self.sum_r += p.r
        if p.score is not None:
            self.sum_score += p.score
            self.brier += (p.score - (p.outcome == "win")) ** 2

    def row(self) -> dict[str, float | int]:
        n = self.n
        return {
            "n": n,
            "win": self.win,
            "loss": self.loss,
            "expired": self.expired,
            "hit_rate": self.win / n if n else 0.0,
            "avg_r": self.sum_r / n if n else 0.0,
        }


@dataclass
class Book:
    by_strategy: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))  # "strategy|taken"
    by_reason: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    by_bucket: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    scored: Tally = field(default_factory=Tally)
    unjudged: int = 0


class AccuracyMetrics(WriteBehindPlugin):
    namespace = NAMESPACE
    settings_model = AccuracySettings
    stage = 6

    def __init__(self) -> None:
        super().__init__()
        self.pending: dict[tuple[str, str], list[Pending]] = defaultdict(list)  # (symbol, timeframe)
        self.labelled: deque[Pending] = deque(maxlen=self.cfg.max_outcomes_kept)
        self.book = Book()

    # -- lifecycle --------------------------------------------------------------------------

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime
        self.labelled = deque(self.labelled, maxlen=self.cfg.max_outcomes_kept)
        m = runtime.metrics
        self._outcomes = Children(
            m.counter(
                "tradeguard_signal_outcomes_total",
                "Labelled outcomes of decided signals, by strategy and whether they were taken",
                ("strategy", "taken", "outcome"),
            )
        )
        self._reasons = Children(
            m.counter(
                "tradeguard_rejection_outcomes_total",
                "What followed rejected signals, by the first rejection reason",
                ("reason", "outcome"),
            )
        )
        self._hit_rate = Children(
            m.gauge(
                "tradeguard_signal_hit_rate", "Share of labelled signals that reached the target", ("strategy", "taken")
            )
        )
        self._calibration = Children(
            m.gauge("tradeguard_score_calibration_hit_rate", "Observed hit rate per combined-score bucket", ("bucket",))
        )
        self._brier = m.gauge("tradeguard_score_brier", "Brier score of the combined score against win outcomes")
        self._load(runtime.store.kv_get(NAMESPACE, "state") or {})

    def _load(self, saved: dict[str, Any]) -> None:
        for raw in saved.get("pending", []):
            p = Pending(**raw)
            self.pending[(p.symbol, p.timeframe)].append(p)
        book = saved.get("book")
        if book:
            for name in ("by_strategy", "by_reason", "by_bucket"):
                getattr(self.book, name).update({k: Tally(**v) for k, v in book[name].items()})
            self.book.scored = Tally(**book["scored"])
            self.book.unjudged = book["unjudged"]

    def save(self) -> None:
        book = self.book
        state = {  # vars(), not asdict(): flat records, and asdict's deep copies cost a millisecond a flush
            "pending": [vars(p) for waiting in self.pending.values() for p in waiting],
            "book": {
                "by_strategy": {k: vars(v) for k, v in book.by_strategy.items()},
                "by_reason": {k: vars(v) for k, v in book.by_reason.items()},
                "by_bucket": {k: vars(v) for k, v in book.by_bucket.items()},
                "scored": vars(book.scored),
                "unjudged": book.unjudged,
            },
        }
        self.rt.store.kv_put(NAMESPACE, "state", state)
        self.rt.store.kv_put(NAMESPACE, "tables", self.tables())

    # -- following signals ------------------------------------------------------------------

    @hookimpl
    def on_decision(self, decision: Decision, signal: Signal, runtime: Runtime) -> None:
        levels = self._levels(decision, signal)
        if levels is None:
            self.book.unjudged += 1
            return
        stop, target = levels
        self.pending[(signal.symbol, signal.timeframe)].append(
            Pending(
                signal_id=signal.signal_id,
                strategy=signal.strategy,
                symbol=signal.symbol,
                timeframe=signal.timeframe,
                side=signal.side,
                bar_time=int(signal.bar_time.timestamp()),
                taken=decision.approved,
                reason="" if decision.approved or not decision.reasons else decision.reasons[0].base,
                score=decision.combined_score,
                entry=signal.price,
                stop=stop,
                target=target,
            )
        )
        self.dirty = True

    def _levels(self, decision: Decision, signal: Signal) -> tuple[float, float] | None:
        """(stop, target) on the right sides of the entry, or None when no stop can be known."""
        sign = 1 if signal.side == "buy" else -1
        stop = decision.targets.stop_loss if decision.targets else signal.stop_loss
        if stop is None and signal.atr:
            stop = signal.price - sign * self.cfg.stop_atr * signal.atr
        if stop is None or (signal.price - stop) * sign <= 0:
            return None
        target = decision.targets.take_profit if decision.targets else signal.take_profit
        if target is None or (target - signal.price) * sign <= 0:
            target = signal.price + sign * self.cfg.reward_r * abs(signal.price - stop)
        return stop, target

    @hookimpl
    def on_bar(self, bar: Bar, runtime: Runtime) -> None:
        waiting = self.pending.get((bar.symbol, bar.timeframe))
        if not waiting:
            return
        now = int(bar.time.timestamp())
        horizon = self.cfg.horizon_bars
        still = []
        for p in waiting:
            if now <= p.bar_time or not p.judge(bar, horizon):  # only bars after the signal bar count
                still.append(p)
            else:
                self._label(p)
        if len(still) != len(waiting):
            self.pending[(bar.symbol, bar.timeframe)] = still
            self.dirty = True

    def _label(self, p: Pending) -> None:
        taken = "taken" if p.taken else "rejected"
        book = self.book
        tally = book.by_strategy[f"{p.strategy}|{taken}"]
        tally.add(p)
        self._outcomes[p.strategy, taken, p.outcome].inc()
        self._hit_rate[p.strategy, taken].set(tally.win / tally.n)
        if not p.taken:
            book.by_reason[p.reason].add(p)
            self._reasons[p.reason, p.outcome].inc()
        if p.score is not None:
            bucket = score_bucket(p.score, self.cfg.score_buckets)
            book.by_bucket[bucket].add(p)
            book.scored.add(p)
            self._calibration[bucket,].set(book.by_bucket[bucket].win / book.by_bucket[bucket].n)
            self._brier.set(book.scored.brier / book.scored.n)
        self.labelled.append(p)

    # -- reading ----------------------------------------------------------------------------

    def tables(self) -> dict[str, Any]:
        """The accuracy tables the report and ``status`` show."""
        book = self.book
        strategies = []
        for key, tally in sorted(book.by_strategy.items()):
            strategy, taken = key.split("|")
            strategies.append({"strategy": strategy, "taken": taken, **tally.row()})
        reasons = [{"reason": r, **t.row(), "saved_r": -t.sum_r} for r, t in sorted(book.by_reason.items())]
        calibration = [
            {"bucket": b, **t.row(), "mean_score": t.sum_score / t.n if t.n else 0.0}
            for b, t in sorted(book.by_bucket.items())
        ]
        scored = book.scored
        return {
            "strategies": strategies,
            "reasons": reasons,
            "calibration": calibration,
            "brier": scored.brier / scored.n if scored.n else None,
            "unjudged": book.unjudged,
            "pending": sum(len(w) for w in self.pending.values()),
        }
