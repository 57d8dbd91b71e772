"""Fixtures: a fresh emulated terminal per test, and the adapter over it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tradeguard.broker.emulator.terminal import Terminal
from tradeguard.broker.mt5 import BrokerSettings, MT5Adapter


@pytest.fixture
def terminal() -> Callable[..., Terminal]:
    def make(**config: Any) -> Terminal:
        term = Terminal()
        assert term.initialize(**config), term.last_error()
        return term

    return make


@pytest.fixture
def adapter(terminal: Callable[..., Terminal]) -> Callable[..., MT5Adapter]:
    def make(offset_hours: float = 0.0, **config: Any) -> MT5Adapter:
        broker = MT5Adapter(terminal(**config), BrokerSettings(server_offset_hours=offset_hours))
        broker.connected = True
        return broker

    return make
