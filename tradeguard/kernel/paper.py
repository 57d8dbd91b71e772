"""Paper execution: fills market orders in-process at their price, with no broker behind it.

It is an ``Execution`` (tradeguard/ports.py) and fires the same hooks (``on_order_event``, ``on_fill``
once per deal), so the pipeline, the risk plugins and their tests run end to end before a terminal is
configured. It has no price feed, so it refuses pending orders rather than pretending to work them,
and no journal (``journal`` is None): there is nothing to align or resolve after a restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradeguard.models import (
    DealEntry,
    Fill,
    OrderEvent,
    OrderIntent,
    OrderState,
    OrderType,
    Position,
    Side,
)
from tradeguard.ports import Held, JournalEntry, JournalView

if TYPE_CHECKING:
    from tradeguard.kernel.runtime import Runtime


class PaperExecution:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._seq = 0
        self._positions: dict[int, Position] = {}
        self._unpolled: list[Fill] = []

    def _event(self, client_id: str, kind: OrderState, symbol: str, message: str = "") -> None:
        event = OrderEvent(client_id=client_id, kind=kind, time=self._rt.clock.now(), symbol=symbol, message=message)
        self._rt.notify("on_order_event", event=event)

    def submit_order(self, order: OrderIntent) -> str:
        if order.order_type is not OrderType.MARKET:
            raise ValueError(f"order_type {order.order_type.value!r}: paper execution fills market orders only")
        if order.price is None:
            raise ValueError("price: paper execution needs the order's price to fill a market order")
        if order.position_ticket is not None and order.position_ticket not in self._positions:
            raise ValueError(f"position_ticket {order.position_ticket}: no such open position")
        self._seq += 1
        client_id = f"{self._rt.settings.runtime.instance}-{self._seq:08d}"
        self._event(client_id, OrderState.SUBMITTED, order.symbol)
        self._event(client_id, OrderState.ACCEPTED, order.symbol)
        now = self._rt.clock.now()
        if order.position_ticket is not None:
            ticket, entry = order.position_ticket, DealEntry.OUT
            held = self._positions[ticket]
            left = round(held.volume - order.volume, 8)
            if left <= 0:
                del self._positions[ticket]
            else:
                self._positions[ticket] = held.model_copy(update={"volume": left})
        else:
            ticket, entry = self._seq, DealEntry.IN
            self._positions[ticket] = Position(
                ticket=ticket,
                symbol=order.symbol,
                side=order.side,
                volume=order.volume,
                price_open=order.price,
                stop_loss=order.stop_loss,
                take_profit=order.take_profit,
                magic=self._rt.settings.runtime.magic,
                comment=client_id,
                client_id=client_id,
                opened_at=now,
            )
        fill = Fill(
            deal_ticket=self._seq,
            order_ticket=self._seq,
            position_id=ticket,
            client_id=client_id,
            symbol=order.symbol,
            side=order.side,
            entry=entry,
            volume=order.volume,
            price=order.price,
            magic=self._rt.settings.runtime.magic,
            comment=client_id,
            time=now,
        )
        self._unpolled.append(fill)
        self._event(client_id, OrderState.FILLED, order.symbol)
        self._rt.notify("on_fill", fill=fill)
        return client_id

    def modify_order(self, ticket: int, stop_loss: float | None, take_profit: float | None) -> bool:
        """Change a position's protective levels; False when the ticket is unknown."""
        held = self._positions.get(ticket)
        if held is None:
            return False
        self._positions[ticket] = held.model_copy(update={"stop_loss": stop_loss, "take_profit": take_profit})
        return True

    @property
    def journal(self) -> JournalView | None:
        """Nothing is journaled: paper orders fill or fail within ``submit_order``."""
        return None

    def cancel_order(self, client_id: str, reason: str = "cancelled") -> bool:
        """Paper execution never has working orders, so there is nothing to cancel."""
        return False

    def close_position(self, ticket: int, volume: float | None = None, why: str = "close") -> str:
        """Close at the broker's current quote (paper fills at the order's price: here, the market's)."""
        held = self._positions.get(ticket)
        if held is None:
            raise ValueError(f"position {ticket}: not open")
        quote = self._rt.broker.quote(held.symbol)
        order = OrderIntent(
            symbol=held.symbol,
            side=held.side.opposite,
            volume=volume or held.volume,
            price=quote.bid if held.side is Side.BUY else quote.ask,
            position_ticket=ticket,
            reduce_only=True,
            created_at=self._rt.clock.now(),
            strategy=why,
        )
        return self.submit_order(order)

    def flatten_all(self) -> list[str]:
        return [self.close_position(ticket, why="flatten") for ticket in list(self._positions)]

    def poll_fills(self, *, heal: bool = False) -> list[Fill]:
        fills, self._unpolled = self._unpolled, []
        return fills

    def get_open_orders(self) -> list[JournalEntry]:
        return []

    def get_positions_snapshot(self) -> list[Position]:
        return list(self._positions.values())

    def held_positions(self) -> dict[int, Held]:
        return {t: Held(p.symbol, p.volume if p.side is Side.BUY else -p.volume) for t, p in self._positions.items()}

    def expected_levels(self, position_id: int) -> tuple[float, float] | None:
        held = self._positions.get(position_id)
        return None if held is None else (held.stop_loss or 0.0, held.take_profit or 0.0)

    def resolve(self, client_id: str) -> bool:
        """Paper orders are final when ``submit_order`` returns: none is ever in doubt."""
        raise KeyError(client_id)

    def mark_lost(self, client_id: str, why: str) -> None:
        raise KeyError(client_id)
