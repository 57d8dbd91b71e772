"""`tradeguard run`, the long-running process: a `kill` from a second process halts it through the
store; SIGTERM stops it cleanly; restarted, it resumes without a duplicate order."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

SETTINGS = """
[default.runtime]
poll_seconds = 0.02
data_dir = "{data}"
[default.risk_guard]
daily_loss_limit_pct = 0.0
max_drawdown_pct = 0.0
[default.logging]
level = "WARNING"
file = "{data}/run.log"
"""


def start(settings: Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tradeguard", "run", "--settings", str(settings)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def orders(db: Path) -> int:
    """Closed at once: a connection left open in another process keeps SQLite from folding the
    write-ahead log back into the journal when the trading process closes it."""
    if not db.exists():
        return 0
    try:
        with closing(sqlite3.connect(db)) as con:
            return con.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    except sqlite3.Error:
        return 0


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    return out


@contextmanager
def served_emulator(cwd: Path, ticks_per_second: int) -> Iterator[int]:
    """`tradeguard emulator serve` on a free loopback port, advancing on its own; yields the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tradeguard",
            "emulator",
            "serve",
            "--port",
            str(port),
            "--ticks-per-second",
            str(ticks_per_second),
        ],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, timeout=30)
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def test_kill_from_a_second_process_halts_a_running_process(tmp_path: Path) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text(SETTINGS.format(data=tmp_path / "var"))
    db = tmp_path / "var" / "tradeguard.db"
    proc = start(settings, tmp_path)
    wait_for(lambda: orders(db) >= 3)
    twin = subprocess.run(
        [sys.executable, "-m", "tradeguard", "run", "--settings", str(settings)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert twin.returncode == 1 and "in use by another tradeguard process" in " ".join(twin.stderr.split())
    killed = subprocess.run(
        [sys.executable, "-m", "tradeguard", "kill", "--reason", "desk halt", "--settings", str(settings)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == 0
    status = subprocess.run(
        [sys.executable, "-m", "tradeguard", "status", "--json", "--settings", str(settings)],
        capture_output=True,
        text=True,
        timeout=60,
    )  # what a desk's monitoring reads
    record = json.loads(status.stdout)
    assert record["process"]["state"] == "running" and record["process"]["pid"] == proc.pid
    assert record["kill_switch"]["state"] == "HALTED" and record["kill_switch"]["message"] == "desk halt"
    time.sleep(3)  # the running process re-reads the latch every second; bars keep coming
    out = stop(proc)
    assert "kill switch HALTED" in out
    assert not Path(f"{db}-wal").exists()  # stopped cleanly, no other connection open: one self-contained file
    con = sqlite3.connect(db)
    # decisions carry the emulator's market time and the latch the wall's: order tells what came after
    rows = con.execute("SELECT approved, reasons FROM decisions ORDER BY id").fetchall()
    halted = [i for i, (_, reasons) in enumerate(rows) if "kill_switch_halted" in reasons]
    assert halted, "no signal arrived after the kill"
    assert any(approved for approved, _ in rows[: halted[0]])
    assert all(not approved and "kill_switch_halted" in reasons for approved, reasons in rows[halted[0] :])
    assert con.execute("SELECT COUNT(*) FROM fills WHERE entry = 'out'").fetchone()[0] > 0  # closes journaled at stop


@pytest.mark.skipif(pytest.importorskip("mt5linux") is None, reason="needs mt5linux")
def test_sigterm_and_restart_resume_without_a_duplicate_order(tmp_path: Path) -> None:
    with served_emulator(tmp_path, 120) as port:
        settings = tmp_path / "s.toml"
        settings.write_text(
            SETTINGS.format(data=tmp_path / "var")
            + textwrap.dedent(f"""
            [default.broker]
            module = "mt5linux"
            port = {port}
        """)
        )
        db = tmp_path / "var" / "tradeguard.db"
        first = start(settings, tmp_path)
        wait_for(lambda: orders(db) >= 2)
        stop(first)
        before = orders(db)
        second = start(settings, tmp_path)  # the served market (30 bars/s) lasts minutes: time enough
        wait_for(lambda: orders(db) >= before + 1)
        stop(second)
        from mt5linux import MetaTrader5  # type: ignore[import-not-found]

        mt5 = MetaTrader5(host="127.0.0.1", port=port)
        mt5.initialize()
        per_client: dict[str, set[int]] = defaultdict(set)
        for deal in mt5.history_deals_get(0, 2**40):
            if str(deal.comment).startswith("tg-"):
                per_client[str(deal.comment)].add(int(deal.order))
        assert per_client and all(len(o) == 1 for o in per_client.values()), "an order was sent twice"
        con = sqlite3.connect(db)
        ids = [r[0] for r in con.execute("SELECT client_id FROM orders ORDER BY client_id")]
        assert len(ids) == len(set(ids)) and ids[-1] == f"tg-{len(ids):08d}"  # numbering resumed
        states = {r[0] for r in con.execute("SELECT state FROM orders")}
        assert states <= {"filled", "rejected", "cancelled"}


def test_paper_over_a_fast_emulator_is_not_held_at_each_server_midnight(tmp_path: Path) -> None:
    """`run` times its jobs by the wall clock while the emulator's day passes in seconds: the account
    capture is a minute apart, the server midnights hours apart in market time. The daily limit waits
    for each day's first snapshot, which the first bar past midnight takes, so openings go on."""
    import threading

    from tradeguard import hookimpl
    from tradeguard.kernel.runtime import Runtime
    from tradeguard.replay.loop import run_live

    class StopAfter:
        def __init__(self, stop: threading.Event, bars: int) -> None:
            self.stop, self.left = stop, bars

        @hookimpl
        def on_bar(self, bar: object, runtime: object) -> None:
            self.left -= 1
            if self.left <= 0:
                self.stop.set()

    stop = threading.Event()
    overrides = {
        "runtime": {"data_dir": str(tmp_path), "poll_seconds": 0.001},
        "logging": {"level": "ERROR"},
        "metrics_server": {"port": 0},
        "risk_guard": {"daily_loss_limit_pct": 50.0, "max_drawdown_pct": 0.0},
    }
    rt = Runtime.build(None, read_files=False, plugins=[("stop_after", StopAfter(stop, 120))], overrides=overrides)
    assert run_live(rt, stop) >= 120  # five server days of H1 bars
    refused = rt.store.query("SELECT COUNT(*) FROM decisions WHERE reasons LIKE '%account_stale%'")[0][0]
    approved = rt.store.query("SELECT COUNT(*) FROM decisions WHERE approved = 1")[0][0]
    assert (refused, approved > 0) == (0, True)


def test_paper_over_the_emulator_keeps_the_markets_time(tmp_path: Path) -> None:
    """A paper run on the in-process emulator judges time on the market's scale, as a replay does: its
    quotes are fresh (health OK, not a 2017 tick against today's clock), its decisions carry market
    times and a fill is journaled seconds after its deal, not years."""
    import threading

    from tradeguard.kernel.runtime import Runtime
    from tradeguard.replay.loop import run_live

    stop = threading.Event()
    overrides = {
        "runtime": {"data_dir": str(tmp_path), "poll_seconds": 0.001},
        "logging": {"level": "ERROR"},
        "metrics_server": {"port": 0},
        "risk_guard": {"daily_loss_limit_pct": 0.0, "max_drawdown_pct": 0.0},
    }
    rt = Runtime.build(None, read_files=False, overrides=overrides)
    timer = threading.Timer(4.0, stop.set)
    timer.start()
    assert run_live(rt, stop) > 20
    now, first = rt.clock.now(), datetime.fromtimestamp(rt.store.bars("EURUSD", "H1")[0].time, UTC)
    assert first.year == 2017 and first < now < first + timedelta(days=400)
    assert rt.store.kv_get("health", "last")["status"] == "OK"
    assert rt.metrics.registry.get_sample_value("tradeguard_tick_age_seconds", {"symbol": "EURUSD"}) < 3600
    decided = [datetime.fromisoformat(r[0]) for r in rt.store.query("SELECT decided_at FROM decisions")]
    assert decided and all(first <= d <= now for d in decided)
    # on the market's clock a deal's way to the journal is market time, not a latency: not observed
    assert not rt.metrics.registry.get_sample_value("tradeguard_fill_to_journal_seconds_count")
    assert rt.store.kv_get("latency_metrics", "market_clock") is True


@pytest.mark.skipif(pytest.importorskip("mt5linux") is None, reason="needs mt5linux")
def test_a_served_emulator_can_lend_run_its_market_clock(tmp_path: Path) -> None:
    """`runtime.clock = "market"` for a simulated market in another process: `run` follows its latest
    quote, so the served 2017 market reads as fresh, as the in-process emulator's does. `auto` does so
    when the terminal is the built-in emulator (it names itself in terminal_info)."""
    import threading

    from tradeguard.kernel.runtime import Runtime
    from tradeguard.replay.loop import run_live

    with served_emulator(tmp_path, 400) as port:
        for clock, health in (("wall", "DEGRADED"), ("market", "OK"), ("auto", "OK")):  # auto knows the emulator
            stop = threading.Event()
            overrides = {
                "runtime": {"data_dir": str(tmp_path / clock), "poll_seconds": 0.05, "clock": clock},
                "broker": {"module": "mt5linux", "port": port},
                "logging": {"level": "ERROR"},
                "metrics_server": {"port": 0},
            }
            rt = Runtime.build(None, read_files=False, overrides=overrides)
            threading.Timer(3.0, stop.set).start()
            assert run_live(rt, stop) > 0
            assert rt.store.kv_get("health", "last")["status"] == health
            assert (rt.clock.now().year == 2017) == (clock != "wall")


def test_run_says_when_the_emulators_market_data_ends(tmp_path: Path) -> None:
    from tradeguard.broker.data import SAMPLE

    data = tmp_path / "short.csv"
    data.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:61]))  # 60 bars
    settings = tmp_path / "s.toml"
    settings.write_text(
        SETTINGS.format(data=tmp_path / "var").replace("poll_seconds = 0.02", "poll_seconds = 0.001")
        + f'[default.broker.emulator]\ndata = "{data}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "tradeguard", "run", "--settings", str(settings)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(the emulator's market data ended)" in " ".join(done.stdout.split())
    assert "market data has ended" in (tmp_path / "var" / "run.log").read_text()


def test_a_run_over_the_in_process_emulator_starts_from_an_empty_journal(tmp_path: Path) -> None:
    """The in-process emulator dies with its process: a run resuming a journal would meet a new account at
    the data's first bar, where the journal's positions are gone and its day's loss is phantom. An earlier
    replay's or run's journal is refused; --fresh replaces it."""
    settings = tmp_path / "s.toml"
    settings.write_text(SETTINGS.format(data=tmp_path / "var"))
    db = tmp_path / "var" / "tradeguard.db"
    tg = [sys.executable, "-m", "tradeguard"]
    replayed = subprocess.run(
        [*tg, "replay", "--to", "2017-04-25", "--settings", str(settings)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    latched = subprocess.run(
        [*tg, "kill", "--reason", "the replay's latch", "--settings", str(settings)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert latched.returncode == 0
    refused = subprocess.run(
        [*tg, "run", "--settings", str(settings)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 1 and "already holds a journal" in said and "new simulated account" in said, said
    with closing(sqlite3.connect(db)) as con:
        assert con.execute("SELECT state FROM kill_switch").fetchone()[0] == "HALTED"  # refused: nothing touched
        replay_orders = con.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    proc = subprocess.Popen(
        [*tg, "run", "--fresh", "--settings", str(settings)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def traded_afresh() -> bool:  # the replay's journal is there, orders and all, until the run replaces it
        try:
            with closing(sqlite3.connect(db)) as con:
                return con.execute("SELECT COUNT(*) FROM kill_switch").fetchone()[0] == 0 and orders(db) >= 2
        except sqlite3.Error:
            return False

    wait_for(traded_afresh)
    out = stop(proc)
    assert "kill switch ACTIVE" in out  # the replay's latch went with its journal
    with closing(sqlite3.connect(db)) as con:
        first = con.execute("SELECT client_id FROM orders ORDER BY client_id").fetchone()[0]
        assert first == "tg-00000001" and replay_orders >= 1
    log = (tmp_path / "var" / "run.log").read_text()
    assert "missing_positions" not in log and "balance_without_deal" not in log
    served = {**os.environ, "TRADEGUARD_BROKER__MODULE": "mt5linux"}  # a served market's journal is its account's
    wrong = subprocess.run(
        [*tg, "run", "--fresh", "--settings", str(settings)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=served,
    )
    assert wrong.returncode == 2 and "--fresh" in wrong.stderr


@pytest.mark.parametrize(
    ("symbols", "said"),
    [
        # GBPUSD is in the catalogue, but the in-process emulator has no data for it
        ('["EURUSD", "GBPUSD"]', "runtime.symbols = ['EURUSD', 'GBPUSD']: the in-process emulator replays EURUSD"),
        ('["EURUSD", "NOPE"]', "runtime.symbols: NOPE cannot be selected in the terminal's Market Watch"),
    ],
    ids=["not-replayed", "unknown"],
)
def test_run_refuses_to_start_on_a_symbol_it_cannot_follow(tmp_path: Path, symbols: str, said: str) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text(SETTINGS.format(data=tmp_path / "var"))
    r = subprocess.run(
        [sys.executable, "-m", "tradeguard", "run", "--settings", str(settings)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TRADEGUARD_RUNTIME__SYMBOLS": symbols},
    )
    stderr = " ".join(r.stderr.split())
    assert r.returncode == 1 and said in stderr and "Traceback" not in stderr, stderr
    assert orders(tmp_path / "var" / "tradeguard.db") == 0


def test_run_outlives_a_lost_terminal_link_and_resumes_its_bars(tmp_path: Path) -> None:
    """The terminal's IPC link drops mid-run (every call answers None): `run` keeps going, the health monitor
    sees it CRITICAL and reconnects, and the bars resume where they stopped, none handled twice."""
    import threading

    from tradeguard import Bar, HealthReport, hookimpl
    from tradeguard.kernel.runtime import Runtime
    from tradeguard.kernel.runtime import Runtime as Kernel
    from tradeguard.replay.loop import run_live

    class Outage:
        def __init__(self, stop: threading.Event) -> None:
            self.stop = stop
            self.bars: list[object] = []
            self.statuses: list[str] = []

        @hookimpl
        def on_bar(self, bar: Bar, runtime: Kernel) -> None:
            self.bars.append(bar.time)
            if len(self.bars) == 30:
                runtime.emulator().shutdown()  # the link is gone: every API call answers None
            if len(self.bars) >= 60:
                self.stop.set()

        @hookimpl
        def on_health(self, report: HealthReport, runtime: Kernel) -> None:
            self.statuses.append(report.status.value)
            if len(self.bars) >= 30 and self.statuses.count("CRITICAL") < 3:  # down for a few polls more
                runtime.emulator().shutdown()

    stop = threading.Event()
    outage = Outage(stop)
    overrides = {
        "runtime": {"data_dir": str(tmp_path), "poll_seconds": 0.001},
        "logging": {"level": "ERROR"},
        "metrics_server": {"port": 0},
        "risk_guard": {"daily_loss_limit_pct": 0.0, "max_drawdown_pct": 0.0},
    }
    rt = Runtime.build(None, read_files=False, plugins=[("outage", outage)], overrides=overrides)
    assert run_live(rt, stop) >= 60
    assert len(outage.bars) == len(set(outage.bars)) >= 60 and outage.bars == sorted(outage.bars)
    assert "CRITICAL" in outage.statuses and outage.statuses[-1] == "OK"  # seen down, then back
