"""Where the full control plane's replay time goes, with the SMA strategy (the target's comparison).

The full replay, then the same with parts taken away one at a time, down to the kernel and the
execution path; each line prints its cost per bar and what the part removed last had cost. Parts
are removed only to price them: without the account tracker, for one, the kill switch never sees a
drawdown. The last line adds back what the target lists beside risk and the kill switch (metrics and
audit) to the kernel and execution path.

Usage: python benchmarks/replay_breakdown.py [--bars N] [--runs N]
"""

from __future__ import annotations

import argparse

from replay_throughput import KERNEL_ONLY, Config, measure

SMA_ONLY = ["donchian_breakout"]
KERNEL_SMA = [p for p in KERNEL_ONLY if p != "donchian_breakout"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration; the fastest is reported")
    args = parser.parse_args()
    configs: list[Config] = [
        ("full, SMA strategy", None, SMA_ONLY),
        ("- health monitor", None, [*SMA_ONLY, "mt5_health_monitor"]),
        ("- position reconciler", None, [*SMA_ONLY, "mt5_health_monitor", "position_reconciler"]),
        ("- account tracker", None, [*SMA_ONLY, "mt5_health_monitor", "position_reconciler", "account_tracker"]),
        ("kernel + execution, SMA", KERNEL_SMA, []),
        ("+ metrics and audit", [*KERNEL_SMA, "latency_metrics", "broker_metrics", "metrics_server", "audit_trail"],
         []),
    ]
    best = measure(configs, args.bars, args.runs)
    print(f"replay cost per bar on {args.bars:,} EURUSD H1 bars, SMA strategy, fastest of {args.runs} runs")
    previous = None
    for label, (bars, seconds, _peak) in best.items():
        per_bar = seconds / bars * 1e6
        delta = "" if previous is None or label.startswith("kernel") else f"  ({per_bar - previous:+6.1f} us)"
        print(f"  {label:26} {per_bar:7.1f} us/bar {bars / seconds:9,.0f} bars/s{delta}")
        previous = per_bar
    print("  the target (>= 18,000 bars/s) allows 55.6 us per bar")


if __name__ == "__main__":
    main()
