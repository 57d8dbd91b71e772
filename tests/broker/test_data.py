"""Market-data loaders: the shipped sample, the three formats, and broken files named precisely."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tradeguard.broker.data import RATES_DTYPE, SAMPLE, DataError, load_bars, repeat_shifted


def test_shipped_sample_loads_with_the_mt5_rates_dtype() -> None:
    bars = load_bars(SAMPLE)
    assert bars.dtype == RATES_DTYPE and len(bars) == 5000
    first = bars[0]
    assert (first["open"], first["high"], first["low"], first["close"], first["tick_volume"]) == (
        1.0716,
        1.0722,
        1.07083,
        1.07219,
        1413,
    )
    assert np.all(np.diff(bars["time"]) > 0)


MT5_EXPORT = (
    "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
    "2024.01.02\t10:00:00\t1.10000\t1.10100\t1.09900\t1.10050\t120\t0\t8\n"
    "2024.01.02\t11:00:00\t1.10050\t1.10200\t1.10000\t1.10150\t130\t0\t9\n"
)


def test_mt5_export_with_spread(tmp_path: Path) -> None:
    f = tmp_path / "EURUSD_H1.txt"
    f.write_text(MT5_EXPORT)
    bars = load_bars(f)
    assert list(bars["spread"]) == [8, 9] and list(bars["tick_volume"]) == [120, 130]
    assert bars["time"][1] - bars["time"][0] == 3600


def test_parquet_round_trip(tmp_path: Path) -> None:
    sample = load_bars(SAMPLE)[:50]
    table = pa.table(
        {
            "time": pa.array(sample["time"] * 1_000_000, type=pa.timestamp("us", tz="UTC")),
            "open": sample["open"],
            "high": sample["high"],
            "low": sample["low"],
            "close": sample["close"],
            "volume": sample["tick_volume"],
        }
    )
    pq.write_table(table, tmp_path / "b.parquet")
    assert np.array_equal(load_bars(tmp_path / "b.parquet"), sample)


GOOD = ",Open,High,Low,Close,Volume\n2024-01-02 10:00:00,1.1,1.2,1.0,1.15,5\n"


@pytest.mark.parametrize(
    ("text", "row", "column", "message"),
    [
        ("time,Open,High,Low\n2024-01-02 10:00:00,1,1,1\n", 1, "close", "missing column"),
        (GOOD + "2024-13-45 10:00,1.1,1.2,1.0,1.15,5\n", 3, "time", "unparsable date '2024-13-45 10:00'"),
        (GOOD + "2024-01-02 11:00:00,1.1,1.0,1.05,1.0,5\n", 3, "high", "high 1.0 is below"),
        (GOOD + "2024-01-02 11:00:00,1.1,1.2,1.0,nan,5\n", 3, "close", "not a finite number"),
        (GOOD + "2024-01-02 11:00:00,1.1,1.2,1.0,x,5\n", 3, "close", "not a number: 'x'"),
        (GOOD + "2024-01-02 10:00:00,1.1,1.2,1.0,1.15,5\n", 3, "time", "does not increase"),
        (GOOD + "2024-01-02 11:00:00,1.1,1.2,-1.0,1.15,5\n", 3, "low", "price must be positive"),
        (GOOD + "2024-01-02 11:00:00,1.1,1.2\n", 3, "low", "row is too short"),
    ],
)
def test_broken_csv_names_file_row_and_column(tmp_path: Path, text: str, row: int, column: str, message: str) -> None:
    f = tmp_path / "broken.csv"
    f.write_text(text)
    with pytest.raises(DataError, match=message) as exc:
        load_bars(f)
    assert (exc.value.path, exc.value.row, exc.value.column) == (str(f), row, column)
    assert f"broken.csv, row {row}, column {column!r}" in str(exc.value)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_bars(tmp_path / "none.csv")
    (tmp_path / "a.csv").write_text(GOOD)
    with pytest.raises(DataError, match="unknown format 'xls'"):
        load_bars(tmp_path / "a.csv", fmt="xls")


def test_broken_parquet_is_named(tmp_path: Path) -> None:
    f = tmp_path / "bad.parquet"
    f.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_bars(f)


def test_repeat_shifted_keeps_time_increasing() -> None:
    bars = load_bars(SAMPLE)
    long = repeat_shifted(bars, 3)
    assert len(long) == 15000 and np.all(np.diff(long["time"]) > 0)
    assert np.array_equal(long["close"][5000:10000], bars["close"])


MT5_TICKS = (
    "<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>\n"
    "2024.01.02\t10:00:00.100\t1.10000\t\t\t\t2\n"
    "2024.01.02\t10:00:00.250\t\t1.10010\t\t\t4\n"
    "2024.01.02\t10:00:01.000\t1.10005\t1.10015\t\t\t6\n"
)


def test_mt5_tick_export_forward_fills_one_sided_quotes(tmp_path: Path) -> None:
    from tradeguard.broker.data import is_tick_file, load_ticks

    f = tmp_path / "EURUSD_ticks.csv"
    f.write_text(MT5_TICKS)
    assert is_tick_file(f) and not is_tick_file(SAMPLE)
    ticks = load_ticks(f)
    assert ticks.tolist() == [(1704189600250, 1.1, 1.1001), (1704189601000, 1.10005, 1.10015)]


@pytest.mark.parametrize(
    ("text", "row", "column", "message"),
    [
        ("time,bid\n2024-01-02 10:00:00,1.1\n", 1, "ask", "missing column"),
        ("time,bid,ask\n2024-01-02 10:00:00,1.1,1.0\n", 2, "ask", "need ask >= bid"),
        ("time,bid,ask\n2024-01-02 10:00:01,1.1,1.2\n2024-01-02 10:00:00,1.1,1.2\n", 3, "time", "goes backwards"),
        ("time,bid,ask\nyesterday,1.1,1.2\n", 2, "time", "unparsable time"),
    ],
)
def test_broken_tick_files_are_named(tmp_path: Path, text: str, row: int, column: str, message: str) -> None:
    from tradeguard.broker.data import load_ticks

    f = tmp_path / "t.csv"
    f.write_text(text)
    with pytest.raises(DataError, match=message) as exc:
        load_ticks(f)
    assert (exc.value.row, exc.value.column) == (row, column)


def test_what_a_data_file_is_instead_is_said_and_a_trailing_separator_is_fine(tmp_path: Path) -> None:
    header, row = "time,open,high,low,close", "2017-01-02 00:00,1.0,1.1,0.9,1.05"
    trailing = tmp_path / "trailing.csv"
    trailing.write_text(f"{header}\n{row},\n{row.replace('00:00', '01:00')},\n")  # a separator at each row's end
    assert len(load_bars(trailing)) == 2
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text(f"{header}\n{row}\n", encoding="utf-16")
    cp1252 = tmp_path / "cp1252.csv"
    cp1252.write_bytes(f"{header},note\n{row},café\n".encode("cp1252"))
    for path, said in (
        (utf16, "UTF-16 text (as MT5 saves some exports): re-save it as UTF-8"),
        (cp1252, "not UTF-8 text (byte"),
        (tmp_path, "a directory, not a data file"),
    ):
        with pytest.raises(DataError, match=re.escape(said)):
            load_bars(path)
