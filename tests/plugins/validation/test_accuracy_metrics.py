"""Accuracy labels from hand-built bars: win, loss, expiry, no look-ahead, tables, metrics, restart."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from tradeguard import Bar, Decision, Reason, Targets
from tradeguard.plugins.validation.accuracy_metrics import AccuracyMetrics
from tradeguard.store.sqlite import Store
from tradeguard.testing import T0, make_runtime, signal

SIGNAL_BAR = T0 - timedelta(hours=1)  # testing.signal()'s bar: buy at 1.1000, stop 1.0950


def accuracy(db: Path, **cfg: Any) -> tuple[Any, AccuracyMetrics]:
    plugin = AccuracyMetrics()
    rt = make_runtime(("accuracy_metrics", plugin), store=Store(db), settings={"accuracy_metrics": cfg})
    return rt, plugin


def decided(
    rt: Any,
    plugin: AccuracyMetrics,
    *,
    approved: bool = True,
    reason: str = "max_open_positions",
    score: float | None = None,
    target: float | None = 1.1100,
    **fields: Any,
) -> Any:
    sig = signal(**fields)
    targets = Targets(stop_loss=sig.stop_loss, take_profit=target) if approved and sig.stop_loss else None
    reasons = () if approved else (Reason(code=reason, message=f"{reason}: test"),)
    d = Decision(
        signal_id=sig.signal_id,
        approved=approved,
        stage="done" if approved else "risk",
        reasons=reasons,
        targets=targets,
        combined_score=score,
        decided_at=T0,
    )
    plugin.on_decision(d, sig, rt)
    return sig


def bar(hours_after_signal_bar: int, high: float, low: float, close: float | None = None, open_: float = 1.1000) -> Bar:
    """A bar opening at the signals' entry (1.1000) unless told: no gap past a level."""
    close = (high + low) / 2 if close is None else close
    return Bar(
        symbol="EURUSD",
        timeframe="H1",
        time=SIGNAL_BAR + timedelta(hours=hours_after_signal_bar),
        open=min(max(open_, low), high),
        high=high,
        low=low,
        close=close,
    )


def labels(plugin: AccuracyMetrics) -> list[tuple[str, float]]:
    return [(p.outcome, round(p.r, 6)) for p in plugin.labelled]


def test_target_before_stop_is_a_win(tmp_path: Path) -> None:
    rt, plugin = accuracy(tmp_path / "a.db")
    decided(rt, plugin)
    plugin.on_bar(bar(1, 1.1050, 1.0990), rt)
    assert not plugin.labelled
    plugin.on_bar(bar(2, 1.1110, 1.1000), rt)
    assert labels(plugin) == [("win", 2.0)]


def test_stop_first_or_both_in_one_bar_is_a_loss(tmp_path: Path) -> None:
    rt, plugin = accuracy(tmp_path / "a.db")
    decided(rt, plugin, strategy="a")
    decided(rt, plugin, strategy="b", side="sell", price=1.1000, stop_loss=1.1050, target=1.0900)
    plugin.on_bar(bar(1, 1.1120, 1.0940), rt)  # spans both levels of both signals: conservative
    assert labels(plugin) == [("loss", -1.0), ("loss", -1.0)]


def test_neither_within_the_horizon_expires_at_the_last_close(tmp_path: Path) -> None:
    rt, plugin = accuracy(tmp_path / "a.db", horizon_bars=2)
    decided(rt, plugin)
    plugin.on_bar(bar(1, 1.1040, 1.0980), rt)
    plugin.on_bar(bar(2, 1.1040, 1.0980, close=1.1025), rt)
    assert labels(plugin) == [("expired", 0.5)]  # +0.0025 of a 0.0050 risk


def test_no_look_ahead_only_bars_after_the_signal_bar_count(tmp_path: Path) -> None:
    rt, plugin = accuracy(tmp_path / "a.db")
    decided(rt, plugin)
    plugin.on_bar(bar(0, 1.1200, 1.0990), rt)  # the signal bar itself reaches the target: not evidence
    plugin.on_bar(bar(-5, 1.0900, 1.0800), rt)  # an older bar (a late delivery) hits the stop: ignored
    other = Bar(symbol="GBPUSD", timeframe="H1", time=SIGNAL_BAR + timedelta(hours=1), open=1, high=2, low=0.5, close=1)
    plugin.on_bar(other, rt)  # another symbol
    assert not plugin.labelled and plugin.tables()["pending"] == 1
    plugin.on_bar(bar(1, 1.1010, 1.0940), rt)
    assert labels(plugin) == [("loss", -1.0)]


def test_levels_fall_back_to_the_signal_then_its_atr(tmp_path: Path) -> None:
    rt, plugin = accuracy(tmp_path / "a.db", reward_r=3.0, stop_atr=1.0)
    decided(rt, plugin, approved=False, strategy="own_stop")  # no targets: the signal's stop, 3R target
    decided(rt, plugin, approved=False, strategy="atr", stop_loss=None, atr=0.0020)  # stop 1.0980, target 1.1060
    decided(rt, plugin, approved=False, strategy="blind", stop_loss=None)  # nothing to judge by
    plugin.on_bar(bar(1, 1.1065, 1.0990), rt)
    assert [(p.strategy, p.outcome, p.r) for p in plugin.labelled] == [("atr", "win", pytest.approx(3.0))]
    plugin.on_bar(bar(2, 1.1160, 1.1000), rt)  # the 3R target is 1.1150
    assert [(p.strategy, p.outcome) for p in plugin.labelled][-1] == ("own_stop", "win")
    assert plugin.tables()["unjudged"] == 1


def test_tables_split_taken_from_rejected_and_calibrate_the_score(tmp_path: Path) -> None:
    rt, plugin = accuracy(tmp_path / "a.db", score_buckets=5)
    decided(rt, plugin, score=0.9)  # taken, wins
    decided(rt, plugin, strategy="s2", score=0.7)  # taken, wins
    decided(
        rt,
        plugin,
        approved=False,
        reason="kill_switch_reduce_only",
        strategy="s3",
        score=0.3,
        side="sell",
        price=1.1000,
        stop_loss=1.1050,
    )  # rejected: would have lost -> the gate saved 1R
    plugin.on_bar(bar(1, 1.1110, 1.1000), rt)
    tables = plugin.tables()
    taken = {(r["strategy"], r["taken"]): r for r in tables["strategies"]}
    assert taken[("test", "taken")]["hit_rate"] == 1.0 and taken[("s3", "rejected")]["loss"] == 1
    (reason,) = tables["reasons"]
    assert reason["reason"] == "kill_switch_reduce_only" and reason["saved_r"] == pytest.approx(1.0)
    buckets = {r["bucket"]: (r["n"], r["hit_rate"], r["mean_score"]) for r in tables["calibration"]}
    assert buckets == {"0.20-0.40": (1, 0.0, 0.3), "0.60-0.80": (1, 1.0, 0.7), "0.80-1.00": (1, 1.0, 0.9)}
    assert tables["brier"] == pytest.approx((0.1**2 + 0.3**2 + 0.3**2) / 3)
    scrape = generate_latest(rt.metrics.registry).decode()
    assert 'tradeguard_signal_outcomes_total{outcome="win",strategy="test",taken="taken"} 1.0' in scrape
    assert 'tradeguard_rejection_outcomes_total{outcome="loss",reason="kill_switch_reduce_only"} 1.0' in scrape
    assert 'tradeguard_score_calibration_hit_rate{bucket="0.60-0.80"} 1.0' in scrape
    assert "tradeguard_score_brier 0.0633" in scrape


def test_every_decision_of_the_pipeline_is_followed_through_the_runtime(tmp_path: Path) -> None:
    rt, plugin = accuracy(tmp_path / "a.db")
    decision = rt.decide(signal())  # no sizing plugin: rejected at "size", still judged
    assert not decision.approved
    rt.on_bar(bar(1, 1.1160, 1.1000))  # the runtime tells observers about each closed bar
    assert [(p.taken, p.reason, p.outcome) for p in plugin.labelled] == [(False, decision.reasons[0].base, "win")]


def test_pending_signals_and_tables_survive_a_restart(tmp_path: Path) -> None:
    rt, plugin = accuracy(tmp_path / "a.db")
    decided(rt, plugin, strategy="first")
    plugin.on_bar(bar(1, 1.1110, 1.1000), rt)
    decided(rt, plugin, strategy="second")
    rt.stop()
    rt2, again = accuracy(tmp_path / "a.db")
    assert again.tables()["pending"] == 1 and again.tables()["strategies"] == plugin.tables()["strategies"]
    again.on_bar(bar(2, 1.1010, 1.0900), rt2)
    assert [(p.strategy, p.outcome) for p in again.labelled] == [("second", "loss")]
    rows = {r["strategy"]: (r["win"], r["loss"]) for r in again.tables()["strategies"]}
    assert rows == {"first": (1, 0), "second": (0, 1)}


def test_a_bar_that_gaps_past_the_stop_exits_at_its_open_not_at_the_stop(tmp_path: Path) -> None:
    """A long stopped by a weekend gap lost what the gap took (issue 24): -7R here, not -1R."""
    rt, plugin = accuracy(tmp_path / "a.db")
    decided(rt, plugin, strategy="gap", price=1.1000, stop_loss=1.0990, target=1.1020)
    decided(rt, plugin, strategy="gap", side="sell", price=1.1000, stop_loss=1.1010, target=1.0980)
    plugin.on_bar(bar(1, 1.0935, 1.0920, open_=1.0930), rt)  # opens 60 pips under the long's stop
    assert labels(plugin) == [("loss", -7.0), ("win", 7.0)]  # the short's target filled at the better open
    (row,) = plugin.tables()["strategies"]
    assert row["avg_r"] == pytest.approx(0.0)


def test_a_bar_that_gaps_past_the_target_is_a_win_at_its_open_though_it_falls_through_the_stop(tmp_path: Path) -> None:
    rt, plugin = accuracy(tmp_path / "a.db")
    decided(rt, plugin, strategy="gap", price=1.1000, stop_loss=1.0990, target=1.1020)
    plugin.on_bar(bar(1, 1.1035, 1.0985, open_=1.1030), rt)  # opens 10 pips over the target, then falls
    assert labels(plugin) == [("win", 3.0)]
