"""Kernel per-signal overhead with 10 no-op plugins on each pipeline hook.

Three measurements in the same run, each per signal (p50 / p99, µs):

* plain   - calling the same 50 no-op hook functions directly, in a loop (the floor);
* pluggy  - the same five hooks called through bare ``pm.hook.<name>(...)`` (what pluggy costs);
* kernel  - ``runtime.decide(signal)``: the five hooks one implementation at a time with fail-closed
            handling, plus the Decision/OrderIntent records, metrics and the in-memory journal.

The execution port is a no-op so that only the kernel is measured. Target: kernel <= 1.5x pluggy.
Usage: python benchmarks/pipeline_overhead.py [--signals N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from tradeguard import OrderIntent, Signal, Targets, hookimpl
from tradeguard.testing import T0, make_runtime, signal

PER_HOOK = 10


class NoOp:
    @hookimpl
    def validate_signal(self, signal: Signal, runtime: Any) -> list:
        return []

    @hookimpl
    def score_signal(self, signal: Signal, runtime: Any) -> None:
        return None

    @hookimpl
    def compute_targets(self, signal: Signal, runtime: Any) -> None:
        return None

    @hookimpl
    def size_position(self, signal: Signal, targets: Targets, runtime: Any) -> None:
        return None

    @hookimpl
    def evaluate_risk(self, order: OrderIntent, runtime: Any) -> None:
        return None


class Sizer:
    """Registered first, so called last: the chain runs through all ten no-ops before it answers."""

    @hookimpl
    def size_position(self, signal: Signal, targets: Targets, runtime: Any) -> float:
        return 0.1


class NullExecution:
    def submit_order(self, order: OrderIntent) -> str:
        return "bench"


def percentiles(samples: list[int]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] / 1000, ordered[int(len(ordered) * 0.99)] / 1000


def measure(fn: Callable[[], object], n: int) -> list[int]:
    for _ in range(min(2000, n)):
        fn()
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        t = clock()
        fn()
        out.append(clock() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=int, default=20_000)
    args = parser.parse_args()

    plugins = [("sizer", Sizer())] + [(f"noop{i}", NoOp()) for i in range(PER_HOOK)]
    rt = make_runtime(*plugins, execution=NullExecution(), settings={"logging": {"level": "WARNING"}})
    s = signal()
    targets = Targets(stop_loss=s.stop_loss, method="signal")  # type: ignore[arg-type]
    order = OrderIntent(symbol=s.symbol, side=s.side, volume=0.1, price=s.price, stop_loss=s.stop_loss, created_at=T0)
    hook = rt.pm.hook
    functions = [fn for _, fn, _ in rt.hooks.plans["validate_signal"]]
    functions += [fn for _, fn, _ in rt.hooks.plans["score_signal"]]
    functions += [fn for _, fn, _ in rt.hooks.plans["compute_targets"]]
    sizes = [fn for _, fn, _ in rt.hooks.plans["size_position"]]
    risks = [fn for _, fn, _ in rt.hooks.plans["evaluate_risk"]]

    def plain() -> None:
        for fn in functions:
            fn(s, rt)
        for fn in sizes:
            fn(s, targets, rt)
        for fn in risks:
            fn(order, rt)

    def bare_pluggy() -> None:
        hook.validate_signal(signal=s, runtime=rt)
        hook.score_signal(signal=s, runtime=rt)
        hook.compute_targets(signal=s, runtime=rt)
        hook.size_position(signal=s, targets=targets, runtime=rt)
        hook.evaluate_risk(order=order, runtime=rt)

    assert rt.decide(s).approved
    results = {
        "plain calls": measure(plain, args.signals),
        "bare pluggy": measure(bare_pluggy, args.signals),
        "kernel decide": measure(lambda: rt.decide(s), args.signals),
    }
    print(f"pipeline overhead: {PER_HOOK} no-op plugins on each of 5 pipeline hooks, {args.signals} signals")
    print(f"{'':16}{'p50 µs':>10}{'p99 µs':>10}{'mean µs':>10}")
    for name, samples in results.items():
        p50, p99 = percentiles(samples)
        print(f"{name:16}{p50:10.2f}{p99:10.2f}{statistics.fmean(samples) / 1000:10.2f}")
    k50, k99 = percentiles(results["kernel decide"])
    b50, b99 = percentiles(results["bare pluggy"])
    f50, _ = percentiles(results["plain calls"])
    print(f"kernel / bare pluggy: p50 {k50 / b50:.2f}x, p99 {k99 / b99:.2f}x (target <= 1.5x)")
    print(f"kernel overhead above plain calls: p50 {k50 - f50:.2f} µs")


if __name__ == "__main__":
    main()
