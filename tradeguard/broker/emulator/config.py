"""What an emulated terminal is set up with: data, account, costs, faults (``initialize(...)`` or settings)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tradeguard.broker.data import SAMPLE
from tradeguard.broker.emulator import symbols
from tradeguard.broker.emulator.faults import PROFILES, FaultProfile


class EmulatorConfig(BaseModel):
    """What ``initialize(...)`` (or settings) may choose: data, account, costs, faults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: str = Field(default=str(SAMPLE), description="bars or ticks file (MT5 export, CSV or Parquet); times UTC")
    data_kind: str = Field(default="auto", pattern="^(auto|bars|ticks)$", description="auto: ticks if bid/ask columns")
    timeframe: str = Field(default="H1", description="bar timeframe built from a ticks file")
    symbol: str = Field(default="EURUSD", description="the symbol the data file holds")
    symbols: dict[str, dict[str, Any]] = Field(default_factory=dict, description="spec overrides per symbol")
    server_offset_hours: float = Field(default=0.0, ge=-12, le=14, description="server clock = UTC + offset")
    login: int = 5_000_001
    password: str = ""
    server: str = "Tradeguard-Emulator"
    name: str = "tradeguard demo"
    company: str = "tradeguard emulator"
    currency: str = "USD"
    balance: float = Field(default=10_000.0, ge=0)
    leverage: int = Field(default=100, ge=1)
    margin_mode: str = Field(default="hedging", pattern="^(hedging|netting)$")
    margin_so_call: float = Field(default=100.0, ge=0)
    margin_so_so: float = Field(default=50.0, ge=0)
    commission_per_lot: float = Field(default=0.0, ge=0, description="charged per lot on every deal, each side")
    slippage_points: int = Field(default=0, ge=0, description="largest adverse slippage on market fills")
    liquidity_lots: float = Field(default=0.0, ge=0, description="volume fillable per tick; 0 = unlimited")
    limit_orders: int = Field(default=200, ge=0)
    limit_positions: int = Field(default=0, ge=0, description="0 = no limit")
    faults: FaultProfile | str = "none"

    @field_validator("symbol")
    @classmethod
    def _known_symbol(cls, name: str) -> str:
        if name not in symbols.CATALOGUE:
            raise ValueError(f"{name!r} is not in the emulator's catalogue ({', '.join(symbols.CATALOGUE)})")
        return name

    @field_validator("symbols")
    @classmethod
    def _known_symbols(cls, overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = [name for name in overrides if name not in symbols.CATALOGUE]
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not in the emulator's catalogue ({', '.join(symbols.CATALOGUE)})")
        return overrides

    @field_validator("faults")
    @classmethod
    def _known_profile(cls, faults: FaultProfile | str) -> FaultProfile | str:
        if isinstance(faults, str) and faults not in PROFILES:
            raise ValueError(f"unknown fault profile {faults!r}; known: {', '.join(PROFILES)}")
        return faults
