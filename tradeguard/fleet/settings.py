"""``[default.fleet]`` (the kernel's: which fleet database, which fleet, which account this process is) and the
fleet's limits (``[default.fleet_risk]``, read by the ``fleet_risk`` plugin, kept in the database: one budget)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from tradeguard.kernel.schema import PluginSettings

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class FleetSettings(PluginSettings):
    """``[default.fleet]``: without ``url`` this process is a single account on its own store, as ever."""

    url: SecretStr = Field(
        default=SecretStr(""),
        description="postgresql://user@host/db of the fleet database; put a password in .secrets.toml or "
        "TRADEGUARD_FLEET__URL (or libpq's PGPASSWORD / ~/.pgpass), never in settings.toml. Empty = no fleet",
    )
    name: str = Field(default="main", min_length=1, max_length=64, description="the fleet this account belongs to")
    account: str = Field(
        default="", max_length=64, description="this process's account label in the fleet; empty = the MT5 login"
    )
    currency: str = Field(
        default="USD", pattern=r"^[A-Z]{3}$", description="the reporting currency the fleet's money limits are in"
    )
    fail_closed_seconds: float = Field(
        default=5.0, gt=0, description="unreachable this long: openings refused (fleet_unreachable), alerted"
    )
    heartbeat_seconds: float = Field(default=1.0, gt=0, le=60, description="how often the account's row is renewed")
    lease_seconds: float = Field(
        default=15.0, gt=0, description="a reservation its process stops renewing (it died) expires after this"
    )
    connect_timeout_seconds: float = Field(default=2.0, gt=0, le=30, description="one connection attempt's bound")
    statement_timeout_ms: int = Field(default=2000, gt=0, description="one statement's bound on the server")

    @field_validator("account")
    @classmethod
    def _label(cls, value: str) -> str:
        if value and not _LABEL.fullmatch(value):
            raise ValueError("letters, digits and _.@- only, starting with a letter or digit")
        return value

    @field_validator("url")
    @classmethod
    def _postgres(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url and urlsplit(url).scheme not in ("postgresql", "postgres"):
            raise ValueError("a postgresql:// URL")  # the value itself is never repeated: it may hold a password
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.url.get_secret_value())

    def label(self, login: int) -> str:
        """This process's account label: ``account``, or the MT5 login."""
        return self.account or str(login)


class FleetLimits(PluginSettings):
    """The fleet's limits, summed over every account (0 = off). Kept in the fleet database: a process that starts
    with other values replaces them there, recorded in the fleet's record and alerted."""

    daily_loss: float = Field(
        default=0.0, ge=0, description="the fleet's loss since each account's server midnight, in fleet.currency"
    )
    max_drawdown_pct: float = Field(default=0.0, ge=0, le=100, description="the fleet's equity below its peak, in %")
    max_lots_per_symbol: float = Field(default=0.0, ge=0, description="lots held and working on one symbol")
    max_lots_per_currency: float = Field(default=0.0, ge=0, description="lots touching one currency")
    max_open_positions: int = Field(default=0, ge=0, description="positions open and pending orders that may open one")
    warn_at_pct: float = Field(default=80.0, gt=0, lt=100, description="a WARNING once per limit and day at this use")
