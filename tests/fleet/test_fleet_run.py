"""Real `tradeguard run` processes, one per account, each on its own served emulator (a broker of its own), under
one fleet on a real PostgreSQL: concurrent decisions never exceed a fleet limit (checked against the brokers' own
books), a fleet kill reaches every process within a second and a process started later starts latched, a reset
lifts it, the database restarting mid-run loses and duplicates no order, a process killed holding a reservation
loses it with its lease."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tradeguard.fleet.cluster import ThrowawayCluster
from tradeguard.kernel.operator_secret import hash_secret

from ..served import Served, served_emulator
from .conftest import fresh_database


def needs_mt5linux() -> None:
    """The accounts' processes reach their served emulators through mt5linux, as they would a terminal."""
    pytest.importorskip("mt5linux", reason="mt5linux is installed by `make test` (pip install --no-deps mt5linux)")


SECRET = "fleet-operator-secret"
LIMITS = {"max_lots_per_symbol": 0.3, "max_open_positions": 2}
ACCOUNT = """
[default.runtime]
poll_seconds = 0.02
data_dir = "{data}"
[default.broker]
module = "mt5linux"
port = {port}
[default.risk_guard]
daily_loss_limit_pct = 0.0
max_drawdown_pct = 0.0
[default.position_sizing]
method = "fixed"
fixed_lots = 0.1
[default.logging]
level = "WARNING"
file = "{data}/run.log"
[default.metrics_server]
port = 0
[default.kill_switch]
operator_secret_hash = "{secret_hash}"
[default.fleet]
url = "{url}"
account = "{account}"
heartbeat_seconds = 0.25
fail_closed_seconds = 1.0
lease_seconds = 5.0
[default.fleet_risk]
max_lots_per_symbol = {max_lots_per_symbol}
max_open_positions = {max_open_positions}
"""


@dataclass
class Account:
    name: str
    served: Served
    settings: Path
    journal: Path
    process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tradeguard", "run", "--settings", str(self.settings)],
            cwd=self.settings.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> str:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, err[-3000:]
        return out

    def query(self, sql: str) -> list[Any]:
        if not self.journal.exists():
            return []
        try:
            with closing(sqlite3.connect(self.journal)) as con:
                return con.execute(sql).fetchall()
        except sqlite3.Error:
            return []

    def kill_state(self) -> tuple[str, str] | None:
        rows = self.query("SELECT state, trigger FROM kill_switch WHERE id = 1")
        return (rows[0][0], rows[0][1]) if rows else None

    def refusals(self, prefix: str = "fleet_") -> int:
        rows = self.query("SELECT reasons FROM decisions WHERE approved = 0")
        return sum(prefix in r[0] for r in rows)

    def opening_deals(self) -> int:
        """Deals that opened (entry IN) at this account's broker, by the broker's own history."""
        from rpyc.utils.classic import obtain

        return sum(1 for d in obtain(self.served.terminal.history_deals_get(0, 2**40)) or () if int(d.entry) == 0)

    def broker_book(self) -> tuple[dict[str, float], int]:
        """Lots per symbol and positions + pending orders, read from the broker itself."""
        from rpyc.utils.classic import obtain

        lots: dict[str, float] = defaultdict(float)
        count = 0
        for p in obtain(self.served.terminal.positions_get()) or ():
            lots[p.symbol] += p.volume
            count += 1
        for o in obtain(self.served.terminal.orders_get()) or ():
            lots[o.symbol] += o.volume_current
            count += 1
        return lots, count


def wait_for(predicate: Callable[[], object], timeout: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.05)


@contextmanager
def fleet(tmp_path: Path, url: str, names: list[str], **limits: float) -> Iterator[list[Account]]:
    """One served emulator (login of its own) and one settings file per account; processes not started."""
    with ExitStack() as stack:
        accounts = []
        for n, name in enumerate(names):
            home = tmp_path / name
            home.mkdir()
            served = stack.enter_context(
                served_emulator(home, f"[default.broker.emulator]\nlogin = {5_100_000 + n}\n", ticks_per_second=150)
            )
            settings = home / "settings.toml"
            settings.write_text(
                ACCOUNT.format(
                    data=home / "var",
                    port=served.port,
                    url=url,
                    account=name,
                    secret_hash=hash_secret(SECRET),
                    **{**LIMITS, **limits},
                )
            )
            accounts.append(Account(name, served, settings, home / "var" / "tradeguard.db"))
        try:
            yield accounts
        finally:
            for account in accounts:
                if account.process is not None and account.process.poll() is None:
                    account.process.kill()
                    account.process.wait(timeout=30)


def cli(settings: Path, *args: str, secret: str = "") -> subprocess.CompletedProcess[str]:
    env = {"TRADEGUARD_OPERATOR": "alice", **({"TRADEGUARD_OPERATOR_SECRET": secret} if secret else {})}
    import os

    return subprocess.run(
        [sys.executable, "-m", "tradeguard", "fleet", *args, "--settings", str(settings)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def fleet_rows(url: str) -> dict[str, dict[str, Any]]:
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT account, fleet_kill_seen, fleet_kill_seen_at, extract(epoch FROM now() - heartbeat_at) AS age, "
            "stopped FROM fleet_accounts"
        ).fetchall()
    return {r["account"]: r for r in rows}


def test_three_accounts_one_budget_one_kill_switch(tmp_path: Path, fleet_url: str) -> None:
    needs_mt5linux()
    with fleet(tmp_path, fleet_url, ["alpha", "beta", "gamma", "late"]) as accounts:
        late = accounts.pop()
        for account in accounts:
            account.start()
        worst: dict[str, float] = {"lots": 0.0, "count": 0}
        stop_watching = threading.Event()

        def watch() -> None:
            """The brokers' books, summed across the fleet, every few milliseconds while they trade."""
            while not stop_watching.is_set():
                lots: dict[str, float] = defaultdict(float)
                count = 0
                for account in accounts:
                    held, n = account.broker_book()
                    for symbol, volume in held.items():
                        lots[symbol] += volume
                    count += n
                worst["lots"] = max(worst["lots"], max(lots.values(), default=0.0))
                worst["count"] = max(worst["count"], count)
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            wait_for(lambda: sum(a.refusals() for a in accounts) >= 6, what="the fleet's limits refused orders")
            wait_for(lambda: all(a.query("SELECT 1 FROM fills LIMIT 1") for a in accounts), what="every account traded")
        finally:
            stop_watching.set()
            watcher.join()
        assert worst["lots"] <= LIMITS["max_lots_per_symbol"] + 1e-9, worst
        assert worst["count"] <= LIMITS["max_open_positions"], worst
        assert worst["lots"] == pytest.approx(LIMITS["max_lots_per_symbol"]) or worst["count"] == 2  # it bound

        # one red button: every running process adopts it within a second (timed by the database's own clock)
        killed = cli(accounts[0].settings, "kill", "--reason", "desk says stop")
        assert killed.returncode == 0, killed.stderr
        event = int(killed.stdout.split("(event ")[1].split(")")[0])
        wait_for(lambda: all(r["fleet_kill_seen"] == event for r in fleet_rows(fleet_url).values()), 10, "kill heard")
        with psycopg.connect(fleet_url) as conn:
            lags = conn.execute(
                "SELECT extract(epoch FROM a.fleet_kill_seen_at - e.at) FROM fleet_accounts a "
                "JOIN fleet_events e ON e.id = a.fleet_kill_seen"
            ).fetchall()
        assert len(lags) == 3 and max(float(lag) for (lag,) in lags) < 1.0, lags
        wait_for(lambda: all(a.kill_state() == ("HALTED", "fleet_kill") for a in accounts), 10, "latched locally")
        for account in accounts:  # in every account's own kill-switch record and audit chain, with who
            events = account.query("SELECT operator, via, to_state FROM kill_switch_events")
            assert ("alice", "fleet:cli", "HALTED") in events
            wait_for(lambda a=account: a.query("SELECT 1 FROM audit WHERE record LIKE '%fleet:cli%'"), 10, "chained")
        opened = [a.opening_deals() for a in accounts]  # after the kill was heard (and a decision under way ended)
        time.sleep(1.5)
        assert [a.opening_deals() for a in accounts] == opened  # no broker opened anything for us since

        late.start()  # a process started after the kill starts latched
        wait_for(lambda: "late" in fleet_rows(fleet_url), 30, "the late account joined")
        wait_for(lambda: late.kill_state() == ("HALTED", "fleet_kill"), 10, "the late account latched")
        wait_for(lambda: late.query("SELECT COUNT(*) FROM decisions")[0][0] > 0, 30, "the late account decided")
        assert late.query("SELECT COUNT(*) FROM orders") == [(0,)]

        refused = cli(accounts[0].settings, "reset", "--operator", "alice", "--reason", "calm", secret="wrong")
        assert refused.returncode == 1 and "wrong operator secret" in refused.stderr
        reset = cli(accounts[0].settings, "reset", "--operator", "alice", "--reason", "calm again", secret=SECRET)
        assert reset.returncode == 0, reset.stderr
        everyone = [*accounts, late]
        wait_for(lambda: all(a.kill_state() == ("ACTIVE", "reset") for a in everyone), 10, "reset adopted")
        status = cli(accounts[0].settings, "status", "--json")
        doc = json.loads(status.stdout)
        with psycopg.connect(fleet_url) as conn:
            kinds = [r[0] for r in conn.execute("SELECT kind FROM fleet_events ORDER BY id").fetchall()]
        assert kinds == ["kill", "reset_refused", "reset"]
        assert doc["kill"]["state"] == "ACTIVE" and doc["record"] == {"events": 3, "intact": True, "problem": ""}
        assert {a["account"]: a["up"] for a in doc["accounts"]} == {n: True for n in ("alpha", "beta", "gamma", "late")}
        for account in everyone:
            account.stop()
        assert all(r["stopped"] for r in fleet_rows(fleet_url).values())


def test_the_database_restarting_mid_run_loses_and_duplicates_no_order(tmp_path: Path) -> None:
    needs_mt5linux()
    with ThrowawayCluster() as cluster:  # in the system temp directory: the postgres user reaches it
        url = fresh_database(cluster)
        limits = {"max_lots_per_symbol": 5.0, "max_open_positions": 50}
        with fleet(tmp_path, url, ["one", "two"], **limits) as accounts:
            for account in accounts:
                account.start()
            wait_for(lambda: all(a.query("SELECT 1 FROM fills LIMIT 1") for a in accounts), what="trading")
            cluster.stop("immediate")
            wait_for(lambda: all(a.refusals("fleet_unreachable") for a in accounts), 60, "openings refused")
            time.sleep(1.5)  # past fail_closed_seconds: alerted
            before = {a.name: a.query("SELECT COUNT(*) FROM decisions WHERE approved = 1")[0][0] for a in accounts}
            cluster.start()
            wait_for(
                lambda: all(
                    a.query("SELECT COUNT(*) FROM decisions WHERE approved = 1")[0][0] > before[a.name]
                    for a in accounts
                ),
                60,
                "openings resumed",
            )
            for account in accounts:
                account.stop()
                log = (account.journal.parent / "run.log").read_text()
                assert "fleet_unreachable" in log and "fleet_reachable" in log  # alerted, and told it is over
                from rpyc.utils.classic import obtain

                per_client: dict[str, set[int]] = defaultdict(set)
                for deal in obtain(account.served.terminal.history_deals_get(0, 2**40)):
                    if str(deal.comment).startswith("tg-"):
                        per_client[str(deal.comment)].add(int(deal.order))
                assert per_client and all(len(o) == 1 for o in per_client.values()), "an order was sent twice"
                journaled = {r[0] for r in account.query("SELECT client_id FROM orders WHERE state = 'filled'")}
                assert set(per_client) <= {r[0] for r in account.query("SELECT client_id FROM orders")}
                assert journaled <= set(per_client)  # every filled order in the journal is a broker deal


HOLDER = textwrap.dedent("""
    import sys, time
    from tradeguard.fleet.database import Ask, FleetDB
    db = FleetDB(sys.argv[1], "main")
    held = db.reserve("holder", Ask("s1", "EURUSD", 1.0, "EUR", "USD", 1), lease_seconds=float(sys.argv[2]))
    print(held, flush=True)
    time.sleep(600)
""")


def test_a_process_killed_holding_a_reservation_loses_it_with_its_lease(tmp_path: Path, fleet_url: str) -> None:
    from tradeguard.fleet.database import AccountFigures, Ask, FleetDB, Refusal

    db = FleetDB(fleet_url, "main")
    db.migrate()
    db.join("USD", {"max_lots_per_symbol": 1.0})
    for n, name in enumerate(("holder", "other")):
        db.claim(name, AccountFigures(n + 1, "Demo", "USD", 1.0, 1e4, 1e4, 1e4), n, "test", 0.0)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, fleet_url, "2.0"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip().isdigit()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    answer = db.reserve("other", Ask("o1", "EURUSD", 0.5, "EUR", "USD", 1), lease_seconds=30)
    assert isinstance(answer, Refusal) and answer.code == "fleet_lots_symbol"  # the dead process's share still held
    wait_for(lambda: db.totals().reservations == 0, 10, "the lease ran out")
    assert isinstance(db.reserve("other", Ask("o2", "EURUSD", 0.5, "EUR", "USD", 1), lease_seconds=30), int)
