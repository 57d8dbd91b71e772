"""CLI overrides merge key by key at every depth: a replay's --data, --symbol, --faults, --seed keep every other
emulator and broker key the settings file sets (a replay of another account is a wrong answer given confidently)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from tradeguard.cli.commands import replay_overrides
from tradeguard.kernel.runtime import Runtime
from tradeguard.store.memory import MemoryStore

FILE_EMULATOR: dict[str, Any] = {
    "data_kind": "bars",
    "timeframe": "H4",
    "server_timezone": "+02:00",
    "login": 7001,
    "password": "pw",
    "server": "Desk-Server",
    "name": "desk",
    "company": "desk co",
    "currency": "EUR",
    "balance": 25000.0,
    "leverage": 20,
    "margin_mode": "netting",
    "margin_so_call": 90.0,
    "margin_so_so": 40.0,
    "commission_per_lot": 3.5,
    "slippage_points": 4,
    "liquidity_lots": 2.0,
    "limit_orders": 50,
    "limit_positions": 10,
}
FILE_BROKER: dict[str, Any] = {"host": "127.0.0.2", "port": 18813, "connect_retries": 5, "retry_delay_seconds": 2.0}


def toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


FLAGS = {"data": [None, "DATA"], "symbol": [None, "GBPUSD"], "faults": [None, "flaky"], "seed": [None, 7]}


COMBINATIONS = [dict(zip(FLAGS, combo, strict=True)) for combo in itertools.product(*FLAGS.values())]


def named(flags: dict[str, Any]) -> str:
    return "-".join(k for k, v in flags.items() if v is not None) or "none"


@pytest.mark.parametrize("flags", COMBINATIONS, ids=named)
def test_every_replay_flag_keeps_every_other_key(tmp_path: Path, flags: dict[str, Any]) -> None:
    data = Path(__file__).resolve().parents[2] / "tradeguard" / "data" / "EURUSD_H1.csv"
    settings = tmp_path / "settings.toml"
    lines = [
        "[default.broker]",
        *(f"{k} = {toml(v)}" for k, v in FILE_BROKER.items()),
        "[default.broker.emulator]",
        *(f"{k} = {toml(v)}" for k, v in FILE_EMULATOR.items()),
    ]
    settings.write_text("\n".join(lines) + "\n")
    given = {**flags, "data": [str(data)] if flags["data"] else None, "allow_renamed_data": bool(flags["symbol"])}
    rt = Runtime.build(settings, overrides=replay_overrides(**given), store=MemoryStore(), discover=False)
    emulator, broker = rt.settings.broker.emulator, rt.settings.broker
    for key, value in FILE_EMULATOR.items():
        assert getattr(emulator, key) == value, key
    for key, value in FILE_BROKER.items():
        assert getattr(broker, key) == value, key
    if flags["data"]:
        assert emulator.data == str(data)
    if flags["symbol"]:
        assert emulator.symbol == "GBPUSD"
    if flags["seed"] is not None:
        assert emulator.faults.seed == 7  # type: ignore[union-attr]
    elif flags["faults"]:
        assert emulator.faults == "flaky"
