"""One trading process per journal: a second one is refused before it trades; a dead one leaves no lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tradeguard.errors import StartupError
from tradeguard.store.journal_lock import KEY, NAMESPACE, describe_owner, owner_state
from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime


def owner_line(store: Store) -> str:
    """What ``status`` prints of the last trading process."""
    return describe_owner(*owner_state(store))


def test_a_second_runtime_on_the_journal_is_refused_until_the_first_stops(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    first = make_runtime(store=Store(db))
    assert owner_line(first.store).startswith(f"running (pid {os.getpid()} on ")
    second = make_runtime(store=Store(db), start=False)
    with pytest.raises(StartupError, match=rf"j.db is in use by another tradeguard process \(pid {os.getpid()} on "):
        second.start()
    assert not second.started
    first.stop()
    assert owner_line(first.store).startswith("stopped ")
    second.start()
    assert second.started and owner_line(second.store).startswith("running ")
    make_runtime(store=Store(tmp_path / "other.db")).stop()  # another journal is another matter


def test_a_killed_process_leaves_no_lock_and_status_says_it_is_gone(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    script = (
        "import os, signal, sys; from tradeguard.store.sqlite import Store; "
        "from tradeguard.testing import make_runtime; make_runtime(store=Store(sys.argv[1])); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", script, str(db)], timeout=60)
    line = owner_line(Store(db))
    assert line is not None and line.startswith("GONE without stopping")
    rt = make_runtime(store=Store(db))  # the system dropped the dead process's lock
    assert rt.started
    rt.stop()


def test_a_journal_written_through_another_broker_module_is_refused(tmp_path: Path) -> None:
    """A replay's journal (emulator) is not a live account's: a run against a terminal does not adopt it."""
    db = tmp_path / "j.db"
    make_runtime(store=Store(db)).stop()  # the emulator wrote it
    terminal = make_runtime(store=Store(db), settings={"broker": {"module": "mt5linux"}}, start=False)
    with pytest.raises(StartupError, match=r"written through broker module 'emulator'; this process drives 'mt5linux'"):
        terminal.start()
    assert owner_line(Store(db)).startswith("stopped ")  # the refusal took nothing over
    make_runtime(store=Store(db)).stop()  # the emulator again: the same journal goes on


def test_a_journal_belongs_to_one_account(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    first = make_runtime(store=Store(db), start=False)
    assert first.broker.account().login == 5_000_001  # connected before start, as replay and run are
    first.start()
    first.stop()
    other = make_runtime(store=Store(db), settings={"broker": {"emulator": {"login": 7_000_007}}}, start=False)
    assert other.broker.account().login == 7_000_007
    recorded = Store(db).kv_get(NAMESPACE, KEY)
    with pytest.raises(
        StartupError,
        match=r"belongs to account 5000001 on Tradeguard-Emulator; the terminal is "
        r"logged in to 7000007 on Tradeguard-Emulator",
    ):
        other.start()
    assert not other.started and Store(db).kv_get(NAMESPACE, KEY) == recorded  # the refused one left no trace
    namesake = make_runtime(
        store=Store(db), settings={"broker": {"emulator": {"server": "OtherBroker-Live"}}}, start=False
    )
    assert namesake.broker.account().login == 5_000_001  # the same login number at another broker
    with pytest.raises(StartupError, match=r"logged in to 5000001 on OtherBroker-Live"):
        namesake.start()
    again = make_runtime(store=Store(db), start=False)
    again.broker.account()
    again.start()  # the journal's own account goes on, and the refusal left the lock free
    again.stop()


def test_a_journal_bound_before_servers_were_recorded_takes_its_accounts_server(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    Store(db).kv_put(NAMESPACE, "account", {"login": 5_000_001})  # as stop 16's journals were bound
    rt = make_runtime(store=Store(db), start=False)
    rt.broker.account()
    rt.start()
    rt.stop()
    assert Store(db).kv_get(NAMESPACE, "account") == {"login": 5_000_001, "server": "Tradeguard-Emulator"}


def test_a_refused_command_discards_only_an_empty_journal_it_created_and_no_one_holds(tmp_path: Path) -> None:
    """A second `run` refused beside a running one must never take the running one's journal with it (its
    writes are behind, so it may look empty for a while)."""
    from tradeguard.store.journal_lock import JournalLock, discard_if_empty

    path = tmp_path / "journal.db"
    running = Store(path)  # the first process: it made the file and holds it
    lock = JournalLock(running)
    lock.acquire()
    assert not discard_if_empty(Store(path))  # a second command's view of it: not its file
    assert path.exists() and Path(f"{path}.lock").exists()
    lock.release()
    running.close()
    mine = Store(tmp_path / "mine.db")  # made by this command, nothing written, nobody holds it: gone
    assert discard_if_empty(mine) and not (tmp_path / "mine.db").exists()
