"""Decision latency of the full built-in pipeline, per signal (p50 / p99, µs).

Plugins: signal_validation_gate, signal_deduplicator, target_stop_engine, position_sizing,
risk_guard and kill_switch, on their default settings, over the in-process emulator and the SQLite
store (decisions written behind). Execution is a no-op port, so this measures deciding, not
sending. Every signal is distinct (the deduplicator would refuse repeats) and the runtime clock
moves 3 s between signals (outside the timing), as a live feed would.

Baseline in the same run: the same hooks called through bare pluggy (``pm.hook.<name>``), doing
the same plugin work without the kernel's attribution, fail-closed handling and records.
Targets: <= 100 µs p99, and <= 3x the bare pluggy calls.

Usage: python benchmarks/pipeline_latency.py [--signals N]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from tradeguard import OrderIntent, Targets
from tradeguard.plugins.monitoring.profiler import Profiler
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.plugins.risk.position_sizing import PositionSizing
from tradeguard.plugins.risk.risk_guard import RiskGuard
from tradeguard.plugins.trading.signal_deduplicator import SignalDeduplicator
from tradeguard.plugins.trading.signal_validation_gate import SignalValidationGate
from tradeguard.plugins.trading.target_stop_engine import TargetStopEngine
from tradeguard.store.sqlite import Store
from tradeguard.testing import T0, make_runtime, signal


class NullExecution:
    """Takes every order and sends nothing: the pipeline's own latency, without a broker's. Of the Execution
    port it has what the pipeline and the risk guard ask: submit_order, and no journal."""

    journal = None

    def submit_order(self, order: OrderIntent) -> str:
        return "bench"


def pct(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return s[len(s) // 2] * 1e6, s[int(len(s) * 0.99)] * 1e6


def build(db: Path, profiled: bool = False) -> Any:
    plugins = [
        *([("profiler", Profiler())] if profiled else []),
        ("kill_switch", KillSwitch()),
        ("risk_guard", RiskGuard()),
        ("position_sizing", PositionSizing()),
        ("target_stop_engine", TargetStopEngine()),
        ("signal_validation_gate", SignalValidationGate()),
        ("signal_deduplicator", SignalDeduplicator()),
    ]
    return make_runtime(*plugins, execution=NullExecution(), store=Store(db), settings={"logging": {"level": "ERROR"}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=int, default=5000)
    args = parser.parse_args()
    logging.getLogger("tradeguard").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as d:
        rt = build(Path(d) / "kernel.db")
        bare_rt = build(Path(d) / "bare.db")
        prof_rt = build(Path(d) / "profiled.db", profiled=True)
        signals = [
            signal(price=1.0717, stop_loss=1.0697, bar_time=T0 - timedelta(hours=1, seconds=3 * i), created_at=T0)
            for i in range(args.signals)
        ]
        kernel, bare, profiled, approved = [], [], [], 0
        for sig in signals:
            start = time.perf_counter()
            decision = rt.decide(sig)
            kernel.append(time.perf_counter() - start)
            approved += decision.approved
            rt.clock.advance(timedelta(seconds=3))
            start = time.perf_counter()
            prof_rt.decide(sig)
            profiled.append(time.perf_counter() - start)
            prof_rt.clock.advance(timedelta(seconds=3))
            hook, kw = bare_rt.pm.hook, {"signal": sig, "runtime": bare_rt}
            start = time.perf_counter()
            hook.validate_signal(**kw)
            hook.score_signal(**kw)
            targets = hook.compute_targets(**kw)
            volume = hook.size_position(signal=sig, targets=targets or Targets(stop_loss=1.0697), runtime=bare_rt)
            hook.evaluate_risk(
                order=OrderIntent.trusted(
                    signal_id=sig.signal_id,
                    client_id="",
                    strategy=sig.strategy,
                    symbol=sig.symbol,
                    side=sig.side,
                    volume=volume if isinstance(volume, float) else 0.1,
                    order_type=sig.order_type,
                    price=sig.price,
                    stop_loss=targets.stop_loss,
                    take_profit=targets.take_profit,
                    position_ticket=None,
                    reduce_only=False,
                    created_at=T0,
                    netting=None,
                ),
                runtime=bare_rt,
            )
            bare.append(time.perf_counter() - start)
            bare_rt.clock.advance(timedelta(seconds=3))
        rt.stop()
        prof_rt.stop()
    warm = min(200, args.signals // 5)  # the first decisions warm caches and allocators: not counted
    k50, k99 = pct(kernel[warm:])
    p50, p99 = pct(profiled[warm:])
    b50, b99 = pct(bare[warm:])
    print(f"full built-in decision pipeline, {args.signals} distinct signals ({approved} approved), emulator + SQLite")
    print(f"  kernel decide:      p50 {k50:6.1f} µs   p99 {k99:6.1f} µs   (target p99 <= 100 µs)")
    print(f"  bare pluggy calls:  p50 {b50:6.1f} µs   p99 {b99:6.1f} µs")
    print(f"  with the profiler:  p50 {p50:6.1f} µs   p99 {p99:6.1f} µs   (+{p50 - k50:.1f} µs p50)")
    print(f"  kernel / bare:      p50 {k50 / b50:4.2f}x   p99 {k99 / b99:4.2f}x   (target <= 3x)")


if __name__ == "__main__":
    main()
