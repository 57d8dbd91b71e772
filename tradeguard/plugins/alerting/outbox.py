"""The persistent alert outbox: one row per (alert, destination) until it is sent or dead-lettered.

Rows survive a restart: a new process delivers what the last one could not. Retry times are wall
clock (delivery is real I/O even in a replay).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tradeguard import SQLiteStore, iso


class Outbox:
    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def add(self, destinations: list[str], record: dict[str, Any], now: datetime) -> None:
        body = json.dumps(record, default=str)
        with self.store.tx() as db:
            db.executemany(
                "INSERT INTO alert_outbox (created, channel, severity, record, next_attempt) VALUES (?, ?, ?, ?, ?)",
                [(iso(now), d, record["severity"], body, iso(now)) for d in destinations],
            )

    def due(self, now: datetime, limit: int = 100) -> list[tuple[int, str, dict[str, Any], int]]:
        """``(id, destination, record, attempts)`` of pending rows whose time has come, oldest first."""
        rows = self.store.query(
            "SELECT id, channel, record, attempts FROM alert_outbox WHERE status = 'pending' "
            "AND next_attempt <= ? ORDER BY id LIMIT ?",
            (iso(now), limit),
        )
        return [(r[0], r[1], json.loads(r[2]), r[3]) for r in rows]

    def sent(self, row_id: int) -> None:
        """Delivered: its delivery time kept, the error of an earlier attempt cleared."""
        with self.store.tx() as db:
            db.execute(
                "UPDATE alert_outbox SET status = 'sent', attempts = attempts + 1, last_error = '', "
                "delivered = ? WHERE id = ?",
                (iso(wall_now()), row_id),
            )

    def failed(self, row_id: int, error: str, retry_at: datetime | None) -> None:
        """Count the attempt; ``retry_at`` None dead-letters the row (kept, with its last error)."""
        with self.store.tx() as db:
            db.execute(
                "UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?, status = ?, "
                "next_attempt = COALESCE(?, next_attempt) WHERE id = ?",
                (error, "pending" if retry_at else "dead", iso(retry_at), row_id),
            )

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.store.query("SELECT status, COUNT(*) FROM alert_outbox GROUP BY status")}


def wall_now() -> datetime:
    return datetime.now(UTC)
