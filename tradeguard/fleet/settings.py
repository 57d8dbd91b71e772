"""``[default.fleet]`` (the kernel's: which fleet database, which fleet, which account this process is) and the
fleet's limits (``[default.fleet_risk]``, read by the ``fleet_risk`` plugin, kept in the database: one budget)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, SecretStr, field_validator, model_validator

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
        """A postgresql:// URL libpq can read. The value itself is never repeated: it may hold a password."""
        url = value.get_secret_value()
        if not url:
            return value
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("a postgresql:// URL")
        try:
            urlsplit(url).port  # noqa: B018  # (a bad port raises here, naming the value)
            conninfo_to_dict(url)
        except (ValueError, psycopg.ProgrammingError):
            raise ValueError("not a URL libpq can read (postgresql://user@host:port/database)") from None
        return value

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> FleetSettings:
        """A lease renewed every heartbeat must survive a few missed ones, or a busy moment drops a live share."""
        if self.lease_seconds < 3 * self.heartbeat_seconds:
            raise ValueError(
                f"fleet.lease_seconds ({self.lease_seconds:g}) must be at least 3 x fleet.heartbeat_seconds "
                f"({self.heartbeat_seconds:g})"
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.url.get_secret_value())

    def label(self, login: int) -> str:
        """This process's account label: ``account``, or the MT5 login."""
        return self.account or str(login)


class FleetLimits(PluginSettings):
    """``[default.fleet_risk]``: the fleet's limits, summed over every account (0 = off). They seed a new fleet;
    from then on the database holds them for every account (``tradeguard fleet limits --apply`` changes them,
    recorded in the fleet's record; loosening one needs the operator secret)."""

    daily_loss: float = Field(
        default=0.0, ge=0, description="the fleet's loss since each account's server midnight, in fleet.currency"
    )
    max_drawdown_pct: float = Field(default=0.0, ge=0, le=100, description="the fleet's equity below its peak, in %")
    max_lots_per_symbol: float = Field(default=0.0, ge=0, description="lots held and working on one symbol")
    max_lots_per_currency: float = Field(default=0.0, ge=0, description="lots touching one currency")
    max_open_positions: int = Field(default=0, ge=0, description="positions open and pending orders that may open one")
    warn_at_pct: float = Field(default=80.0, gt=0, lt=100, description="a WARNING once per limit and day at this use")
