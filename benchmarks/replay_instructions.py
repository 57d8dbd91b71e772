"""Instructions per replayed bar, counted by valgrind's callgrind: figures the machine's drift does not move.

Wall-clock figures on a shared 2-core machine drift by 10-20% over minutes (replay_throughput.py runs
its configurations round by round for that reason), so a change worth 5% cannot be seen in bars/s,
and a share such as "scoring adds 20%" swings from -19% to +24% between rounds. Callgrind counts the
instructions the process executes: the same code on the same data counts the same (to about 0.2%)
whatever else the machine is doing.

Each configuration (replay_throughput.py's) runs in a fresh process under callgrind. The counters are
zeroed once the replay is some bars in (past the runtime's start and the strategies' first windows)
and dumped when it returns: the count is the bars' own (and the stop's), without imports, data loading,
start-up or teardown. Instructions are not
time (a cache miss costs more than an add), but for a change to Python code on the same interpreter
their ratio is the steadiest estimate of the time ratio there is. The process runs some 50 times
slower under callgrind: a few thousand bars are enough.

Prints instructions per bar for each configuration (replay_throughput.py's; the listed plane built up
part by part: kernel + execution with the SMA strategy, then the account tracker, then metrics and audit;
the full plane with the SMA strategy with the health monitor, the reconciler and the account tracker
taken away one at a time), what each part costs, and the share scoring, memory and accuracy add to the
full replay (issue 8's target: <= 20%), counted.

Usage: python benchmarks/replay_instructions.py [--bars N] [--config LABEL ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from replay_throughput import CONFIGS, KERNEL_SMA, build, write_csv

from tradeguard.replay.loop import replay

#: the listed plane built up part by part (after "kernel + SMA strategy"): what each part costs per bar
PARTS = [("kernel + execution, SMA", KERNEL_SMA, []), ("+ account tracker", [*KERNEL_SMA, "account_tracker"], [])]
#: the full plane with the SMA strategy, parts taken away one at a time (only to price them: without the
#: account tracker, for one, the kill switch never sees a drawdown)
REMOVED = ["mt5_health_monitor", "position_reconciler", "account_tracker"]
FULL_PARTS = [
    (f"- {name.replace('_', ' ')}", None, ["donchian_breakout", *REMOVED[: i + 1]]) for i, name in enumerate(REMOVED)
]
BY_LABEL = {label: (enabled, disabled) for label, enabled, disabled in [*CONFIGS, *PARTS, *FULL_PARTS]}


def child(data: str, workdir: str, label: str, warm: str) -> None:
    """Under callgrind: build and replay; once ``warm`` bars are through, say WARM and wait (the parent zeroes
    the counters); at the end say how many bars were counted and wait (the parent dumps the counters)."""
    enabled, disabled = BY_LABEL[label]
    rt = build(Path(data), Path(workdir), enabled, disabled)
    first = int(warm)

    def at(progress: object) -> None:
        if progress.bars == first:  # type: ignore[attr-defined]
            sys.stdout.write("WARM\n")
            sys.stdout.flush()
            sys.stdin.readline()

    summary = replay(rt, progress=at, every=first)
    sys.stdout.write(
        json.dumps({"bars": summary.bars - first, "signals": summary.signals, "fills": summary.fills}) + "\n"
    )
    sys.stdout.flush()
    sys.stdin.readline()


def count(data: Path, workdir: Path, label: str, warm: int) -> tuple[dict[str, int], int]:
    """One configuration under callgrind: (the replay's summary, instructions its bars after ``warm`` took)."""
    out = workdir / "callgrind.out"
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        str(data),
        str(workdir),
        label,
        str(warm),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "WARM":
            raise RuntimeError(f"{label}: the replay did not start under callgrind: {proc.communicate()[1][-2000:]}")
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], capture_output=True, check=True)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{label}: the replay failed under callgrind: {proc.communicate()[1][-2000:]}")
        summary = json.loads(line)
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)], capture_output=True, check=True)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    dump = next(workdir.glob("callgrind.out.*"))  # taken after the replay: counted from the zeroing
    summary_line = next(line for line in dump.read_text().splitlines() if line.startswith("summary:"))
    return summary, int(summary_line.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=3000)
    parser.add_argument(
        "--config",
        action="append",
        choices=list(BY_LABEL),
        help="one of the configurations (repeat for more; default: every one)",
    )
    parser.add_argument("--child", nargs=4, metavar=("DATA", "WORKDIR", "LABEL", "WARM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.bars < 50:
        parser.error("--bars: at least 50 (the first fifth warms up and is not counted)")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind (Debian package valgrind) is needed: it counts the instructions")
    labels = args.config or list(BY_LABEL)
    warm = min(500, args.bars // 5)  # start-up and the strategies' first windows: not counted
    print(
        f"instructions per bar, counted by callgrind, on {args.bars:,} EURUSD H1 bars (the shipped sample repeated; "
        f"the first {warm:,}, with the start, not counted)"
    )
    counted: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "bars.csv"
        write_csv(data, args.bars)
        for label in labels:
            workdir = Path(d) / label.replace(" ", "_").replace(",", "").replace("+", "plus")
            workdir.mkdir()
            summary, instructions = count(data, workdir, label, warm)
            counted[label] = instructions / summary["bars"]
            print(
                f"  {label:23} {counted[label]:12,.0f} instructions/bar  ({summary['bars']:,} bars, "
                f"{summary['signals']:,} signals, {summary['fills']:,} fills)",
                flush=True,
            )
    steps = ["kernel + SMA strategy", *(label for label, _, _ in PARTS), "listed plane, SMA"]
    if all(label in counted for label in steps):
        print("  the listed plane, part by part (instructions per bar each adds):")
        for before, after in itertools.pairwise(steps):
            part = {"listed plane, SMA": "+ metrics and audit"}.get(after, after)
            print(f"    {part:28} {counted[after] - counted[before]:+12,.0f}")
    steps = ["full, SMA strategy", *(label for label, _, _ in FULL_PARTS)]
    if all(label in counted for label in steps):
        print(
            "  the full plane with the SMA strategy, parts taken away one at a time (instructions per bar each cost):"
        )
        for before, after in itertools.pairwise(steps):
            print(f"    {after:28} {counted[after] - counted[before]:+12,.0f}")
    if "full control plane" in counted and "full without analysis" in counted:
        added = counted["full control plane"] / counted["full without analysis"] - 1
        print(f"  scoring + memory + accuracy add {added:.1%} to the full replay's instructions (target <= 20%)")


if __name__ == "__main__":
    main()
