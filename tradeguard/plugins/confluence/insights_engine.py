"""Insights memory (MMR): what happened to past signals, by setup, persisted across restarts.

A trade is followed from its approved decision (strategy, symbol, direction, session, score
bucket, planned stop) through its opening fill (by client id) to the closing fills of its
position (by position id: SL/TP hits and stop-outs carry no client id). When the position is
flat the trade is closed: its R multiple is the journal's realised R (its money over the money it
was sized to risk: a stop filled past a gap counts what it lost, not -1), else the volume-weighted
exit against the entry in units of the planned stop distance; its money result is profit +
commission + swap.

Statistics per (strategy, symbol, side, session, score bucket): count, win rate, average R,
expectancy (money per trade) and the current streak (+n wins / -n losses in a row). They are
shown by ``tradeguard status`` and the report.

The memory is also a scorer: with ``score_mode = "penalize_negative"`` a setup (strategy,
symbol, side, session) whose last ``recent_trades`` trades have a negative mean R gets a score
below 0.5 (0.5 + 0.5 x mean R, floored at 0), which pulls the combined score down; otherwise it
abstains. ``"expectancy"`` always scores a setup with enough history; ``"off"`` never scores.

State is written behind to the store (every ``flush_seconds`` and at shutdown) and read back at
start-up, so open trades and statistics survive a restart; the list of recent closed trades is
in memory only (the journal has every fill).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from tradeguard import (
    Decision,
    Fill,
    PluginSettings,
    Runtime,
    Score,
    Signal,
    WriteBehindPlugin,
    hookimpl,
    score_bucket,
    session_of,
)
from tradeguard.models import DealEntry

NAMESPACE = "insights_engine"
EPS = 1e-9


class InsightsSettings(PluginSettings):
    score_buckets: int = Field(default=5, ge=1, le=20, description="equal-width buckets of the combined score")
    recent_trades: int = Field(default=20, ge=1, le=1000, description="trades the recent expectancy is taken over")
    min_trades: int = Field(default=5, ge=1, le=1000, description="trades a setup needs before it is scored")
    score_mode: Literal["off", "penalize_negative", "expectancy"] = Field(
        default="penalize_negative", description="how the memory scores signals (see the module docstring)"
    )
    max_trades_kept: int = Field(default=1000, ge=10, le=1_000_000, description="closed trades kept in memory")
    max_planned: int = Field(default=1000, ge=10, le=100_000, description="orders awaiting a fill or a decision, kept")
    flush_seconds: float = Field(default=60.0, gt=0, description="how often the memory is written to the store")


@dataclass
class Trade:
    """One followed trade, open or closed."""

    strategy: str
    symbol: str
    side: str
    session: str
    bucket: str
    stop: float
    entry: float = 0.0
    volume_in: float = 0.0
    volume_out: float = 0.0
    exit_value: float = 0.0  # sum of exit price x volume
    money: float = 0.0
    opened: str = ""
    closed: str = ""
    r: float = 0.0

    @property
    def setup(self) -> tuple[str, str, str, str]:
        return (self.strategy, self.symbol, self.side, self.session)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (*self.setup, self.bucket)

    def close(self, when: str, realised: float | None) -> None:
        """``realised``: the journal's R of the trade (money over the money risked, see execution/outcomes.py);
        without it, the exit price against the entry in units of the planned stop distance."""
        if realised is None:
            sign = 1.0 if self.side == "buy" else -1.0
            exit_price = self.exit_value / self.volume_out
            risk = abs(self.entry - self.stop)
            realised = (exit_price - self.entry) * sign / risk if risk > 0 else 0.0
        self.r = realised
        self.closed = when


@dataclass
class Stats:
    count: int = 0
    wins: int = 0
    sum_r: float = 0.0
    money: float = 0.0
    streak: int = 0
    recent_r: list[float] = field(default_factory=list)

    def add(self, trade: Trade, keep: int) -> None:
        won = trade.money > 0
        self.count += 1
        self.wins += won
        self.sum_r += trade.r
        self.money += trade.money
        self.streak = (max(self.streak, 0) + 1) if won else (min(self.streak, 0) - 1)
        self.recent_r = [*self.recent_r, trade.r][-keep:]

    def row(self) -> dict[str, float | int]:
        n = self.count
        return {
            "count": n,
            "win_rate": self.wins / n if n else 0.0,
            "avg_r": self.sum_r / n if n else 0.0,
            "expectancy": self.money / n if n else 0.0,
            "streak": self.streak,
        }


class InsightsEngine(WriteBehindPlugin):
    namespace = NAMESPACE
    settings_model = InsightsSettings
    stage = 5

    def __init__(self) -> None:
        super().__init__()
        self.planned: dict[str, Trade] = {}  # client id -> trade not filled yet
        self.early: dict[str, list[tuple[Fill, float]]] = {}  # client id -> (fill, volume) before its decision
        self.open: dict[int, Trade] = {}  # position id -> open trade
        self.closed: deque[Trade] = deque(maxlen=self.cfg.max_trades_kept)
        self.stats: dict[tuple[str, ...], Stats] = {}  # setup + bucket
        self.setups: dict[tuple[str, ...], Stats] = {}  # setup, for scoring

    # -- lifecycle --------------------------------------------------------------------------

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime
        self.closed = deque(self.closed, maxlen=self.cfg.max_trades_kept)
        saved = runtime.store.kv_get(NAMESPACE, "state") or {}
        self.planned = {k: Trade(**v) for k, v in saved.get("planned", {}).items()}
        self.open = {int(k): Trade(**v) for k, v in saved.get("open", {}).items()}
        self.stats = {tuple(r["key"]): Stats(**r["stats"]) for r in saved.get("stats", [])}
        self.setups = {tuple(r["key"]): Stats(**r["stats"]) for r in saved.get("setups", [])}

    def save(self) -> None:
        state = {  # vars(), not asdict(): flat records, and asdict's deep copies cost a millisecond a flush
            "planned": {k: vars(t) for k, t in self.planned.items()},
            "open": {str(k): vars(t) for k, t in self.open.items()},
            "stats": [{"key": list(k), "stats": vars(s)} for k, s in self.stats.items()],
            "setups": [{"key": list(k), "stats": vars(s)} for k, s in self.setups.items()],
        }
        self.rt.store.kv_put(NAMESPACE, "state", state)
        self.rt.store.kv_put(NAMESPACE, "table", self.table())

    # -- following trades -------------------------------------------------------------------

    @hookimpl
    def on_decision(self, decision: Decision, signal: Signal, runtime: Runtime) -> None:
        if not (decision.approved and decision.client_id and decision.targets):
            return
        self.planned[decision.client_id] = Trade(
            strategy=signal.strategy,
            symbol=signal.symbol,
            side=signal.side,
            session=session_of(signal.bar_close, runtime.settings.pipeline.sessions),
            bucket=score_bucket(decision.combined_score, self.cfg.score_buckets),
            stop=decision.targets.stop_loss,
        )
        self._keep_newest(self.planned)  # orders the broker refused never fill
        self.dirty = True
        for fill, volume in self.early.pop(decision.client_id, []):
            self._open(fill, volume)

    @hookimpl
    def on_fill(self, fill: Fill, runtime: Runtime) -> None:
        volume = fill.volume
        trade = self.open.get(fill.position_id)
        if trade is not None and fill.entry != DealEntry.IN:  # OUT, OUT_BY, or the closing part of INOUT
            closing = min(volume, trade.volume_in - trade.volume_out)
            trade.volume_out += closing
            trade.exit_value += closing * fill.price
            trade.money += fill.profit + fill.commission + fill.swap
            if trade.volume_out >= trade.volume_in - EPS:
                outcome = fill.outcome
                realised = outcome.r_multiple if outcome is not None and outcome.trade_closed else None
                self._close(fill.position_id, trade, fill.time.isoformat(), realised)
            volume -= closing
            self.dirty = True
        if fill.entry in (DealEntry.IN, DealEntry.INOUT) and fill.client_id and volume > EPS:
            self._open(fill, volume)

    def _open(self, fill: Fill, volume: float) -> None:
        """An opening fill: a new trade, or more volume on the open one (partial fill, netting add)."""
        current = self.open.get(fill.position_id)
        if current is not None:
            total = current.volume_in + volume
            current.entry = (current.entry * current.volume_in + fill.price * volume) / total
            current.volume_in = total
            current.money += fill.commission
            self.planned.pop(fill.client_id, None)
        elif (trade := self.planned.pop(fill.client_id, None)) is not None:
            trade.entry, trade.volume_in, trade.money = fill.price, volume, fill.commission
            trade.opened = fill.time.isoformat()
            self.open[fill.position_id] = trade
        else:  # a market order fills before its decision is out: open it when the decision comes
            self.early.setdefault(fill.client_id, []).append((fill, volume))
            self._keep_newest(self.early)  # an order of ours no decision announced (an operator close) never comes
        self.dirty = True

    def _keep_newest(self, waiting: dict[str, Any]) -> None:
        """Forget the oldest entries beyond ``max_planned`` (dicts keep insertion order)."""
        while len(waiting) > self.cfg.max_planned:
            del waiting[next(iter(waiting))]

    def _close(self, position_id: int, trade: Trade, when: str, realised: float | None) -> None:
        trade.close(when, realised)
        del self.open[position_id]
        self.closed.append(trade)
        keep = self.cfg.recent_trades
        self.stats.setdefault(trade.key, Stats()).add(trade, keep)
        self.setups.setdefault(trade.setup, Stats()).add(trade, keep)

    # -- reading ----------------------------------------------------------------------------

    def table(self) -> list[dict[str, Any]]:
        """One row per (strategy, symbol, side, session, score bucket), most trades first."""
        rows = [
            dict(zip(("strategy", "symbol", "side", "session", "bucket"), k, strict=True), **s.row())
            for k, s in self.stats.items()
        ]
        return sorted(rows, key=lambda r: (-r["count"], r["strategy"], r["symbol"], r["side"], r["session"]))

    def recent_expectancy(self, strategy: str, symbol: str, side: str, session: str) -> tuple[float, int] | None:
        """Mean R of the setup's last ``recent_trades`` trades and how many; None below ``min_trades``."""
        stats = self.setups.get((strategy, symbol, side, session))
        if stats is None or len(stats.recent_r) < self.cfg.min_trades:
            return None
        return sum(stats.recent_r) / len(stats.recent_r), len(stats.recent_r)

    @hookimpl
    def score_signal(self, signal: Signal, runtime: Runtime) -> Score | None:
        mode = self.cfg.score_mode
        if mode == "off":
            return None
        session = session_of(signal.bar_close, runtime.settings.pipeline.sessions)
        found = self.recent_expectancy(signal.strategy, signal.symbol, signal.side, session)
        if found is None:
            return None
        mean_r, trades = found
        if mode == "penalize_negative" and mean_r >= 0:
            return None
        value = min(1.0, max(0.0, 0.5 + 0.5 * mean_r))
        return Score(name="insights_engine", value=value, factors={"recent_mean_r": mean_r, "trades": float(trades)})
