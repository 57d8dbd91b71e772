"""The insights memory: trades followed from decision to flat, statistics, scoring, and restart."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tradeguard import Decision, Fill, Targets
from tradeguard.kernel.pipeline import score_bucket as bucket_of
from tradeguard.plugins.confluence.insights_engine import InsightsEngine
from tradeguard.store.sqlite import Store
from tradeguard.testing import T0, make_runtime, signal

_ids = iter(range(1, 10_000))


def memory(db: Path, **cfg: Any) -> tuple[Any, InsightsEngine]:
    engine = InsightsEngine()
    rt = make_runtime(("insights_engine", engine), store=Store(db), settings={"insights_engine": cfg})
    return rt, engine


def decide(
    rt: Any,
    engine: InsightsEngine,
    client: str,
    *,
    side: str = "buy",
    stop: float = 1.0950,
    score: float | None = 0.7,
    strategy: str = "s",
) -> Any:
    sig = signal(strategy=strategy, side=side, stop_loss=stop)
    d = Decision(
        signal_id=sig.signal_id,
        approved=True,
        stage="done",
        targets=Targets(stop_loss=stop),
        combined_score=score,
        client_id=client,
        decided_at=T0,
    )
    engine.on_decision(d, sig, rt)
    return sig


def fill(
    engine: InsightsEngine,
    rt: Any,
    position: int,
    entry: str,
    side: str,
    volume: float,
    price: float,
    profit: float = 0.0,
    client: str = "",
) -> None:
    ticket = next(_ids)
    engine.on_fill(
        Fill(
            deal_ticket=ticket,
            order_ticket=ticket,
            position_id=position,
            client_id=client,
            symbol="EURUSD",
            side=side,
            entry=entry,
            volume=volume,
            price=price,
            profit=profit,
            commission=-1.0,
            time=T0 + timedelta(hours=ticket),
        ),
        rt,
    )


def test_buckets() -> None:
    assert bucket_of(0.7, 5) == "0.60-0.80"
    assert bucket_of(1.0, 5) == "0.80-1.00"
    assert bucket_of(0.0, 4) == "0.00-0.25"
    assert bucket_of(None, 5) == "none"


def test_a_trade_is_followed_from_decision_to_flat_and_counted(tmp_path: Path) -> None:
    rt, engine = memory(tmp_path / "m.db")
    decide(rt, engine, "c1")  # buy, entry 1.1000, stop 1.0950: 1R = 0.0050
    fill(engine, rt, 7, "in", "buy", 1.0, 1.1000, client="c1")
    fill(engine, rt, 7, "out", "sell", 0.4, 1.1100, profit=400.0)  # a partial close at +2R
    assert engine.open[7].volume_out == pytest.approx(0.4) and not engine.closed
    fill(engine, rt, 7, "out", "sell", 0.6, 1.1050, profit=300.0)  # the rest at +1R (SL/TP deals have no client)
    (trade,) = engine.closed
    assert trade.r == pytest.approx(0.4 * 2 + 0.6 * 1)  # volume-weighted exit 1.1070: +1.4R
    assert trade.money == pytest.approx(400 + 300 - 3.0)  # three deals' commission of -1
    assert (trade.session, trade.bucket) == ("london", "0.60-0.80")  # signal bar closes 10:00 UTC
    decide(rt, engine, "c2")
    fill(engine, rt, 8, "in", "buy", 1.0, 1.1000, client="c2")
    fill(engine, rt, 8, "out", "sell", 1.0, 1.0950, profit=-500.0)  # stopped: -1R
    (row,) = engine.table()
    assert row == {
        "strategy": "s",
        "symbol": "EURUSD",
        "side": "buy",
        "session": "london",
        "bucket": "0.60-0.80",
        "count": 2,
        "win_rate": 0.5,
        "avg_r": pytest.approx(0.2),
        "expectancy": pytest.approx(97.5),
        "streak": -1,
    }


def test_an_opening_fill_before_its_decision_is_not_lost(tmp_path: Path) -> None:
    rt, engine = memory(tmp_path / "m.db")
    fill(engine, rt, 9, "in", "sell", 0.5, 1.1000, client="c9")  # market orders fill inside decide()
    decide(rt, engine, "c9", side="sell", stop=1.1050)
    fill(engine, rt, 9, "out", "buy", 0.5, 1.0900, profit=500.0)
    (trade,) = engine.closed
    assert trade.r == pytest.approx(2.0) and trade.side == "sell"


def test_foreign_positions_are_ignored(tmp_path: Path) -> None:
    rt, engine = memory(tmp_path / "m.db")
    fill(engine, rt, 11, "in", "buy", 1.0, 1.1, client="")  # manual trade: no client id
    fill(engine, rt, 11, "out", "sell", 1.0, 1.2, profit=10_000.0)
    assert not engine.closed and engine.table() == []


def test_a_losing_setup_is_penalised_and_a_winning_one_left_alone(tmp_path: Path) -> None:
    rt, engine = memory(tmp_path / "m.db", min_trades=2, recent_trades=3)
    for position in (1, 2):
        decide(rt, engine, f"c{position}")
        fill(engine, rt, position, "in", "buy", 1.0, 1.1000, client=f"c{position}")
        fill(engine, rt, position, "out", "sell", 1.0, 1.0975, profit=-250.0)  # -0.5R each
    score = engine.score_signal(signal(strategy="s"), rt)
    assert score is not None and score.value == pytest.approx(0.25)  # 0.5 + 0.5 x -0.5R
    assert score.factors == {"recent_mean_r": pytest.approx(-0.5), "trades": 2.0}
    assert engine.score_signal(signal(strategy="s", side="sell", stop_loss=1.2), rt) is None  # no history
    for position in (3, 4, 5):  # three winners push the last-3 mean positive
        decide(rt, engine, f"c{position}")
        fill(engine, rt, position, "in", "buy", 1.0, 1.1000, client=f"c{position}")
        fill(engine, rt, position, "out", "sell", 1.0, 1.1100, profit=1000.0)
    assert engine.score_signal(signal(strategy="s"), rt) is None  # penalize_negative abstains
    engine.cfg = engine.cfg.model_copy(update={"score_mode": "expectancy"})
    assert engine.score_signal(signal(strategy="s"), rt).value == 1.0  # 0.5 + 0.5 x 2R, capped


def test_memory_survives_a_restart_with_an_open_trade(tmp_path: Path) -> None:
    rt, engine = memory(tmp_path / "m.db")
    decide(rt, engine, "c1")
    fill(engine, rt, 1, "in", "buy", 1.0, 1.1000, client="c1")
    fill(engine, rt, 1, "out", "sell", 1.0, 1.1100, profit=1000.0)
    decide(rt, engine, "c2")
    fill(engine, rt, 2, "in", "buy", 1.0, 1.1000, client="c2")
    rt.stop()  # shutdown writes the memory
    rt2, again = memory(tmp_path / "m.db")
    assert again.table() == engine.table() and again.table()[0]["count"] == 1
    fill(again, rt2, 2, "out", "sell", 1.0, 1.0950, profit=-500.0)  # the trade opened before the restart closes
    assert again.table()[0]["count"] == 2 and again.table()[0]["streak"] == -1
    rt2.stop()
    assert rt2.store.kv_get("insights_engine", "table")[0]["count"] == 2  # what status and the report read


def test_orders_waiting_for_a_fill_or_a_decision_are_bounded(tmp_path: Path) -> None:
    rt, engine = memory(tmp_path / "m.db", max_planned=10)
    for i in range(15):
        decide(rt, engine, f"never-filled-{i}")  # refused at the broker: no fill will come
        fill(engine, rt, 100 + i, "in", "buy", 0.1, 1.1, client=f"no-decision-{i}")  # no decision will come
    assert list(engine.planned) == [f"never-filled-{i}" for i in range(5, 15)]
    assert list(engine.early) == [f"no-decision-{i}" for i in range(5, 15)]
