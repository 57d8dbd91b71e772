"""Execution path costs, over the in-process emulator with a real SQLite journal:

* decision -> order_send overhead per order (p50/p99), with the one durable journal commit that
  protects the send measured separately, for synchronous=FULL and NORMAL;
* the order_check round trip inside that path (an emulator call, reported on its own);
* journal writes per second (intent commits), FULL and NORMAL;
* restart alignment with 1,000 journaled orders (and 20 in flight).

Usage: python benchmarks/execution_path.py [--orders N]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from tradeguard import OrderIntent
from tradeguard.broker.mt5 import MT5Adapter
from tradeguard.execution import journal as journal_mod
from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.plugins.account.state_alignment import StateAlignment
from tradeguard.store.sqlite import Store
from tradeguard.testing import T0, crash, make_runtime


def pct(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return s[len(s) // 2] * 1e6, s[int(len(s) * 0.99)] * 1e6


def engine(db: Path, synchronous: str) -> tuple[Any, ExecutionEngine]:
    eng = ExecutionEngine()
    rt = make_runtime(
        ("execution_engine", eng),
        store=Store(db, synchronous=synchronous),
        settings={"logging": {"level": "ERROR"}, "broker": {"emulator": {"balance": 1e9}}},
    )
    return rt, eng


def measure_path(tmp: Path, synchronous: str, n: int) -> dict[str, tuple[float, float]]:
    _rt, eng = engine(tmp / f"path-{synchronous}.db", synchronous)
    marks: dict[str, float] = {}
    create, send, check = journal_mod.Journal.create, MT5Adapter.send, MT5Adapter.check

    def timed_create(self: Any, *a: Any) -> str:
        t = time.perf_counter()
        cid = create(self, *a)
        marks["commit"] = time.perf_counter() - t
        return cid

    def timed_check(self: Any, req: Any) -> Any:
        t = time.perf_counter()
        res = check(self, req)
        marks["check"] = time.perf_counter() - t
        return res

    def timed_send(self: Any, req: Any) -> Any:
        marks.setdefault("send_at", time.perf_counter())
        return send(self, req)

    journal_mod.Journal.create, MT5Adapter.check, MT5Adapter.send = timed_create, timed_check, timed_send  # type: ignore[method-assign]
    overhead, commits, checks = [], [], []
    try:
        for i in range(n):
            order = OrderIntent(symbol="EURUSD", side="buy" if i % 2 else "sell", volume=0.01, created_at=T0)
            marks.clear()
            start = time.perf_counter()
            eng.submit_order(order)
            overhead.append(marks["send_at"] - start - marks["commit"] - marks["check"])
            commits.append(marks["commit"])
            checks.append(marks["check"])
    finally:
        journal_mod.Journal.create, MT5Adapter.check, MT5Adapter.send = create, check, send  # type: ignore[method-assign]
    return {"overhead": pct(overhead), "commit": pct(commits), "check": pct(checks)}


def journal_writes(tmp: Path, synchronous: str, n: int) -> float:
    store = Store(tmp / f"writes-{synchronous}.db", synchronous=synchronous)
    j = journal_mod.Journal(store, "tg")
    order = OrderIntent(symbol="EURUSD", side="buy", volume=0.01, created_at=T0)
    start = time.perf_counter()
    for _ in range(n):
        j.create(order, T0)
    return n / (time.perf_counter() - start)


def alignment(tmp: Path) -> tuple[float, int, int]:
    db = tmp / "align.db"
    rt, eng = engine(db, "NORMAL")
    for i in range(1000):
        eng.submit_order(OrderIntent(symbol="EURUSD", side="buy" if i % 2 else "sell", volume=0.01, created_at=T0))
    for _ in range(20):  # journaled, never sent: a crash before order_send
        eng.journal.create(OrderIntent(symbol="EURUSD", side="buy", volume=0.01, created_at=T0), T0)
    crash(rt)  # the process dies here: the system drops its journal lock
    rt2, eng2 = engine(db, "NORMAL")
    rt2.broker, eng2.broker = rt.broker, rt.broker  # the same terminal after the restart
    start = time.perf_counter()
    report = StateAlignment().align(rt2)
    return time.perf_counter() - start, len(eng2.journal.entries()), len(report.lost)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=2000)
    args = parser.parse_args()
    logging.getLogger("tradeguard").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"execution path over the in-process emulator, {args.orders} market orders per mode")
        for mode in ("FULL", "NORMAL"):
            r = measure_path(tmp, mode, args.orders)
            print(
                f"  synchronous={mode:6} decision->order_send overhead p50 {r['overhead'][0]:6.1f} µs  "
                f"p99 {r['overhead'][1]:6.1f} µs (target p99 <= 50 µs) | journal commit p50 "
                f"{r['commit'][0]:6.1f} µs p99 {r['commit'][1]:7.1f} µs | order_check p50 {r['check'][0]:5.1f} µs"
            )
        for mode in ("FULL", "NORMAL"):
            print(f"  journal writes/s, synchronous={mode:6}: {journal_writes(tmp, mode, 2000):8,.0f}")
        seconds, entries, lost = alignment(tmp)
        print(
            f"  restart alignment: {seconds * 1000:.0f} ms for {entries} journaled orders ({lost} lost in flight) "
            "(target <= 1 s)"
        )


if __name__ == "__main__":
    main()
