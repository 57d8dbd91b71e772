"""Every benchmark script runs to its figures on a small input.

Benchmarks are run by hand, minutes at a time, so one broken by a change elsewhere goes unseen
until someone needs its figures: ``execution_path.py`` died for several stops on the journal lock
(its "restart" opened the journal while the first runtime still held it). Tests never time; this
only checks that each script ends normally and prints the lines its figures are read from.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import require

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

CASES = {
    "alert_throughput.py": (["--alerts", "200"], ["alerts/s", "CRITICAL accounted for: 50 of 50"]),
    "chaos_soak.py": (
        ["--kills", "3", "--modes", "netting", "--corrupt-every", "2"],
        ["deals missing 0  duplicates 0", "alignment p50", "invariants: all held"],
    ),
    "emulator_throughput.py": (["--bars", "2000"], ["ticks/s", "peak RSS"]),
    "fleet.py": (
        ["--accounts", "2", "--kills", "2", "--seconds", "2", "--outage", "1"],
        ["fleet-kill propagation (4 = 2 processes x 2 kills)", "2/2 resumed", "lost (left in flight) 0, duplicated 0"],
    ),
    "execution_path.py": (["--orders", "50"], ["synchronous=NORMAL", "journal writes/s", "restart alignment"]),
    "pipeline_latency.py": (["--signals", "100"], ["kernel decide:", "kernel / bare:"]),
    "pipeline_overhead.py": (["--signals", "200"], ["kernel / bare pluggy:"]),
    "replay_instructions.py": (
        ["--bars", "600", "--config", "kernel + SMA strategy"],
        ["kernel + SMA strategy", "instructions/bar  (480 bars"],
    ),
    "replay_throughput.py": (["--bars", "2000", "--runs", "1"], ["listed plane, SMA", "kernel + SMA strategy"]),
}


def test_every_benchmark_is_covered() -> None:
    scripts = {p.name for p in BENCHMARKS.glob("*.py")}
    # nautilus_reference.py runs under an interpreter with nautilus_trader (replay_throughput --nautilus)
    assert scripts - {"nautilus_reference.py"} == set(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_runs(script: str, tmp_path: Path) -> None:
    if script == "replay_instructions.py":
        require(shutil.which("valgrind") is not None, "valgrind not installed (Debian package valgrind)")
    if script == "fleet.py":
        from tradeguard.fleet.cluster import server_binaries

        require(server_binaries() is not None, "PostgreSQL server binaries (Debian package postgresql)")
    args, expected = CASES[script]
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for line in expected:
        assert line in done.stdout, done.stdout[-3000:]
