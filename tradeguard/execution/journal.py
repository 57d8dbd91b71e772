"""The order journal: every intent, every state change and every fill, durable in the store.

An intent is written (state ``new``) before it is sent; its client id is derived from the journal
itself, so ids never repeat across restarts. Fills are unique by deal ticket: recording a deal
twice is a no-op, which is how ``on_fill`` fires exactly once per deal, across restarts too.

The store is the truth; the journal keeps a mirror of the rows it has read or written. A new intent's
entry is built from the values just inserted and the table's defaults (that commit is the one durable
write before ``order_send``; reading the row back added a third to it); every later write reads its
row back in the same transaction (not ``RETURNING``: SQLite 3.35+, newer than Debian 11's). Either way
the mirror holds what the file holds (a property test checks the new intent's), and an order's lookups
on its way (engine, risk guard) do not go back to the file. This process is the only writer of its
orders: it owns its client-id prefix, and no other part of tradeguard writes orders. The mirror keeps
the latest ``MIRROR_ROWS`` orders (and openers); an older one is read from the file again, so a process
that runs for months does not grow with its history.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from tradeguard.execution.states import check_transition
from tradeguard.models import DealEntry, Fill, OrderIntent, OrderState, OrderType, Side, TradeOutcome
from tradeguard.ports import JournalEntry
from tradeguard.store.sqlite import Store, iso


class Transition(NamedTuple):
    """A state change, to commit with a fill in the fill's own transaction (:meth:`Journal.record_fill`)."""

    target: OrderState
    when: datetime
    retcode: int | None = None
    message: str = ""
    broker_order: int | None = None
    attempts: int | None = None


class FillRecorded(NamedTuple):
    new: bool  # the deal was not journaled before
    left: OrderState | None  # the state the order left, when a transition was committed with the fill


#: what follows a fill, decided on the order as it stands after it (see :meth:`Journal.record_fill`)
Settle = Callable[[JournalEntry], Transition | None]

#: the deals that make an order the owner of its position: it opened it, or reversed it (netting)
OWNING_ENTRIES = (DealEntry.IN, DealEntry.INOUT)
OPEN_STATES = tuple(s.value for s in OrderState if not s.terminal)
OPEN_SQL = f"SELECT * FROM orders WHERE state IN ({', '.join('?' * len(OPEN_STATES))}) ORDER BY client_id"


def _entry(row: object) -> JournalEntry:
    r = dict(row)  # type: ignore[call-overload]
    return JournalEntry(
        client_id=r["client_id"],
        signal_id=r["signal_id"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        order_type=OrderType(r["order_type"]),
        volume=r["volume"],
        price=r["price"],
        stop_loss=r["stop_loss"],
        take_profit=r["take_profit"],
        position_ticket=r["position_ticket"],
        reduce_only=bool(r["reduce_only"]),
        state=OrderState(r["state"]),
        broker_order=r["broker_order"],
        filled_volume=r["filled_volume"],
        last_retcode=r["last_retcode"],
        last_message=r["last_message"],
        attempts=r["attempts"],
        created_at=datetime.fromisoformat(r["created_at"]),
        updated_at=datetime.fromisoformat(r["updated_at"]),
    )


ORDER_SQL = "SELECT * FROM orders WHERE client_id = ?"
#: orders (and position openers) the mirror keeps; the oldest beyond this are read from the file again
MIRROR_ROWS = 4096


def _row(db: sqlite3.Connection, client_id: str) -> sqlite3.Row | None:
    """An order's row as the open transaction leaves it."""
    row: sqlite3.Row | None = db.execute(ORDER_SQL, (client_id,)).fetchone()
    return row


def _apply(
    db: sqlite3.Connection, client_id: str, move: Transition, current: OrderState | None = None
) -> tuple[OrderState, sqlite3.Row]:
    """Move an order within the open transaction (refusing illegal moves): the state it left and its new row.
    ``current``: its state, when this transaction has just read it.

    A ``new`` order that the broker has answered passes through ``submitted`` in the same
    transaction: the intent's own commit is the one durable write before ``order_send``."""
    stamp, target = iso(move.when), move.target
    if current is None:
        row = db.execute("SELECT state FROM orders WHERE client_id = ?", (client_id,)).fetchone()
        if row is None:
            raise KeyError(f"no journaled order {client_id}")
        current = OrderState(row[0])
    if current is OrderState.NEW and target not in (OrderState.SUBMITTED, OrderState.REJECTED):
        check_transition(client_id, current, OrderState.SUBMITTED)
        db.execute(
            "INSERT INTO order_events (client_id, from_state, to_state, time, retcode, message) "
            "VALUES (?, 'new', 'submitted', ?, NULL, '')",
            (client_id, stamp),
        )
        current = OrderState.SUBMITTED
    check_transition(client_id, current, target)
    db.execute(
        "UPDATE orders SET state = ?, updated_at = ?, last_retcode = COALESCE(?, last_retcode), "
        "last_message = ?, broker_order = COALESCE(?, broker_order), attempts = COALESCE(?, attempts) "
        "WHERE client_id = ?",
        (target.value, stamp, move.retcode, move.message, move.broker_order, move.attempts, client_id),
    )
    row = _row(db, client_id)
    if row is None:  # the UPDATE above matched no order
        raise KeyError(client_id)
    db.execute(
        "INSERT INTO order_events (client_id, from_state, to_state, time, retcode, message) VALUES (?, ?, ?, ?, ?, ?)",
        (client_id, current.value, target.value, stamp, move.retcode, move.message),
    )
    return current, row


def _real(value: float | None) -> float | None:
    """What a REAL column gives back for ``value``."""
    return None if value is None else float(value)


def _keep(mirror: dict[Any, Any], key: Any, value: Any) -> None:
    """``mirror[key] = value``, dropping the oldest entry past ``MIRROR_ROWS`` (dicts keep insertion order)."""
    mirror[key] = value
    if len(mirror) > MIRROR_ROWS:
        del mirror[next(iter(mirror))]


class Journal:
    def __init__(self, store: Store, instance: str) -> None:
        self.store = store
        self.prefix = f"{instance}-"
        # the last sequence number in use: one primary-key range read at start; this process then owns it
        upper = self.prefix[:-1] + chr(ord("-") + 1)
        rows = store.query(
            "SELECT client_id FROM orders WHERE client_id >= ? AND client_id < ? ORDER BY client_id DESC LIMIT 1",
            (self.prefix, upper),
        )
        self._seq = int(rows[0][0][len(self.prefix) :]) if rows else 0
        self._rows: dict[str, JournalEntry] = {}  # client id -> its row as last committed or read
        self._open: dict[str, JournalEntry] | None = None  # every open order, once read from the file
        self._owner: dict[int, str] = {}  # position id -> client id of the order that last opened or reversed it

    def create(self, order: OrderIntent, when: datetime) -> str:
        """Journal ``order`` as ``new`` and return its client id, in one durable transaction."""
        stamp = iso(when)
        with self.store.tx() as db:
            client_id = f"{self.prefix}{self._seq + 1:08d}"
            db.execute(
                "INSERT INTO orders (client_id, signal_id, strategy, symbol, side, order_type, volume, price, "
                "stop_loss, take_profit, position_ticket, reduce_only, state, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    client_id,
                    order.signal_id,
                    order.strategy,
                    order.symbol,
                    order.side.value,
                    order.order_type.value,
                    order.volume,
                    order.price,
                    order.stop_loss,
                    order.take_profit,
                    order.position_ticket,
                    int(order.reduce_only),
                    OrderState.NEW.value,
                    stamp,
                    stamp,
                ),
            )
        self._seq += 1  # only once the row is committed
        at = datetime.fromisoformat(str(stamp))  # the stored text's time, as a read-back would give it
        self._remember(
            JournalEntry(
                client_id,
                order.signal_id,
                order.symbol,
                order.side,
                order.order_type,
                float(order.volume),
                _real(order.price),
                _real(order.stop_loss),
                _real(order.take_profit),
                order.position_ticket,
                bool(order.reduce_only),
                OrderState.NEW,
                0,
                0.0,
                None,
                "",
                0,
                at,
                at,
            )
        )  # the defaults
        return client_id

    def _remember(self, entry: JournalEntry) -> None:
        """Mirror a committed row (called after its transaction, never inside one that may roll back)."""
        _keep(self._rows, entry.client_id, entry)
        if self._open is not None:
            if entry.state.terminal:
                self._open.pop(entry.client_id, None)
            else:
                self._open[entry.client_id] = entry

    def get(self, client_id: str) -> JournalEntry | None:
        entry = self._rows.get(client_id)
        if entry is not None:
            return entry
        rows = self.store.query(ORDER_SQL, (client_id,))
        if not rows:
            return None
        entry = _entry(rows[0])
        _keep(self._rows, client_id, entry)
        return entry

    def owns(self, comment: str) -> bool:
        return comment.startswith(self.prefix)

    def open_entries(self) -> list[JournalEntry]:
        """Every order not in a terminal state (new, submitted, accepted, partially filled, unknown),
        in client-id order. Read from the file once; then the mirror answers (orders only become open
        through :meth:`create`, and change state only through this journal)."""
        if self._open is None:
            rows = self.store.query(OPEN_SQL, OPEN_STATES)  # IN, not NOT IN: the state index answers it
            self._open = {}
            for r in rows:
                entry = _entry(r)
                self._open[entry.client_id] = entry
                _keep(self._rows, entry.client_id, entry)
        return [self._open[k] for k in sorted(self._open)]

    def entries(self) -> list[JournalEntry]:
        return [_entry(r) for r in self.store.query("SELECT * FROM orders ORDER BY client_id")]

    def transition(
        self,
        client_id: str,
        target: OrderState,
        when: datetime,
        *,
        retcode: int | None = None,
        message: str = "",
        broker_order: int | None = None,
        attempts: int | None = None,
    ) -> OrderState:
        """Move an order to ``target`` (refusing illegal moves, see :func:`_apply`); returns the state it left."""
        move = Transition(target, when, retcode, message, broker_order, attempts)
        with self.store.tx() as db:
            current, row = _apply(db, client_id, move)
        self._remember(_entry(row))
        return current

    def record_fill(self, fill: Fill, settle: Settle | None = None, *, executes: bool = True) -> FillRecorded:
        """Store a deal once and, if it ``executes`` the order, add its volume to the order's filled volume;
        ``new`` says whether it was new. A later deal of the position the order opened (a stop, a take
        profit, a stop-out) is attributed to the order, for its P&L, but executes nothing of it.

        ``settle`` is asked, in the same transaction, with the order as it stands after the deal (recorded
        now or before), for the transition that follows (``filled``, typically): fill and state are then
        one commit, not two, and never seen apart after a crash."""
        row, left = None, None
        with self.store.tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO fills (deal_ticket, order_ticket, position_id, client_id, symbol, side, entry, "
                "volume, price, commission, swap, profit, magic, comment, time, planned_risk, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fill.deal_ticket,
                    fill.order_ticket,
                    fill.position_id,
                    fill.client_id,
                    fill.symbol,
                    fill.side.value,
                    fill.entry.value,
                    fill.volume,
                    fill.price,
                    fill.commission,
                    fill.swap,
                    fill.profit,
                    fill.magic,
                    fill.comment,
                    iso(fill.time),
                    fill.planned_risk,
                    fill.outcome.model_dump_json() if fill.outcome else None,
                ),
            )
            new = cur.rowcount == 1
            if new and fill.client_id and executes:
                db.execute(
                    "UPDATE orders SET filled_volume = round(filled_volume + ?, 8) WHERE client_id = ?",
                    (fill.volume, fill.client_id),
                )
            if fill.client_id and ((new and executes) or settle is not None):  # the row moved, or is asked
                row = _row(db, fill.client_id)
                if settle is not None and row is not None:
                    entry = _entry(row)
                    move = settle(entry)
                    if move is not None:
                        left, row = _apply(db, fill.client_id, move, entry.state)
        if row is not None:
            self._remember(_entry(row))
        if new and fill.client_id and executes and fill.entry in OWNING_ENTRIES:
            _keep(self._owner, fill.position_id, fill.client_id)
        return FillRecorded(new, left)

    def fills(self, client_id: str | None = None) -> list[Fill]:
        sql = "SELECT * FROM fills" + (" WHERE client_id = ?" if client_id else "") + " ORDER BY deal_ticket"
        return [
            Fill(
                deal_ticket=r["deal_ticket"],
                order_ticket=r["order_ticket"],
                position_id=r["position_id"],
                client_id=r["client_id"],
                symbol=r["symbol"],
                side=r["side"],
                entry=r["entry"],
                volume=r["volume"],
                price=r["price"],
                commission=r["commission"],
                swap=r["swap"],
                profit=r["profit"],
                magic=r["magic"],
                comment=r["comment"],
                time=datetime.fromisoformat(r["time"]).astimezone(UTC),
                planned_risk=r["planned_risk"],
                outcome=TradeOutcome.model_validate_json(r["outcome"]) if r["outcome"] else None,
            )
            for r in self.store.query(sql, (client_id,) if client_id else ())
        ]

    def position_deals(self, position_id: int) -> list[tuple[str, float, float | None, float, float, float]]:
        """The position's journaled deals in ticket order, as :func:`execution.outcomes.trade_so_far` reads them."""
        return [
            tuple(r)
            for r in self.store.query(
                "SELECT side, volume, planned_risk, profit, commission, swap FROM fills WHERE position_id = ? "
                "ORDER BY deal_ticket",
                (position_id,),
            )
        ]

    def client_for_position(self, position_id: int) -> str:
        """The client id of the order whose exposure a broker's deal on ``position_id`` changes (a stop, a target,
        a stop-out, a close at the terminal): the order that last opened or reversed the position, whose stop
        and target it carries. After a netting reversal that is the reversing order, although MT5 keeps the
        position's identifier and its first order's comment."""
        owner = self._owner.get(position_id)
        if owner is not None:
            return owner
        rows = self.store.query(
            "SELECT client_id FROM fills WHERE position_id = ? AND client_id != '' "
            "AND comment = client_id AND entry IN ('in', 'inout') "
            "ORDER BY deal_ticket DESC LIMIT 1",
            (position_id,),
        )
        return rows[0][0] if rows else ""
