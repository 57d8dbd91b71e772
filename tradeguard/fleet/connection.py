"""One connection to the fleet database, for one thread: connected lazily, bounded, and never showing its password.

Any failure to reach the server (refused, cut, timed out) is :class:`FleetUnreachable`, and the connection is
dropped so that the next call starts a new one. The URL's password never appears in an error: libpq quotes parts
of a malformed URL back, so every message is scrubbed of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tradeguard.errors import TradeguardError
from tradeguard.fleet.schema import migrate
from tradeguard.fleet.settings import FleetSettings
from tradeguard.kernel import logging as tglog

#: libpq keepalives: a server that vanished from the network is noticed within seconds, not TCP's hours
_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 2}
#: a client stopped mid-transaction (an operator's command suspended at a prompt) frees the fleet's row after this
_IDLE_IN_TRANSACTION_MS = 5000


class FleetUnreachable(TradeguardError):
    """The fleet database could not be reached or did not answer in time."""


def passwords(url: str) -> list[str]:
    """The URL's password as written and decoded (both may show in a message), or nothing."""
    try:
        raw = urlsplit(url).password or ""
    except ValueError:
        return []
    return [p for p in {raw, unquote(raw)} if p]


class FleetConnection:
    """The connection and the three ways of using it: a transaction, one statement, the schema's migration."""

    def __init__(self, url: str, fleet: str, *, connect_timeout: float = 2.0, statement_timeout_ms: int = 2000) -> None:
        self.url, self.fleet = url, fleet
        self.connect_timeout, self.statement_timeout_ms = connect_timeout, statement_timeout_ms
        self._conn: psycopg.Connection[Any] | None = None
        self._secrets = passwords(url)
        for secret in self._secrets:
            tglog.register_secret(secret)

    @classmethod
    def of(cls, cfg: FleetSettings) -> Self:
        """A connection to the fleet ``[default.fleet]`` names, with its bounds."""
        return cls(
            cfg.url.get_secret_value(),
            cfg.name,
            connect_timeout=cfg.connect_timeout_seconds,
            statement_timeout_ms=cfg.statement_timeout_ms,
        )

    def _scrubbed(self, exc: BaseException) -> str:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def _unreachable(self, exc: BaseException) -> FleetUnreachable:
        self.close()
        return FleetUnreachable(f"fleet database unreachable: {self._scrubbed(exc)}")

    def connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                given = conninfo_to_dict(self.url).get("options") or ""
                bounds = f"-c statement_timeout={self.statement_timeout_ms} "
                bounds += f"-c idle_in_transaction_session_timeout={_IDLE_IN_TRANSACTION_MS}"
                conninfo = make_conninfo(
                    self.url,
                    connect_timeout=max(1, math.ceil(self.connect_timeout)),
                    options=f"{given} {bounds}".strip(),  # the URL's own options are kept
                    application_name=f"tradeguard:{self.fleet}",
                    tcp_user_timeout=int(self.connect_timeout * 1000),
                    **_KEEPALIVE,
                )
                self._conn = psycopg.connect(conninfo, autocommit=True)
            except psycopg.Error as exc:
                raise self._unreachable(exc) from None
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._unreachable(exc) from None
        except psycopg.errors.RaiseException as exc:  # the server's own refusal, in words
            raise TradeguardError(self._scrubbed(exc)) from None

    @contextmanager
    def tx(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction."""
        conn = self.connect()
        with self._reaching(), conn.transaction():
            yield conn

    def one(self, sql: str, params: Sequence[Any]) -> Any:
        """One statement in its own transaction (autocommit), so that no lock it takes outlives the server's work;
        the first row it returns."""
        conn = self.connect()
        with self._reaching():
            return conn.execute(sql, params).fetchone()

    def migrate(self) -> int:
        with self._reaching():
            return migrate(self.connect())
