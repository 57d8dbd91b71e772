"""`tradeguard run` under systemd (Type=notify): READY=1 after alignment, WATCHDOG=1 from the trading loop only
(a stuck loop stops the pings), STOPPING=1 on the way out; and the shipped unit file."""

from __future__ import annotations

import configparser
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tradeguard.kernel.service import ServiceManager

from ..conftest import REPO

UNIT = REPO / "deploy" / "systemd" / "tradeguard.service"


@contextmanager
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket where systemd would listen; yields its address and the socket."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    try:
        yield path, sock
    finally:
        sock.close()


def received(sock: socket.socket, until: float, first: str = "") -> list[tuple[float, str]]:
    """Every datagram until ``until`` (monotonic), with when it came; with ``first``, until that one came."""
    out = []
    while time.monotonic() < until:
        try:
            out.append((time.monotonic(), sock.recv(4096).decode()))
        except TimeoutError:
            continue
        if first and out[-1][1].startswith(first):
            break
    return out


def test_the_protocol_on_a_real_socket_and_nothing_without_one(tmp_path: Path) -> None:
    with notify_socket(tmp_path) as (path, sock):
        manager = ServiceManager({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        assert manager.watchdog_every == 0.2
        manager.ready("trading EURUSD H1")
        manager.watchdog()
        manager.watchdog()  # within the interval: not sent again
        messages = [m for _, m in received(sock, time.monotonic() + 0.3)]
        assert messages[0].splitlines()[:2] == ["READY=1", "STATUS=trading EURUSD H1"]
        assert messages[1:] == ["WATCHDOG=1"]
    other = ServiceManager({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"})
    assert other.watchdog_every is None  # the watchdog is another process's
    ServiceManager({}).ready("not under systemd")  # nothing to send, nothing raised


def test_run_tells_systemd_ready_pings_and_stopping(tmp_path: Path) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text(
        textwrap.dedent(f"""
        [default.runtime]
        poll_seconds = 0.02
        data_dir = "{tmp_path / "var"}"
        [default.metrics_server]
        port = 0
        [default.logging]
        level = "WARNING"
        file = "{tmp_path / "run.log"}"
        """)
    )
    with notify_socket(tmp_path) as (path, sock):
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradeguard", "run", "--fresh", "--settings", str(settings)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ready = received(sock, time.monotonic() + 60, "READY=1")  # start-up (alignment) first: its own time
            first = ready + received(sock, time.monotonic() + 10)
        finally:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        last = received(sock, time.monotonic() + 0.5)
    assert proc.returncode == 0, err[-2000:]
    kinds = [m.splitlines()[0] for _, m in first]
    assert kinds[0] == "READY=1" and kinds.count("WATCHDOG=1") >= 40  # ~every 0.1 s for 10 s after READY
    assert any(m.startswith("STOPPING=1") for _, m in last)


STUCK = textwrap.dedent("""
    import sys, threading, time
    from tradeguard import hookimpl
    from tradeguard.kernel.runtime import Runtime
    from tradeguard.replay.loop import run_live

    class Stuck:
        bars = 0
        @hookimpl
        def on_bar(self, bar, runtime):
            self.bars += 1
            if self.bars == 20:
                time.sleep(3)  # the trading loop hangs in a plugin; every other thread runs on

    stop = threading.Event()
    rt = Runtime.build(sys.argv[1], plugins=[("stuck", Stuck())])
    threading.Timer(12, stop.set).start()  # (after the build: a slow start-up still reaches bar 20)
    run_live(rt, stop)
""")


def test_a_stuck_trading_loop_stops_the_watchdog_pings(tmp_path: Path) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text(
        f'[default.runtime]\npoll_seconds = 0.02\ndata_dir = "{tmp_path / "var"}"\n'
        '[default.metrics_server]\nport = 0\n[default.logging]\nlevel = "ERROR"\n'
    )
    with notify_socket(tmp_path) as (path, sock):
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
        proc = subprocess.Popen([sys.executable, "-c", STUCK, str(settings)], env=env, stderr=subprocess.PIPE)
        messages = received(sock, time.monotonic() + 25)
        proc.wait(timeout=60)
    pings = [t for t, m in messages if m == "WATCHDOG=1"]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert len(pings) > 20 and max(gaps) >= 2.5  # silent while stuck: systemd would restart it
    assert sorted(gaps)[len(gaps) // 2] < 0.5  # and pinging every ~0.1 s otherwise


def test_the_unit_is_a_notify_service_with_a_watchdog_and_restarts() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd's keys are case-sensitive
    unit.read(UNIT)
    service = unit["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) > 0 and service["Restart"] == "on-failure"
    assert service["ExecStart"].split()[1:3] == ["run", "--settings"]
    assert "StartLimitBurst" in unit["Unit"]
    if shutil.which("systemd-analyze"):  # where systemd is installed: its own verdict (the binary may be missing)
        done = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
        # the install paths (/opt/tradeguard, its user) are the deployment's, not this machine's
        found = [line for line in done.stderr.splitlines() if "tradeguard.service" in line]
        problems = [line for line in found if "not executable" not in line]
        assert problems == [], done.stderr
