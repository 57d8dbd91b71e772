"""WAL checkpoints off the writer's thread.

SQLite's automatic checkpoint runs inside whichever COMMIT pushes the write-ahead log past its
threshold, and it syncs the database file there: an order's journal commit that happens to be
that one waits tens of milliseconds (20-33 ms measured here) for pages that have nothing to do
with it. SQLite's advice for a latency-sensitive writer is to checkpoint from another thread, on
another connection: a passive checkpoint never blocks the writer, which keeps appending to the log
while the checkpoint copies what was already committed.

The log restarts from its beginning only at a commit that finds every frame copied back, so under
commits that never pause (a replay) it keeps growing until the writer's own automatic checkpoint,
kept at ``FALLBACK_PAGES``, catches the last frames up and the log restarts; that commit still
waits for a sync, four times less often than at SQLite's default threshold. Live, with seconds
between commits, the background checkpoint catches up and the writer never checkpoints. The
fallback also bounds the log should this thread ever fail.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

#: The writer's own automatic checkpoint threshold, in pages (4 KiB each; SQLite's default is 1,000):
#: reached only under commits that never pause, or should the background checkpoints fail.
FALLBACK_PAGES = 4_000
#: At most one background checkpoint per this many seconds, however often commits ask for one.
MIN_INTERVAL_S = 0.1
#: Commits between nudges that wake the thread: a store that commits little (a CLI command, a
#: fresh file's migrations) never starts it, and closing such a store checkpoints it anyway.
COMMITS_PER_WAKE = 32


class Checkpointer:
    """A daemon thread that checkpoints ``path``'s WAL (PASSIVE) every ``COMMITS_PER_WAKE`` commits,
    at most once per ``interval`` seconds; started by the first such wake. :meth:`nudge` and :meth:`stop`
    are called under the store's writer lock, so they never race each other."""

    def __init__(self, path: str, interval: float = MIN_INTERVAL_S) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0  # completed, for tests and benchmarks
        self._commits = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        """Something was committed (called after every commit; cheap until the ``COMMITS_PER_WAKE``-th)."""
        self._commits += 1
        if self._commits < COMMITS_PER_WAKE:
            return
        self._commits = 0
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="tradeguard-checkpoint", daemon=True)
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Finish the checkpoint under way, if any, and end the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            log.error(
                "background checkpoints unavailable; the writer checkpoints itself",
                extra={"store": self.path, "error": str(exc)},
            )
            return
        try:
            while True:
                self._wake.wait()
                if self._stop.is_set():
                    return
                self._wake.clear()
                self._checkpoint(db)
                if self._stop.wait(self.interval):
                    return
        finally:
            db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.checkpoints += 1
        except sqlite3.Error as exc:  # the writer's fallback threshold still bounds the log
            log.warning("background checkpoint failed", extra={"store": self.path, "error": str(exc)})
