"""The fleet database: every statement the fleet runs, on one psycopg connection per user (a thread).

What a process publishes (its account's figures, its book of positions and working orders, its heartbeat) is
its own rows; what the fleet shares (limits, kill switch, peak equity) is the fleet's row, which a reservation
and a kill lock, so both are serialised across every account. The fleet's own record (``fleet_events``) is a
hash chain: each event's hash covers the previous one's and the event's canonical JSON.

Any failure to reach the server (refused, cut, timed out) is :class:`FleetUnreachable`, and the connection is
dropped so the next call starts a new one. A refusal of the server's own (a constraint) is a programming error
and propagates as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tradeguard.errors import TradeguardError
from tradeguard.fleet.schema import CHANNEL, migrate
from tradeguard.store.audit import GENESIS, canonical, chain_hash

_RANK = {"ACTIVE": 0, "REDUCE_ONLY": 1, "HALTED": 2}
#: conninfo options bounding how long a dead server can hold a caller (libpq keepalives, TCP user timeout)
_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 2}


class FleetUnreachable(TradeguardError):
    """The fleet database could not be reached or did not answer in time."""


@dataclass(frozen=True)
class FleetKill:
    """The fleet's kill switch as its row and its last event say."""

    state: str = "ACTIVE"
    trigger: str = ""
    event: int = 0
    message: str = ""
    operator: str = ""
    via: str = ""
    auth: str = ""

    @property
    def latched(self) -> bool:
        return self.state != "ACTIVE"


@dataclass(frozen=True)
class BookRow:
    """A position or a working order of one account, with the currencies it touches."""

    kind: str  # "position" | "order"
    ticket: int
    symbol: str
    side: str
    lots: float
    currency_base: str
    currency_profit: str


@dataclass(frozen=True)
class Ask:
    """What an opening order asks of the fleet's budget."""

    signal_id: str
    symbol: str
    lots: float
    currency_base: str
    currency_profit: str
    positions: int  # 1 when it opens a position, 0 when it adds to one (netting)


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str


@dataclass(frozen=True)
class AccountFigures:
    """An account's money, in its own currency, and the rate to the fleet's."""

    login: int
    server: str
    currency: str
    to_fleet: float
    equity: float
    balance: float
    day_start_equity: float

    @property
    def day_pnl(self) -> float:
        return self.equity - self.day_start_equity


@dataclass
class Totals:
    """The fleet at one moment: each account's row, and the sums the limits are judged on (fleet currency)."""

    currency: str
    limits: dict[str, Any]
    kill: FleetKill
    accounts: list[dict[str, Any]]
    equity: float = 0.0
    day_pnl: float = 0.0
    peak_equity: float = 0.0
    lots_by_symbol: dict[str, float] = field(default_factory=dict)
    lots_by_currency: dict[str, float] = field(default_factory=dict)
    positions: int = 0
    reservations: int = 0

    @property
    def drawdown_pct(self) -> float:
        loss = self.peak_equity - self.equity
        return round(loss / self.peak_equity * 100, 4) if self.peak_equity > 0 and loss > 0 else 0.0

    def uses(self) -> list[tuple[str, float, float]]:
        """``(limit, used, limit value)`` for every limit that is on; the worst symbol and currency stand for theirs."""
        lim = self.limits
        rows = [
            ("daily_loss", max(0.0, -self.day_pnl), float(lim.get("daily_loss", 0))),
            ("max_drawdown_pct", self.drawdown_pct, float(lim.get("max_drawdown_pct", 0))),
            ("max_lots_per_symbol", max(self.lots_by_symbol.values(), default=0.0), lim.get("max_lots_per_symbol", 0)),
            (
                "max_lots_per_currency",
                max(self.lots_by_currency.values(), default=0.0),
                lim.get("max_lots_per_currency", 0),
            ),
            ("max_open_positions", float(self.positions), float(lim.get("max_open_positions", 0))),
        ]
        return [(name, used, float(cap)) for name, used, cap in rows if cap]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kill"] = asdict(self.kill)
        out["drawdown_pct"] = self.drawdown_pct
        out["uses"] = [{"limit": n, "used": u, "value": c, "pct": round(u / c * 100, 2)} for n, u, c in self.uses()]
        return out


#: how each refusal of ``tradeguard_fleet_reserve`` reads: (used, limit, subject, ask) -> text
_REFUSALS: dict[str, Callable[[float, float, str, Ask], str]] = {
    "fleet_kill": lambda used, cap, state, ask: f"the fleet is {state}",
    "fleet_daily_loss": lambda used, cap, ccy, ask: (
        f"the fleet lost {used:,.2f} {ccy} today >= {cap:,.2f} (fleet_risk.daily_loss)"
    ),
    "fleet_drawdown": lambda used, cap, ccy, ask: (
        f"the fleet's equity is {used:.2f}% under its peak >= {cap:g}% (fleet_risk.max_drawdown_pct)"
    ),
    "fleet_lots_symbol": lambda used, cap, symbol, ask: (
        f"{used:g} + {ask.lots:g} lots of {symbol} across the fleet > {cap:g} (fleet_risk.max_lots_per_symbol)"
    ),
    "fleet_lots_currency": lambda used, cap, ccy, ask: (
        f"{used:g} + {ask.lots:g} lots touching {ccy} across the fleet > {cap:g} (fleet_risk.max_lots_per_currency)"
    ),
    "fleet_open_positions": lambda used, cap, _, ask: (
        f"{used:g} open or pending across the fleet, limit {cap:g} (fleet_risk.max_open_positions)"
    ),
}


class FleetDB:
    """One connection to the fleet database, for one thread, for one fleet."""

    def __init__(self, url: str, fleet: str, *, connect_timeout: float = 2.0, statement_timeout_ms: int = 2000) -> None:
        self.url, self.fleet = url, fleet
        self.connect_timeout, self.statement_timeout_ms = connect_timeout, statement_timeout_ms
        self._conn: psycopg.Connection[Any] | None = None

    # -- the connection -------------------------------------------------------------------------

    def connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                conninfo = make_conninfo(
                    self.url,
                    connect_timeout=max(1, math.ceil(self.connect_timeout)),
                    options=f"-c statement_timeout={self.statement_timeout_ms}",
                    application_name=f"tradeguard:{self.fleet}",
                    tcp_user_timeout=int(self.connect_timeout * 1000),
                    **_KEEPALIVE,
                )
                self._conn = psycopg.connect(conninfo, autocommit=True)
            except psycopg.Error as exc:
                raise FleetUnreachable(f"fleet database unreachable: {_first_line(exc)}") from exc
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def tx(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction; a lost server becomes :class:`FleetUnreachable` and drops the connection."""
        conn = self.connect()
        try:
            with conn.transaction():
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.close()
            raise FleetUnreachable(f"fleet database unreachable: {_first_line(exc)}") from exc

    def migrate(self) -> int:
        try:
            return migrate(self.connect())
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.close()
            raise FleetUnreachable(f"fleet database unreachable: {_first_line(exc)}") from exc

    # -- the fleet's row --------------------------------------------------------------------------

    def ensure_fleet(self, currency: str, limits: dict[str, Any], account: str) -> list[str]:
        """Create the fleet if new; check its currency; make its limits these (recorded when they change).
        Returns the changes, ``key: old -> new``."""
        with self.tx() as db:
            db.execute(
                "INSERT INTO fleets (name, currency, limits) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
                (self.fleet, currency, Jsonb(limits)),
            )
            row = db.execute("SELECT currency, limits FROM fleets WHERE name = %s FOR UPDATE", (self.fleet,)).fetchone()
            assert row is not None
            if row[0] != currency:
                raise TradeguardError(
                    f"fleet {self.fleet!r} reports in {row[0]}; this process says {currency} (fleet.currency)"
                )
            old: dict[str, Any] = row[1]
            changes = [f"{k}: {old.get(k)} -> {v}" for k, v in sorted(limits.items()) if old.get(k) != v]
            if changes:
                db.execute("UPDATE fleets SET limits = %s WHERE name = %s", (Jsonb(limits), self.fleet))
                if old:  # a new fleet's first limits are not a change
                    self._event(db, "limits", message="; ".join(changes), operator=account, via="settings")
            return changes if old else []

    def kill_state(self) -> FleetKill:
        with self.tx() as db:
            return self._kill(db)

    def _kill(self, db: psycopg.Connection[Any]) -> FleetKill:
        row = db.execute(
            "SELECT f.kill_state, f.kill_trigger, f.kill_event, coalesce(e.message, ''), coalesce(e.operator, ''), "
            "coalesce(e.via, ''), coalesce(e.auth, '') FROM fleets f LEFT JOIN fleet_events e ON e.id = f.kill_event "
            "WHERE f.name = %s",
            (self.fleet,),
        ).fetchone()
        return FleetKill(*row) if row else FleetKill()

    def kill(
        self, state: str, trigger: str, message: str, *, operator: str, via: str, auth: str = "", account: str = ""
    ) -> FleetKill | None:
        """Latch the fleet (only ever tighter); every listening process is told at commit. None: it already was."""
        with self.tx() as db:
            row = db.execute("SELECT kill_state FROM fleets WHERE name = %s FOR UPDATE", (self.fleet,)).fetchone()
            if row is None:
                raise TradeguardError(f"no fleet {self.fleet!r} in this database (no account has joined it)")
            if _RANK[state] <= _RANK[row[0]]:
                return None
            event = self._event(
                db,
                "kill",
                from_state=row[0],
                to_state=state,
                trigger=trigger,
                message=message,
                operator=operator,
                via=via,
                auth=auth,
                account=account,
            )
            db.execute(
                "UPDATE fleets SET kill_state = %s, kill_trigger = %s, kill_event = %s WHERE name = %s",
                (state, trigger, event, self.fleet),
            )
            db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self.fleet))
            return FleetKill(state, trigger, event, message, operator, via, auth)

    def reset(self, message: str, *, operator: str, via: str, auth: str) -> FleetKill | None:
        """Back to ACTIVE (the caller checked the operator secret). None: it was ACTIVE."""
        with self.tx() as db:
            row = db.execute("SELECT kill_state FROM fleets WHERE name = %s FOR UPDATE", (self.fleet,)).fetchone()
            if row is None or row[0] == "ACTIVE":
                return None
            event = self._event(
                db,
                "reset",
                from_state=row[0],
                to_state="ACTIVE",
                trigger="reset",
                message=message,
                operator=operator,
                via=via,
                auth=auth,
            )
            db.execute(
                "UPDATE fleets SET kill_state = 'ACTIVE', kill_trigger = '', kill_event = %s WHERE name = %s",
                (event, self.fleet),
            )
            db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self.fleet))
            return FleetKill("ACTIVE", "", event, message, operator, via, auth)

    def record(self, kind: str, message: str, *, operator: str, via: str, auth: str = "", account: str = "") -> int:
        """An event in the fleet's record that moves nothing (a refused reset, a limit warning)."""
        with self.tx() as db:
            db.execute("SELECT 1 FROM fleets WHERE name = %s FOR UPDATE", (self.fleet,))
            return self._event(db, kind, message=message, operator=operator, via=via, auth=auth, account=account)

    def _event(self, db: psycopg.Connection[Any], kind: str, **fields: str) -> int:
        """Append to the fleet's hash chain; the caller holds the fleet's row lock, so the chain is linear."""
        event_id, at = db.execute(
            "SELECT nextval(pg_get_serial_sequence('fleet_events', 'id')), clock_timestamp()"
        ).fetchone()  # type: ignore[misc]
        last = db.execute(
            "SELECT hash FROM fleet_events WHERE fleet = %s ORDER BY id DESC LIMIT 1", (self.fleet,)
        ).fetchone()
        bound = {k: v for k, v in fields.items() if v != ""}  # as verify_record reads them back
        record = {"id": event_id, "at": at.isoformat(), "fleet": self.fleet, "kind": kind, **bound}
        digest = chain_hash(last[0] if last else GENESIS, canonical(record))
        columns = ", ".join(fields)
        marks = ", ".join(["%s"] * len(fields))
        db.execute(
            f"INSERT INTO fleet_events (id, at, fleet, kind, hash{', ' + columns if fields else ''}) "
            f"VALUES (%s, %s, %s, %s, %s{', ' + marks if fields else ''})",
            (event_id, at, self.fleet, kind, digest, *fields.values()),
        )
        return int(event_id)

    def events(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.tx() as db, db.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                "SELECT * FROM fleet_events WHERE fleet = %s ORDER BY id DESC LIMIT %s", (self.fleet, limit)
            ).fetchall()
        return list(reversed(rows))

    def verify_record(self) -> tuple[int, int | None]:
        """``(events checked, first bad id or None)``: every hash recomputed from the one before."""
        with self.tx() as db, db.cursor(row_factory=dict_row) as cur:
            rows = cur.execute("SELECT * FROM fleet_events WHERE fleet = %s ORDER BY id", (self.fleet,)).fetchall()
        previous = GENESIS
        for row in rows:
            stored = row.pop("hash")
            fields = {k: v for k, v in row.items() if k not in ("id", "at", "fleet", "kind") and v != ""}
            record = {
                "id": row["id"],
                "at": row["at"].isoformat(),
                "fleet": row["fleet"],
                "kind": row["kind"],
                **fields,
            }
            if chain_hash(previous, canonical(record)) != stored:
                return len(rows), int(row["id"])
            previous = stored
        return len(rows), None

    # -- one account's rows -----------------------------------------------------------------------

    def claim(self, account: str, figures: AccountFigures, pid: int, host: str, stale_after: float) -> None:
        """Take the account's row for this process: refused while another live process holds it, or when the label
        belongs to another MT5 account."""
        with self.tx() as db:
            row = db.execute(
                "SELECT pid, host, login, server, stopped, extract(epoch FROM now() - heartbeat_at) "
                "FROM fleet_accounts WHERE fleet = %s AND account = %s FOR UPDATE",
                (self.fleet, account),
            ).fetchone()
            if row is not None:
                other_pid, other_host, login, server, stopped, age = row
                if (login, server) != (figures.login, figures.server) and login:
                    raise TradeguardError(
                        f"fleet account {account!r} is MT5 account {login}@{server}, not {figures.login}@"
                        f"{figures.server}: give this process its own label (fleet.account)"
                    )
                if (
                    not stopped
                    and age is not None
                    and float(age) < stale_after
                    and (other_pid, other_host)
                    != (
                        pid,
                        host,
                    )
                ):
                    raise TradeguardError(
                        f"fleet account {account!r} is published by pid {other_pid} on {other_host} (heartbeat "
                        f"{float(age):.1f} s ago): one process per account"
                    )
            db.execute(
                "INSERT INTO fleet_accounts (fleet, account, login, server, currency, to_fleet, pid, host, started_at, "
                "heartbeat_at, stopped) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now(), now(), false) "
                "ON CONFLICT (fleet, account) DO UPDATE SET login = excluded.login, server = excluded.server, "
                "currency = excluded.currency, to_fleet = excluded.to_fleet, pid = excluded.pid, host = excluded.host, "
                "started_at = now(), heartbeat_at = now(), stopped = false",
                (self.fleet, account, figures.login, figures.server, figures.currency, figures.to_fleet, pid, host),
            )
            # what a dead predecessor of this account reserved is not this process's
            db.execute("DELETE FROM fleet_reservations WHERE fleet = %s AND account = %s", (self.fleet, account))

    def publish_account(self, account: str, f: AccountFigures, kill_state: str, kill_trigger: str) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE fleet_accounts SET equity = %s, balance = %s, day_start_equity = %s, day_pnl = %s, "
                "to_fleet = %s, kill_state = %s, kill_trigger = %s, published_at = now(), heartbeat_at = now() "
                "WHERE fleet = %s AND account = %s",
                (
                    f.equity,
                    f.balance,
                    f.day_start_equity,
                    f.day_pnl,
                    f.to_fleet,
                    kill_state,
                    kill_trigger,
                    self.fleet,
                    account,
                ),
            )
            db.execute(
                "UPDATE fleets SET peak_equity = greatest(peak_equity, (SELECT coalesce(sum(equity * to_fleet), 0) "
                "FROM fleet_accounts WHERE fleet = %s)) WHERE name = %s",
                (self.fleet, self.fleet),
            )

    def publish_book(self, account: str, rows: Sequence[BookRow], release: Sequence[int] = ()) -> None:
        """Replace the account's book and drop the reservations it now accounts for, in one transaction: a
        reservation is never counted together with what it became, nor missing before it is published."""
        with self.tx() as db:
            db.execute("DELETE FROM fleet_book WHERE fleet = %s AND account = %s", (self.fleet, account))
            if rows:
                with db.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO fleet_book (fleet, account, kind, ticket, symbol, side, lots, currency_base, "
                        "currency_profit) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [
                            (
                                self.fleet,
                                account,
                                r.kind,
                                r.ticket,
                                r.symbol,
                                r.side,
                                r.lots,
                                r.currency_base,
                                r.currency_profit,
                            )
                            for r in rows
                        ],
                    )
            if release:
                db.execute(
                    "DELETE FROM fleet_reservations WHERE fleet = %s AND account = %s AND id = ANY(%s)",
                    (self.fleet, account, list(release)),
                )
            db.execute(
                "UPDATE fleet_accounts SET published_at = now() WHERE fleet = %s AND account = %s",
                (self.fleet, account),
            )

    def heartbeat(self, account: str, lease_seconds: float) -> FleetKill:
        """Renew the account's row and its reservations' leases; read the fleet's kill (the polling fallback)."""
        with self.tx() as db:
            db.execute(
                "UPDATE fleet_accounts SET heartbeat_at = now() WHERE fleet = %s AND account = %s",
                (self.fleet, account),
            )
            db.execute(
                "UPDATE fleet_reservations SET expires_at = now() + make_interval(secs => %s) "
                "WHERE fleet = %s AND account = %s AND expires_at > now()",
                (lease_seconds, self.fleet, account),
            )
            return self._kill(db)

    def saw_kill(self, account: str, event: int) -> None:
        """Record when this account's process learnt of the fleet's kill event (propagation is measured on it)."""
        with self.tx() as db:
            db.execute(
                "UPDATE fleet_accounts SET fleet_kill_seen = %s, fleet_kill_seen_at = clock_timestamp() "
                "WHERE fleet = %s AND account = %s AND fleet_kill_seen < %s",
                (event, self.fleet, account, event),
            )

    def stop(self, account: str) -> None:
        """A clean stop: the row says so, and nothing stays reserved."""
        with self.tx() as db:
            db.execute("DELETE FROM fleet_reservations WHERE fleet = %s AND account = %s", (self.fleet, account))
            db.execute(
                "UPDATE fleet_accounts SET stopped = true WHERE fleet = %s AND account = %s", (self.fleet, account)
            )

    # -- the budget ---------------------------------------------------------------------------------

    def reserve(self, account: str, ask: Ask, lease_seconds: float) -> int | Refusal:
        """Take ``ask`` from the fleet's budget, or say which limit it would break.

        One statement, ``tradeguard_fleet_reserve`` (schema.py), in its own transaction: it locks the fleet's row,
        so reservations from every account are served one after the other and each sees every reservation and
        publication committed before it; and the lock is held only while the server works, never across a round
        trip to a client that the machine may not schedule for a while."""
        row = self._one(
            "SELECT * FROM tradeguard_fleet_reserve(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                self.fleet,
                account,
                ask.signal_id,
                ask.symbol,
                ask.lots,
                ask.currency_base,
                ask.currency_profit,
                ask.positions,
                lease_seconds,
            ),
        )
        reservation, code, used, cap, subject = row
        if reservation is not None:
            return int(reservation)
        return Refusal(code, f"{code}: {_REFUSALS[code](used, cap, subject, ask)}")

    def _one(self, sql: str, params: Sequence[Any]) -> Any:
        """One statement, its own transaction (autocommit): the one row it returns."""
        conn = self.connect()
        try:
            row = conn.execute(sql, params).fetchone()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.close()
            raise FleetUnreachable(f"fleet database unreachable: {_first_line(exc)}") from exc
        except psycopg.errors.RaiseException as exc:
            raise TradeguardError(_first_line(exc)) from exc
        return row

    def release(self, account: str, ids: Sequence[int]) -> None:
        if ids:
            with self.tx() as db:
                db.execute(
                    "DELETE FROM fleet_reservations WHERE fleet = %s AND account = %s AND id = ANY(%s)",
                    (self.fleet, account, list(ids)),
                )

    def warn_once(self, limit: str, day: date, account: str) -> bool:
        """Whether this call is the fleet's first warning of ``limit`` on ``day`` (one alert, not one per process)."""
        with self.tx() as db:
            row = db.execute(
                "INSERT INTO fleet_warnings (fleet, limit_name, day, account) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                (self.fleet, limit, day, account),
            ).fetchone()
            return row is not None

    # -- the whole fleet ----------------------------------------------------------------------------

    def totals(self, *, reserved: bool = False) -> Totals:
        """The fleet now. Exposure is what the accounts published (held and working), and with ``reserved`` what
        orders in flight reserved too: a fill is published a moment before its reservation is released, so the
        two together count it twice for that moment; limits are judged on the book alone."""
        with self.tx() as db:
            row = db.execute(
                "SELECT currency, limits, peak_equity FROM fleets WHERE name = %s", (self.fleet,)
            ).fetchone()
            if row is None:
                raise TradeguardError(f"no fleet {self.fleet!r} in this database (no account has joined it)")
            with db.cursor(row_factory=dict_row) as cur:
                accounts = cur.execute(
                    "SELECT account, login, server, currency, to_fleet, pid, host, equity, balance, day_pnl, "
                    "day_start_equity, kill_state, kill_trigger, stopped, started_at, published_at, "
                    "extract(epoch FROM now() - heartbeat_at)::float AS heartbeat_age, "
                    "(SELECT count(*) FROM fleet_book b WHERE b.fleet = a.fleet AND b.account = a.account "
                    " AND kind = 'position') AS positions, "
                    "(SELECT count(*) FROM fleet_book b WHERE b.fleet = a.fleet AND b.account = a.account "
                    " AND kind = 'order') AS orders "
                    "FROM fleet_accounts a WHERE fleet = %s ORDER BY account",
                    (self.fleet,),
                ).fetchall()
            totals = Totals(currency=row[0], limits=row[1], kill=self._kill(db), accounts=accounts, peak_equity=row[2])
            totals.equity = sum(a["equity"] * a["to_fleet"] for a in accounts)
            totals.day_pnl = sum(a["day_pnl"] * a["to_fleet"] for a in accounts)
            live = "SELECT symbol, lots, currency_base, currency_profit, 1 AS opens FROM fleet_book WHERE fleet = %(f)s"
            if reserved:
                live += (
                    " UNION ALL SELECT symbol, lots, currency_base, currency_profit, positions FROM fleet_reservations "
                    "WHERE fleet = %(f)s AND expires_at > now()"
                )
            args = {"f": self.fleet}
            totals.lots_by_symbol = dict(
                db.execute(f"SELECT symbol, sum(lots) FROM ({live}) l GROUP BY symbol", args).fetchall()
            )
            totals.lots_by_currency = dict(
                db.execute(
                    f"SELECT c, sum(lots) FROM (SELECT currency_base c, lots FROM ({live}) a UNION ALL SELECT "
                    f"currency_profit, lots FROM ({live}) b WHERE currency_profit <> currency_base) t GROUP BY c",
                    args,
                ).fetchall()
            )
            totals.positions = int(db.execute(f"SELECT coalesce(sum(opens), 0) FROM ({live}) l", args).fetchone()[0])  # type: ignore[index]
            totals.reservations = int(
                db.execute(
                    "SELECT count(*) FROM fleet_reservations WHERE fleet = %s AND expires_at > now()", (self.fleet,)
                ).fetchone()[0]  # type: ignore[index]
            )
            return totals


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
