"""``[default.broker]``: which terminal, how to reach it, and its clock (the adapter reads them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from tradeguard.broker.emulator.config import EmulatorConfig
from tradeguard.broker.server_time import ServerZone, zone_setting
from tradeguard.kernel.schema import PluginSettings, validated_for_live


class BrokerSettings(PluginSettings):
    """``[default.broker]``: which terminal, how to reach it, and its clock."""

    module: Literal["emulator", "MetaTrader5", "mt5linux"] = Field(default="emulator", validate_default=True)
    host: str = Field(default="127.0.0.1", description="mt5linux bridge host")
    port: int = Field(default=18812, ge=1, le=65535, description="mt5linux bridge port")
    path: str = Field(default="", description="terminal64.exe for the official package; empty = auto")
    login: int = Field(default=0, ge=0, description="account to log in to; 0 = the terminal's current one")
    password: SecretStr = Field(default=SecretStr(""), description="from .secrets.toml or the environment only")
    server: str = ""
    portable: bool = Field(default=False, description="the terminal is a portable installation (initialize's portable)")
    timeout_ms: int = Field(default=60_000, ge=1_000, le=600_000, description="initialize's timeout, milliseconds")
    connect_retries: int = Field(default=3, ge=1, le=100)
    retry_delay_seconds: float = Field(default=1.0, ge=0, le=300)
    server_timezone: str = Field(
        default="+00:00",
        description="the trade server's clock: an offset (+02:00), an IANA zone (Europe/Athens) or new_york_close",
    )
    derive_server_offset: bool = Field(
        default=False, description="a real terminal only: derive a fixed offset from its ticks against the wall clock"
    )
    emulator: EmulatorConfig = Field(default_factory=EmulatorConfig, description="the emulator's market and account")

    @model_validator(mode="before")
    @classmethod
    def _deprecated_offset(cls, values: Any) -> Any:
        return zone_setting(values, "broker")

    @field_validator("server_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ServerZone(value)  # raises naming what a zone may be
        return value

    @model_validator(mode="after")
    def _derived_from_a_terminal(self) -> BrokerSettings:
        """The emulator declares its zone; deriving one from its 2017 ticks against today's clock is nonsense."""
        if self.derive_server_offset and self.module == "emulator":
            raise ValueError(
                "derive_server_offset works against a real terminal only; over the emulator set "
                "broker.server_timezone to its [broker.emulator] server_timezone"
            )
        return self

    @field_validator("module")
    @classmethod
    def _real_terminal_live(cls, value: str, info: ValidationInfo) -> str:
        """An operator who forgot it must not believe a replayed market is the account."""
        if value == "emulator" and validated_for_live(info):
            raise ValueError(
                "the live environment trades a real account; choose 'MetaTrader5' or 'mt5linux' "
                "(paper runs on the emulator)"
            )
        return value
