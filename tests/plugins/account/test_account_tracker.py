"""Account tracker arithmetic against hand-computed values, on the shipped EURUSD data.

The server runs at UTC+3, so the broker's midnight (2017-04-20 00:00 server) is 2017-04-19 21:00
UTC, the bar at index 12. Prices are the data's: bar 0 ticks bid 1.0716, 1.0722, 1.07083, 1.07219;
bar 12 ticks bid 1.07132, 1.07156, 1.0709, 1.0711; the spread is 10 points (ask = bid + 0.0001).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tradeguard.kernel.clock import server_midnight
from tradeguard.plugins.account.account_tracker import AccountTracker, _snapshot_builder
from tradeguard.store.sqlite import Store
from tradeguard.testing import crash, make_runtime


def setup(tmp_path: Path, db: str = "acc.db", **cfg: Any) -> tuple[Any, AccountTracker]:
    tracker = AccountTracker()
    rt = make_runtime(
        ("account_tracker", tracker),
        store=Store(tmp_path / db),
        settings={
            "broker": {"server_offset_hours": 3, "emulator": {"server_offset_hours": 3}},
            "account_tracker": cfg,
            "runtime": {"data_dir": str(tmp_path)},
        },
    )
    return rt, tracker


def trade(rt: Any, side: int, volume: float = 1.0, **kw: Any) -> Any:
    res = rt.broker.send(
        rt.broker.prepare({"action": 1, "symbol": "EURUSD", "volume": volume, "type": side, "magic": 1, **kw})
    )
    assert res.retcode == 10009, res
    return res


def test_server_midnight_with_an_offset() -> None:
    from datetime import timedelta

    now = datetime(2017, 4, 19, 22, 30, tzinfo=UTC)  # 01:30 on the 20th, server time
    assert server_midnight(now, timedelta(hours=3)) == datetime(2017, 4, 19, 21, tzinfo=UTC)
    assert server_midnight(now, timedelta(0)) == datetime(2017, 4, 19, tzinfo=UTC)


def test_drawdown_arithmetic_through_a_server_midnight(tmp_path: Path) -> None:
    rt, acc = setup(tmp_path)
    term = rt.broker.mt5
    s = acc.capture()
    assert (s.balance, s.equity, s.peak_equity, s.day_start_equity, s.drawdown_money) == (10000, 10000, 10000, 10000, 0)

    buy = trade(rt, 0)  # at ask 1.0717
    term.replay_step(2)  # bid 1.07083: floating (1.07083 - 1.0717) * 100000 = -87
    s = acc.capture()
    assert (s.floating_pnl, s.equity, s.drawdown_money, s.drawdown_pct) == (-87.0, 9913.0, 87.0, 0.87)
    assert (s.daily_drawdown_money, s.daily_drawdown_pct, s.realized_pnl_day) == (87.0, 0.87, 0.0)

    term.replay_step(1)  # bid 1.07219: floating +49, a new peak
    s = acc.capture()
    assert (s.equity, s.peak_equity, s.drawdown_money, s.daily_drawdown_money) == (10049.0, 10049.0, 0.0, 0.0)
    trade(rt, 1, position=buy.order)  # close at bid 1.07219: +49 realised
    s = acc.capture()
    assert (s.balance, s.realized_pnl_day, s.day_start_equity) == (10049.0, 49.0, 10000.0)

    term.admin_deposit(1000.0)  # money in is not profit: the peak moves with it, the day's anchor does not
    s = acc.capture()
    assert (s.balance, s.peak_equity, s.drawdown_money, s.day_start_equity, s.daily_drawdown_money) == (
        11049.0,
        11049.0,
        0.0,
        10000.0,
        0.0,
    )

    term.replay_step(45)  # tick 48: 2017-04-19 21:00 UTC = 00:00 on the server, a new broker day
    assert rt.broker.now() == datetime(2017, 4, 19, 21, tzinfo=UTC)
    s = acc.capture()
    assert (s.realized_pnl_day, s.day_start_equity) == (0.0, 11049.0)  # yesterday's +49 is not today's
    trade(rt, 0)  # buy at ask 1.07142
    term.replay_step(2)  # bid 1.0709: floating (1.0709 - 1.07142) * 100000 = -52
    s = acc.capture()
    assert (s.floating_pnl, s.equity, s.daily_drawdown_money, s.drawdown_money) == (-52.0, 10997.0, 52.0, 52.0)
    assert s.daily_drawdown_pct == pytest.approx(52 / 11049 * 100, abs=1e-4)
    assert s.drawdown_pct == pytest.approx(52 / 11049 * 100, abs=1e-4)
    # built without validating again, it is what validation builds, down to the stored text
    assert s.model_dump_json() == type(s).model_validate(s.model_dump()).model_dump_json()

    series = acc.compute_drawdown_series()
    assert len(series) == 7 and series[1][1:] == (9913.0, 10000.0, 0.87) and series[-1][2] == 11049.0
    kinds = [a.kind for a in acc.detect_anomalies()]
    assert kinds == ["balance_without_deal"]  # the deposit, flagged, and not an equity jump
    assert rt.metrics.registry.get_sample_value("tradeguard_account_drawdown_pct_current") == s.drawdown_pct

    crash(rt)
    rt2, acc2 = setup(tmp_path)  # a restart over the same store remembers the peak
    rt2.broker = rt.broker
    assert acc2.peak_equity == 11049.0


def test_margin_collapse_and_stale_account_are_flagged(tmp_path: Path) -> None:
    rt, acc = setup(tmp_path, margin_level_floor=500.0, stale_seconds=3600.0)
    acc.capture()
    res = rt.broker.send(rt.broker.prepare({"action": 1, "symbol": "XAUUSD", "volume": 2.0, "type": 0}))
    assert res.retcode == 10009  # margin 2 * 100 * 2000.25 / 100 = 4000.5: level ~250 % < 500 %
    acc.capture()
    rt.broker.mt5.replay_step(8)  # two hours pass; gold has no data, so its price and the equity stand still
    acc.capture()
    kinds = [a.kind for a in acc.detect_anomalies()]
    assert kinds == ["margin_collapse", "stale_account"]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_snapshots_export_to_rotating_files(tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("an export file was read back: each snapshot would cost what the file holds")

    monkeypatch.setattr(pq, "read_table", never)
    rt, acc = setup(tmp_path, export=fmt, export_rows_per_file=2)
    for _ in range(5):
        acc.capture()
        rt.broker.mt5.admin_deposit(100.0)  # a change for every capture to record
        rt.broker.mt5.replay_step(1)
    acc.tradeguard_shutdown(rt)  # Parquet rows waiting in memory are written at shutdown
    monkeypatch.undo()
    files = sorted((tmp_path / "exports").iterdir())
    assert len(files) == 3 and all(f.suffix == f".{fmt}" for f in files)
    if fmt == "jsonl":
        rows = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    else:
        import pyarrow.parquet as pq

        rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    assert len(rows) == 5 and rows[0]["balance"] == 10000.0


def test_a_flat_unchanged_account_is_not_snapshotted_again(tmp_path: Path) -> None:
    rt, acc = setup(tmp_path)
    first = acc.capture()
    rt.broker.mt5.replay_step(1)
    assert acc.capture() is first  # flat, same balance and equity, same server day: nothing new to record
    rt.broker.mt5.admin_deposit(50.0)
    moved = acc.capture()
    assert moved is not first and moved.balance == first.balance + 50.0
    assert len(acc.snapshots()) == 2


def test_the_first_bar_past_server_midnight_captures_the_new_day(tmp_path: Path) -> None:
    """The risk guard's daily limit waits for the new day's first snapshot; the schedule may be far off
    (a minute live, days of market time over a fast-stepping emulator), so the bar that closes past
    midnight captures it, before the bar's signals are decided."""
    from tradeguard import Bar

    rt, acc = setup(tmp_path)
    term = rt.broker.mt5
    before = acc.capture()  # 2017-04-19 09:00 UTC: the server day that ends at 21:00 UTC
    term.replay_step(47)  # tick 47: the last of bar 11 (20:00-21:00 UTC); bar 10 has closed
    acc.on_bar(
        Bar(
            symbol="EURUSD",
            timeframe="H1",
            time=datetime(2017, 4, 19, 19, tzinfo=UTC),
            open=1.07,
            high=1.071,
            low=1.069,
            close=1.0705,
        ),
        rt,
    )  # closes at 20:00, before midnight: nothing to do
    assert acc.last == before
    term.replay_step(1)  # tick 48, 21:00 UTC: 00:00 on the server, and bar 11 has closed
    acc.on_bar(
        Bar(
            symbol="EURUSD",
            timeframe="H1",
            time=datetime(2017, 4, 19, 20, tzinfo=UTC),
            open=1.07,
            high=1.071,
            low=1.069,
            close=1.0705,
        ),
        rt,
    )  # closes at 21:00: the new day is captured
    assert acc.last is not None and acc.last.time == datetime(2017, 4, 19, 21, tzinfo=UTC)
    assert acc.last.time == rt.broker.server_midnight(rt.broker.now())


@pytest.mark.parametrize(
    ("field", "value"), [("equity", float("nan")), ("margin_level", -5.0), ("balance", float("inf"))]
)
def test_a_terminal_figure_the_model_refuses_names_its_field(tmp_path: Path, field: str, value: float) -> None:
    from pydantic import ValidationError

    rt, acc = setup(tmp_path)
    good = rt.broker.account()
    rt.broker.account = lambda: good._replace(**{field: value})  # a terminal answering garbage
    with pytest.raises(ValidationError, match=field if field != "balance" else "balance|floating_pnl"):
        acc.capture()
    assert acc.last is None  # nothing was recorded or announced


def test_captured_snapshots_hold_the_models_types_and_are_stored_as_it_serialises(tmp_path: Path) -> None:
    """Snapshots are built unvalidated on the hot path: a figure summed over no deals must still be a float
    (the int 0 it was once stored as serialised as 0, not 0.0), and the row is the model's own JSON."""
    rt, acc = setup(tmp_path)
    snaps = [acc.capture()]
    trade(rt, 0)
    rt.broker.mt5.replay_step(2)
    snaps.append(acc.capture())
    for snap in snaps:
        floats = {k: v for k, v in snap.__dict__.items() if k not in ("time", "login", "currency")}
        assert all(type(v) is float for v in floats.values()), floats
    rt.store.flush()
    stored = [r[0] for r in rt.store.query("SELECT record FROM account_snapshots ORDER BY id")]
    assert stored == [s.model_dump_json() for s in snaps]


@given(
    balance=st.floats(0, 1e7), floating=st.floats(-1e6, 1e6), margin=st.floats(0, 1e6), realized=st.floats(-1e5, 1e5)
)
@example(balance=0.0, floating=-5734.0, margin=0.0, realized=-3.1895531324058835e-303)  # a day's start of 3e-303
@settings(max_examples=60, deadline=None)
def test_a_snapshot_built_unvalidated_is_the_one_validation_builds(
    balance: float, floating: float, margin: float, realized: float
) -> None:
    from tradeguard import AccountSnapshot
    from tradeguard.broker.types import AccountState

    equity = balance + floating
    account = AccountState(
        login=1,
        currency="USD",
        balance=balance,
        equity=equity,
        margin=margin,
        margin_free=equity - margin,
        margin_level=equity / margin * 100 if margin else 0.0,
        profit=floating,
        leverage=100,
        hedging=True,
        trade_allowed=True,
        trade_expert=True,
        margin_so_call=100.0,
        margin_so_so=50.0,
    )
    build = _snapshot_builder(account, realized, 0.0)
    day_start, peak = balance - realized, max(balance, equity)
    values = dict(
        time=datetime(2017, 4, 19, tzinfo=UTC),
        login=1,
        currency="USD",
        balance=balance,
        equity=equity,
        margin=margin,
        free_margin=equity - margin,
        margin_level=account.margin_level,
        floating_pnl=round(floating, 2),
        realized_pnl_day=round(realized, 2),
        day_start_equity=round(day_start, 2),
        peak_equity=round(peak, 2),
        drawdown_pct=AccountSnapshot.loss_pct(peak, equity),
        drawdown_money=round(peak - equity, 2),
        daily_drawdown_money=round(max(0.0, day_start - equity), 2),
        daily_drawdown_pct=AccountSnapshot.loss_pct(day_start, equity),
    )
    if not (math.isfinite(account.margin_level) and account.margin_level >= 0):  # a tiny margin: level inf
        assert build is AccountSnapshot
        with pytest.raises(ValueError, match="margin_level"):
            build(**values)
    else:
        assert build == AccountSnapshot.trusted and build(**values) == AccountSnapshot(**values)
