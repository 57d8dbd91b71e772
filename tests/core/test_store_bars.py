"""Recorded bars: written a block per series per flush, read back whole, exactly, oldest first."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeguard.models import Bar
from tradeguard.store.sqlite import MIGRATIONS, ROW_BATCH, Store, StoredBar, StoreError

T0 = datetime(2017, 1, 2, tzinfo=UTC)


def bar(symbol: str, hours: int, close: float, timeframe: str = "H1") -> Bar:
    return Bar(
        symbol=symbol,
        timeframe=timeframe,
        time=T0 + timedelta(hours=hours),
        open=close,
        high=close + 0.001,
        low=close - 0.001,
        close=close,
        tick_volume=1,
        spread=1,
        real_volume=0,
    )


def test_bars_of_each_series_read_back_in_time_order_across_batches(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    n = ROW_BATCH + 10  # one batch written by record_bar itself, the rest by the flush a read makes
    for i in range(n):
        store.record_bar(bar("EURUSD", i, 1.1 + i * 1e-5))
        if i % 3 == 0:
            store.record_bar(bar("GBPUSD", i, 1.3))
    store.record_bar(bar("EURUSD", 0, 1.2, timeframe="D1"))
    assert store.bar_series() == [("EURUSD", "D1"), ("EURUSD", "H1"), ("GBPUSD", "H1")]
    eurusd = store.bars("EURUSD", "H1")
    assert len(eurusd) == n
    assert eurusd[5] == StoredBar(
        int((T0 + timedelta(hours=5)).timestamp()), 1.1 + 5e-5, 1.1 + 5e-5 + 0.001, 1.1 + 5e-5 - 0.001, 1.1 + 5e-5
    )
    assert [b.time for b in eurusd] == sorted(b.time for b in eurusd)
    assert len(store.bars("GBPUSD", "H1")) == len(range(0, n, 3))
    assert store.bars("USDJPY", "H1") == []


def test_a_bar_recorded_again_reads_as_written_last(tmp_path: Path) -> None:
    """A restarted run hands the strategies a bar it already recorded: one bar, the later figures."""
    store = Store(tmp_path / "s.db")
    store.record_bar(bar("EURUSD", 1, 1.10))
    store.record_bar(bar("EURUSD", 0, 1.05))
    store.flush()
    store.record_bar(bar("EURUSD", 1, 1.11))
    assert [(b.time - int(T0.timestamp()), b.close) for b in store.bars("EURUSD", "H1")] == [(0, 1.05), (3600, 1.11)]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10**9), st.floats(allow_nan=False, allow_infinity=False, width=64)),
        min_size=1,
        max_size=40,
    )
)
def test_times_and_prices_come_back_bit_for_bit(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[int, float]]
) -> None:
    store = Store(tmp_path_factory.mktemp("bars") / "s.db")
    written: dict[int, float] = {}
    for seconds, price in rows:
        store.record_bar(
            Bar.trusted(
                symbol="EURUSD",
                timeframe="H1",
                time=T0 + timedelta(seconds=seconds),
                open=price,
                high=price,
                low=price,
                close=price,
                tick_volume=0,
                spread=0,
                real_volume=0,
            )
        )
        written[int(T0.timestamp()) + seconds] = price
    back = store.bars("EURUSD", "H1")
    assert [(b.time, b.close) for b in back] == sorted(written.items())
    assert all(isinstance(b.time, int) for b in back)


def test_a_store_from_before_the_blocks_keeps_its_bars(tmp_path: Path) -> None:
    """A schema-2 store (a row per bar) is upgraded in place: its bars read back with the new ones."""
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as con:
        for script in MIGRATIONS[:2]:
            con.executescript(script)
        con.execute("INSERT INTO bars VALUES ('EURUSD', 'H1', ?, 1.0, 1.2, 0.9, 1.1)", (int(T0.timestamp()),))
        con.execute("INSERT INTO bars VALUES ('EURUSD', 'H1', ?, 1.0, 1.2, 0.9, 1.1)", (int(T0.timestamp()) + 3600,))
        con.execute("PRAGMA user_version=2")
        con.commit()
    store = Store(path)
    assert store.version == len(MIGRATIONS)
    store.record_bar(bar("EURUSD", 1, 1.15))  # the old store's second bar, recorded again
    store.record_bar(bar("EURUSD", 2, 1.16))
    assert [b.close for b in store.bars("EURUSD", "H1")] == [1.1, 1.15, 1.16]
    assert store.bar_series() == [("EURUSD", "H1")]


def test_a_damaged_block_is_named_not_misread(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.record_bar(bar("EURUSD", 0, 1.1))
    store.flush()
    store.db.execute("UPDATE bar_blocks SET data = substr(data, 1, 12)")
    with pytest.raises(StoreError, match="bar block 1 holds 12 bytes, not 1 bars"):
        store.bars("EURUSD", "H1")
