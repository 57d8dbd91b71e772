"""Fixtures: a fresh emulated terminal per test, and the adapter over it; a market request to send through it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tradeguard.broker import constants
from tradeguard.broker.emulator.terminal import Terminal
from tradeguard.broker.mt5 import MT5Adapter
from tradeguard.broker.settings import BrokerSettings


@pytest.fixture
def terminal() -> Callable[..., Terminal]:
    def make(**config: Any) -> Terminal:
        term = Terminal()
        assert term.initialize(**config), term.last_error()
        return term

    return make


@pytest.fixture
def adapter(terminal: Callable[..., Terminal]) -> Callable[..., MT5Adapter]:
    def make(zone: str = "+00:00", **config: Any) -> MT5Adapter:
        broker = MT5Adapter(terminal(**config), BrokerSettings(server_timezone=zone))
        broker.connected = True
        return broker

    return make


EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
Adapter = Callable[..., MT5Adapter]


def market(broker: MT5Adapter, side: int, volume: float = 0.1, **kw: object) -> dict:
    return broker.prepare(
        {
            "action": constants.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": volume,
            "type": side,
            "magic": 42,
            "comment": "tg-test",
            **kw,
        }
    )
