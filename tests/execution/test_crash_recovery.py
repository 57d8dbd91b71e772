"""SIGKILL the trading process at 52 points, restart it each time, and demand journal == broker.

The emulated terminal runs in its own process (``tradeguard emulator serve``), so its state
outlives every killed trader, exactly as a Windows terminal outlives a crashed bridge client. Kill
points, chosen by a fixed rule (seeded, so every run is the same):

* ``after_journal`` - the intent is durable in the journal, nothing was sent;
* ``before_send``   - the journal says submitted, ``order_send`` has not run;
* ``after_send``    - the broker executed (or refused), the journal does not know yet;
* ``after_fill``    - a deal is journaled, its order's state is not updated yet (also hits alignment).

The emulator also injects timeouts whose order executed, lost timeouts and requotes.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import pytest

pytest.importorskip("mt5linux", reason="mt5linux is installed by `make test` (pip install --no-deps mt5linux)")

POINTS = ("after_journal", "before_send", "after_send", "after_fill")
CRASHES = [(POINTS[i % 4], 1 + (i * 7) % 3) for i in range(52)]  # 52 seeded (point, occurrence) pairs
INTENTS_PER_RUN = 3

TRADER = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime
    from tradeguard import OrderIntent
    from tradeguard.broker import mt5 as adapter
    from tradeguard.kernel.runtime import Runtime
    from tradeguard.execution import journal

    settings, point, occurrence, intents = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    seen = {}

    def trap(name):
        seen[name] = seen.get(name, 0) + 1
        if name == point and seen[name] == occurrence:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(owner, name, before=None, after=None):
        original = getattr(owner, name)
        def call(*a, **k):
            if before: trap(before)
            result = original(*a, **k)
            if after: trap(after)
            return result
        setattr(owner, name, call)

    wrap(journal.Journal, "create", after="after_journal")
    wrap(adapter.MT5Adapter, "send", before="before_send", after="after_send")
    wrap(journal.Journal, "record_fill", after="after_fill")
    rt = Runtime.build(settings)
    rt.start()  # aligns with the broker before anything is sent
    for i in range(intents):
        rt.execution.submit_order(OrderIntent(symbol="EURUSD", side="buy" if i % 2 else "sell", volume=0.01,
                                              created_at=datetime.now(UTC)))
    rt.execution.enforce_sla()
    print("clean exit")
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_journal_equals_broker_after_52_crashes(tmp_path: Path) -> None:
    port = free_port()
    server_settings = tmp_path / "server.toml"
    server_settings.write_text(
        '[default.broker.emulator]\nmargin_mode = "netting"\nbalance = 1000000.0\n'
        "faults = { seed = 7, timeout_executed_rate = 0.15, timeout_lost_rate = 0.05, requote_rate = 0.05 }\n"
        '[default.logging]\nlevel = "WARNING"\n'
    )
    settings = tmp_path / "trader.toml"
    settings.write_text(
        textwrap.dedent(f"""
        [default.plugins]
        enabled = ["kill_switch", "risk_guard", "execution_engine", "state_alignment"]
        [default.broker]
        module = "mt5linux"
        port = {port}
        [default.runtime]
        data_dir = "{tmp_path / "data"}"
        [default.risk_guard]
        max_open_positions = 1000
        max_positions_per_symbol = 1000
        [default.execution_engine]
        unconfirmed_sla_seconds = 0.001
        ambiguous_pause_seconds = 0.0
        [default.logging]
        level = "WARNING"
        file = "{tmp_path / "trader.log"}"
    """)
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tradeguard",
            "emulator",
            "serve",
            "--port",
            str(port),
            "--settings",
            str(server_settings),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "emulator did not start"
                time.sleep(0.1)
        killed = 0
        for point, occurrence in CRASHES:
            args = [sys.executable, "-c", TRADER, str(settings), point, str(occurrence), str(INTENTS_PER_RUN)]
            run = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=tmp_path)
            assert run.returncode in (0, -signal.SIGKILL), run.stderr[-2000:]
            killed += run.returncode == -signal.SIGKILL
        final = subprocess.run(
            [sys.executable, "-c", TRADER, str(settings), "none", "0", "0"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert final.returncode == 0 and "clean exit" in final.stdout, final.stderr[-2000:]
        assert killed >= 50

        from mt5linux import MetaTrader5  # type: ignore[import-not-found]

        from tradeguard.execution.journal import Journal
        from tradeguard.store.sqlite import Store

        mt5 = MetaTrader5(host="127.0.0.1", port=port)
        mt5.initialize()
        deals = [d for d in mt5.history_deals_get(0, 2**40) if d.magic == 20261125]
        journal = Journal(Store(tmp_path / "data" / "tradeguard.db"), "tg")
        entries = journal.entries()
        assert len(entries) > 60  # every run journals at least one intent before its kill point
        assert {e.state.value for e in entries} <= {"filled", "rejected"}  # nothing left in flight
        orders_of: dict[str, set[int]] = defaultdict(set)
        for d in deals:
            orders_of[str(d.comment)].add(int(d.order))
        assert all(len(v) == 1 for v in orders_of.values()), "an intent was sent twice"
        assert set(orders_of) == {e.client_id for e in entries if e.state.value == "filled"}
        messages = [e.last_message for e in entries]
        assert any("found at the broker" in m and "not" not in m for m in messages)  # executed, then the crash
        assert any("not found at the broker after restart" in m for m in messages)  # journaled, never sent
        fills = journal.fills()
        assert sorted(f.deal_ticket for f in fills) == sorted(int(d.ticket) for d in deals)  # each deal once
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
