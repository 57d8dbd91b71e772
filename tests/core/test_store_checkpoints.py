"""The store's WAL checkpoints run on their own thread, so no journal commit waits for one."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

from tradeguard.store.checkpoint import COMMITS_PER_WAKE, FALLBACK_PAGES
from tradeguard.store.sqlite import Store


def test_commits_reach_the_database_file_through_the_background_checkpoint(tmp_path: Path) -> None:
    store = Store(tmp_path / "tg.db", synchronous="NORMAL")
    try:
        assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == FALLBACK_PAGES
        checkpointer = store._checkpointer
        assert checkpointer is not None
        written = []
        while checkpointer._thread is None and len(written) < COMMITS_PER_WAKE:  # until a commit wakes it
            written.append(f"k{len(written)}")
            store.kv_put("t", written[-1], 1)  # far below the writer's own threshold: only the thread moves these
        assert checkpointer._thread is not None, f"{len(written)} commits woke no checkpointer"
        deadline = time.monotonic() + 20  # a deadline, not a measurement: the thread runs when it is scheduled
        while not checkpointer.checkpoints and time.monotonic() < deadline:
            time.sleep(0.02)
        assert checkpointer.checkpoints >= 1
        # the database file alone, without its -wal, holds what was committed before the checkpoint
        alone = tmp_path / "alone.db"
        with store._lock:
            shutil.copyfile(tmp_path / "tg.db", alone)
        copy = sqlite3.connect(alone)
        try:
            keys = {row[0] for row in copy.execute("SELECT key FROM kv WHERE namespace = 't'")}
        finally:
            copy.close()
        assert set(written) <= keys
    finally:
        store.close()
    assert not (tmp_path / "tg.db-wal").exists() or (tmp_path / "tg.db-wal").stat().st_size == 0
    assert checkpointer._thread is not None and not checkpointer._thread.is_alive()


def test_a_store_that_commits_little_starts_no_thread(tmp_path: Path) -> None:
    store = Store(tmp_path / "tg.db")
    checkpointer = store._checkpointer
    assert checkpointer is not None
    before = threading.active_count()
    store.kv_put("t", "k", 1)  # a fresh file's migrations and one write: a CLI command's share
    assert checkpointer._thread is None and threading.active_count() == before
    store.close()
