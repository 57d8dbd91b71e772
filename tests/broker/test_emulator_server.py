"""`tradeguard emulator serve` in its own process: the unmodified mt5linux client trades on it,
and the terminal's state outlives a trading process killed with SIGKILL."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("mt5linux", reason="mt5linux is installed by `make test` (pip install --no-deps mt5linux)")

CLIENT = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime
    from tradeguard.broker.mt5 import MT5Adapter, load_module
    from tradeguard.broker.settings import BrokerSettings

    cfg = BrokerSettings(module="mt5linux", port=int(sys.argv[1]))
    broker = MT5Adapter(load_module(cfg), cfg)
    broker.connect()
    if sys.argv[2] == "trade":
        for i in range(3):
            req = broker.prepare({"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": i % 2, "magic": 77,
                                  "comment": f"tg-crash-{i}"})
            res = broker.send(req)
            print(res.retcode, res.order, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # die without a goodbye, mid-session
    deals = broker.history_deals(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    print(sorted((p.ticket, p.comment, p.magic) for p in broker.positions()))
    print(sorted((d.order, d.comment) for d in deals))
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path) -> Iterator[int]:  # type: ignore[no-untyped-def]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradeguard", "emulator", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            time.sleep(0.1)
    yield port
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def client(port: int, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLIENT, str(port), action], capture_output=True, text=True, timeout=60)


def test_state_survives_a_killed_trading_process(server: int) -> None:
    first = client(server, "trade")
    assert first.returncode == -signal.SIGKILL, first.stderr
    fills = [line.split() for line in first.stdout.splitlines()]
    assert [code for code, _ in fills] == ["10009"] * 3
    tickets = sorted(int(order) for _, order in fills)

    second = client(server, "inspect")
    assert second.returncode == 0, second.stderr
    positions, deals = second.stdout.splitlines()
    assert positions == repr(sorted((t, f"tg-crash-{i}", 77) for i, t in enumerate(tickets)))
    assert deals == repr(sorted((t, f"tg-crash-{i}") for i, t in enumerate(tickets)))
    assert client(server, "inspect").stdout == second.stdout  # reconnecting again changes nothing


def test_serve_refuses_a_non_loopback_address(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cmd = [sys.executable, "-m", "tradeguard", "emulator", "serve", "--host", "0.0.0.0", "--port", str(free_port())]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 1 and "refusing to serve on 0.0.0.0" in res.stderr


def test_loopback_detection() -> None:
    from tradeguard.broker.emulator.server import is_loopback

    assert all(map(is_loopback, ("127.0.0.1", "127.5.0.1", "::1", "localhost")))
    assert not any(map(is_loopback, ("0.0.0.0", "10.0.0.1", "192.168.1.2", "example.org")))
