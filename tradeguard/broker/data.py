"""Market-data loaders: MT5 "export bars" CSV, generic OHLC CSV, Parquet -> MT5 rates arrays.

Every loader returns a numpy structured array with MetaTrader5's rates dtype (``RATES_DTYPE``),
oldest first, ``time`` in epoch seconds on the broker-server scale (as the file has it). A broken
file fails with :class:`DataError` naming the file, the row (1-based line in the file; data row
for Parquet) and the column: a missing column, an unparsable date, a non-finite or non-positive
price, high below low, or a time that does not increase.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tradeguard.errors import TradeguardError

#: MetaTrader5's rates dtype (``copy_rates_*``), field for field.
RATES_DTYPE = np.dtype(
    [
        ("time", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("tick_volume", "<u8"),
        ("spread", "<i4"),
        ("real_volume", "<u8"),
    ]
)

#: What a tick file loads into: server-scale epoch milliseconds, bid, ask.
TICK_FILE_DTYPE = np.dtype([("time_msc", "<i8"), ("bid", "<f8"), ("ask", "<f8")])
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "EURUSD_H1.csv"
#: seven symbols over the sample's window, one file each (data/portfolio/README.md)
PORTFOLIO = SAMPLE.parent / "portfolio"

_TIME_NAMES = ("time", "date", "datetime", "timestamp", "")
_TICK_FORMATS = (
    "%Y.%m.%d %H:%M:%S.%f",
    "%Y.%m.%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
)
_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y.%m.%d %H:%M:%S",
    "%Y.%m.%d %H:%M",
    "%Y.%m.%d",
    "%Y-%m-%dT%H:%M:%S",
)


class DataError(TradeguardError):
    """A market-data file is unusable; says which file, row and column."""

    def __init__(self, path: Path | str, message: str, row: int | None = None, column: str | None = None) -> None:
        self.path, self.row, self.column = str(path), row, column
        where = str(path) + (f", row {row}" if row is not None else "") + (f", column {column!r}" if column else "")
        super().__init__(f"{where}: {message}")


def _data_file(path: str | Path, text: bool = False) -> Path:
    """``path`` as a data file, or a DataError saying what it is instead: missing, a directory, binary."""
    p = Path(path)
    if p.is_dir():
        raise DataError(p, "a directory, not a data file (a directory of SYMBOL_*.csv files goes to --data itself)")
    if not p.is_file():
        raise DataError(p, "no such file")
    if text or p.suffix.lower() not in (".parquet", ".pq"):
        with p.open("rb") as fh:
            head = fh.read(8192)
        if head.startswith(b"PAR1"):
            raise DataError(p, "a Parquet file under a text file's name: name it .parquet")
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise DataError(p, "UTF-16 text (as MT5 saves some exports): re-save it as UTF-8")
        if b"\0" in head:
            raise DataError(p, "binary content (NUL bytes): not a CSV or MT5 export")
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if len(head) < 8192 or exc.start < len(head) - 4:  # (a character cut at the chunk's end is text)
                raise DataError(
                    p, f"not UTF-8 text (byte {exc.start}): binary, or another encoding (re-save it as UTF-8)"
                ) from None
    return p


def load_bars(path: str | Path, fmt: str = "auto") -> np.ndarray:
    """Load bars from ``path``; ``fmt`` is ``auto`` (by extension and header), ``mt5``, ``csv`` or ``parquet``."""
    try:
        return _load_bars(path, fmt)
    except UnicodeDecodeError as exc:  # past the first 8 KB the checks of _data_file read
        raise DataError(path, f"not UTF-8 text (at byte {exc.start} of a line): re-save it as UTF-8") from None


def _load_bars(path: str | Path, fmt: str) -> np.ndarray:
    p = _data_file(path)
    if fmt == "auto":
        if p.suffix.lower() in (".parquet", ".pq"):
            fmt = "parquet"
        else:
            with p.open(encoding="utf-8-sig", errors="replace") as fh:
                fmt = "mt5" if fh.readline().lstrip().startswith("<DATE>") else "csv"
    loaders = {"mt5": _load_mt5, "csv": _load_csv, "parquet": _load_parquet}
    if fmt not in loaders:
        raise DataError(p, f"unknown format {fmt!r}; allowed: auto, {', '.join(loaders)}")
    return loaders[fmt](p)


def _parse_time(text: str, path: Path, row: int, column: str) -> int:
    text = text.strip()
    for f in _DATE_FORMATS:
        try:
            return int(datetime.strptime(text, f).replace(tzinfo=UTC).timestamp())
        except ValueError:
            continue
    raise DataError(path, f"unparsable date {text!r}", row, column)


def _number(text: str, path: Path, row: int, column: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DataError(path, f"not a number: {text!r}", row, column) from None
    if not math.isfinite(value):
        raise DataError(path, f"not a finite number: {text!r}", row, column)
    return value


def _build(path: Path, rows: Iterable[tuple[int, int, float, float, float, float, float, float]]) -> np.ndarray:
    """Validate and pack ``(row, time, open, high, low, close, tick_volume, spread)`` tuples."""
    out: list[tuple[int, float, float, float, float, int, int, int]] = []
    last = None
    for row, t, o, h, lo, c, vol, spread in rows:
        for name, price in (("open", o), ("high", h), ("low", lo), ("close", c)):
            if not price > 0:
                raise DataError(path, f"price must be positive, got {price}", row, name)
        if h < max(o, c, lo):
            raise DataError(path, f"high {h} is below open/close/low", row, "high")
        if lo > min(o, c):
            raise DataError(path, f"low {lo} is above open/close", row, "low")
        if vol < 0 or spread < 0:
            raise DataError(path, "volume and spread must not be negative", row, "volume" if vol < 0 else "spread")
        if last is not None and t <= last:
            raise DataError(
                path, f"time {datetime.fromtimestamp(t, UTC):%Y-%m-%d %H:%M:%S} does not increase", row, "time"
            )
        last = t
        out.append((t, o, h, lo, c, int(vol), int(spread), 0))
    if not out:
        raise DataError(path, "no bars")
    return np.array(out, dtype=RATES_DTYPE)


def _columns(path: Path, header: list[str], row: int = 1) -> dict[str, int]:
    """Map canonical column names to indexes; time may be an unnamed first column."""
    names = [h.strip().strip("<>").lower() for h in header]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in _TIME_NAMES and "time" not in index:
            index["time"] = i
        elif name in ("tickvol", "tick_volume", "volume") and "volume" not in index:
            index["volume"] = i
        elif name in ("open", "high", "low", "close", "spread"):
            index[name] = i
    for required in ("time", "open", "high", "low", "close"):
        if required not in index:
            raise DataError(
                path, f"missing column; header has {', '.join(h or '<unnamed>' for h in header)}", row, required
            )
    return index


def _cell(record: list[str], index: dict[str, int], name: str, path: Path, row: int) -> str:
    i = index[name]
    if i >= len(record):
        raise DataError(path, "row is too short", row, name)
    return record[i]


def _csv_rows(path: Path, records: Iterator[list[str]], index: dict[str, int], width: int, date_col: int | None = None):  # type: ignore[no-untyped-def]
    for row, record in enumerate(records, start=2):
        if not record or not any(x.strip() for x in record):
            continue
        while len(record) > width and not record[-1].strip():  # a trailing separator (MT5 exports have one)
            record = record[:-1]
        if len(record) > width:  # a shifted or merged row would read its numbers from the wrong columns
            raise DataError(path, f"{len(record)} fields, the header names {width}", row)
        if date_col is not None:  # MT5 export: <DATE> and <TIME> in two columns
            text = record[date_col] + " " + _cell(record, index, "time", path, row)
        else:
            text = _cell(record, index, "time", path, row)
        t = _parse_time(text, path, row, "time")
        prices = [_number(_cell(record, index, c, path, row), path, row, c) for c in ("open", "high", "low", "close")]
        vol = _number(_cell(record, index, "volume", path, row), path, row, "volume") if "volume" in index else 0
        spread = _number(_cell(record, index, "spread", path, row), path, row, "spread") if "spread" in index else 0
        yield (row, t, *prices, vol, spread)


def _load_csv(path: Path) -> np.ndarray:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataError(path, "empty file")
        return _build(path, _csv_rows(path, reader, _columns(path, header), len(header)))


def _load_mt5(path: Path) -> np.ndarray:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = [h.strip() for h in next(reader, [])]
        if "<DATE>" not in header:
            raise DataError(path, "missing column in an MT5 export header", 1, "<DATE>")
        date_col = header.index("<DATE>")
        if "<TIME>" in header:
            index = _columns(path, ["" if h == "<DATE>" else h for h in header])
            index["time"] = header.index("<TIME>")
            return _build(path, _csv_rows(path, reader, index, len(header), date_col=date_col))
        index = _columns(path, ["time" if h == "<DATE>" else h for h in header])  # daily export: date only
        return _build(path, _csv_rows(path, reader, index, len(header)))


def _load_parquet(path: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise DataError(path, f"not a readable Parquet file: {exc}") from exc
    header = list(table.column_names)
    index = _columns(path, header, row=0)
    cols = {name: table.column(i).to_pylist() for name, i in index.items()}

    def rows() -> Iterator[tuple[Any, ...]]:
        for n in range(table.num_rows):
            row = n + 1
            raw_t = cols["time"][n]
            if isinstance(raw_t, datetime):
                t = int((raw_t if raw_t.tzinfo else raw_t.replace(tzinfo=UTC)).timestamp())
            elif isinstance(raw_t, int | float) and not isinstance(raw_t, bool):
                t = int(raw_t)
            else:
                t = _parse_time(str(raw_t), path, row, "time")
            vals = []
            for c in ("open", "high", "low", "close"):
                v = cols[c][n]
                if v is None or not math.isfinite(float(v)):
                    raise DataError(path, f"not a finite number: {v!r}", row, c)
                vals.append(float(v))
            vol = float(cols["volume"][n] or 0) if "volume" in cols else 0
            spread = float(cols["spread"][n] or 0) if "spread" in cols else 0
            yield (row, t, *vals, vol, spread)

    return _build(path, rows())


def _header(path: Path) -> tuple[list[str], str]:
    """The lower-cased column names (MT5's ``<...>`` removed) and the separator of a text data file."""
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        line = fh.readline()
    sep = "\t" if "\t" in line else ","
    return [h.strip().strip("<>").lower() for h in line.rstrip("\r\n").split(sep)], sep


def is_tick_file(path: str | Path) -> bool:
    """A CSV/MT5 export whose header has bid and ask columns holds ticks, not bars."""
    p = Path(path)
    return p.suffix.lower() not in (".parquet", ".pq") and p.is_file() and {"bid", "ask"} <= set(_header(p)[0])


def _tick_time(text: str, path: Path, row: int) -> int:
    text = text.strip()
    for f in _TICK_FORMATS:
        try:
            return round(datetime.strptime(text, f).replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            continue
    raise DataError(path, f"unparsable time {text!r}", row, "time")


def load_ticks(path: str | Path) -> np.ndarray:
    """Ticks from an MT5 tick export (``<DATE> <TIME> <BID> <ASK> ...``; an empty bid or ask keeps the
    last one) or a CSV with ``time,bid,ask`` columns. Times must not go backwards; ask >= bid > 0."""
    p = _data_file(path, text=True)
    names, sep = _header(p)
    idx = {n: i for i, n in enumerate(names)}
    for required in ("bid", "ask"):
        if required not in idx:
            raise DataError(p, "missing column", 1, required)
    two_columns = "date" in idx and "time" in idx
    if not two_columns and "time" not in idx:
        raise DataError(p, "missing column", 1, "time")
    out: list[tuple[int, float, float]] = []
    bid = ask = math.nan
    last = -1
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=sep)
        next(reader)
        for row, rec in enumerate(reader, start=2):
            if not rec or not any(x.strip() for x in rec):
                continue
            if len(rec) <= max(idx["bid"], idx["ask"]):
                raise DataError(p, "row is too short", row, "ask")
            text = f"{rec[idx['date']]} {rec[idx['time']]}" if two_columns else rec[idx["time"]]
            t = _tick_time(text, p, row)
            if rec[idx["bid"]].strip():
                bid = _number(rec[idx["bid"]], p, row, "bid")
            if rec[idx["ask"]].strip():
                ask = _number(rec[idx["ask"]], p, row, "ask")
            if math.isnan(bid) or math.isnan(ask):
                continue  # the first quotes of an export often carry one side only
            if bid <= 0 or ask < bid:
                raise DataError(p, f"bid {bid} / ask {ask}: need ask >= bid > 0", row, "ask" if ask < bid else "bid")
            if t < last:
                raise DataError(p, "time goes backwards", row, "time")
            last = t
            out.append((t, bid, ask))
    if not out:
        raise DataError(p, "no ticks with both bid and ask")
    return np.array(out, dtype=TICK_FILE_DTYPE)


def repeat_shifted(bars: np.ndarray, times: int) -> np.ndarray:
    """The bars repeated ``times`` times, each copy shifted after the previous one (for benchmarks)."""
    span = int(bars["time"][-1] - bars["time"][0]) + int(bars["time"][1] - bars["time"][0])
    copies = []
    for k in range(times):
        c = bars.copy()
        c["time"] += k * span
        copies.append(c)
    return np.concatenate(copies)
