"""An engine over the emulator with a real SQLite journal, and a recorder of what it announces."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tradeguard import Fill, OrderEvent, OrderIntent, hookimpl
from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.kernel.runtime import Runtime
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.store.sqlite import Store
from tradeguard.testing import T0, make_runtime


class Recorder:
    def __init__(self) -> None:
        self.fills: list[Fill] = []
        self.events: list[OrderEvent] = []

    @hookimpl
    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)

    @hookimpl
    def on_order_event(self, event: OrderEvent) -> None:
        self.events.append(event)

    def kinds(self, client_id: str) -> list[str]:
        return [e.kind.value for e in self.events if e.client_id == client_id]


@pytest.fixture
def engine_runtime(tmp_path: Path) -> Callable[..., tuple[Runtime, ExecutionEngine, Recorder]]:
    def make(
        emulator: dict[str, Any] | None = None, engine: dict[str, Any] | None = None, db: Path | None = None
    ) -> tuple[Runtime, ExecutionEngine, Recorder]:
        eng, rec = ExecutionEngine(), Recorder()
        settings: dict[str, Any] = {"broker": {"emulator": emulator or {}}}
        if engine:
            settings["execution_engine"] = engine
        rt = make_runtime(
            ("kill_switch", KillSwitch()),
            ("execution_engine", eng),
            ("recorder", rec),
            settings=settings,
            store=Store(db or tmp_path / "journal.db"),
        )
        return rt, eng, rec

    return make


def buy(volume: float = 0.1, **kw: Any) -> OrderIntent:
    return OrderIntent(symbol="EURUSD", side="buy", volume=volume, created_at=T0, **kw)


def sell(volume: float = 0.1, **kw: Any) -> OrderIntent:
    return OrderIntent(symbol="EURUSD", side="sell", volume=volume, created_at=T0, **kw)
