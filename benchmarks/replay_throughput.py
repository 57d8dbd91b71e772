"""End-to-end replay throughput, bars/s, on the shipped EURUSD H1 data repeated with shifted times.

Seven configurations in the same run:

* kernel + SMA strategy - the emulator and the moving-average crossover alone: the kernel's pipeline
  decides every signal (rejected, ``no_size``: nothing sizes it) and nothing is sent. This is the
  "kernel + emulator + strategy" of the target;
* kernel + strategies - the same with both built-in strategies (the breakout signals 4x as often);
* kernel + execution - the same, plus what it takes for the signals to become orders that open and
  close: sizing, stops, risk guard, kill switch, the execution engine and its journal;
* full without analysis - the full control plane minus scoring, insights memory and accuracy metrics,
  so the cost of those three shows (target, issue 8: they add <= 20%);
* full control plane - every built-in plugin (strategies, gate, dedup, targets, sizing, risk guard,
  kill switch, execution engine with its SQLite journal, account tracker, reconciler, alignment,
  health, audit, metrics, alerting, profiler, scoring, memory, accuracy);
* full control plane, SMA strategy - the same with the crossover as the only strategy: the target's
  comparison (NautilusTrader's backtest of an SMA strategy on the same data);
* listed plane, SMA strategy - what the target's wording lists, "risk, kill switch, SQLite journal,
  metrics, audit": kernel + execution with the crossover, the account tracker (the kill switch's
  drawdown trips and the risk guard's hard limits act on its snapshots), the latency and broker
  metrics, the /metrics server and the audit trail. No health monitor, reconciler, gate, scoring,
  memory, accuracy, alerting or profiler;
* portfolio, full SMA - every built-in plugin with the crossover over the seven shipped symbols
  (``tradeguard/data/portfolio``), each file repeated with shifted times so that the book holds at least
  ``--bars`` bars in all, on one market clock (issue 26's portfolio target).

All journal with synchronous=NORMAL, as `tradeguard replay` does. Each run is in a fresh process,
so its peak RSS is its own. Each configuration runs ``--runs`` times, round by round, and the
fastest is reported: a shared 2-core machine varies by 10-15% from run to run and drifts over
minutes, so a ratio between configurations is only fair when their runs are interleaved (and every other
round runs them in reverse order, so that no configuration always gets the later minutes).
Targets (issue 7): full >= 18,000 bars/s at <= 250 MB; kernel + emulator + strategy >= 50,000 bars/s.

With ``--nautilus PYTHON`` (an interpreter with nautilus_trader 1.221 installed) each round also runs
``nautilus_reference.py``: NautilusTrader's backtest of its EMACross example on the same CSV, so the
target's reference is measured on this machine, in the same run (the issue's 18.2k is its figure on
another day's machine). The ratio to it is printed for the best runs and round by round: the runs
of one round are minutes apart, so a round's ratio is the pairing least touched by the machine's drift.

With ``--nautilus`` each round also runs NautilusTrader's backtest of the same crossover over the same
seven instruments on one engine (``nautilus_reference.py``'s portfolio mode).

Usage: python benchmarks/replay_throughput.py [--bars N] [--runs N] [--nautilus PYTHON]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from tradeguard.broker.data import PORTFOLIO, SAMPLE, load_bars, repeat_shifted
from tradeguard.broker.emulator.config import datasets_in
from tradeguard.kernel.clock import ReplayClock
from tradeguard.kernel.runtime import Runtime
from tradeguard.replay.loop import replay

# what it takes for the strategies' signals to become orders that open and close: sizing and stops
KERNEL_ONLY = [
    "execution_engine",
    "ma_crossover",
    "donchian_breakout",
    "position_sizing",
    "target_stop_engine",
    "kill_switch",
    "risk_guard",
]
STRATEGIES = ["ma_crossover", "donchian_breakout"]
SMA = ["ma_crossover"]
ANALYSIS = ["scenario_scorer", "insights_engine", "accuracy_metrics"]
KERNEL_SMA = [p for p in KERNEL_ONLY if p != "donchian_breakout"]  # kernel + execution with the crossover alone
LISTED = [*KERNEL_SMA, "account_tracker", "latency_metrics", "broker_metrics", "metrics_server", "audit_trail"]


def write_csv(path: Path, n: int, source: Path = SAMPLE, whole: bool = False) -> None:
    """``source``'s bars repeated with shifted times: ``n`` bars, or (``whole``) as many whole copies as reach ``n``."""
    base = load_bars(source)
    bars = repeat_shifted(base, -(-n // len(base)))
    if not whole:
        bars = bars[:n]
    with path.open("w") as fh:
        fh.write(",Open,High,Low,Close,Volume\n")
        for row in bars:
            stamp = datetime.fromtimestamp(int(row["time"]), UTC).strftime("%Y-%m-%d %H:%M:%S")
            fh.write(f"{stamp},{row['open']},{row['high']},{row['low']},{row['close']},{row['tick_volume']}\n")


def write_portfolio(folder: Path, n: int) -> dict[str, str]:
    """The seven shipped symbols, each repeated the same number of whole times (so they stay aligned in time)
    until the book holds at least ``n`` bars; their files by symbol."""
    files = datasets_in(PORTFOLIO)
    total = sum(len(load_bars(path)) for path in files.values())
    copies = -(-n // total)
    written = {}
    for symbol, path in files.items():
        target = folder / f"{symbol}_H1.csv"
        write_csv(target, copies * len(load_bars(path)), Path(path), whole=True)
        written[symbol] = str(target)
    return written


Data = Path | dict[str, str]  # one file, or the portfolio's files by symbol


def build(data: Data, workdir: Path, enabled: list[str] | None, disabled: list[str]) -> Runtime:
    """A replay runtime over ``data`` with these plugins, connected (the data loaded and expanded)."""
    overrides: dict[str, dict[str, object]] = {
        "broker": {"emulator": {"data": data if isinstance(data, dict) else str(data)}},
        "runtime": {"data_dir": str(workdir)},
        "logging": {"level": "ERROR"},
        "store": {"synchronous": "NORMAL"},
        "metrics_server": {"port": 0},
        # keep trading through the whole run: the hard limits would stop the strategies early
        "risk_guard": {"daily_loss_limit_pct": 0.0, "max_drawdown_pct": 0.0},
    }
    overrides["plugins"] = {"enabled": enabled, "disabled": disabled}
    rt = Runtime.build(None, read_files=False, overrides=overrides, clock=ReplayClock(datetime(1970, 1, 2, tzinfo=UTC)))
    rt.broker.connected  # connect (loads and expands the data) outside the timing  # noqa: B018
    return rt


def run(data: Data, workdir: Path, enabled: list[str] | None, disabled: list[str]) -> tuple[int, float, float]:
    rt = build(data, workdir, enabled, disabled)
    start = time.perf_counter()
    summary = replay(rt)
    seconds = time.perf_counter() - start
    return summary.bars, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


Config = tuple[str, list[str] | None, list[str]]  # label, plugins enabled (None: all), plugins disabled

CONFIGS: list[Config] = [
    ("kernel + SMA strategy", SMA, []),
    ("kernel + strategies", STRATEGIES, []),
    ("kernel + execution", KERNEL_ONLY, []),
    ("full without analysis", None, ANALYSIS),
    ("full control plane", None, []),
    ("full, SMA strategy", None, ["donchian_breakout"]),
    ("listed plane, SMA", LISTED, []),
]
PORTFOLIO_RUN = "portfolio, full SMA"
PORTFOLIO_CONFIGS: list[Config] = [(PORTFOLIO_RUN, None, ["donchian_breakout"])]


NAUTILUS = "NautilusTrader EMACross"
NAUTILUS_PORTFOLIO = "NautilusTrader portfolio"


def nautilus(python: str, data: Data) -> tuple[int, float, float]:
    """One run of ``nautilus_reference.py`` under ``python``: (bars, seconds, peak RSS MB)."""
    script = Path(__file__).with_name("nautilus_reference.py")
    files = list(data.values()) if isinstance(data, dict) else [str(data)]
    done = subprocess.run([python, str(script), *files], capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures["bars"], figures["seconds"], figures["peak_rss_mb"]


def measure_rounds(
    configs: list[Config], bars: int, runs: int, reference: str | None = None
) -> dict[str, list[tuple[int, float, float]]]:
    """Every run (bars, seconds, peak RSS MB) of each configuration, in round order, each in a fresh process.

    Runs go round by round, every other round in reverse order: the machine slows and speeds up over
    minutes, and a fixed order would always hand the later configurations the slower stretch (it made
    "full" look up to 50% slower than "full without analysis", which it ran right after).
    ``reference`` (a python with nautilus_trader) adds NautilusTrader's run to every round."""
    logging.getLogger("tradeguard").setLevel(logging.ERROR)
    fresh = ProcessPoolExecutor(max_workers=1, max_tasks_per_child=1, mp_context=multiprocessing.get_context("spawn"))
    with tempfile.TemporaryDirectory() as d, fresh:
        single = Path(d) / "bars.csv"
        write_csv(single, bars)
        book = write_portfolio(Path(d), bars) if any(c[0] == PORTFOLIO_RUN for c in configs) else {}
        done: dict[str, list[tuple[int, float, float]]] = {label: [] for label, _, _ in configs}
        order: list[Config | str] = list(configs)
        if reference:  # its runs, by name: the single symbol, and the book when the book is measured
            order += [NAUTILUS, NAUTILUS_PORTFOLIO] if book else [NAUTILUS]
        for i in range(runs):
            for config in order if i % 2 == 0 else order[::-1]:
                if isinstance(config, str):
                    runs_of = done.setdefault(config, [])
                    runs_of.append(nautilus(str(reference), book if config == NAUTILUS_PORTFOLIO else single))
                    continue
                label, enabled, disabled = config
                data: Data = book if label == PORTFOLIO_RUN else single
                workdir = Path(d) / f"{label.replace(' ', '_').replace(',', '')}_{i}"
                done[label].append(fresh.submit(run, data, workdir, enabled, disabled).result())
    return done


def fastest(rounds: dict[str, list[tuple[int, float, float]]]) -> dict[str, tuple[int, float, float]]:
    """Each configuration's fastest run (the least disturbed, as timeit reports)."""
    return {label: min(v, key=lambda r: r[1]) for label, v in rounds.items()}


def measure(
    configs: list[Config], bars: int, runs: int, reference: str | None = None
) -> dict[str, tuple[int, float, float]]:
    return fastest(measure_rounds(configs, bars, runs, reference))


def per_round(rounds: dict[str, list[tuple[int, float, float]]], slower: str, faster: str) -> list[float]:
    """``slower``'s time over ``faster``'s in each round, sorted: the runs of one round are minutes apart."""
    return sorted(s[1] / f[1] for s, f in zip(rounds[slower], rounds[faster], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration; the fastest is reported")
    parser.add_argument("--nautilus", metavar="PYTHON", help="an interpreter with nautilus_trader: run the reference")
    args = parser.parse_args()
    print(
        f"replay throughput on {args.bars:,} EURUSD H1 bars (the shipped sample repeated), and on the seven-symbol"
        " book repeated to as many bars"
    )
    rounds = measure_rounds([*CONFIGS, *PORTFOLIO_CONFIGS], args.bars, args.runs, args.nautilus)
    best = fastest(rounds)
    for label, (bars, seconds, peak) in best.items():
        print(
            f"  {label:23} {bars / seconds:10,.0f} bars/s  ({bars:,} bars in {seconds:.1f} s), peak RSS {peak:.0f} MB"
        )
    if NAUTILUS in best:
        for label, peer in (
            ("full, SMA strategy", NAUTILUS),
            ("listed plane, SMA", NAUTILUS),
            (PORTFOLIO_RUN, NAUTILUS_PORTFOLIO),
        ):
            paired = per_round(rounds, peer, label)
            ratio = (best[label][0] / best[label][1]) / (best[peer][0] / best[peer][1])
            memory = best[label][2] / best[peer][2]
            print(
                f"  {label} / {peer}: {ratio:.2f}x its bars/s (best runs); round by round "
                f"{', '.join(f'{r:.2f}x' for r in paired)}; peak RSS {memory:.2f}x its"
            )
    added = best["full control plane"][1] / best["full without analysis"][1] - 1
    paired = [r - 1 for r in per_round(rounds, "full control plane", "full without analysis")]
    print(
        f"  scoring + memory + accuracy add {added:.1%} to the full replay time (best runs; round by round "
        f"{', '.join(f'{a:.1%}' for a in paired)}; target <= 20%)"
    )
    print(
        "  targets: the control plane >= 18,000 bars/s at <= 250 MB (read against 'full, SMA strategy', every"
        " plugin, and 'listed plane, SMA', what the target lists); kernel + emulator + strategy >= 50,000 bars/s"
        " (read against 'kernel + SMA strategy')"
    )


if __name__ == "__main__":
    main()
