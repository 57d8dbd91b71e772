"""What ``tradeguard status`` reports, read from the store as plain data.

One reading serves both the operator's table and ``status --json``, which a desk's monitoring reads
(a cron check, a dashboard): the two can never disagree. Everything here is a read; it is safe
beside a running process.
"""

from __future__ import annotations

import json
from typing import Any

from tradeguard.store.audit import read_anchor
from tradeguard.store.journal_lock import owner_state


def read_status(store: Any) -> dict[str, Any]:
    """The journal's state: kill switch, trading process, account, orders, fills, reconciliation, open positions,
    health, decisions, alerts outstanding and the analysis tables. Absent facts are None (or empty)."""
    owner = owner_state(store)
    snap = store.query("SELECT record FROM account_snapshots ORDER BY id DESC LIMIT 1")
    fills = store.query("SELECT COUNT(*), COALESCE(SUM(profit + commission + swap), 0) FROM fills")[0]
    decisions = {bool(r[0]): r[1] for r in store.query("SELECT approved, COUNT(*) FROM decisions GROUP BY approved")}
    accuracy = store.kv_get("accuracy_metrics", "tables")
    return {
        "journal": str(store.path),
        "kill_switch": kill_switch_record(store.kill_state()),
        "process": {"state": owner[0], **owner[1]} if owner else None,
        "account": json.loads(snap[0][0]) if snap else None,
        "orders": {r[0]: r[1] for r in store.query("SELECT state, COUNT(*) FROM orders GROUP BY state ORDER BY state")},
        "fills": {"deals": fills[0], "realised": round(fills[1], 2)},
        "reconciliation": store.kv_get("reconciliation", "last"),
        "open_positions": open_positions(store),
        "health": store.kv_get("health", "last"),
        "decisions": {"approved": decisions.get(True, 0), "rejected": decisions.get(False, 0)},
        "alerts_outstanding": store.query("SELECT COUNT(*) FROM alert_outbox WHERE status = 'pending'")[0][0],
        "audit_anchor": read_anchor(store.path),
        "slowest_hooks": (store.kv_get("profiler", "table") or [])[:10],
        "insights": (store.kv_get("insights_engine", "table") or [])[:10],
        "accuracy": accuracy["strategies"] if accuracy else [],
    }


def kill_switch_record(latch: tuple[str, str, str, str] | None) -> dict[str, str | None]:
    """The latch as ``status --json`` and ``replay --json`` show it; never latched reads as ACTIVE."""
    if latch is None:
        return {"state": "ACTIVE", "trigger": None, "message": None, "since": None}
    return dict(zip(("state", "trigger", "message", "since"), latch, strict=True))


def open_positions(store: Any) -> list[dict[str, Any]]:
    """The positions our journaled deals leave open: signed volume per position id (a buy adds, a sell
    takes away), which nets hedging closes, netting reversals and close-by alike."""
    rows = store.query(
        "SELECT position_id, symbol, SUM(CASE side WHEN 'buy' THEN volume ELSE -volume END) AS net, MIN(time) "
        "FROM fills GROUP BY position_id HAVING ABS(net) > 1e-9 ORDER BY MIN(time)"
    )
    return [
        {
            "position_id": r[0],
            "symbol": r[1],
            "side": "buy" if r[2] > 0 else "sell",
            "volume": round(abs(r[2]), 8),
            "opened": r[3],
        }
        for r in rows
    ]
