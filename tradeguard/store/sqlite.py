"""The embedded store: one SQLite file in WAL mode, versioned migrations, one writer lock.

What must survive a crash is committed before the broker call it protects (the journal entry of
an order is durable before ``order_send``). ``synchronous`` is a setting: ``FULL`` survives a
power cut, ``NORMAL`` a process kill (both in WAL mode). Other processes (``tradeguard status``,
``kill``) open the same file and read while the runtime writes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from tradeguard.errors import TradeguardError
from tradeguard.models import AccountSnapshot, Bar, Decision, KillState, OrderIntent, Targets
from tradeguard.store.checkpoint import FALLBACK_PAGES, Checkpointer

#: Each entry upgrades the schema by one version; never edit a released one, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE orders (
        client_id TEXT PRIMARY KEY,
        signal_id TEXT NOT NULL DEFAULT '',
        strategy TEXT NOT NULL DEFAULT '',
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        order_type TEXT NOT NULL,
        volume REAL NOT NULL,
        price REAL,
        stop_loss REAL,
        take_profit REAL,
        position_ticket INTEGER,
        reduce_only INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        broker_order INTEGER NOT NULL DEFAULT 0,
        filled_volume REAL NOT NULL DEFAULT 0,
        last_retcode INTEGER,
        last_message TEXT NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX orders_state ON orders(state);
    CREATE TABLE order_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client_id TEXT NOT NULL REFERENCES orders(client_id),
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        time TEXT NOT NULL,
        retcode INTEGER,
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE fills (
        deal_ticket INTEGER PRIMARY KEY,
        order_ticket INTEGER NOT NULL,
        position_id INTEGER NOT NULL,
        client_id TEXT NOT NULL DEFAULT '',
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        entry TEXT NOT NULL,
        volume REAL NOT NULL,
        price REAL NOT NULL,
        commission REAL NOT NULL,
        swap REAL NOT NULL,
        profit REAL NOT NULL,
        magic INTEGER NOT NULL,
        comment TEXT NOT NULL,
        time TEXT NOT NULL
    );
    CREATE INDEX fills_client ON fills(client_id);
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        signal_id TEXT NOT NULL,
        approved INTEGER NOT NULL,
        stage TEXT NOT NULL,
        reasons TEXT NOT NULL,
        client_id TEXT NOT NULL DEFAULT '',
        decided_at TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE TABLE account_snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        balance REAL NOT NULL,
        equity REAL NOT NULL,
        record TEXT NOT NULL
    );
    CREATE TABLE kill_switch (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        state TEXT NOT NULL,
        trigger TEXT NOT NULL,
        message TEXT NOT NULL,
        since TEXT NOT NULL
    );
    CREATE TABLE kill_switch_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        trigger TEXT NOT NULL,
        message TEXT NOT NULL,
        operator TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        kind TEXT NOT NULL,
        record TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE alert_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created TEXT NOT NULL,
        channel TEXT NOT NULL,
        severity TEXT NOT NULL,
        record TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE kv (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires TEXT,
        PRIMARY KEY (namespace, key)
    );
    """,
    """
    CREATE TABLE bars (
        symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        time INTEGER NOT NULL,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        PRIMARY KEY (symbol, timeframe, time)
    ) WITHOUT ROWID;
    """,
    # bars are written a block at a time (see Store.record_bar); the bars table above keeps older stores' rows
    """
    CREATE TABLE bar_blocks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        first_time INTEGER NOT NULL,
        last_time INTEGER NOT NULL,
        count INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX bar_blocks_series ON bar_blocks(symbol, timeframe);
    """,
    # the decisions of orders, found by client id (restore_decisions); rejected decisions have none
    """
    CREATE INDEX decisions_client ON decisions(client_id) WHERE client_id != '';
    """,
    # how each kill-switch change came (cli, automatic, ...) and was authenticated; when an alert was delivered
    """
    ALTER TABLE kill_switch_events ADD COLUMN via TEXT NOT NULL DEFAULT '';
    ALTER TABLE kill_switch_events ADD COLUMN auth TEXT NOT NULL DEFAULT '';
    ALTER TABLE alert_outbox ADD COLUMN delivered TEXT;
    """,
    # operator orders handed to the running trading process (kernel/operator_desk.py)
    """
    CREATE TABLE operator_requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        action TEXT NOT NULL,
        args TEXT NOT NULL,
        operator TEXT NOT NULL,
        via TEXT NOT NULL,
        auth TEXT NOT NULL,
        reason TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        result TEXT NOT NULL DEFAULT ''
    );
    """,
    # what each deal did against the plan (execution/outcomes.py): risk sized on, slippage, realised R
    """
    ALTER TABLE fills ADD COLUMN planned_risk REAL;
    ALTER TABLE fills ADD COLUMN outcome TEXT;
    CREATE INDEX fills_position ON fills(position_id);
    """,
    # one name per kill-switch trigger ([default.triggers]): the kill switch's own daily loss and reconciliation
    """
    UPDATE kill_switch SET trigger = 'daily_loss_limit' WHERE trigger = 'daily_drawdown';
    UPDATE kill_switch SET trigger = 'reconciliation_inconsistent' WHERE trigger = 'reconciliation';
    """,
)


#: Decisions written per batch (see :meth:`Store.record_decision`).
DECISION_BATCH = 256
#: Bars and account snapshots written per batch (see :meth:`Store.record_bar`, :meth:`record_snapshot`).
ROW_BATCH = 1024


class StoreError(TradeguardError):
    """The store file is unusable (corrupt, from a newer tradeguard, not writable)."""


class StoreUnwritable(StoreError):
    """The store cannot commit now (disk full, I/O error, read-only file): nothing of the transaction was written."""


#: SQLite's primary result codes for a file that cannot take a write now, and for a damaged one
_UNWRITABLE = {8: "SQLITE_READONLY", 10: "SQLITE_IOERR", 13: "SQLITE_FULL", 14: "SQLITE_CANTOPEN"}
_DAMAGED = {11: "SQLITE_CORRUPT", 26: "SQLITE_NOTADB"}


def classify(path: str, exc: sqlite3.Error) -> StoreError | None:
    """The store's reading of an SQLite error: unwritable, damaged, or None (an ordinary error, the caller's)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    if code & 0xFF in _DAMAGED:
        return StoreError(f"store {path} is damaged ({exc}): move it aside or restore it from a backup")
    if code & 0xFF in _UNWRITABLE:
        return StoreUnwritable(f"store {path} cannot be written ({exc})")
    return None


class StoredBar(NamedTuple):
    time: int  # the bar's open time, epoch seconds (UTC)
    open: float
    high: float
    low: float
    close: float


#: a bar block's data: rows of (time, open, high, low, close) as little-endian float64
BLOCK_DTYPE = np.dtype("<f8")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat()


#: an account snapshot's fields, in the model's order: what its stored record holds
SNAPSHOT_FIELDS = tuple(AccountSnapshot.model_fields)


def snapshot_row(snap: AccountSnapshot) -> tuple[str, float, float, str]:
    """``(time, balance, equity, record)`` of a snapshot's row: ``time.isoformat()`` and
    ``model_dump_json()``, byte for byte, by orjson from the snapshot's fields in the model's order (they are
    plain numbers, strings and a UTC time): a third of the cost, on a row per bar of a replay with a position open."""
    record = {name: getattr(snap, name) for name in SNAPSHOT_FIELDS}
    return (
        orjson.dumps(snap.time)[1:-1].decode(),
        snap.balance,
        snap.equity,
        orjson.dumps(record, option=orjson.OPT_UTC_Z).decode(),
    )


def _decision_of(order: sqlite3.Row) -> Decision:
    """The approved decision an order's row implies (a crash lost the decision's own record)."""
    intent = OrderIntent(
        signal_id=order["signal_id"],
        client_id=order["client_id"],
        strategy=order["strategy"],
        symbol=order["symbol"],
        side=order["side"],
        volume=order["volume"],
        order_type=order["order_type"],
        price=order["price"],
        stop_loss=order["stop_loss"],
        take_profit=order["take_profit"],
        created_at=order["created_at"],
    )
    targets = (
        None
        if intent.stop_loss is None
        else Targets(stop_loss=intent.stop_loss, take_profit=intent.take_profit, method="restored from the order")
    )
    return Decision(
        signal_id=intent.signal_id,
        approved=True,
        stage="done",
        targets=targets,
        volume=intent.volume,
        order=intent,
        client_id=intent.client_id,
        decided_at=intent.created_at,
    )


class Store:
    def __init__(self, path: str | Path, *, synchronous: str = "FULL", allow_memory: bool = False) -> None:
        if str(path) == ":memory:" and not allow_memory:
            raise StoreError("store.path = ':memory:': only unit tests may use an in-memory store")
        if synchronous not in ("FULL", "NORMAL"):
            raise StoreError(f"store.synchronous = {synchronous!r}: allowed FULL, NORMAL")
        self.path = str(path)
        #: this Store made the file (a command may then take it back, if nothing was written: discard_if_empty)
        self.created = self.path != ":memory:" and not Path(self.path).exists()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._pending_decisions: list[Decision] = []
        self._pending_bars: dict[tuple[str, str], list[tuple[float, float, float, float, float]]] = {}
        self._pending_bar_count = 0
        self._pending_snapshots: list[AccountSnapshot] = []
        self._checkpointer = Checkpointer(self.path) if self.path != ":memory:" else None
        #: why the last commit failed (disk full, I/O, read-only); None once one succeeds again
        self.failure: str | None = None
        #: called, from whichever thread's write found it, when the store stops taking writes
        self.on_failure: Callable[[StoreUnwritable], None] | None = None
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={synchronous}")
            if self._checkpointer is not None:  # checkpoints run on their own thread (store/checkpoint.py)
                self.db.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # a file that is no database says so
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise (classify(self.path, exc) or StoreError(f"store {self.path}: {exc}")) from exc

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.version
        if current > len(MIGRATIONS):
            raise StoreError(f"store {self.path} has schema {current}; this tradeguard knows up to {len(MIGRATIONS)}")
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self.tx():
                for statement in script.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={number}")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One durable transaction: committed when the block ends, rolled back if it raises.

        A file that cannot take the write raises :class:`StoreUnwritable` (and tells ``on_failure`` the
        first time); a damaged one, :class:`StoreError`; both name the file. Nothing of the block is kept."""
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield self.db
                    self.db.execute("COMMIT")
                except BaseException:
                    if self.db.in_transaction:  # SQLite rolls some failures back by itself
                        self.db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                problem = classify(self.path, exc)
                if problem is None:
                    raise
                if isinstance(problem, StoreUnwritable):
                    self._failed(problem)
                raise problem from exc
            self.failure = None
            if self._checkpointer is not None:
                self._checkpointer.nudge()

    def _failed(self, problem: StoreUnwritable) -> None:
        first, self.failure = self.failure is None, str(problem)
        if first and self.on_failure is not None:
            self.on_failure(problem)

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self.db.execute(sql, tuple(params)).fetchall()
            except sqlite3.DatabaseError as exc:
                problem = classify(self.path, exc)
                if problem is None:
                    raise
                raise problem from exc

    def close(self) -> None:
        with self._lock:
            try:
                self.flush()
            except StoreUnwritable as exc:  # closing anyway: what is pending is lost, and said so
                logging.getLogger("tradeguard.store").error(
                    "store closed with rows unwritten",
                    extra={"error": str(exc), "decisions": len(self._pending_decisions)},
                )
            if self._checkpointer is not None:
                self._checkpointer.stop()
            self.db.close()

    # ------------------------------------------------------------------ decisions ---------------

    def record_decision(self, decision: Decision) -> None:
        """A decision whose order went to the broker is written now, with those pending before it; the
        others are written behind, in batches (no broker call waits on them): when ``DECISION_BATCH`` are
        pending, on :meth:`flush` (the runtime flushes every second and at shutdown) and before any read.
        What a crash loses of them, :meth:`restore_decisions` brings back from the audit chain and the orders.
        """
        self._pending_decisions.append(decision)
        if decision.client_id or len(self._pending_decisions) >= DECISION_BATCH:
            self.flush_behind()

    def record_bar(self, bar: Bar) -> None:
        """The bars the runtime traded on, written behind like decisions (the report draws trades on them).

        They are written a block per series per flush, not a row each: an indexed row per bar was a
        twentieth of a replay's work, for data only ever read whole."""
        series = (bar.symbol, bar.timeframe)
        pending = self._pending_bars.get(series)
        if pending is None:
            pending = self._pending_bars[series] = []
        pending.append((bar.epoch, bar.open, bar.high, bar.low, bar.close))
        self._pending_bar_count += 1
        if self._pending_bar_count >= ROW_BATCH:
            self.flush_behind()

    def record_snapshot(self, snap: AccountSnapshot) -> None:
        """Account snapshots are written behind too: an observation history, rebuilt from deals if lost.
        They are serialised when written, a batch at a time, off the capture's path."""
        self._pending_snapshots.append(snap)
        if len(self._pending_snapshots) >= ROW_BATCH:
            self.flush_behind()

    def last_stored_snapshot(self) -> AccountSnapshot | None:
        """The newest account snapshot in the table (the ones written behind are not there yet): what a restart
        starts from (the peak, the day's anchor) and what an operator's reset judges its trigger on."""
        rows = self.query("SELECT record FROM account_snapshots ORDER BY id DESC LIMIT 1")
        return AccountSnapshot.model_validate_json(rows[0][0]) if rows else None

    def bar_series(self) -> list[tuple[str, str]]:
        """The (symbol, timeframe) series that have recorded bars, sorted."""
        self.flush()
        rows = self.query("SELECT symbol, timeframe FROM bar_blocks UNION SELECT symbol, timeframe FROM bars")
        return sorted((str(r[0]), str(r[1])) for r in rows)

    def bars(self, symbol: str, timeframe: str) -> list[StoredBar]:
        """Every recorded bar of one series, oldest first; a bar recorded again (a restart) reads as written last."""
        self.flush()
        latest: dict[int, StoredBar] = {}
        for r in self.query(
            "SELECT time, open, high, low, close FROM bars WHERE symbol = ? AND timeframe = ?", (symbol, timeframe)
        ):  # rows of stores from before the blocks
            latest[int(r[0])] = StoredBar(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]))
        for block_id, count, data in self.query(
            "SELECT id, count, data FROM bar_blocks WHERE symbol = ? AND timeframe = ? ORDER BY id", (symbol, timeframe)
        ):
            if len(data) != count * len(StoredBar._fields) * BLOCK_DTYPE.itemsize:
                raise StoreError(f"store {self.path}: bar block {block_id} holds {len(data)} bytes, not {count} bars")
            for t, o, h, lo, c in np.frombuffer(data, BLOCK_DTYPE).reshape(count, -1).tolist():
                latest[int(t)] = StoredBar(int(t), o, h, lo, c)
        return [latest[t] for t in sorted(latest)]

    def flush_behind(self) -> None:
        """A flush the caller does not wait on: if the file takes no writes, the rows stay pending (the failure
        has gone to ``on_failure``); the trading thread goes on."""
        with suppress(StoreUnwritable):
            self.flush()

    def flush(self) -> None:
        """Write what is pending; if the file cannot take it, it stays pending for the next flush."""
        with self._lock:
            pending, bars, snaps = self._pending_decisions, self._pending_bars, self._pending_snapshots
            if not pending and not bars and not snaps:
                return
            with self.tx() as db:
                db.executemany(
                    "INSERT INTO bar_blocks (symbol, timeframe, first_time, last_time, count, data) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            symbol,
                            timeframe,
                            int(rows[0][0]),
                            int(rows[-1][0]),
                            len(rows),
                            np.array(rows, BLOCK_DTYPE).tobytes(),
                        )
                        for (symbol, timeframe), rows in bars.items()
                    ],
                )
                db.executemany(
                    "INSERT INTO account_snapshots (time, balance, equity, record) VALUES (?, ?, ?, ?)",
                    [snapshot_row(s) for s in snaps],
                )
                db.executemany(
                    "INSERT INTO decisions (signal_id, approved, stage, reasons, client_id, decided_at, record) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            d.signal_id,
                            int(d.approved),
                            d.stage,
                            json.dumps([r.code for r in d.reasons]),
                            d.client_id,
                            iso(d.decided_at),
                            d.model_dump_json(),
                        )
                        for d in pending
                    ],
                )
            self._pending_decisions, self._pending_snapshots = [], []
            self._pending_bars, self._pending_bar_count = {}, 0

    def restore_decisions(self) -> tuple[int, int]:
        """After a crash: write the decisions the audit chain holds that the decisions table lost (its records
        are flushed as often), then a decision for every order of a signal that still has none, built from the
        order's row (its scores are lost with the process). Returns (from the audit, from orders)."""
        self.flush()
        newest = self.query("SELECT MAX(decided_at) FROM decisions")[0][0] or ""
        have = {
            (r[0], r[1])
            for r in self.query("SELECT signal_id, decided_at FROM decisions WHERE decided_at >= ?", (newest,))
        }
        restored: list[Decision] = []
        with self._lock:  # the chain's tail, newest first, down to the newest decision written: no full scan
            for kind, stamp, text in self.db.execute("SELECT kind, time, record FROM audit ORDER BY seq DESC"):
                if stamp < newest:
                    break
                if kind != "decision":
                    continue
                record = orjson.loads(text)
                record = record.get("data", record)  # the audit's legacy form kept it beside seq, kind and time
                decision = Decision.model_validate({**record["decision"], "order": record["order"]})
                if (decision.signal_id, iso(decision.decided_at)) not in have:
                    restored.append(decision)
        restored.reverse()
        self._pending_decisions.extend(restored)
        self.flush()
        orders = self.query(
            "SELECT * FROM orders o WHERE o.signal_id != '' AND NOT EXISTS (SELECT 1 FROM decisions "
            "d WHERE d.client_id = o.client_id AND d.client_id != '') AND NOT EXISTS (SELECT 1 "
            "FROM decisions d2 WHERE d2.signal_id = o.signal_id)"
        )
        # (a signal with a decision already was decided: refused after its intent was journaled, say)
        rebuilt = [_decision_of(row) for row in orders]
        self._pending_decisions.extend(rebuilt)
        self.flush()
        return len(restored), len(rebuilt)

    def decisions(self) -> list[Decision]:
        self.flush()
        rows = self.query("SELECT record FROM decisions ORDER BY id")
        return [Decision.model_validate_json(r["record"]) for r in rows]

    # ------------------------------------------------------------------ kill-switch latch -------

    def kill_state(self) -> tuple[str, str, str, str] | None:
        """``(state, trigger, message, since)`` or None when never latched."""
        rows = self.query("SELECT state, trigger, message, since FROM kill_switch WHERE id = 1")
        return tuple(rows[0]) if rows else None

    def set_kill_state(
        self,
        state: str,
        trigger: str,
        message: str,
        operator: str = "",
        when: datetime | None = None,
        *,
        via: str = "",
        auth: str = "",
    ) -> int:
        """Move the latch and record the move (who, ``via`` which surface, ``auth``: how they proved it was
        them); returns the event's id. The event is what the trading process announces and chains."""
        with self.tx() as db:
            return self._move_latch(db, state, trigger, message, operator, iso(when) or _now(), via, auth)

    @staticmethod
    def _move_latch(
        db: sqlite3.Connection, state: str, trigger: str, message: str, operator: str, stamp: str, via: str, auth: str
    ) -> int:
        row = db.execute("SELECT state FROM kill_switch WHERE id = 1").fetchone()
        before = row[0] if row else "ACTIVE"
        db.execute(
            "INSERT INTO kill_switch (id, state, trigger, message, since) VALUES (1, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET state=excluded.state, trigger=excluded.trigger, "
            "message=excluded.message, since=excluded.since",
            (state, trigger, message, stamp),
        )
        cur = db.execute(
            "INSERT INTO kill_switch_events (time, from_state, to_state, trigger, message, operator, "
            "via, auth) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (stamp, before, state, trigger, message, operator, via, auth),
        )
        return int(cur.lastrowid or 0)

    def tighten_kill_state(
        self, state: str, trigger: str, message: str, operator: str, *, via: str, auth: str
    ) -> tuple[str, str, str, str] | None:
        """Latch to ``state`` only if that is tighter than what the store holds, in one transaction (another
        surface may latch between a read and a write). The latch before, when it was already as tight; else None."""
        with self.tx() as db:  # BEGIN IMMEDIATE: no other writer between the read and the write
            row = db.execute("SELECT state, trigger, message, since FROM kill_switch WHERE id = 1").fetchone()
            if row is not None and KillState(row[0]).rank >= KillState(state).rank:
                return (row[0], row[1], row[2], row[3])
            self._move_latch(db, state, trigger, message, operator, _now(), via, auth)
        return None

    def record_kill_event(
        self, trigger: str, message: str, operator: str, *, via: str, auth: str, when: datetime | None = None
    ) -> int:
        """An operator action that leaves the latch where it is (a refused reset): recorded, announced, chained."""
        state = (self.kill_state() or ("ACTIVE",))[0]
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO kill_switch_events (time, from_state, to_state, trigger, message, operator, "
                "via, auth) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (iso(when) or _now(), state, state, trigger, message, operator, via, auth),
            )
            return int(cur.lastrowid or 0)

    def kill_events_after(self, event_id: int) -> list[dict[str, Any]]:
        """The kill-switch events after ``event_id``, oldest first, as plain records."""
        rows = self.query(
            "SELECT id, time, from_state, to_state, trigger, message, operator, via, auth "
            "FROM kill_switch_events WHERE id > ? ORDER BY id",
            (event_id,),
        )
        return [
            {
                "event_id": r[0],
                "time": r[1],
                "from_state": r[2],
                "to_state": r[3],
                "trigger": r[4],
                "message": r[5],
                "operator": r[6],
                "via": r[7],
                "auth": r[8],
            }
            for r in rows
        ]

    # ------------------------------------------------------------------ operator requests -------

    def add_request(self, action: str, args: dict[str, Any], operator: str, via: str, auth: str, reason: str) -> int:
        """Hand an operator's order to the running trading process (it owns the broker); returns its id."""
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO operator_requests (time, action, args, operator, via, auth, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_now(), action, json.dumps(args), operator, via, auth, reason),
            )
            return int(cur.lastrowid or 0)

    def pending_requests(self) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT id, action, args, operator, via, auth, reason FROM operator_requests "
            "WHERE status = 'pending' ORDER BY id"
        )
        return [
            {
                "id": r[0],
                "action": r[1],
                "args": json.loads(r[2]),
                "operator": r[3],
                "via": r[4],
                "auth": r[5],
                "reason": r[6],
            }
            for r in rows
        ]

    def claim_request(self, request_id: int, ttl_seconds: float) -> bool:
        """Take a pending request to carry it out, once: False when another took it, it was withdrawn, or it is
        older than ``ttl_seconds`` (then marked expired: a late order is worse than none)."""
        with self.tx() as db:
            row = db.execute("SELECT time, status FROM operator_requests WHERE id = ?", (request_id,)).fetchone()
            if row is None or row[1] != "pending":
                return False
            age = (datetime.now(UTC) - datetime.fromisoformat(row[0])).total_seconds()
            status = "running" if age <= ttl_seconds else "expired"
            db.execute("UPDATE operator_requests SET status = ? WHERE id = ?", (status, request_id))
        return status == "running"

    def withdraw_request(self, request_id: int) -> bool:
        """Take back a request nobody has started (the command that made it gave up waiting)."""
        with self.tx() as db:
            cur = db.execute(
                "UPDATE operator_requests SET status = 'withdrawn' WHERE id = ? AND status = 'pending'", (request_id,)
            )
            return cur.rowcount == 1

    def finish_request(self, request_id: int, ok: bool, result: str) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE operator_requests SET status = ?, result = ? WHERE id = ?",
                ("done" if ok else "failed", result, request_id),
            )

    def request_outcome(self, request_id: int) -> tuple[str, str]:
        """(status, result) of a request: pending, done or failed."""
        rows = self.query("SELECT status, result FROM operator_requests WHERE id = ?", (request_id,))
        return (str(rows[0][0]), str(rows[0][1])) if rows else ("unknown", "")

    # ------------------------------------------------------------------ key/value ---------------

    def kv_get(self, namespace: str, key: str) -> Any:
        rows = self.query("SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
        return json.loads(rows[0][0]) if rows else None

    def kv_put(self, namespace: str, key: str, value: Any, expires: datetime | None = None) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO kv (namespace, key, value, expires) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(namespace, key) DO UPDATE SET value=excluded.value, expires=excluded.expires",
                (namespace, key, json.dumps(value, default=str), iso(expires)),
            )
