"""The in-process store: decisions kept in memory for the life of the process.

It has the interface the durable SQLite store offers for decisions; use it for tests and the
demo. Bounded so a long paper run cannot grow it without limit.
"""

from __future__ import annotations

from collections import deque

from tradeguard.models import Decision


class MemoryStore:
    def __init__(self, max_decisions: int = 100_000) -> None:
        self._decisions: deque[Decision] = deque(maxlen=max_decisions)

    def record_decision(self, decision: Decision) -> None:
        self._decisions.append(decision)

    def decisions(self) -> list[Decision]:
        return list(self._decisions)
