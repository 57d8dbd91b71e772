"""One trading process per journal.

Two processes started on one journal would both send orders for the same account, hand out the
same client ids and interleave the audit chain. A started runtime holds an operating-system lock
on ``<journal>.lock`` until it stops; the system drops the lock when the process dies, so a crash
leaves nothing stale to clean up. Who holds it is recorded in the store (``runtime``/``owner``)
for the refusal message and for ``tradeguard status``.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from tradeguard.errors import StartupError, TradeguardError

if TYPE_CHECKING:
    from tradeguard.store.sqlite import Store

NAMESPACE, KEY = "runtime", "owner"


class JournalLock:
    def __init__(self, store: Any, env: str = "", broker_module: str = "") -> None:
        self._store = store
        self._lock = FileLock(f"{store.path}.lock", timeout=0)
        self._what = {"env": env, "broker_module": broker_module}  # replay --fresh replaces emulator journals only

    def acquire(self, account: tuple[int, str] | None = None) -> None:
        """Take the lock or refuse to start, naming the process that holds it; then refuse a journal another
        broker module or account wrote (its orders are not this account's). ``account``: the connected
        terminal's (login, trade server), None when no terminal is connected yet."""
        try:
            self._lock.acquire()
        except Timeout:
            raise self._in_use() from None
        try:
            self._same_account(account)
        except StartupError:
            self._lock.release()  # refused before anything was recorded: the last owner's record stands
            raise
        self._store.kv_put(
            NAMESPACE,
            KEY,
            {"pid": os.getpid(), "host": socket.gethostname(), "started": _now(), "stopped": None, **self._what},
        )

    def refuse_if_held(self) -> None:
        """Raise, naming the holder, while a process trades from this journal; take nothing and record nothing."""
        try:
            self._lock.acquire()
        except Timeout:
            raise self._in_use() from None
        self._lock.release()

    def _in_use(self) -> StartupError:
        owner = self._store.kv_get(NAMESPACE, KEY) or {}
        who = f"pid {owner['pid']} on {owner['host']}, since {owner['started'][:19]}" if owner else "a process"
        return StartupError(
            f"journal {self._store.path} is in use by another tradeguard process ({who}); "
            "one process trades from one journal"
        )

    def _same_account(self, account: tuple[int, str] | None) -> None:
        before, now = last_broker_module(self._store), self._what["broker_module"]
        if before and now and before != now:  # another terminal is another account: its journal is not this one
            raise StartupError(
                f"journal {self._store.path} was written through broker module {before!r}; this "
                f"process drives {now!r}. A journal belongs to one account: give this one its own "
                "store.path (or remove a replay's journal)"
            )
        if account is None:
            return
        login, server = account
        bound = self._store.kv_get(NAMESPACE, "account")
        if bound is None or (bound["login"] == login and "server" not in bound):  # bound before servers were
            self._store.kv_put(NAMESPACE, "account", {"login": login, "server": server})
        elif (bound["login"], bound.get("server")) != (login, server):  # a login may exist at two brokers
            raise StartupError(
                f"journal {self._store.path} belongs to account {bound['login']} on "
                f"{bound.get('server') or 'an unnamed server'}; the terminal is logged in to {login} on "
                f"{server or 'an unnamed server'}. Give this account its own store.path"
            )

    def drop(self) -> None:
        """Let go without recording a stop, as the system does when the process dies (tests crash so)."""
        self._lock.release(force=True)

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        owner = self._store.kv_get(NAMESPACE, KEY) or {}
        self._store.kv_put(NAMESPACE, KEY, {**owner, "stopped": _now()})
        self._lock.release()


def journal_contents(store: Any) -> str:
    """What a journal already holds (empty string when nothing): replays start from an empty one."""
    tables = (
        ("orders", "orders"),
        ("decisions", "decisions"),
        ("fills", "fills"),
        ("account_snapshots", "account snapshots"),
        ("kill_switch", "kill-switch latch"),
    )
    counts = [(store.query(f"SELECT COUNT(*) FROM {table}")[0][0], label) for table, label in tables]
    return ", ".join(f"{n:,} {label}" for n, label in counts if n)


def discard_if_empty(store: Store) -> bool:
    """Close ``store`` and, when this command created the file and nothing was written to it (refused before
    anything ran: bad data, no terminal), remove it: an empty journal left behind reads, in ``status``, as an
    account that ran and is ACTIVE. Never a file that was there before, never one another process holds (its
    writes may still be behind), never the lock file. Whether it went."""
    store.flush()  # what is written behind counts
    empty = store.created and not journal_contents(store) and not store.query("SELECT COUNT(*) FROM audit")[0][0]
    if empty:
        try:
            JournalLock(store).refuse_if_held()
        except TradeguardError:
            empty = False  # another process trades from it: its journal, whatever it holds yet
    store.close()
    if empty:
        for suffix in ("", "-wal", "-shm", ".audit-anchor"):
            Path(f"{store.path}{suffix}").unlink(missing_ok=True)
    return empty


def last_broker_module(store: Any) -> str:
    """The broker module the journal's last trading process drove ("" when unknown)."""
    owner = store.kv_get(NAMESPACE, KEY) or {}
    return str(owner.get("broker_module", ""))


def owner_state(store: Any) -> tuple[str, dict[str, Any]] | None:
    """The last trading process and what became of it: ``running``, ``stopped`` (cleanly) or ``gone``
    (its pid is no longer alive on this host: it crashed or was killed). None when nothing has traded."""
    owner = store.kv_get(NAMESPACE, KEY)
    if not owner:
        return None
    if owner.get("stopped"):
        return "stopped", owner
    if owner["host"] == socket.gethostname() and os.name == "posix" and not _alive(owner["pid"]):
        return "gone", owner
    return "running", owner


def describe_owner(state: str, owner: dict[str, Any]) -> str:
    """The last trading process, as ``status`` prints it: running, stopped cleanly, or gone without stopping
    (one :func:`owner_state` answer)."""
    who = f"pid {owner['pid']} on {owner['host']}, started {owner['started'][:19]}"
    if state == "stopped":
        return f"stopped {owner['stopped'][:19]} ({who})"
    if state == "gone":
        return f"GONE without stopping ({who}): it crashed or was killed; the next start aligns with the broker"
    return f"running ({who})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: asks whether the process exists, sends nothing (POSIX only)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat()


def replace_simulation_journal(store: Store, fresh: bool, why: str) -> bool:
    """Make way for a command that needs an empty journal: True when ``store`` held one and its files are gone
    (the caller builds anew), False when it was empty. Only an earlier simulation's journal goes (the
    emulator's: never an account's), only with ``fresh``, and never one a running process holds; anything
    else raises, naming the file and why (``why``: why the command needs an empty journal)."""
    held = journal_contents(store)
    if not held:
        return False
    lock = JournalLock(store)
    lock.refuse_if_held()  # a running process's journal: say so, before anything about its contents
    if not fresh:
        raise TradeguardError(
            f"{store.path} already holds a journal ({held}); {why}: --fresh replaces an earlier replay's or "
            "simulation's, or give this one its own file (TRADEGUARD_STORE__PATH=replay.db)"
        )
    module = last_broker_module(store)
    if module != "emulator":
        raise TradeguardError(
            f"{store.path} was not written by a replay (broker module {module or 'unknown'}); "
            "--fresh replaces emulator journals only"
        )
    lock.acquire()  # refused while a process trades from it
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store.path}{suffix}").unlink(missing_ok=True)
    lock.drop()
    return True
