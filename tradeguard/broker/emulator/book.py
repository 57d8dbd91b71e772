"""The trade server's records: positions, orders (working and historical) and deals.

Mutable while they live in the emulator; handed out as the real MetaTrader5 named tuples.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from tradeguard.broker import constants
from tradeguard.broker.emulator.structures import TradeDeal, TradeOrder, TradePosition

BUY_TYPES = frozenset(
    {
        constants.ORDER_TYPE_BUY,
        constants.ORDER_TYPE_BUY_LIMIT,
        constants.ORDER_TYPE_BUY_STOP,
        constants.ORDER_TYPE_BUY_STOP_LIMIT,
    }
)


@dataclass(slots=True)
class Position:
    ticket: int
    identifier: int
    symbol: str
    is_buy: bool
    volume: float
    price_open: float
    sl: float
    tp: float
    magic: int
    comment: str
    time_msc: int
    time_update_msc: int
    reason: int = constants.POSITION_REASON_EXPERT
    price_current: float = 0.0
    margin: float = 0.0
    swap: float = 0.0  # charged at each server midnight it was held over, in the account currency

    def as_tuple(self, profit: float) -> TradePosition:
        return TradePosition(
            ticket=self.ticket,
            time=self.time_msc // 1000,
            time_msc=self.time_msc,
            time_update=self.time_update_msc // 1000,
            time_update_msc=self.time_update_msc,
            type=constants.POSITION_TYPE_BUY if self.is_buy else constants.POSITION_TYPE_SELL,
            magic=self.magic,
            identifier=self.identifier,
            reason=self.reason,
            volume=self.volume,
            price_open=self.price_open,
            sl=self.sl,
            tp=self.tp,
            price_current=self.price_current,
            swap=self.swap,
            profit=profit,
            symbol=self.symbol,
            comment=self.comment,
            external_id="",
        )


@dataclass(slots=True)
class Order:
    ticket: int
    symbol: str
    type: int
    volume_initial: float
    volume_current: float
    price_open: float
    sl: float
    tp: float
    price_stoplimit: float
    magic: int
    comment: str
    type_filling: int
    type_time: int
    time_expiration: int
    time_setup_msc: int
    state: int = constants.ORDER_STATE_PLACED
    time_done_msc: int = 0
    position_id: int = 0
    position_by_id: int = 0
    reason: int = constants.ORDER_REASON_EXPERT
    price_current: float = 0.0

    @property
    def is_buy(self) -> bool:
        return self.type in BUY_TYPES

    def as_tuple(self) -> TradeOrder:
        return TradeOrder(
            ticket=self.ticket,
            time_setup=self.time_setup_msc // 1000,
            time_setup_msc=self.time_setup_msc,
            time_done=self.time_done_msc // 1000,
            time_done_msc=self.time_done_msc,
            time_expiration=self.time_expiration,
            type=self.type,
            type_time=self.type_time,
            type_filling=self.type_filling,
            state=self.state,
            magic=self.magic,
            position_id=self.position_id,
            position_by_id=self.position_by_id,
            reason=self.reason,
            volume_initial=self.volume_initial,
            volume_current=self.volume_current,
            price_open=self.price_open,
            sl=self.sl,
            tp=self.tp,
            price_current=self.price_current,
            price_stoplimit=self.price_stoplimit,
            symbol=self.symbol,
            comment=self.comment,
            external_id="",
        )


@dataclass(slots=True)
class Deal:
    ticket: int
    order: int
    time_msc: int
    type: int
    entry: int
    magic: int
    position_id: int
    reason: int
    volume: float
    price: float
    commission: float
    profit: float
    symbol: str
    comment: str
    swap: float = 0.0  # a closing deal's: the swap its position had accrued on the volume it closes

    def as_tuple(self) -> TradeDeal:
        return TradeDeal(
            ticket=self.ticket,
            order=self.order,
            time=self.time_msc // 1000,
            time_msc=self.time_msc,
            type=self.type,
            entry=self.entry,
            magic=self.magic,
            position_id=self.position_id,
            reason=self.reason,
            volume=self.volume,
            price=self.price,
            commission=self.commission,
            swap=self.swap,
            profit=self.profit,
            fee=0.0,
            symbol=self.symbol,
            comment=self.comment,
            external_id="",
        )


@dataclass
class Book:
    """Every record of the account, and the ticket counters (orders and deals have their own)."""

    positions: dict[int, Position] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    history_orders: list[Order] = field(default_factory=list)
    deals: list[Deal] = field(default_factory=list)
    closed_positions: set[int] = field(default_factory=set)
    next_order: int = 1_000_001
    next_deal: int = 2_000_001
    # indexes for history queries: by order ticket, by position, and the (ascending) times
    deals_by_order: dict[int, list[Deal]] = field(default_factory=dict)
    deals_by_position: dict[int, list[Deal]] = field(default_factory=dict)
    deal_times: list[int] = field(default_factory=list)
    orders_by_ticket: dict[int, Order] = field(default_factory=dict)
    orders_by_position: dict[int, list[Order]] = field(default_factory=dict)
    order_times: list[int] = field(default_factory=list)

    def add_deal(self, deal: Deal) -> None:
        self.deals.append(deal)
        self.deal_times.append(deal.time_msc)
        self.deals_by_order.setdefault(deal.order, []).append(deal)
        self.deals_by_position.setdefault(deal.position_id, []).append(deal)

    def add_history_order(self, order: Order) -> None:
        self.history_orders.append(order)
        self.order_times.append(order.time_done_msc)
        self.orders_by_ticket[order.ticket] = order
        self.orders_by_position.setdefault(order.position_id, []).append(order)

    def order_ticket(self) -> int:
        self.next_order += 1
        return self.next_order - 1

    def deal_ticket(self) -> int:
        self.next_deal += 1
        return self.next_deal - 1


def group_match(symbol: str, group: str) -> bool:
    """MT5 group filter: comma-separated ``*`` masks, ``!`` excludes; later masks win."""
    verdict = False
    for mask in (m.strip() for m in group.split(",")):
        if not mask:
            continue
        if mask.startswith("!"):
            if fnmatch.fnmatchcase(symbol, mask[1:]):
                verdict = False
        elif fnmatch.fnmatchcase(symbol, mask):
            verdict = True
    return verdict
