"""What an emulated terminal is set up with: data, account, costs, faults (``initialize(...)`` or settings)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tradeguard.broker.data import SAMPLE
from tradeguard.broker.emulator import symbols
from tradeguard.broker.emulator.faults import PROFILES, FaultProfile
from tradeguard.broker.server_time import ServerZone, zone_setting


class EmulatorConfig(BaseModel):
    """What ``initialize(...)`` (or settings) may choose: data, account, costs, faults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: str | dict[str, str] = Field(
        default=str(SAMPLE),
        description="bars or ticks file (MT5 export, CSV or Parquet; times UTC) of `symbol`, or a table "
        "{ SYMBOL = file, ... }: several symbols replayed on one market clock",
    )
    data_kind: str = Field(default="auto", pattern="^(auto|bars|ticks)$", description="auto: ticks if bid/ask columns")
    timeframe: str = Field(default="H1", description="bar timeframe built from a ticks file")
    symbol: str = Field(default="EURUSD", description="the symbol a single data file holds")
    allow_renamed_data: bool = Field(
        default=False, description="replay a file named for one symbol as another's (EURUSD_H1.csv as GBPUSD)"
    )
    symbols: dict[str, dict[str, Any]] = Field(default_factory=dict, description="spec overrides per symbol")
    server_timezone: str = Field(
        default="+00:00", description="the emulated server's clock: an offset, an IANA zone or new_york_close"
    )
    data_timezone: str = Field(
        default="UTC", description="the zone the data files' times are in (a terminal's export: its server's)"
    )
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

    @model_validator(mode="before")
    @classmethod
    def _deprecated_offset(cls, values: Any) -> Any:
        return zone_setting(values, "broker.emulator")

    @field_validator("server_timezone", "data_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ServerZone(value)  # raises naming what a zone may be
        return value

    @field_validator("data", "symbols", mode="before")
    @classmethod
    def _catalogue_names(cls, value: Any) -> Any:
        """Settings keys arrive lower-cased: a table keyed by symbol is keyed by the catalogue's spelling."""
        if isinstance(value, dict):
            spelled = {name.lower(): name for name in symbols.CATALOGUE}
            return {spelled.get(str(k).lower(), k): v for k, v in value.items()}
        return value

    @field_validator("data")
    @classmethod
    def _known_data_symbols(cls, data: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(data, dict):
            if not data:
                raise ValueError("the data table is empty: name at least one SYMBOL = file")
            unknown = [name for name in data if name not in symbols.CATALOGUE]
            if unknown:
                raise ValueError(
                    f"{', '.join(unknown)}: not in the emulator's catalogue ({', '.join(symbols.CATALOGUE)})"
                )
        return data

    @model_validator(mode="after")
    def _data_of_its_symbol(self) -> EmulatorConfig:
        """Replaying one symbol's prices under another's name trades a market that never was: refused, unless
        ``allow_renamed_data`` says it is meant."""
        if not self.allow_renamed_data:
            for symbol, path in self.datasets().items():
                named = symbol_in_name(path)
                if named is not None and named != symbol:
                    raise ValueError(
                        f"{Path(path).name} looks like {named}'s data, not {symbol}'s; "
                        "set broker.emulator.allow_renamed_data = true (--allow-renamed-data) if that is meant"
                    )
        return self

    def datasets(self) -> dict[str, str]:
        """Symbol -> data file, in name order: the order ticks of one instant are replayed in."""
        table = self.data if isinstance(self.data, dict) else {self.symbol: self.data}
        return dict(sorted(table.items()))

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


#: currency codes a symbol's name is made of (EURUSD, XAUUSD): a file name starting with two of them names a symbol
_CURRENCIES = frozenset(
    {
        "USD",
        "EUR",
        "GBP",
        "JPY",
        "CHF",
        "AUD",
        "NZD",
        "CAD",
        "SEK",
        "NOK",
        "DKK",
        "PLN",
        "HUF",
        "CZK",
        "TRY",
        "ZAR",
        "MXN",
        "SGD",
        "HKD",
        "CNH",
        "RUB",
        "XAU",
        "XAG",
        "XPT",
        "XPD",
    }
)


def symbol_in_name(path: str) -> str | None:
    """The symbol a data file's name starts with (``EURUSD_H1.csv``: EURUSD), if it names one."""
    token = re.split(r"[_\-. ]", Path(path).name, maxsplit=1)[0].upper()
    if token in symbols.CATALOGUE or (len(token) == 6 and token[:3] in _CURRENCIES and token[3:] in _CURRENCIES):
        return token
    return None


def datasets_in(folder: Path) -> dict[str, str]:
    """The data files of a folder, by the symbol each is named for (``SYMBOL_*.csv`` or ``.parquet``); raises
    ``ValueError`` naming a file that names no symbol, or a symbol two files are named for."""
    found: dict[str, str] = {}
    for file in sorted(folder.iterdir()):
        if not file.is_file() or file.suffix.lower() not in (".csv", ".parquet"):
            continue
        symbol = symbol_in_name(str(file))
        if symbol is None:
            raise ValueError(f"{file}: its name names no symbol (SYMBOL_*.csv, e.g. EURUSD_H1.csv)")
        if symbol in found:
            raise ValueError(f"{file} and {Path(found[symbol]).name}: two files for {symbol}")
        found[symbol] = str(file)
    if not found:
        raise ValueError(f"{folder}: no SYMBOL_*.csv or SYMBOL_*.parquet file in it")
    return found
