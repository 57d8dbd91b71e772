"""Typed, UTC views of what the terminal returns; the rest of tradeguard never sees raw tuples.

The records read on every pass (quotes, the account, positions, deals) are named tuples: immutable like the
terminal's own structures, and built in a sixth of the time a frozen dataclass takes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from tradeguard.broker.retcodes import RetcodeClass
from tradeguard.errors import TradeguardError
from tradeguard.models import ClosedBy, DealEntry, OrderState, OrderType, Side

#: the bounds of "all history" (MetaTrader 5 has no deal before 2000)
HISTORY_START, HISTORY_END = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


class BrokerError(TradeguardError):
    """The terminal refused or failed a call; ``last_error`` is the terminal's ``(code, message)``."""

    def __init__(self, message: str, last_error: tuple[int, str] | None = None) -> None:
        self.last_error = last_error
        super().__init__(message + (f" (last_error {last_error[0]}: {last_error[1]})" if last_error else ""))


class OrderRefused(TradeguardError):
    """A request tradeguard refuses before it reaches ``order_send``; ``field`` names the culprit."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    name: str
    digits: int
    point: float
    tick_size: float
    tick_value: float
    contract_size: float
    volume_min: float
    volume_max: float
    volume_step: float
    volume_limit: float
    stops_level: int
    freeze_level: int
    filling_mode: int
    expiration_mode: int
    order_mode: int
    trade_mode: int
    exemode: int
    calc_mode: int
    currency_base: str
    currency_profit: str
    currency_margin: str

    def money(self, distance: float, lots: float) -> float:
        """What ``lots`` gain or lose over a price ``distance``, in the account currency (tick size and value)."""
        return distance / self.tick_size * self.tick_value * lots

    def round_price(self, price: float) -> float:
        """Round to the symbol's tick size and digits (MT5 refuses prices off the tick grid)."""
        return round(round(price / self.tick_size) * self.tick_size, self.digits)

    def normalize_volume(self, volume: float) -> float:
        """Return ``volume`` snapped to the step, or refuse: never rounds a size up past what was asked."""
        if not (isinstance(volume, int | float) and math.isfinite(volume)) or volume <= 0:
            raise OrderRefused("volume", f"{volume!r} is not a positive finite number")
        steps = volume / self.volume_step
        if abs(steps - round(steps)) > 1e-7:
            raise OrderRefused("volume", f"{volume:g} is not a multiple of the volume step {self.volume_step:g}")
        snapped = round(round(steps) * self.volume_step, 8)
        if snapped < self.volume_min - 1e-12 or snapped > self.volume_max + 1e-12:
            raise OrderRefused("volume", f"{volume:g} is outside [{self.volume_min:g}, {self.volume_max:g}]")
        return snapped

    def floor_volume(self, volume: float) -> float:
        """The largest on-step volume not above ``volume`` (sizing rounds down, never up)."""
        return round(math.floor(volume / self.volume_step + 1e-9) * self.volume_step, 8)

    @property
    def stops_distance(self) -> float:
        return self.stops_level * self.point

    @property
    def freeze_distance(self) -> float:
        return self.freeze_level * self.point


class Quote(NamedTuple):
    symbol: str
    bid: float
    ask: float
    time: datetime

    @property
    def spread(self) -> float:
        return self.ask - self.bid


class AccountState(NamedTuple):
    login: int
    currency: str
    balance: float
    equity: float
    margin: float
    margin_free: float
    margin_level: float
    profit: float
    leverage: int
    hedging: bool
    trade_allowed: bool
    trade_expert: bool
    margin_so_call: float
    margin_so_so: float
    server: str = ""  # the trade server: a login is unique on one server, not across brokers


class TerminalState(NamedTuple):
    connected: bool
    trade_allowed: bool
    ping_ms: float
    build: int
    name: str = ""


class BrokerPosition(NamedTuple):
    ticket: int
    identifier: int
    symbol: str
    is_buy: bool
    volume: float
    price_open: float
    sl: float
    tp: float
    price_current: float
    profit: float
    magic: int
    comment: str
    time: datetime


class DealKind(StrEnum):
    """What a deal is, from MT5's DEAL_TYPE: a trade, or money moved in or out of the account."""

    TRADE = "trade"  # DEAL_TYPE_BUY, _SELL
    FUNDING = "funding"  # balance, credit, charge, correction, bonus: money moved, not traded
    OTHER = "other"  # commissions, interest, dividends and taxes charged as deals of their own


class BrokerOrder(NamedTuple):
    ticket: int
    symbol: str
    side: Side
    order_type: OrderType
    state: OrderState
    volume_initial: float
    volume_current: float
    price_open: float
    sl: float
    tp: float
    magic: int
    comment: str
    position_id: int
    time_setup: datetime
    time_done: datetime | None


class BrokerDeal(NamedTuple):
    ticket: int
    order: int
    position_id: int
    symbol: str
    kind: DealKind
    side: Side | None  # None for a deal that is no trade
    entry: DealEntry
    closed_by: ClosedBy
    volume: float
    price: float
    commission: float
    swap: float
    profit: float
    magic: int
    comment: str
    time: datetime


@dataclass(frozen=True, slots=True)
class SendResult:
    """One ``order_send`` outcome, classified. ``retcode`` is None when the call returned None."""

    retcode: int | None
    name: str
    category: RetcodeClass
    deal: int = 0
    order: int = 0
    volume: float = 0.0
    price: float = 0.0
    bid: float = 0.0
    ask: float = 0.0
    comment: str = ""
    last_error: tuple[int, str] | None = None
    request: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def placed(self) -> bool:
        """A pending order the server took: it works there now (TRADE_RETCODE_PLACED)."""
        return self.retcode == 10008

    @property
    def done(self) -> bool:
        """The request was executed in full (TRADE_RETCODE_DONE; 10010 is a partial execution)."""
        return self.retcode == 10009

    @property
    def unchanged(self) -> bool:
        """A modification that changed nothing, the levels being what was asked (TRADE_RETCODE_NO_CHANGES)."""
        return self.retcode == 10025


@dataclass(frozen=True, slots=True)
class CheckResult:
    retcode: int
    name: str
    passed: bool
    margin: float
    margin_free: float
    margin_level: float
    comment: str


#: (working orders, positions, history orders, deals) that carry one client id.
BrokerFindings = tuple[list[BrokerOrder], list[BrokerPosition], list[BrokerOrder], list[BrokerDeal]]
