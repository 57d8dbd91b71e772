"""Helpers for testing plugins against a real runtime, for tradeguard's tests and plugin authors'.

``make_runtime`` builds a runtime with exactly the plugins you pass (no entry-point discovery,
no settings file), on a replay clock, started: your plugin runs through the same pipeline,
hooks and settings validation as in production.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tradeguard.kernel.clock import ReplayClock
from tradeguard.kernel.runtime import Runtime
from tradeguard.models import Signal
from tradeguard.store.memory import MemoryStore

T0 = datetime(2024, 1, 8, 10, tzinfo=UTC)


def make_runtime(
    *plugins: tuple[str, object],
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    env: str = "default",
    start: bool = True,
    **services: Any,
) -> Runtime:
    """A started runtime with ``(name, plugin)`` pairs registered and ``settings`` tables applied."""
    services.setdefault("clock", ReplayClock(T0))
    services.setdefault("store", MemoryStore())
    rt = Runtime.build(env=env, discover=False, read_files=False, plugins=plugins, overrides=settings or {}, **services)
    if start:
        rt.start()
    return rt


def crash(rt: Runtime) -> None:
    """What a process death leaves of ``rt``: nothing flushed, nobody told, only its lock on the journal
    gone. A test then builds a second runtime over the same store, as the restarted process would."""
    if rt._journal_lock is not None:
        rt._journal_lock.drop()


def signal(**fields: Any) -> Signal:
    """A valid EURUSD buy signal at ``T0``; override any field."""
    base: dict[str, Any] = {
        "strategy": "test",
        "symbol": "EURUSD",
        "side": "buy",
        "timeframe": "H1",
        "bar_time": T0 - timedelta(hours=1),
        "created_at": T0,
        "price": 1.1000,
        "stop_loss": 1.0950,
    }
    base.update(fields)
    return Signal(**base)
