"""The fleet database's statements: the fleet's row (limits, kill switch), each account's rows (figures, book,
heartbeat), the budget's reservations, and the fleet's totals.

What a process publishes is its own rows and takes no lock of the fleet's. A reservation is one server-side
statement that locks the fleet's row (``tradeguard_fleet_reserve``, schema.py), so reservations from every
account are served one after the other; kills, resets and changes of limits lock it too and are chained in the
fleet's record (record.py). Errors reaching the server: connection.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, astuple, dataclass, field
from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tradeguard.errors import TradeguardError
from tradeguard.fleet import record
from tradeguard.fleet.connection import FleetConnection, FleetUnreachable
from tradeguard.fleet.schema import CHANNEL
from tradeguard.models import KillState

__all__ = ["AccountFigures", "Ask", "BookRow", "FleetDB", "FleetKill", "FleetUnreachable", "Refusal", "Totals"]


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
    peak_equity: float = 0.0  # the account tracker's, which deposits and withdrawals move

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
    below_peaks: float = 0.0
    lots_by_symbol: dict[str, float] = field(default_factory=dict)
    lots_by_currency: dict[str, float] = field(default_factory=dict)
    positions: int = 0
    reservations: int = 0

    @property
    def drawdown_pct(self) -> float:
        """How far each account sits under its own peak, summed, in percent of the peaks' sum: an account's deposit
        or withdrawal moves its own peak (the account tracker's), never the fleet's drawdown."""
        return round(self.below_peaks / self.peak_equity * 100, 4) if self.peak_equity > 0 else 0.0

    def uses(self) -> list[tuple[str, float, float]]:
        """``(limit, used, limit value)`` for every limit that is on; the worst symbol and currency stand for theirs."""
        lim = self.limits
        rows = [
            ("daily_loss", max(0.0, -self.day_pnl), lim.get("daily_loss", 0)),
            ("max_drawdown_pct", self.drawdown_pct, lim.get("max_drawdown_pct", 0)),
            ("max_lots_per_symbol", max(self.lots_by_symbol.values(), default=0.0), lim.get("max_lots_per_symbol", 0)),
            (
                "max_lots_per_currency",
                max(self.lots_by_currency.values(), default=0.0),
                lim.get("max_lots_per_currency", 0),
            ),
            ("max_open_positions", float(self.positions), lim.get("max_open_positions", 0)),
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
        f"the fleet's accounts are {used:.2f}% under their peaks >= {cap:g}% (fleet_risk.max_drawdown_pct)"
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


class FleetDB(FleetConnection):
    """The statements of one fleet, on one connection (one thread's)."""

    # -- the fleet's row: limits and kill switch ------------------------------------------------------

    def join(self, currency: str, limits: Mapping[str, Any]) -> dict[str, Any]:
        """Create the fleet if it is new (with these limits) and check its currency; the fleet's limits. They are
        the database's from then on: only :meth:`set_limits` (``tradeguard fleet limits``) changes them."""
        with self.tx() as db:
            db.execute(
                "INSERT INTO fleets (name, currency, limits) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
                (self.fleet, currency, Jsonb(dict(limits))),
            )
            row = db.execute("SELECT currency, limits FROM fleets WHERE name = %s", (self.fleet,)).fetchone()
        assert row is not None
        if row[0] != currency:
            raise TradeguardError(
                f"fleet {self.fleet!r} reports in {row[0]}; this process says {currency} (fleet.currency)"
            )
        return dict(row[1])

    def set_limits(self, limits: Mapping[str, Any], *, operator: str, via: str, auth: str, reason: str) -> list[str]:
        """Make these the fleet's limits; the changes (``key: old -> new``), chained in the fleet's record."""
        with self.tx() as db:
            row = db.execute("SELECT limits FROM fleets WHERE name = %s FOR UPDATE", (self.fleet,)).fetchone()
            if row is None:
                raise TradeguardError(f"no fleet {self.fleet!r} in this database (no account has joined it)")
            old: dict[str, Any] = row[0]
            changes = [f"{k}: {old.get(k)} -> {v}" for k, v in sorted(limits.items()) if old.get(k) != v]
            if changes:
                db.execute("UPDATE fleets SET limits = %s WHERE name = %s", (Jsonb(dict(limits)), self.fleet))
                message = f"{reason}: {'; '.join(changes)}"
                record.append(db, self.fleet, "limits", message=message, operator=operator, via=via, auth=auth)
            return changes

    def limits(self) -> dict[str, Any]:
        row = self.one("SELECT limits FROM fleets WHERE name = %s", (self.fleet,))
        if row is None:
            raise TradeguardError(f"no fleet {self.fleet!r} in this database (no account has joined it)")
        return dict(row[0])

    def kill_state(self) -> FleetKill:
        return self._kill(self.connect())

    def _kill(self, db: psycopg.Connection[Any]) -> FleetKill:
        with self._reaching():
            row = db.execute(
                "SELECT f.kill_state, f.kill_trigger, f.kill_event, coalesce(e.message, ''), coalesce(e.operator, ''), "
                "coalesce(e.via, ''), coalesce(e.auth, '') FROM fleets f "
                "LEFT JOIN fleet_events e ON e.id = f.kill_event WHERE f.name = %s",
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
            if KillState(state).rank <= KillState(row[0]).rank:
                return None
            fields = {"trigger": trigger, "message": message, "operator": operator, "via": via, "auth": auth}
            event = record.append(db, self.fleet, "kill", from_state=row[0], to_state=state, account=account, **fields)
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
            fields = {"message": message, "operator": operator, "via": via, "auth": auth}
            event = record.append(
                db, self.fleet, "reset", from_state=row[0], to_state="ACTIVE", trigger="reset", **fields
            )
            db.execute(
                "UPDATE fleets SET kill_state = 'ACTIVE', kill_trigger = '', kill_event = %s WHERE name = %s",
                (event, self.fleet),
            )
            db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self.fleet))
        return FleetKill("ACTIVE", "", event, message, operator, via, auth)

    def record(self, kind: str, message: str, *, operator: str, via: str, auth: str = "", account: str = "") -> int:
        """An event in the fleet's record that moves nothing (a refused reset)."""
        with self.tx() as db:
            db.execute("SELECT 1 FROM fleets WHERE name = %s FOR UPDATE", (self.fleet,))
            fields = {"message": message, "operator": operator, "via": via, "auth": auth, "account": account}
            return record.append(db, self.fleet, kind, **fields)

    def events(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.tx() as db, db.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                "SELECT * FROM fleet_events WHERE fleet = %s ORDER BY id DESC LIMIT %s", (self.fleet, limit)
            ).fetchall()
        return list(reversed(rows))

    def verify_record(self) -> tuple[int, str]:
        """``(events checked, what is wrong or '')``."""
        with self.tx() as db:
            return record.verify(db, self.fleet)

    # -- one account's rows ---------------------------------------------------------------------------

    def claim(self, account: str, figures: AccountFigures, pid: int, host: str, stale_after: float) -> None:
        """Take the account's row for this process: refused while another live process holds it, or when the label
        belongs to another MT5 account. What a dead predecessor reserved is dropped: the book this process
        publishes next shows what its orders became."""
        with self.tx() as db:
            row = db.execute(
                "SELECT pid, host, login, server, stopped, extract(epoch FROM now() - heartbeat_at) "
                "FROM fleet_accounts WHERE fleet = %s AND account = %s FOR UPDATE",
                (self.fleet, account),
            ).fetchone()
            if row is not None:
                other_pid, other_host, login, server, stopped, age = row
                if login and (login, server) != (figures.login, figures.server):
                    raise TradeguardError(
                        f"fleet account {account!r} is MT5 account {login}@{server}, not {figures.login}@"
                        f"{figures.server}: give this process its own label (fleet.account)"
                    )
                alive = not stopped and age is not None and float(age) < stale_after
                if alive and (other_pid, other_host) != (pid, host):
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
            db.execute("DELETE FROM fleet_reservations WHERE fleet = %s AND account = %s", (self.fleet, account))

    def publish_account(self, account: str, f: AccountFigures, kill_state: str, kill_trigger: str) -> None:
        self.one(
            "UPDATE fleet_accounts SET equity = %s, balance = %s, day_start_equity = %s, day_pnl = %s, "
            "peak_equity = %s, to_fleet = %s, kill_state = %s, kill_trigger = %s, published_at = now(), "
            "heartbeat_at = now() WHERE fleet = %s AND account = %s RETURNING 1",
            (
                f.equity,
                f.balance,
                f.day_start_equity,
                f.day_pnl,
                max(f.peak_equity, f.equity),
                f.to_fleet,
                kill_state,
                kill_trigger,
                self.fleet,
                account,
            ),
        )

    def publish_book(
        self,
        account: str,
        rows: Sequence[BookRow],
        *,
        release: Sequence[int] = (),
        shrink: Mapping[int, float] | None = None,
        release_all: bool = False,
    ) -> None:
        """Replace the account's book and settle the reservations it now accounts for, in one transaction: a
        reservation is never missing before what it became is published. ``release``: orders settled (filled,
        placed, refused); ``shrink``: partly filled orders, to the lots still to fill; ``release_all``: the book
        after an outage or a start, which shows what every earlier order became."""
        with self.tx() as db:
            db.execute("DELETE FROM fleet_book WHERE fleet = %s AND account = %s", (self.fleet, account))
            if rows:
                with db.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO fleet_book (fleet, account, kind, ticket, symbol, side, lots, currency_base, "
                        "currency_profit) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [(self.fleet, account, *astuple(r)) for r in rows],
                    )
            if release_all:
                db.execute("DELETE FROM fleet_reservations WHERE fleet = %s AND account = %s", (self.fleet, account))
            elif release:
                db.execute(
                    "DELETE FROM fleet_reservations WHERE fleet = %s AND account = %s AND id = ANY(%s)",
                    (self.fleet, account, list(release)),
                )
            for reservation, rest in (shrink or {}).items():
                db.execute("UPDATE fleet_reservations SET lots = %s WHERE id = %s", (rest, reservation))
            db.execute(
                "UPDATE fleet_accounts SET published_at = now() WHERE fleet = %s AND account = %s",
                (self.fleet, account),
            )

    def heartbeat(self, account: str) -> FleetKill:
        """The trading thread is alive: the account's row says so; and the fleet's kill (the polling fallback)."""
        self.one(
            "UPDATE fleet_accounts SET heartbeat_at = now() WHERE fleet = %s AND account = %s RETURNING 1",
            (self.fleet, account),
        )
        return self.kill_state()

    def renew(self, account: str, reservations: Sequence[int], lease_seconds: float) -> None:
        """Extend the leases of the reservations this process still holds (and only those)."""
        if reservations:
            self.one(
                "UPDATE fleet_reservations SET expires_at = clock_timestamp() + make_interval(secs => %s) "
                "WHERE fleet = %s AND account = %s AND id = ANY(%s) RETURNING 1",
                (lease_seconds, self.fleet, account, list(reservations)),
            )

    def saw_kill(self, account: str, event: int) -> None:
        """Record when this account's process learnt of the fleet's kill event (propagation is measured on it)."""
        self.one(
            "UPDATE fleet_accounts SET fleet_kill_seen = %s, fleet_kill_seen_at = clock_timestamp() "
            "WHERE fleet = %s AND account = %s AND fleet_kill_seen < %s RETURNING 1",
            (event, self.fleet, account, event),
        )

    def stop(self, account: str) -> None:
        """A clean stop: the row says so, and nothing stays reserved."""
        with self.tx() as db:
            db.execute("DELETE FROM fleet_reservations WHERE fleet = %s AND account = %s", (self.fleet, account))
            db.execute(
                "UPDATE fleet_accounts SET stopped = true WHERE fleet = %s AND account = %s", (self.fleet, account)
            )

    # -- the budget -----------------------------------------------------------------------------------

    def reserve(self, account: str, ask: Ask, lease_seconds: float) -> int | Refusal:
        """Take ``ask`` from the fleet's budget, or say which limit it would break.

        One statement, ``tradeguard_fleet_reserve`` (schema.py), in its own transaction: it locks the fleet's row,
        so reservations from every account are served one after the other and each sees every reservation and
        publication committed before it; and the lock is held only while the server works, never across a round
        trip to a client that the machine may not schedule for a while."""
        reservation, code, used, cap, subject = self.one(
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
        if reservation is not None:
            return int(reservation)
        return Refusal(code, f"{code}: {_REFUSALS[code](used, cap, subject, ask)}")

    def release(self, account: str, ids: Sequence[int]) -> None:
        if ids:
            self.one(
                "DELETE FROM fleet_reservations WHERE fleet = %s AND account = %s AND id = ANY(%s) RETURNING 1",
                (self.fleet, account, list(ids)),
            )

    def once(self, what: str, day: date, account: str) -> bool:
        """Whether this call is the fleet's first of ``what`` on ``day`` (one alert for the fleet, not one per
        process or per pass)."""
        row = self.one(
            "INSERT INTO fleet_warnings (fleet, limit_name, day, account) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            (self.fleet, what, day, account),
        )
        return row is not None

    # -- the whole fleet ------------------------------------------------------------------------------

    def totals(self, *, reserved: bool = False) -> Totals:
        """The fleet now. Exposure is what the accounts published (held and working), and with ``reserved`` what
        orders in flight reserved too: a fill is published a moment before its reservation is released, so the
        two together count it twice for that moment; limits are judged on the book alone."""
        with self.tx() as db:
            row = db.execute("SELECT currency, limits FROM fleets WHERE name = %s", (self.fleet,)).fetchone()
            if row is None:
                raise TradeguardError(f"no fleet {self.fleet!r} in this database (no account has joined it)")
            with db.cursor(row_factory=dict_row) as cur:
                accounts = cur.execute(
                    "SELECT account, login, server, currency, to_fleet, pid, host, equity, balance, day_pnl, "
                    "day_start_equity, peak_equity, kill_state, kill_trigger, stopped, started_at, published_at, "
                    "extract(epoch FROM now() - heartbeat_at)::float AS heartbeat_age, "
                    "(SELECT count(*) FROM fleet_book b WHERE b.fleet = a.fleet AND b.account = a.account "
                    " AND kind = 'position') AS positions, "
                    "(SELECT count(*) FROM fleet_book b WHERE b.fleet = a.fleet AND b.account = a.account "
                    " AND kind = 'order') AS orders, "
                    "(SELECT coalesce(jsonb_object_agg(symbol, lots), '{}') FROM (SELECT symbol, sum(lots) AS lots "
                    " FROM fleet_book b WHERE b.fleet = a.fleet AND b.account = a.account GROUP BY symbol) x) "
                    "AS exposure "
                    "FROM fleet_accounts a WHERE fleet = %s ORDER BY account",
                    (self.fleet,),
                ).fetchall()
            totals = Totals(currency=row[0], limits=row[1], kill=self._kill(db), accounts=accounts)
            totals.equity = sum(a["equity"] * a["to_fleet"] for a in accounts)
            totals.day_pnl = sum(a["day_pnl"] * a["to_fleet"] for a in accounts)
            totals.peak_equity = sum(a["peak_equity"] * a["to_fleet"] for a in accounts)
            totals.below_peaks = sum(max(0.0, a["peak_equity"] - a["equity"]) * a["to_fleet"] for a in accounts)
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
            positions = db.execute(f"SELECT coalesce(sum(opens), 0) FROM ({live}) l", args).fetchone()
            totals.positions = int(positions[0]) if positions else 0
            count = db.execute(
                "SELECT count(*) FROM fleet_reservations WHERE fleet = %s AND expires_at > now()", (self.fleet,)
            ).fetchone()
            totals.reservations = int(count[0]) if count else 0
            return totals
