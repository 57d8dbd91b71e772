"""Chaos rounds against the real topology, and the invariants checked against the broker's own records.

The emulator is served as its own process (``tradeguard emulator serve``, its market running by
itself); the trading process is ``tradeguard run`` over the mt5linux client, SIGKILLed at moments
drawn from a seeded generator and restarted each time. Between two runs a person may close part of
one of our positions at the terminal; a restart may find its store file damaged (it must refuse in
one line, then run again once the file is restored); on a tmpfs data directory the disk may fill up
mid-run and free up again. At the end the market is held still, one last clean run aligns, and the
journal is compared with the broker (read through the mt5linux client):

* every deal of ours at the broker is journaled, once, and the journal holds no deal the broker lacks;
* no client id was sent twice (each traded client id has exactly one broker order);
* no order is left in flight;
* the journal's open positions (net volume per position id) are the broker's;
* the day's realised P&L of the account tracker's last snapshot is the broker's deals since server
  midnight, and the journal's fills of the day add up to the broker's deals of ours;
* every order of a signal has its decision, and no reconciliation ever found the two apart.

Used by ``tests/chaos`` (bounded, in CI) and ``benchmarks/chaos_soak.py`` (hundreds of kills).

Every connection this harness opens on the journal is closed at once (``closing``): a Python sqlite3
connection left to the garbage collector keeps its process's view of the write-ahead log's index, and
the damaged-store step replaces the file and removes that index; a stale view then reads the journal
as malformed, and can damage it when it finally closes. (Found here: never remove a store's ``-wal`` or
``-shm`` while any process holds it open.)
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from tradeguard.broker.server_time import ServerZone
from tradeguard.kernel.operator_secret import hash_secret

MAGIC = 20261125
SECRET = "chaos operator secret"  # the throwaway operator secret of a chaos round's settings
TRADER_PLUGINS = [
    "kill_switch",
    "risk_guard",
    "position_sizing",
    "target_stop_engine",
    "execution_engine",
    "state_alignment",
    "account_tracker",
    "position_reconciler",
    "audit_trail",
    "ma_crossover",
]


@dataclass(frozen=True)
class ChaosPlan:
    workdir: Path
    margin_mode: Literal["hedging", "netting"] = "hedging"
    kills: int = 30
    seed: int = 1
    ticks_per_second: float = 24.0
    faults: str = "flaky"
    alive_seconds: tuple[float, float] = (0.5, 4.0)  # how long a trader lives before its SIGKILL
    manual_close_share: float = 0.2  # restarts before which a person closes part of a position at the terminal
    corrupt_every: int = 0  # every Nth restart finds its store damaged (0 = never)
    disk: Path | None = None  # a mounted tmpfs for the data directory: the disk fills up once, mid-round
    server_timezone: str = "+00:00"  # the served server's clock, and the trader's setting (new_york_close: DST)
    data: Path | None = None  # bars to serve (default: the shipped EURUSD sample)


@dataclass
class ChaosReport:
    kills: int = 0
    runs: int = 0
    deals: int = 0
    missing: list[int] = field(default_factory=list)  # deals of ours at the broker, not journaled
    extra: list[int] = field(default_factory=list)  # journaled deals the broker does not have
    duplicates: int = 0
    sent_twice: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    positions_apart: dict[int, tuple[float, float]] = field(default_factory=dict)  # id -> (journal, broker)
    pnl_day: tuple[float, float] = (0.0, 0.0)  # (tracker, broker) on the last snapshot's day
    pnl_day_ours: tuple[float, float] = (0.0, 0.0)  # (journal, broker) for our deals that day
    decisions_missing: list[str] = field(default_factory=list)
    reconciliation_halts: int = 0
    manual_closes: int = 0
    corrupt_refusals: list[str] = field(default_factory=list)  # the one-line errors of damaged-store starts
    disk_full: dict[str, Any] = field(default_factory=dict)
    alignment_seconds: list[float] = field(default_factory=list)
    orders: int = 0
    integrity: str = ""  # the journal's PRAGMA integrity_check

    def failures(self) -> list[str]:
        """Every invariant this round broke, one line each (empty: all held)."""
        found = [] if self.integrity == "ok" else [f"journal integrity: {self.integrity}"]
        if self.missing:
            found.append(f"{len(self.missing)} deals of ours not journaled: {self.missing[:10]}")
        if self.extra:
            found.append(f"{len(self.extra)} journaled deals the broker lacks: {self.extra[:10]}")
        if self.duplicates:
            found.append(f"{self.duplicates} deals journaled twice")
        if self.sent_twice:
            found.append(f"client ids sent twice: {self.sent_twice[:10]}")
        if self.in_flight:
            found.append(f"orders left in flight: {self.in_flight[:10]}")
        if self.positions_apart:
            found.append(f"positions apart (journal, broker): {dict(list(self.positions_apart.items())[:10])}")
        if abs(self.pnl_day[0] - self.pnl_day[1]) > 0.011:
            found.append(f"day's realised P&L: tracker {self.pnl_day[0]:.2f}, broker {self.pnl_day[1]:.2f}")
        if abs(self.pnl_day_ours[0] - self.pnl_day_ours[1]) > 0.011:
            found.append(
                f"day's P&L of our deals: journal {self.pnl_day_ours[0]:.2f}, broker {self.pnl_day_ours[1]:.2f}"
            )
        if self.decisions_missing:
            found.append(f"orders without their decision: {self.decisions_missing[:10]}")
        if self.reconciliation_halts:
            found.append(f"{self.reconciliation_halts} halts by an inconsistent reconciliation")
        return found


def _fill(ballast: Path) -> None:
    """Write ``ballast`` until its disk is full to the last block (ENOSPC); deleting it gives the space back."""
    try:
        with ballast.open("wb", buffering=0) as f:
            for chunk in (65536, 4096, 512):
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError:
                    continue
    except OSError:
        return


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tradeguard(*args: str) -> list[str]:
    return [sys.executable, "-m", "tradeguard", *args]


class ChaosRound:
    """One round: a served emulator, a trader killed ``plan.kills`` times, then the comparison."""

    def __init__(self, plan: ChaosPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)  # seeded: the same plan kills at the same moments
        self.report = ChaosReport()
        work = plan.workdir
        work.mkdir(parents=True, exist_ok=True)
        self.data = (plan.disk or work) / "var"
        self.db = self.data / "tradeguard.db"
        self.log = work / "trader.log"
        self.port = _free_port()
        self.settings = work / "trader.toml"
        self.env = {**os.environ, "TRADEGUARD_OPERATOR_SECRET": SECRET, "COLUMNS": "200"}

    # ------------------------------------------------------------------ set-up ------------------

    def _write_settings(self) -> Path:
        emulator = self.plan.workdir / "emulator.toml"
        data = f'data = "{self.plan.data}"\n' if self.plan.data else ""
        emulator.write_text(
            f'[default.broker.emulator]\nmargin_mode = "{self.plan.margin_mode}"\n'
            f'faults = "{self.plan.faults}"\nserver_timezone = "{self.plan.server_timezone}"\n{data}'
            '[default.logging]\nlevel = "WARNING"\n'
        )
        self.settings.write_text(f"""
[default.plugins]
enabled = {json.dumps(TRADER_PLUGINS)}
[default.broker]
module = "mt5linux"
port = {self.port}
server_timezone = "{self.plan.server_timezone}"
[default.runtime]
data_dir = "{self.data}"
poll_seconds = 0.05
[default.store]
synchronous = "NORMAL"
[default.ma_crossover]
fast = 2
slow = 3
[default.execution_engine]
poll_fills_seconds = 1
unconfirmed_sla_seconds = 1
ambiguous_pause_seconds = 0.05
[default.position_reconciler]
every_seconds = 5
[default.risk_guard]
max_open_positions = 50
max_positions_per_symbol = 50
daily_loss_limit_pct = 50.0
max_drawdown_pct = 50.0
[default.position_sizing]
risk_pct = 0.25
[default.kill_switch]
operator_secret_hash = "{hash_secret(SECRET)}"
[default.logging]
level = "INFO"
file = "{self.log}"
""")
        return emulator

    def run(self) -> ChaosReport:
        emulator_settings = self._write_settings()
        cmd = _tradeguard(
            "emulator",
            "serve",
            "--port",
            str(self.port),
            "--settings",
            str(emulator_settings),
            "--ticks-per-second",
            str(self.plan.ticks_per_second),
        )
        with (self.plan.workdir / "emulator.log").open("wb") as err:
            server = subprocess.Popen(cmd, cwd=self.plan.workdir, stdout=subprocess.DEVNULL, stderr=err)
            try:
                self._wait_for_port(server)
                self._storm()
                self._settle()
                self._compare()
            finally:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait(timeout=15)
        self._read_alignment_times()
        return self.report

    def _wait_for_port(self, server: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the served emulator did not start") from None
                time.sleep(0.1)

    def _admin(self) -> Any:
        """The served terminal, driven by hand (rpyc classic), as a person at the terminal would."""
        import rpyc

        conn = rpyc.classic.connect("127.0.0.1", self.port)
        return conn, conn.modules["tradeguard.broker.emulator"].terminal

    # ------------------------------------------------------------------ the storm ---------------

    def _trader(self) -> subprocess.Popen[bytes]:
        self.report.runs += 1
        out = (self.plan.workdir / "trader.out").open("ab")
        return subprocess.Popen(
            _tradeguard("run", "--settings", str(self.settings)),
            cwd=self.plan.workdir,
            stdout=out,
            stderr=out,
            env=self.env,
        )

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            self.report.kills += 1
        proc.wait(timeout=30)

    def _storm(self) -> None:
        plan = self.plan
        disk_at = plan.kills // 2 if plan.disk is not None else -1
        for i in range(plan.kills):
            if i and self.rng.random() < plan.manual_close_share:
                self._close_by_hand()
            if plan.corrupt_every and i and i % plan.corrupt_every == 0:
                self._start_on_a_damaged_store()
                if not self._intact("after the damaged store was restored"):
                    return
            proc = self._trader()
            if i == disk_at:
                self._fill_the_disk(proc)
            time.sleep(self.rng.uniform(*plan.alive_seconds))
            self._kill(proc)
            if not self._intact(f"after the SIGKILL of run {self.report.runs}"):
                return

    def _intact(self, when: str) -> bool:
        """The journal's quick_check between two runs: the first damage found ends the storm, named, its files
        kept beside the round for the post-mortem."""
        if not self.db.is_file():
            return True
        try:
            con = sqlite3.connect(self.db, timeout=30)
            try:
                verdict = str(con.execute("PRAGMA quick_check").fetchone()[0])
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            verdict = str(exc)
        if verdict == "ok":
            return True
        holders = subprocess.run(
            ["fuser", "-v", str(self.db), f"{self.db}-wal", f"{self.db}-shm"],
            capture_output=True,
            text=True,
            check=False,
        ).stderr.strip()
        time.sleep(1.0)
        con = sqlite3.connect(self.db, timeout=30)
        try:
            again = str(con.execute("PRAGMA quick_check").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            again = str(exc)
        finally:
            con.close()
        self.report.integrity = f"{when}: {verdict} (a second later: {again}; open by: {holders or 'nobody'})"
        for suffix in ("", "-wal", "-shm"):
            source = self.db.with_name(self.db.name + suffix)
            if source.exists():
                (self.plan.workdir / f"damaged-journal.db{suffix}").write_bytes(source.read_bytes())
        return False

    def _close_by_hand(self) -> None:
        conn, terminal = self._admin()
        try:
            ours = [(int(p.ticket), float(p.volume)) for p in terminal.positions_get() or () if int(p.magic) == MAGIC]
            if ours:
                ticket, volume = self.rng.choice(ours)
                half = round(volume / 2, 2)
                if terminal.admin_close_position(ticket, half if half >= 0.01 else None):
                    self.report.manual_closes += 1
        finally:
            conn.close()

    def _start_on_a_damaged_store(self) -> None:
        """A restart finds its store damaged: refused in one line, exit 1; the file restored, it runs again."""
        if not self.db.is_file():
            return
        con = sqlite3.connect(self.db)  # one self-contained file: the write-ahead log folded in, then closed
        try:
            busy = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            con.close()
        if busy:
            raise RuntimeError(f"{self.db}: the checkpoint before damaging it could not complete")
        good = self.db.read_bytes()
        damaged = bytearray(good)
        damaged[0:100] = bytes(self.rng.randrange(256) for _ in range(100))
        self.db.write_bytes(bytes(damaged))
        try:
            res = subprocess.run(
                _tradeguard("run", "--settings", str(self.settings)),
                capture_output=True,
                text=True,
                timeout=60,
                env=self.env,
            )
            lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
            ok = res.returncode == 1 and len(lines) == 1 and "Traceback" not in res.stderr
            self.report.corrupt_refusals.append(lines[0] if ok else f"NOT REFUSED CLEANLY: {res.stderr[-500:]}")
        finally:
            for side in (self.db.with_name(self.db.name + "-wal"), self.db.with_name(self.db.name + "-shm")):
                side.unlink(missing_ok=True)
            self.db.write_bytes(good)

    def _fill_the_disk(self, proc: subprocess.Popen[bytes]) -> None:
        """Mid-run the data disk fills up; the broker goes on (stops, targets); then space comes back."""
        assert self.plan.disk is not None
        time.sleep(2.0)
        ballast = self.plan.disk / "ballast"
        _fill(ballast)
        deals_before = self._broker_deal_count()
        time.sleep(4.0)  # the market runs on; the trader must refuse, latch and alert
        self.report.disk_full["deals_while_full"] = self._broker_deal_count() - deals_before
        self.report.disk_full["trader_alive"] = proc.poll() is None
        ballast.unlink(missing_ok=True)
        deadline = time.monotonic() + 15
        latch = None
        while time.monotonic() < deadline:
            latch = self._latch()
            if latch is not None and latch[1] == "store_failure":
                break
            time.sleep(0.2)
        self.report.disk_full["latch"] = latch
        reset = subprocess.run(
            _tradeguard("reset", "--operator", "chaos", "--reason", "disk freed", "--settings", str(self.settings)),
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
        )
        self.report.disk_full["reset"] = reset.returncode

    def _latch(self) -> tuple[str, str] | None:
        try:
            with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)) as con:
                row = con.execute("SELECT state, trigger FROM kill_switch WHERE id = 1").fetchone()
        except sqlite3.Error:
            return None
        return (str(row[0]), str(row[1])) if row else None

    def _broker_deal_count(self) -> int:
        conn, terminal = self._admin()
        try:
            return int(terminal.history_deals_total(0, 2**40))
        finally:
            conn.close()

    def _settle(self) -> None:
        """Hold the market still; one clean run aligns with the broker and stops on SIGTERM."""
        if self.report.integrity:
            return  # the storm found the journal damaged: no run on it
        conn, terminal = self._admin()
        try:
            terminal.admin_pause(True)
        finally:
            conn.close()
        mark = self.log.stat().st_size if self.log.exists() else 0
        proc = self._trader()
        deadline = time.monotonic() + 60
        while "runtime started" not in self._log_since(mark):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the last run did not start: {self._log_since(mark)[-2000:]}")
            time.sleep(0.1)
        time.sleep(1.5)  # its first jobs: account capture, fills poll, reconciliation
        proc.send_signal(signal.SIGTERM)
        if proc.wait(timeout=60) != 0:
            raise RuntimeError("the last run did not stop cleanly")

    def _log_since(self, offset: int) -> str:
        if not self.log.exists():
            return ""
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    # ------------------------------------------------------------------ the comparison ---------

    def _compare(self) -> None:
        from mt5linux import MetaTrader5
        from rpyc.utils.classic import obtain

        mt5 = MetaTrader5(host="127.0.0.1", port=self.port)
        if not mt5.initialize():
            raise RuntimeError(f"cannot read the broker: {mt5.last_error()}")
        deals = list(obtain(mt5.history_deals_get(0, 2**40)))
        positions = list(obtain(mt5.positions_get()))
        our_positions = {int(d.position_id) for d in deals if int(d.magic) == MAGIC}
        ours = [d for d in deals if int(d.type) in (0, 1) and int(d.position_id) in our_positions]
        r = self.report
        r.deals = len(ours)
        if r.integrity or not self._intact("after the last run"):
            return  # a damaged journal: nothing else can be compared
        r.integrity = "ok"
        with closing(sqlite3.connect(self.db)) as con:
            journal = [int(t) for (t,) in con.execute("SELECT deal_ticket FROM fills")]
            orders = con.execute("SELECT client_id, state, signal_id FROM orders").fetchall()
            decided = {str(c) for (c,) in con.execute("SELECT client_id FROM decisions WHERE client_id != ''")}
            net = dict(
                con.execute(
                    "SELECT position_id, SUM(CASE side WHEN 'buy' THEN volume ELSE -volume END) "
                    "FROM fills GROUP BY position_id"
                ).fetchall()
            )
            snapshot = con.execute("SELECT record FROM account_snapshots ORDER BY id DESC LIMIT 1").fetchone()
            fills = con.execute("SELECT profit, commission, swap, time FROM fills").fetchall()
            r.reconciliation_halts = con.execute(
                "SELECT COUNT(*) FROM kill_switch_events WHERE trigger LIKE 'reconciliation%'"
            ).fetchone()[0]
        broker_tickets = {int(d.ticket) for d in ours}
        r.missing = sorted(broker_tickets - set(journal))
        r.extra = sorted(set(journal) - broker_tickets)
        r.duplicates = len(journal) - len(set(journal))
        r.orders = len(orders)
        sent: dict[str, set[int]] = defaultdict(set)
        for d in ours:
            if int(d.magic) == MAGIC and str(d.comment).startswith("tg-"):
                sent[str(d.comment)].add(int(d.order))
        r.sent_twice = sorted(c for c, tickets in sent.items() if len(tickets) > 1)
        terminal_states = {"filled", "rejected", "cancelled", "expired"}
        r.in_flight = sorted(str(c) for c, state, _ in orders if state not in terminal_states)
        r.decisions_missing = sorted(str(c) for c, _, signal_id in orders if signal_id and str(c) not in decided)
        shown: dict[int, float] = defaultdict(float)
        for p in positions:
            if int(p.identifier) in our_positions:
                shown[int(p.identifier)] += float(p.volume) if int(p.type) == 0 else -float(p.volume)
        for pid in set(shown) | {int(k) for k, v in net.items() if abs(v) > 1e-9}:
            held, at_broker = round(float(net.get(pid, 0.0)), 8), round(shown.get(pid, 0.0), 8)
            if abs(held - at_broker) > 1e-9:
                r.positions_apart[pid] = (held, at_broker)
        if snapshot is not None:
            snap = json.loads(snapshot[0])
            at = datetime.fromisoformat(snap["time"].replace("Z", "+00:00"))
            zone = ServerZone(self.plan.server_timezone)  # deal times are the server's clock
            midnight = zone.midnight(at)

            def day(d: Any) -> bool:
                return midnight <= zone.to_utc(int(d.time_msc) / 1000) <= at

            broker_day = sum(
                float(d.profit) + float(d.commission) + float(d.swap) for d in deals if int(d.type) in (0, 1) and day(d)
            )
            r.pnl_day = (float(snap["realized_pnl_day"]), round(broker_day, 2))
            ours_day = sum(float(d.profit) + float(d.commission) + float(d.swap) for d in ours if day(d))
            journal_day = sum(p + c + s for p, c, s, t in fills if midnight <= datetime.fromisoformat(t) <= at)
            r.pnl_day_ours = (round(journal_day, 2), round(ours_day, 2))
        mt5.shutdown()

    def _read_alignment_times(self) -> None:
        if not self.log.exists():
            return
        for line in self.log.read_text(errors="replace").splitlines():
            if '"aligned with the broker"' in line:
                try:
                    self.report.alignment_seconds.append(float(json.loads(line)["seconds"]))
                except (ValueError, KeyError):
                    continue
