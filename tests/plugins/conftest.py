"""A started runtime over the emulator (first quotes: EURUSD 1.0716/1.0717, USDJPY 150.000/150.012,
XAUUSD 2000.00/2000.25, US500 5000.0/5000.5; USD account, 10,000 balance, leverage 100)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime


@pytest.fixture
def runtime(tmp_path: Path) -> Callable[..., Any]:
    counter = iter(range(1000))

    def make(*plugins: tuple[str, object], emulator: dict[str, Any] | None = None, **tables: Any) -> Any:
        settings: dict[str, Any] = {"broker": {"emulator": emulator or {}}, **tables}
        return make_runtime(*plugins, settings=settings, store=Store(tmp_path / f"rt{next(counter)}.db"))

    return make
