"""Small helpers the tests share: waiting for something a thread or process does, a real small disk, a scrape."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tradeguard import Alert, Signal, Targets, hookimpl

from .conftest import require


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> None:
    """Poll ``check`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real disk of ``size`` (tmpfs) mounted at ``where`` for the block: one that fills up (ENOSPC)."""
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def tradeguard(
    settings: Path,
    *args: str,
    secret: str | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
    **environment: str,
) -> subprocess.CompletedProcess[str]:
    """``tradeguard ARGS --settings SETTINGS`` as an operator runs it: its own process, no terminal, the
    operator secret only when given (``TRADEGUARD_OPERATOR_SECRET``), wide enough that lines are not wrapped;
    ``environment``: more variables (``TRADEGUARD_...`` settings)."""
    env = {**os.environ, "COLUMNS": "400", **environment}
    env.pop("TRADEGUARD_OPERATOR_SECRET", None)
    if secret is not None:
        env["TRADEGUARD_OPERATOR_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "tradeguard", *args, "--settings", str(settings)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def scrape(port: int) -> dict[str, float]:
    """Every sample a metrics endpoint on 127.0.0.1:``port`` serves, by name with its labels."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


class Sizer:
    """A position sizer that always says 0.1 lots."""

    @hookimpl
    def size_position(self, signal: Signal, targets: Targets) -> float:
        return 0.1


class Alerts:
    """A plugin that keeps every alert the runtime raises."""

    def __init__(self) -> None:
        self.seen: list[Alert] = []

    @hookimpl
    def on_alert(self, alert: Alert, runtime: object) -> None:
        self.seen.append(alert)

    def codes(self) -> list[str]:
        return [a.error_code for a in self.seen]


#: a `tradeguard run` over the in-process emulator that keeps trading (no loss latch), fast, quiet
TRADING = """
[default.runtime]
poll_seconds = 0.05
data_dir = "{home}/var"
[default.risk_guard]
daily_loss_limit_pct = 0.0
max_drawdown_pct = 0.0
[default.metrics_server]
port = 0
[default.logging]
level = "INFO"
file = "{home}/run.log"
"""


def start_trading(home: Path, more: str) -> subprocess.Popen[str]:
    """``tradeguard run --fresh`` in ``home`` with :data:`TRADING` and ``more`` settings."""
    settings = home / "settings.toml"
    settings.write_text(TRADING.format(home=home) + more)
    return subprocess.Popen(
        [sys.executable, "-m", "tradeguard", "run", "--fresh", "--settings", str(settings)],
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
