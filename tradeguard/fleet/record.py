"""The fleet's own record, ``fleet_events``: every kill, reset, refused reset and change of limits, as a hash chain.

An event's hash is SHA-256 over the previous event's hash and the event's canonical JSON (its id, its time in
UTC, its fleet and kind, and every field that is not empty): an edit, a deletion in the middle or a reordering
breaks the chain at that event. The fleet's row must also agree with its last kill or reset, so flipping
``fleets.kill_state`` by hand shows too. Writers hold the fleet's row lock, so the chain is linear.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tradeguard.store.audit import GENESIS, canonical, chain_hash

_HEAD = ("id", "at", "fleet", "kind")


def _record(event_id: int, at: datetime, fleet: str, kind: str, fields: dict[str, Any]) -> str:
    bound = {k: v for k, v in fields.items() if k not in _HEAD and k != "hash" and v != ""}
    head = {"id": event_id, "at": at.astimezone(UTC).isoformat(), "fleet": fleet, "kind": kind}
    return canonical({**head, **bound})


def append(db: psycopg.Connection[Any], fleet: str, kind: str, **fields: str) -> int:
    """Chain one event (the caller holds the fleet's row lock); its id."""
    event_id, at = db.execute(
        "SELECT nextval(pg_get_serial_sequence('fleet_events', 'id')), clock_timestamp()"
    ).fetchone()  # type: ignore[misc]
    last = db.execute("SELECT hash FROM fleet_events WHERE fleet = %s ORDER BY id DESC LIMIT 1", (fleet,)).fetchone()
    digest = chain_hash(last[0] if last else GENESIS, _record(event_id, at, fleet, kind, fields))
    columns = "".join(f", {name}" for name in fields)
    marks = ", %s" * len(fields)
    db.execute(
        f"INSERT INTO fleet_events (id, at, fleet, kind, hash{columns}) VALUES (%s, %s, %s, %s, %s{marks})",
        (event_id, at, fleet, kind, digest, *fields.values()),
    )
    return int(event_id)


def verify(db: psycopg.Connection[Any], fleet: str) -> tuple[int, str]:
    """``(events checked, what is wrong or '')``: every hash recomputed, and the fleet's row against its record."""
    with db.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM fleet_events WHERE fleet = %s ORDER BY id", (fleet,)).fetchall()
        state = cur.execute("SELECT kill_state, kill_event FROM fleets WHERE name = %s", (fleet,)).fetchone()
    previous = GENESIS
    for row in rows:
        if chain_hash(previous, _record(row["id"], row["at"], row["fleet"], row["kind"], row)) != row["hash"]:
            return len(rows), f"event {row['id']} does not hash to its record"
        previous = row["hash"]
    moves = [r for r in rows if r["kind"] in ("kill", "reset")]
    if state is not None:
        expected = (moves[-1]["to_state"], moves[-1]["id"]) if moves else ("ACTIVE", 0)
        if (state["kill_state"], state["kill_event"]) != expected:
            return len(rows), (
                f"the fleet's row says {state['kill_state']} (event {state['kill_event']}), its record "
                f"{expected[0]} (event {expected[1]})"
            )
    return len(rows), ""
