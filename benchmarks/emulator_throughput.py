"""Emulator replay speed and memory on 100,000 bars (the shipped EURUSD H1 sample repeated).

Three positions with SL/TP and three pending orders stay open the whole run, far from the market,
so every tick pays for the trigger checks, floating P&L and the stop-out test.
Prints ticks/s, bars/s and peak RSS. Usage: python benchmarks/emulator_throughput.py [--bars N]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from tradeguard.broker import constants
from tradeguard.broker.data import SAMPLE, load_bars, repeat_shifted
from tradeguard.broker.emulator.feed import TICKS_PER_BAR
from tradeguard.broker.emulator.terminal import Terminal


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_csv(bars: np.ndarray, path: Path) -> None:
    with path.open("w") as fh:
        fh.write(",Open,High,Low,Close,Volume\n")
        for t, o, h, lo, cl, v in zip(
            bars["time"].astype("datetime64[s]").astype(str),
            bars["open"],
            bars["high"],
            bars["low"],
            bars["close"],
            bars["tick_volume"],
            strict=True,
        ):
            fh.write(f"{t.replace('T', ' ')},{o},{h},{lo},{cl},{v}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=100_000)
    args = parser.parse_args()
    base = load_bars(SAMPLE)
    bars = repeat_shifted(base, -(-args.bars // len(base)))[: args.bars]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bench.csv"
        write_csv(bars, data)
        before = rss_mb()
        term = Terminal()
        started = time.perf_counter()
        assert term.initialize(data=str(data), balance=1_000_000.0)
        load_s = time.perf_counter() - started
    q = term.symbol_info_tick("EURUSD")
    for side, sl, tp in ((0, 0.5, 5.0), (1, 5.0, 0.5), (0, 0.6, 4.0)):
        res = term.order_send(
            {
                "action": constants.TRADE_ACTION_DEAL,
                "symbol": "EURUSD",
                "volume": 1.0,
                "type": side,
                "sl": sl,
                "tp": tp,
                "type_filling": constants.ORDER_FILLING_IOC,
            }
        )
        assert res.retcode == 10009, res
    for kind, price in (
        (constants.ORDER_TYPE_BUY_LIMIT, 0.5),
        (constants.ORDER_TYPE_SELL_LIMIT, 5.0),
        (constants.ORDER_TYPE_BUY_STOP, 4.0),
    ):
        res = term.order_send(
            {
                "action": constants.TRADE_ACTION_PENDING,
                "symbol": "EURUSD",
                "volume": 1.0,
                "type": kind,
                "price": price,
                "type_filling": constants.ORDER_FILLING_RETURN,
            }
        )
        assert res.retcode == 10008, res
    started = time.perf_counter()
    ticks = 1
    while step := term.replay_step(65_536):
        ticks += step
    replay_s = time.perf_counter() - started
    assert term.positions_total() == 3 and term.orders_total() == 3 and q is not None
    print(f"emulator replay: {args.bars} bars, {ticks} ticks ({TICKS_PER_BAR} per bar), 3 positions, 3 pending orders")
    print(f"  load + expand: {load_s:.2f} s")
    bars_per_s = ticks / TICKS_PER_BAR / replay_s
    print(
        f"  replay:        {replay_s:.2f} s  ->  {ticks / replay_s:,.0f} ticks/s, {bars_per_s:,.0f} bars/s"
        "  (target >= 250,000 ticks/s)"
    )
    print(
        f"  peak RSS:      {rss_mb():.0f} MB (process), {rss_mb() - before:.0f} MB above the interpreter and "
        "imports (target < 150 MB)"
    )


if __name__ == "__main__":
    main()
