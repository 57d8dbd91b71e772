"""The in-process store: decisions kept in memory for the life of the process.

It has the interface the durable SQLite store offers for decisions; use it for tests and the
demo. Bounded so a long paper run cannot grow it without limit.
"""

from __future__ import annotations

import json
from collections import deque
from datetime import UTC, datetime
from typing import Any

from tradeguard.models import Bar, Decision


class MemoryStore:
    def __init__(self, max_decisions: int = 100_000) -> None:
        self._decisions: deque[Decision] = deque(maxlen=max_decisions)
        self._kill: tuple[str, str, str, str] | None = None
        self._kv: dict[tuple[str, str], str] = {}
        self._events: list[dict[str, Any]] = []

    def kill_state(self) -> tuple[str, str, str, str] | None:
        return self._kill

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
        before = self._kill[0] if self._kill else "ACTIVE"
        self._kill = (state, trigger, message, (when or datetime.now(UTC)).isoformat())
        return self._event(before, state, trigger, message, operator, via, auth, when)

    def record_kill_event(
        self, trigger: str, message: str, operator: str, *, via: str, auth: str, when: datetime | None = None
    ) -> int:
        state = self._kill[0] if self._kill else "ACTIVE"
        return self._event(state, state, trigger, message, operator, via, auth, when)

    def _event(
        self,
        before: str,
        after: str,
        trigger: str,
        message: str,
        operator: str,
        via: str,
        auth: str,
        when: datetime | None,
    ) -> int:
        self._events.append(
            {
                "event_id": len(self._events) + 1,
                "time": (when or datetime.now(UTC)).isoformat(),
                "from_state": before,
                "to_state": after,
                "trigger": trigger,
                "message": message,
                "operator": operator,
                "via": via,
                "auth": auth,
            }
        )
        return len(self._events)

    def kill_events_after(self, event_id: int) -> list[dict[str, Any]]:
        return [dict(e) for e in self._events[event_id:]]

    def record_decision(self, decision: Decision) -> None:
        self._decisions.append(decision)

    def record_bar(self, bar: Bar) -> None:
        """Not kept: only the report reads recorded bars, and it needs the SQLite store."""

    def flush(self) -> None:
        """Nothing is pending in memory; here for the same interface as the SQLite store."""

    def flush_behind(self) -> None:
        """As :meth:`flush`."""

    def decisions(self) -> list[Decision]:
        return list(self._decisions)

    def kv_get(self, namespace: str, key: str) -> Any:
        raw = self._kv.get((namespace, key))
        return json.loads(raw) if raw is not None else None

    def kv_put(self, namespace: str, key: str, value: Any, expires: datetime | None = None) -> None:
        """JSON round-trip, as the SQLite store does, so plugins see the same types in tests."""
        self._kv[(namespace, key)] = json.dumps(value, default=str)
