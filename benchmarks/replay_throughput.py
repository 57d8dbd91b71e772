"""End-to-end replay throughput, bars/s, on the shipped EURUSD H1 data repeated with shifted times.

Two configurations in the same run:

* full control plane - every built-in plugin (strategies, gate, dedup, targets, sizing, risk guard,
  kill switch, execution engine with its SQLite journal, account tracker, reconciler, alignment);
* kernel + execution - the kernel, the emulator, the two strategies and the execution engine only.

Both journal with synchronous=NORMAL, as `tradeguard replay` does. Peak RSS is reported for the
process. Targets (issue 7): full >= 18,000 bars/s at <= 250 MB; kernel +
emulator + strategy >= 50,000 bars/s.

Usage: python benchmarks/replay_throughput.py [--bars N]
"""

from __future__ import annotations

import argparse
import logging
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tradeguard.broker.data import SAMPLE, load_bars, repeat_shifted
from tradeguard.core.clock import ReplayClock
from tradeguard.core.replay import replay
from tradeguard.core.runtime import Runtime

KERNEL_ONLY = ["execution_engine", "ma_crossover", "donchian_breakout", "kill_switch", "risk_guard"]


def write_csv(path: Path, n: int) -> None:
    base = load_bars(SAMPLE)
    bars = repeat_shifted(base, -(-n // len(base)))[:n]
    with path.open("w") as fh:
        fh.write(",Open,High,Low,Close,Volume\n")
        for row in bars:
            stamp = datetime.fromtimestamp(int(row["time"]), UTC).strftime("%Y-%m-%d %H:%M:%S")
            fh.write(f"{stamp},{row['open']},{row['high']},{row['low']},{row['close']},{row['tick_volume']}\n")


def run(data: Path, workdir: Path, enabled: list[str] | None) -> tuple[int, float]:
    overrides: dict[str, dict[str, object]] = {
        "broker": {"emulator": {"data": str(data)}}, "runtime": {"data_dir": str(workdir)},
        "logging": {"level": "ERROR"}, "store": {"synchronous": "NORMAL"}, "metrics_server": {"port": 0},
        # keep trading through the whole run: the hard limits would stop the strategies early
        "risk_guard": {"daily_loss_limit_pct": 0.0, "max_drawdown_pct": 0.0},
    }  # fmt: skip
    if enabled is not None:
        overrides["plugins"] = {"enabled": enabled}
    rt = Runtime.build(None, read_files=False, overrides=overrides, clock=ReplayClock(datetime(1970, 1, 2, tzinfo=UTC)))
    rt.broker.connected  # connect (loads and expands the data) outside the timing  # noqa: B018
    start = time.perf_counter()
    summary = replay(rt)
    return summary.bars, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=100_000)
    args = parser.parse_args()
    logging.getLogger("tradeguard").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "bars.csv"
        write_csv(data, args.bars)
        print(f"replay throughput on {args.bars:,} EURUSD H1 bars (the shipped sample repeated)")
        for label, enabled in (("kernel + execution", KERNEL_ONLY), ("full control plane", None)):
            bars, seconds = run(data, Path(d) / label.replace(" ", "_"), enabled)
            print(f"  {label:20} {bars / seconds:10,.0f} bars/s  ({bars:,} bars in {seconds:.1f} s)")
        print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
              "(targets: full >= 18,000 bars/s, <= 250 MB; kernel + emulator + strategy >= 50,000 bars/s)")


if __name__ == "__main__":
    main()
