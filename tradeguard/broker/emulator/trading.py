"""The trade server: validate requests, execute them, trigger stops and pending orders, stop out.

``order_check`` and ``order_send`` run the same validation (:meth:`Trading._validate`); only
``order_send`` executes, and only ``order_send`` meets the injected faults. Retcodes follow the
documented terminal behaviour (MT5_API.md §5-6): 10014 bad volume, 10016 bad stops, 10019 no money,
10018 market closed, 10030 filling not allowed, and so on.
"""

from __future__ import annotations

import math
import random
from typing import Any

from tradeguard.broker import constants
from tradeguard.broker.emulator import symbols
from tradeguard.broker.emulator.api import api
from tradeguard.broker.emulator.book import Book, Deal, Order, Position
from tradeguard.broker.emulator.config import EmulatorConfig
from tradeguard.broker.emulator.faults import Fault, FaultInjector
from tradeguard.broker.emulator.market import Market
from tradeguard.broker.emulator.market_state import LiveQuote, OpenExposure, TriggerLevels
from tradeguard.broker.emulator.structures import (
    REQUEST_DEFAULTS,
    OrderCheckResult,
    OrderSendResult,
    TradeRequest,
)

INF = float("inf")
MARKET_TYPES = (constants.ORDER_TYPE_BUY, constants.ORDER_TYPE_SELL)
PENDING_TYPES = (
    constants.ORDER_TYPE_BUY_LIMIT,
    constants.ORDER_TYPE_SELL_LIMIT,
    constants.ORDER_TYPE_BUY_STOP,
    constants.ORDER_TYPE_SELL_STOP,
    constants.ORDER_TYPE_BUY_STOP_LIMIT,
    constants.ORDER_TYPE_SELL_STOP_LIMIT,
)
ORDER_MODE_BIT = {
    constants.ORDER_TYPE_BUY: constants.SYMBOL_ORDER_MARKET,
    constants.ORDER_TYPE_SELL: constants.SYMBOL_ORDER_MARKET,
    constants.ORDER_TYPE_BUY_LIMIT: constants.SYMBOL_ORDER_LIMIT,
    constants.ORDER_TYPE_SELL_LIMIT: constants.SYMBOL_ORDER_LIMIT,
    constants.ORDER_TYPE_BUY_STOP: constants.SYMBOL_ORDER_STOP,
    constants.ORDER_TYPE_SELL_STOP: constants.SYMBOL_ORDER_STOP,
    constants.ORDER_TYPE_BUY_STOP_LIMIT: constants.SYMBOL_ORDER_STOP_LIMIT,
    constants.ORDER_TYPE_SELL_STOP_LIMIT: constants.SYMBOL_ORDER_STOP_LIMIT,
}
COMMENTS = {
    0: "Done",
    constants.TRADE_RETCODE_REQUOTE: "Requote",
    constants.TRADE_RETCODE_REJECT: "Request rejected",
    constants.TRADE_RETCODE_PLACED: "Request executed",
    constants.TRADE_RETCODE_DONE: "Request executed",
    constants.TRADE_RETCODE_DONE_PARTIAL: "Request executed partially",
    constants.TRADE_RETCODE_TIMEOUT: "Request timed out",
    constants.TRADE_RETCODE_INVALID: "Invalid request",
    constants.TRADE_RETCODE_INVALID_VOLUME: "Invalid volume",
    constants.TRADE_RETCODE_INVALID_PRICE: "Invalid price",
    constants.TRADE_RETCODE_INVALID_STOPS: "Invalid stops",
    constants.TRADE_RETCODE_TRADE_DISABLED: "Trade disabled",
    constants.TRADE_RETCODE_MARKET_CLOSED: "Market closed",
    constants.TRADE_RETCODE_NO_MONEY: "No money",
    constants.TRADE_RETCODE_PRICE_CHANGED: "Prices changed",
    constants.TRADE_RETCODE_INVALID_EXPIRATION: "Invalid expiration",
    constants.TRADE_RETCODE_TOO_MANY_REQUESTS: "Too many requests",
    constants.TRADE_RETCODE_NO_CHANGES: "No changes",
    constants.TRADE_RETCODE_SERVER_DISABLES_AT: "AutoTrading disabled by server",
    constants.TRADE_RETCODE_CLIENT_DISABLES_AT: "AutoTrading disabled by client",
    constants.TRADE_RETCODE_FROZEN: "Frozen",
    constants.TRADE_RETCODE_INVALID_FILL: "Unsupported filling mode",
    constants.TRADE_RETCODE_CONNECTION: "No connection",
    constants.TRADE_RETCODE_LIMIT_ORDERS: "Too many orders",
    constants.TRADE_RETCODE_LIMIT_VOLUME: "Volume limit reached",
    constants.TRADE_RETCODE_INVALID_ORDER: "Invalid order",
    constants.TRADE_RETCODE_POSITION_CLOSED: "Position already closed",
    constants.TRADE_RETCODE_INVALID_CLOSE_VOLUME: "Invalid close volume",
    constants.TRADE_RETCODE_LIMIT_POSITIONS: "Too many positions",
    constants.TRADE_RETCODE_LONG_ONLY: "Long only",
    constants.TRADE_RETCODE_SHORT_ONLY: "Short only",
    constants.TRADE_RETCODE_CLOSE_ONLY: "Close only",
}


#: What each injected fault looks like to the client (disconnects and executed timeouts are special).
FAULT_RETCODES = {
    Fault.AUTOTRADING_OFF: constants.TRADE_RETCODE_CLIENT_DISABLES_AT,
    Fault.MARKET_CLOSED: constants.TRADE_RETCODE_MARKET_CLOSED,
    Fault.TOO_MANY_REQUESTS: constants.TRADE_RETCODE_TOO_MANY_REQUESTS,
    Fault.REQUOTE: constants.TRADE_RETCODE_REQUOTE,
    Fault.PRICE_CHANGED: constants.TRADE_RETCODE_PRICE_CHANGED,
    Fault.REJECT: constants.TRADE_RETCODE_REJECT,
    Fault.TIMEOUT_LOST: constants.TRADE_RETCODE_TIMEOUT,
}


class Rejection(Exception):
    """A request the server refuses: carries the retcode."""

    def __init__(self, retcode: int, detail: str = "") -> None:
        self.retcode = retcode
        super().__init__(detail or COMMENTS.get(retcode, str(retcode)))


DAY_MS = 86_400_000


def _nights(triple_weekday: int, weekday: int) -> int:
    """Nights of swap charged for a day that ended on ``weekday`` (0 = Sunday): the weekend's are paid by
    the triple night."""
    if weekday in (constants.DAY_OF_WEEK_SATURDAY, constants.DAY_OF_WEEK_SUNDAY):
        return 0
    return 3 if weekday == triple_weekday else 1


def _on_step(volume: float, step: float) -> bool:
    return abs(round(volume / step) * step - volume) < step * 1e-6


class TradeServer:
    """The broker's side of the emulated terminal: order checks and execution, fills, the trigger levels of
    stops, targets and pending orders, the account's margin and stop-out. :class:`Terminal` is one, with the
    market data and the replay loop; the state both work on is declared here and set up by ``Terminal._load``.
    """

    config: EmulatorConfig
    faults: FaultInjector
    _slip_rng: random.Random
    _last_error: tuple[int, str]
    specs: dict[str, symbols.SymbolDefinition]
    quotes: dict[str, LiveQuote]
    book: Book
    balance: float
    credit: float
    algo_trading: bool
    trade_expert: bool
    index: int
    market: Market
    converted_by: dict[str, set[str]]
    clock_msc: int
    open_swaps: float
    _rollover_at: int
    levels: dict[str, TriggerLevels]
    exposure: dict[str, OpenExposure]
    floating: float
    margin_used: float
    request_id: int

    def now_msc(self) -> int:
        return self.clock_msc

    def price_of(self, symbol: str) -> float | None:
        q = self.quotes.get(symbol)
        return q.bid if q else None

    @property
    def hedging(self) -> bool:
        return self.config.margin_mode == "hedging"

    def equity(self) -> float:
        return self.balance + self.credit + self.floating + self.open_swaps

    def position_profit(self, p: Position) -> float:
        q = self.quotes[p.symbol]
        bid, ask = q.bid, q.ask
        p.price_current = bid if p.is_buy else ask
        spec = self.specs[p.symbol]
        return round(
            symbols.profit(
                spec, p.is_buy, p.volume, p.price_open, p.price_current, self.config.currency, self.price_of
            ),
            2,
        )

    @property
    def replay_finished(self) -> bool:
        return self.index >= len(self.market) - 1

    def conversion(self, symbol: str) -> float:
        """Factor from the symbol's profit currency to the account currency, at current quotes."""
        spec = self.specs[symbol]
        return (
            1.0
            if spec.currency_profit == self.config.currency
            else symbols.to_account(1.0, spec.currency_profit, self.config.currency, self.price_of)
        )

    # ------------------------------------------------------------------ API ---------------------

    @api()
    def order_calc_margin(self, action: int, symbol: str, volume: float, price: float) -> float | None:
        if symbol not in self.specs or action not in MARKET_TYPES + PENDING_TYPES:
            self._last_error = (constants.RES_E_INVALID_PARAMS, "Invalid arguments")
            return None
        return round(
            symbols.margin(
                self.specs[symbol], volume, price, self.config.leverage, self.config.currency, self.price_of
            ),
            2,
        )

    @api()
    def order_calc_profit(
        self, action: int, symbol: str, volume: float, price_open: float, price_close: float
    ) -> float | None:
        if symbol not in self.specs or action not in MARKET_TYPES:
            self._last_error = (constants.RES_E_INVALID_PARAMS, "Invalid arguments")
            return None
        return round(
            symbols.profit(
                self.specs[symbol],
                action == constants.ORDER_TYPE_BUY,
                volume,
                price_open,
                price_close,
                self.config.currency,
                self.price_of,
            ),
            2,
        )

    @api()
    def order_check(self, request: dict[str, Any]) -> OrderCheckResult | None:
        req = self._parse(request)
        if req is None:
            return None
        echo = TradeRequest(**req)
        equity, margin = self.equity(), self.margin_used
        try:
            plan = self._validate(req)
        except Rejection as rej:
            return OrderCheckResult(
                rej.retcode,
                round(self.balance, 2),
                round(equity, 2),
                round(self.floating, 2),
                round(margin, 2),
                round(equity - margin, 2),
                0.0,
                str(rej),
                echo,
            )
        after = margin + plan.get("margin", 0.0)
        level = round(equity / after * 100, 2) if after else 0.0
        return OrderCheckResult(
            0,
            round(self.balance, 2),
            round(equity, 2),
            round(self.floating, 2),
            round(after, 2),
            round(equity - after, 2),
            level,
            "Done",
            echo,
        )

    @api()
    def order_send(self, request: dict[str, Any]) -> OrderSendResult | None:
        req = self._parse(request)
        if req is None:
            return None
        fault = self.faults.on_request(self.now_msc())
        if fault is Fault.DISCONNECTED:
            if self.faults.answer_none():
                self._last_error = (constants.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
                return None
            return self._result(constants.TRADE_RETCODE_CONNECTION, req)
        if fault in FAULT_RETCODES:
            return self._result(FAULT_RETCODES[fault], req)
        result = self.execute_request(req)
        if fault is Fault.TIMEOUT_EXECUTED and result.retcode in (
            constants.TRADE_RETCODE_DONE,
            constants.TRADE_RETCODE_PLACED,
            constants.TRADE_RETCODE_DONE_PARTIAL,
        ):  # the order went through; the answer never came back
            return self._result(constants.TRADE_RETCODE_TIMEOUT, req)
        return result

    # ------------------------------------------------------------------ parsing and results -----

    def _parse(self, request: Any) -> dict[str, Any] | None:
        """Client-side checks: a bad argument returns None with ``(-2, 'Invalid "x" argument')``."""
        if not isinstance(request, dict):
            self._last_error = (constants.RES_E_INVALID_PARAMS, 'Invalid "request" argument')
            return None
        for key, value in request.items():
            default = REQUEST_DEFAULTS.get(key)
            if (
                default is None
                or (isinstance(default, int) and not isinstance(value, int))
                or (isinstance(default, float) and not isinstance(value, int | float))
                or (isinstance(default, str) and not isinstance(value, str))
                or isinstance(value, bool)
            ):
                self._last_error = (constants.RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
                return None
        if len(request.get("comment", "")) > 31 or not request.get("comment", "").isascii():
            self._last_error = (constants.RES_E_INVALID_PARAMS, 'Invalid "comment" argument')
            return None
        req = {**REQUEST_DEFAULTS, **request}
        for key in ("volume", "price", "stoplimit", "sl", "tp"):
            req[key] = float(req[key])
        return req

    def _result(
        self,
        retcode: int,
        req: dict[str, Any],
        deal: int = 0,
        order: int = 0,
        volume: float = 0.0,
        price: float = 0.0,
        comment: str | None = None,
    ) -> OrderSendResult:
        self.request_id += 1
        q = self.quotes.get(req["symbol"])
        bid, ask = (q.bid, q.ask) if q is not None else (0.0, 0.0)
        return OrderSendResult(
            retcode=retcode,
            deal=deal,
            order=order,
            volume=volume,
            price=price,
            bid=bid,
            ask=ask,
            comment=comment or COMMENTS.get(retcode, ""),
            request_id=self.request_id,
            retcode_external=0,
            request=TradeRequest(**req),
        )

    # ------------------------------------------------------------------ validation --------------

    def _spec(self, req: dict[str, Any]) -> symbols.SymbolDefinition:
        spec = self.specs.get(req["symbol"])
        if spec is None:
            raise Rejection(constants.TRADE_RETCODE_INVALID, f"Invalid request: unknown symbol {req['symbol']!r}")
        return spec

    def _check_volume(self, spec: symbols.SymbolDefinition, volume: float) -> None:
        if not (
            math.isfinite(volume)
            and spec.volume_min <= volume <= spec.volume_max
            and _on_step(volume, spec.volume_step)
        ):
            raise Rejection(constants.TRADE_RETCODE_INVALID_VOLUME)

    def _check_stops(self, spec: symbols.SymbolDefinition, is_buy: bool, ref: float, sl: float, tp: float) -> None:
        """SL/TP against the reference price (bid for a buy position, ask for a sell; the order price
        for a pending order): on the right side and at least the stops level away, else 10016."""
        if not (math.isfinite(sl) and math.isfinite(tp)) or sl < 0 or tp < 0:
            raise Rejection(constants.TRADE_RETCODE_INVALID_STOPS)
        sign, need = (1 if is_buy else -1), spec.stops_level * spec.point - spec.point * 1e-6
        for level, distance in ((sl, sign * (ref - sl)), (tp, sign * (tp - ref))):
            if level and (distance <= 0 or distance < need):
                raise Rejection(constants.TRADE_RETCODE_INVALID_STOPS)

    def _check_trade_mode(self, spec: symbols.SymbolDefinition, is_buy: bool, opening: bool) -> None:
        mode = spec.trade_mode
        if mode == constants.SYMBOL_TRADE_MODE_DISABLED:
            raise Rejection(constants.TRADE_RETCODE_TRADE_DISABLED)
        if opening and mode == constants.SYMBOL_TRADE_MODE_CLOSEONLY:
            raise Rejection(constants.TRADE_RETCODE_CLOSE_ONLY)
        if opening and mode == constants.SYMBOL_TRADE_MODE_LONGONLY and not is_buy:
            raise Rejection(constants.TRADE_RETCODE_LONG_ONLY)
        if opening and mode == constants.SYMBOL_TRADE_MODE_SHORTONLY and is_buy:
            raise Rejection(constants.TRADE_RETCODE_SHORT_ONLY)

    def _check_filling(self, spec: symbols.SymbolDefinition, order_type: int, filling: int) -> None:
        flags = spec.filling_mode
        if order_type in MARKET_TYPES and spec.exemode in (
            constants.SYMBOL_TRADE_EXECUTION_MARKET,
            constants.SYMBOL_TRADE_EXECUTION_EXCHANGE,
        ):
            allowed = {constants.ORDER_FILLING_FOK} if flags & constants.SYMBOL_FILLING_FOK else set()
            if flags & constants.SYMBOL_FILLING_IOC:
                allowed.add(constants.ORDER_FILLING_IOC)
            if spec.exemode == constants.SYMBOL_TRADE_EXECUTION_EXCHANGE:
                allowed.add(constants.ORDER_FILLING_RETURN)
        elif order_type in MARKET_TYPES:
            allowed = {constants.ORDER_FILLING_FOK}
        else:
            allowed = {constants.ORDER_FILLING_RETURN}
            if flags & constants.SYMBOL_FILLING_BOC and order_type in (
                constants.ORDER_TYPE_BUY_LIMIT,
                constants.ORDER_TYPE_SELL_LIMIT,
                constants.ORDER_TYPE_BUY_STOP_LIMIT,
                constants.ORDER_TYPE_SELL_STOP_LIMIT,
            ):
                allowed.add(constants.ORDER_FILLING_BOC)
        if filling not in allowed:
            raise Rejection(constants.TRADE_RETCODE_INVALID_FILL)

    def _check_frozen(self, spec: symbols.SymbolDefinition, ref: float, *levels: float) -> None:
        gap = spec.freeze_level * spec.point
        if gap and any(lv and abs(ref - lv) < gap for lv in levels):
            raise Rejection(constants.TRADE_RETCODE_FROZEN)

    def _check_session(self) -> None:
        if self.replay_finished and self.index > 0:
            raise Rejection(constants.TRADE_RETCODE_MARKET_CLOSED, "Market closed: the replay has no more data")
        if not self.algo_trading:
            raise Rejection(constants.TRADE_RETCODE_CLIENT_DISABLES_AT)
        if not self.trade_expert:
            raise Rejection(constants.TRADE_RETCODE_SERVER_DISABLES_AT)

    def _validate(self, req: dict[str, Any]) -> dict[str, Any]:
        """Every server-side check; returns the execution plan or raises :class:`Rejection`."""
        action = req["action"]
        handlers = {
            constants.TRADE_ACTION_DEAL: self._plan_deal,
            constants.TRADE_ACTION_PENDING: self._plan_pending,
            constants.TRADE_ACTION_SLTP: self._plan_sltp,
            constants.TRADE_ACTION_MODIFY: self._plan_modify,
            constants.TRADE_ACTION_REMOVE: self._plan_remove,
            constants.TRADE_ACTION_CLOSE_BY: self._plan_close_by,
        }
        if action not in handlers:
            raise Rejection(constants.TRADE_RETCODE_INVALID, f"Invalid request: unknown action {action}")
        self._check_session()
        return handlers[action](req)

    def _position(self, ticket: int) -> Position:
        pos = self.book.positions.get(ticket)
        if pos is None:
            code = (
                constants.TRADE_RETCODE_POSITION_CLOSED
                if ticket in self.book.closed_positions
                else constants.TRADE_RETCODE_INVALID
            )
            raise Rejection(code, f"{COMMENTS[code]}: position {ticket}")
        return pos

    def _check_in_session(self, spec: symbols.SymbolDefinition) -> None:
        """A symbol with no tick in its current bar (gold's daily break, a holiday, data not started) is closed:
        nothing is traded or re-priced on it."""
        if not self.market.in_session(spec.name, self.clock_msc):
            raise Rejection(constants.TRADE_RETCODE_MARKET_CLOSED, f"Market closed: {spec.name} has no quotes now")

    def _check_open(self, spec: symbols.SymbolDefinition) -> None:
        """A new order: its symbol in session, and the rates its money converts through quoted."""
        self._check_in_session(spec)
        unquoted = [name for name in self.converted_by.get(spec.name, ()) if self.market.reached[name] < 0]
        if unquoted:  # its money converts through a rate that has not been quoted yet
            raise Rejection(constants.TRADE_RETCODE_PRICE_OFF, f"No quotes: {', '.join(unquoted)} not quoted yet")

    def _plan_deal(self, req: dict[str, Any]) -> dict[str, Any]:
        spec = self._spec(req)
        self._check_open(spec)
        if req["type"] not in MARKET_TYPES:
            raise Rejection(constants.TRADE_RETCODE_INVALID_ORDER)
        is_buy = req["type"] == constants.ORDER_TYPE_BUY
        volume = req["volume"]
        self._check_volume(spec, volume)
        q = self.quotes[spec.name]
        bid, ask = q.bid, q.ask
        market = ask if is_buy else bid
        closing: Position | None = None
        if req["position"]:
            closing = self._position(req["position"])
            if closing.symbol != spec.name or closing.is_buy == is_buy:
                raise Rejection(
                    constants.TRADE_RETCODE_INVALID, "Invalid request: wrong symbol or side for that position"
                )
            if volume > closing.volume + 1e-9:
                raise Rejection(constants.TRADE_RETCODE_INVALID_CLOSE_VOLUME)
            self._check_frozen(spec, bid if closing.is_buy else ask, closing.sl, closing.tp)
        elif not self.hedging:
            held = next((p for p in self.book.positions.values() if p.symbol == spec.name), None)
            if held is not None and held.is_buy != is_buy and volume <= held.volume + 1e-9:
                closing = held
        opening = closing is None
        self._check_trade_mode(spec, is_buy, opening)
        self._check_filling(spec, req["type"], req["type_filling"])
        if req["price"] < 0 or not math.isfinite(req["price"]):
            raise Rejection(constants.TRADE_RETCODE_INVALID_PRICE)
        if spec.exemode in (constants.SYMBOL_TRADE_EXECUTION_INSTANT, constants.SYMBOL_TRADE_EXECUTION_REQUEST) and (
            abs(req["price"] - market) > req["deviation"] * spec.point + spec.point * 1e-6
        ):
            raise Rejection(constants.TRADE_RETCODE_REQUOTE)
        plan: dict[str, Any] = {"spec": spec, "is_buy": is_buy, "volume": volume, "closing": closing}
        if opening:
            if req["sl"] or req["tp"]:
                self._check_stops(spec, is_buy, bid if is_buy else ask, req["sl"], req["tp"])
            if self.config.limit_positions and len(self.book.positions) >= self.config.limit_positions:
                raise Rejection(constants.TRADE_RETCODE_LIMIT_POSITIONS)
            if spec.volume_limit:
                same = sum(p.volume for p in self.book.positions.values() if p.symbol == spec.name)
                if same + volume > spec.volume_limit + 1e-9:
                    raise Rejection(constants.TRADE_RETCODE_LIMIT_VOLUME)
            need = symbols.margin(spec, volume, market, self.config.leverage, self.config.currency, self.price_of)
            if self.equity() - self.margin_used - need < 0:
                raise Rejection(constants.TRADE_RETCODE_NO_MONEY)
            plan["margin"] = need
        return plan

    def _plan_pending(self, req: dict[str, Any], replacing: Order | None = None) -> dict[str, Any]:
        spec = self._spec(req)
        self._check_open(spec)
        kind = req["type"]
        if kind not in PENDING_TYPES or not spec.order_mode & ORDER_MODE_BIT[kind]:
            raise Rejection(constants.TRADE_RETCODE_INVALID_ORDER)
        self._check_volume(spec, req["volume"])
        is_buy = kind in (
            constants.ORDER_TYPE_BUY_LIMIT,
            constants.ORDER_TYPE_BUY_STOP,
            constants.ORDER_TYPE_BUY_STOP_LIMIT,
        )
        self._check_trade_mode(spec, is_buy, True)
        self._check_filling(spec, kind, req["type_filling"])
        q = self.quotes[spec.name]
        bid, ask = q.bid, q.ask
        price, gap = req["price"], spec.stops_level * spec.point - spec.point * 1e-6
        below_market = kind in (
            constants.ORDER_TYPE_BUY_LIMIT,
            constants.ORDER_TYPE_SELL_STOP,
            constants.ORDER_TYPE_SELL_STOP_LIMIT,
        )
        market = ask if is_buy else bid
        distance = market - price if below_market else price - market
        if not (math.isfinite(price) and price > 0) or distance <= 0 or distance < gap:
            raise Rejection(constants.TRADE_RETCODE_INVALID_PRICE)
        entry = price
        if kind in (constants.ORDER_TYPE_BUY_STOP_LIMIT, constants.ORDER_TYPE_SELL_STOP_LIMIT):
            entry = req["stoplimit"]
            if entry <= 0 or (is_buy and entry > price) or (not is_buy and entry < price):
                raise Rejection(constants.TRADE_RETCODE_INVALID_PRICE, "Invalid price: stoplimit on the wrong side")
        self._check_stops(spec, is_buy, entry, req["sl"], req["tp"])
        if not spec.expiration_mode & (1 << req["type_time"]):
            raise Rejection(constants.TRADE_RETCODE_INVALID_EXPIRATION)
        if req["type_time"] in (constants.ORDER_TIME_SPECIFIED, constants.ORDER_TIME_SPECIFIED_DAY) and (
            req["expiration"] <= self.now_msc() // 1000
        ):
            raise Rejection(constants.TRADE_RETCODE_INVALID_EXPIRATION)
        if replacing is None and self.config.limit_orders and len(self.book.orders) >= self.config.limit_orders:
            raise Rejection(constants.TRADE_RETCODE_LIMIT_ORDERS)
        return {"spec": spec, "is_buy": is_buy}

    def _plan_sltp(self, req: dict[str, Any]) -> dict[str, Any]:
        pos = self._position(req["position"])
        if req["symbol"] and req["symbol"] != pos.symbol:
            raise Rejection(constants.TRADE_RETCODE_INVALID, "Invalid request: symbol does not match the position")
        spec = self.specs[pos.symbol]
        self._check_in_session(spec)
        q = self.quotes[pos.symbol]
        bid, ask = q.bid, q.ask
        ref = bid if pos.is_buy else ask
        if (req["sl"], req["tp"]) == (pos.sl, pos.tp):
            raise Rejection(constants.TRADE_RETCODE_NO_CHANGES)
        self._check_stops(spec, pos.is_buy, ref, req["sl"], req["tp"])
        self._check_frozen(spec, ref, pos.sl, pos.tp)
        return {"position": pos}

    def _working(self, ticket: int) -> Order:
        order = self.book.orders.get(ticket)
        if order is None or order.type in MARKET_TYPES:
            raise Rejection(constants.TRADE_RETCODE_INVALID, f"Invalid request: no working order {ticket}")
        return order

    def _plan_modify(self, req: dict[str, Any]) -> dict[str, Any]:
        order = self._working(req["order"])
        spec = self.specs[order.symbol]
        self._check_in_session(spec)
        q = self.quotes[order.symbol]
        bid, ask = q.bid, q.ask
        self._check_frozen(spec, ask if order.is_buy else bid, order.price_open)
        if (req["price"], req["sl"], req["tp"], req["type_time"], req["expiration"]) == (
            order.price_open,
            order.sl,
            order.tp,
            order.type_time,
            order.time_expiration,
        ):
            raise Rejection(constants.TRADE_RETCODE_NO_CHANGES)
        merged = {
            **req,
            "symbol": order.symbol,
            "type": order.type,
            "volume": order.volume_current,
            "type_filling": order.type_filling,
            "stoplimit": req["stoplimit"] or order.price_stoplimit,
        }
        self._plan_pending(merged, replacing=order)
        return {"order": order, "merged": merged}

    def _plan_remove(self, req: dict[str, Any]) -> dict[str, Any]:
        order = self._working(req["order"])
        spec = self.specs[order.symbol]
        q = self.quotes[order.symbol]
        bid, ask = q.bid, q.ask
        self._check_frozen(spec, ask if order.is_buy else bid, order.price_open)
        return {"order": order}

    def _plan_close_by(self, req: dict[str, Any]) -> dict[str, Any]:
        if not self.hedging:
            raise Rejection(constants.TRADE_RETCODE_INVALID_ORDER, "Invalid order: close by needs a hedging account")
        pos, by = self._position(req["position"]), self._position(req["position_by"])
        if pos.symbol != by.symbol or pos.is_buy == by.is_buy:
            raise Rejection(constants.TRADE_RETCODE_INVALID, "Invalid request: close by needs opposite positions")
        self._check_in_session(self.specs[pos.symbol])
        return {"position": pos, "by": by}

    # ------------------------------------------------------------------ execution ---------------

    def execute_request(self, req: dict[str, Any], reason: int = constants.DEAL_REASON_EXPERT) -> OrderSendResult:
        """Validate and carry out one request, no faults (the trade server's own logic)."""
        req = {**REQUEST_DEFAULTS, **req}
        try:
            plan = self._validate(req)
        except Rejection as rej:
            return self._result(rej.retcode, req, comment=str(rej))
        action = req["action"]
        if action == constants.TRADE_ACTION_DEAL:
            return self._execute_deal(req, plan, reason)
        if action == constants.TRADE_ACTION_PENDING:
            return self._place(req, plan)
        if action == constants.TRADE_ACTION_SLTP:
            pos = plan["position"]
            pos.sl, pos.tp, pos.time_update_msc = req["sl"], req["tp"], self.now_msc()
            self.rearm(pos.symbol)
            return self._result(constants.TRADE_RETCODE_DONE, req)
        if action == constants.TRADE_ACTION_MODIFY:
            order, merged = plan["order"], plan["merged"]
            order.price_open, order.sl, order.tp = merged["price"], merged["sl"], merged["tp"]
            order.price_stoplimit = merged["stoplimit"]
            order.type_time, order.time_expiration = merged["type_time"], merged["expiration"]
            self.rearm(order.symbol)
            return self._result(constants.TRADE_RETCODE_DONE, req, order=order.ticket)
        if action == constants.TRADE_ACTION_REMOVE:
            self._retire(plan["order"], constants.ORDER_STATE_CANCELED)
            return self._result(constants.TRADE_RETCODE_DONE, req, order=plan["order"].ticket)
        return self._close_by(req, plan)

    def _fill_price(self, spec: symbols.SymbolDefinition, is_buy: bool, deviation: int) -> float:
        q = self.quotes[spec.name]
        bid, ask = q.bid, q.ask
        price = ask if is_buy else bid
        if self.config.slippage_points:
            slip = self._slip_rng.randint(0, self.config.slippage_points)
            if deviation:
                slip = min(slip, deviation)
            price += (slip if is_buy else -slip) * spec.point
        return round(price, spec.digits)

    def _execute_deal(self, req: dict[str, Any], plan: dict[str, Any], reason: int) -> OrderSendResult:
        spec, is_buy, volume = plan["spec"], plan["is_buy"], plan["volume"]
        filled, rest_policy = volume, None
        liquidity = self.config.liquidity_lots
        if liquidity and volume > liquidity + 1e-9:
            if req["type_filling"] == constants.ORDER_FILLING_FOK:
                return self._result(
                    constants.TRADE_RETCODE_REJECT, req, comment="Request rejected: FOK volume not available"
                )
            filled = math.floor(liquidity / spec.volume_step + 1e-9) * spec.volume_step
            rest_policy = req["type_filling"]
        price = self._fill_price(spec, is_buy, req["deviation"])
        now = self.now_msc()
        order = Order(
            ticket=self.book.order_ticket(),
            symbol=spec.name,
            type=req["type"],
            volume_initial=volume,
            volume_current=round(volume - filled, 8),
            price_open=price,
            sl=req["sl"],
            tp=req["tp"],
            price_stoplimit=0.0,
            magic=req["magic"],
            comment=req["comment"],
            type_filling=req["type_filling"],
            type_time=constants.ORDER_TIME_GTC,
            time_expiration=0,
            time_setup_msc=now,
            reason=reason,
        )
        deal = self.fill(order, plan["closing"], filled, price, reason)
        if rest_policy == constants.ORDER_FILLING_RETURN:
            order.state = constants.ORDER_STATE_PARTIAL
            self.book.orders[order.ticket] = order  # the rest fills as liquidity returns, tick by tick
        else:
            order.volume_current = 0.0 if rest_policy is None else order.volume_current
            self._retire(
                order,
                constants.ORDER_STATE_FILLED if rest_policy is None else constants.ORDER_STATE_CANCELED,
                listed=False,
            )
        code = constants.TRADE_RETCODE_DONE if rest_policy is None else constants.TRADE_RETCODE_DONE_PARTIAL
        return self._result(code, req, deal=deal.ticket, order=order.ticket, volume=filled, price=price)

    def _place(self, req: dict[str, Any], plan: dict[str, Any]) -> OrderSendResult:
        order = Order(
            ticket=self.book.order_ticket(),
            symbol=req["symbol"],
            type=req["type"],
            volume_initial=req["volume"],
            volume_current=req["volume"],
            price_open=req["price"],
            sl=req["sl"],
            tp=req["tp"],
            price_stoplimit=req["stoplimit"],
            magic=req["magic"],
            comment=req["comment"],
            type_filling=req["type_filling"],
            type_time=req["type_time"],
            time_expiration=req["expiration"],
            time_setup_msc=self.now_msc(),
        )
        self.book.orders[order.ticket] = order
        self.rearm(order.symbol)
        return self._result(
            constants.TRADE_RETCODE_PLACED, req, order=order.ticket, volume=order.volume_initial, price=order.price_open
        )

    def _retire(self, order: Order, state: int, listed: bool = True) -> None:
        order.state, order.time_done_msc = state, self.now_msc()
        if listed:
            self.book.orders.pop(order.ticket, None)
            self.rearm(order.symbol)
        self.book.add_history_order(order)

    def fill(
        self,
        order: Order,
        closing: Position | None,
        volume: float,
        price: float,
        reason: int,
        comment: str | None = None,
    ) -> Deal:
        """Book one deal of ``order`` for ``volume`` at ``price``: open, add, reduce, close or reverse."""
        spec = self.specs[order.symbol]
        is_buy = order.is_buy
        now = self.now_msc()
        commission = round(-self.config.commission_per_lot * volume, 2) + 0.0  # never -0.0
        held = closing
        if held is None and not self.hedging:
            held = next((p for p in self.book.positions.values() if p.symbol == order.symbol), None)
        elif held is None and order.ticket in self.book.positions:  # the rest of a partially filled order
            held = self.book.positions[order.ticket]
        entry, pnl, swap = constants.DEAL_ENTRY_IN, 0.0, 0.0
        if held is None:
            pos = Position(
                ticket=order.ticket,
                identifier=order.ticket,
                symbol=order.symbol,
                is_buy=is_buy,
                volume=volume,
                price_open=price,
                sl=order.sl,
                tp=order.tp,
                magic=order.magic,
                comment=order.comment,
                time_msc=now,
                time_update_msc=now,
            )
            self.book.positions[pos.ticket] = pos
        elif held.is_buy == is_buy:  # netting: add to the position at the average price
            pos = held
            total = pos.volume + volume
            pos.price_open = round((pos.price_open * pos.volume + price * volume) / total, spec.digits + 3)
            pos.volume = round(pos.volume + volume, 8)
            pos.time_update_msc = now
            # MT5's rule: an order that increases the position gives it its own stop and target (zero deletes)
            pos.sl, pos.tp = order.sl, order.tp
        else:
            pos = held
            closed = min(volume, pos.volume)
            swap = self._settle_swap(pos, closed)
            pnl = round(
                symbols.profit(spec, pos.is_buy, closed, pos.price_open, price, self.config.currency, self.price_of), 2
            )
            left = round(pos.volume - volume, 8)
            if left > 1e-9:
                entry, pos.volume, pos.time_update_msc = constants.DEAL_ENTRY_OUT, left, now
            elif left > -1e-9:
                entry = constants.DEAL_ENTRY_OUT
                del self.book.positions[pos.ticket]
                self.book.closed_positions.add(pos.ticket)
            else:  # netting reversal: identifier stays, the ticket becomes the reversing order's
                entry = constants.DEAL_ENTRY_INOUT
                del self.book.positions[pos.ticket]
                self.book.closed_positions.add(pos.ticket)
                pos.ticket, pos.is_buy, pos.volume, pos.price_open = order.ticket, is_buy, -left, price
                pos.sl, pos.tp, pos.time_update_msc = order.sl, order.tp, now
                self.book.positions[pos.ticket] = pos
        pos.margin = symbols.margin(
            spec, pos.volume, pos.price_open, self.config.leverage, self.config.currency, self.price_of
        )
        order.position_id = pos.identifier
        deal = Deal(
            ticket=self.book.deal_ticket(),
            order=order.ticket,
            time_msc=now,
            type=constants.DEAL_TYPE_BUY if is_buy else constants.DEAL_TYPE_SELL,
            entry=entry,
            magic=order.magic,
            position_id=pos.identifier,
            reason=reason,
            volume=volume,
            price=price,
            commission=commission,
            profit=pnl,
            symbol=order.symbol,
            comment=order.comment if comment is None else comment,
            swap=swap,
        )
        self.book.add_deal(deal)
        self.balance = round(self.balance + pnl + commission + swap, 2)
        self.reaggregate(order.symbol)
        return deal

    def _close_by(self, req: dict[str, Any], plan: dict[str, Any]) -> OrderSendResult:
        pos, by = plan["position"], plan["by"]
        volume = min(pos.volume, by.volume)
        order = Order(
            ticket=self.book.order_ticket(),
            symbol=pos.symbol,
            type=constants.ORDER_TYPE_CLOSE_BY,
            volume_initial=volume,
            volume_current=0.0,
            price_open=by.price_open,
            sl=0.0,
            tp=0.0,
            price_stoplimit=0.0,
            magic=req["magic"],
            comment=req["comment"],
            type_filling=constants.ORDER_FILLING_FOK,
            type_time=constants.ORDER_TIME_GTC,
            time_expiration=0,
            time_setup_msc=self.now_msc(),
            position_id=pos.identifier,
            position_by_id=by.identifier,
        )
        spec = self.specs[pos.symbol]
        now = self.now_msc()
        first = None
        for p, price in ((pos, by.price_open), (by, by.price_open)):
            pnl = round(
                symbols.profit(spec, p.is_buy, volume, p.price_open, price, self.config.currency, self.price_of), 2
            )
            swap = self._settle_swap(p, volume)
            deal = Deal(
                ticket=self.book.deal_ticket(),
                order=order.ticket,
                time_msc=now,
                type=constants.DEAL_TYPE_SELL if p.is_buy else constants.DEAL_TYPE_BUY,
                entry=constants.DEAL_ENTRY_OUT_BY,
                magic=p.magic,
                position_id=p.identifier,
                reason=constants.DEAL_REASON_EXPERT,
                volume=volume,
                price=price,
                commission=0.0,
                profit=pnl,
                symbol=p.symbol,
                comment=req["comment"],
                swap=swap,
            )
            self.book.add_deal(deal)
            first = first or deal
            self.balance = round(self.balance + pnl + swap, 2)
            p.volume = round(p.volume - volume, 8)
            p.margin = (
                symbols.margin(spec, p.volume, p.price_open, self.config.leverage, self.config.currency, self.price_of)
                if p.volume > 1e-9
                else 0.0
            )
            if p.volume <= 1e-9:
                del self.book.positions[p.ticket]
                self.book.closed_positions.add(p.ticket)
        self._retire(order, constants.ORDER_STATE_FILLED, listed=False)
        self.reaggregate(pos.symbol)
        return self._result(
            constants.TRADE_RETCODE_DONE,
            req,
            deal=first.ticket if first else 0,
            order=order.ticket,
            volume=volume,
            price=by.price_open,
        )

    def balance_deal(self, amount: float, comment: str) -> int:
        deal = Deal(
            ticket=self.book.deal_ticket(),
            order=0,
            time_msc=self.now_msc(),
            type=constants.DEAL_TYPE_BALANCE,
            entry=constants.DEAL_ENTRY_IN,
            magic=0,
            position_id=0,
            reason=constants.DEAL_REASON_CLIENT,
            volume=0.0,
            price=0.0,
            commission=0.0,
            profit=round(amount, 2),
            symbol="",
            comment=comment,
        )
        self.book.add_deal(deal)
        self.balance = round(self.balance + amount, 2)
        return deal.ticket

    # ------------------------------------------------------------------ triggers ----------------

    def reaggregate(self, symbol: str) -> None:
        """Recompute the floating-P&L coefficients and margin after the symbol's positions changed."""
        kb = cb = ks = cs = margin = 0.0
        spec = self.specs[symbol]
        for p in self.book.positions.values():
            if p.symbol != symbol:
                continue
            size = p.volume * spec.contract_size
            if p.is_buy:
                kb, cb = kb + size, cb + size * p.price_open
            else:
                ks, cs = ks + size, cs + size * p.price_open
            margin += p.margin
        q = self.quotes[symbol]
        bid, ask = q.bid, q.ask
        e = OpenExposure(kb, cb, ks, cs)
        e.floating = e.pnl(bid, ask) * self.conversion(symbol) if (kb or ks) else 0.0
        e.margin = margin
        self.floating += e.floating - self.exposure[symbol].floating
        self.exposure[symbol] = e
        # summed, not accumulated: increments leave a 1e-13 residue when the book empties, and an equity
        # divided by that residue is a margin level of -1e19 that the account snapshot refuses
        self.margin_used = sum(x.margin for x in self.exposure.values())
        self.rearm(symbol)

    def rearm(self, symbol: str) -> None:
        """Recompute the four price levels whose crossing needs attention on this symbol."""
        lo_bid, hi_bid, lo_ask, hi_ask = -INF, INF, -INF, INF
        for p in self.book.positions.values():
            if p.symbol != symbol:
                continue
            if p.is_buy:
                lo_bid = max(lo_bid, p.sl) if p.sl else lo_bid
                hi_bid = min(hi_bid, p.tp) if p.tp else hi_bid
            else:
                hi_ask = min(hi_ask, p.sl) if p.sl else hi_ask
                lo_ask = max(lo_ask, p.tp) if p.tp else lo_ask
        for o in self.book.orders.values():
            if o.symbol != symbol:
                continue
            t = o.type
            if t == constants.ORDER_TYPE_BUY_LIMIT:
                lo_ask = max(lo_ask, o.price_open)
            elif t in (constants.ORDER_TYPE_BUY_STOP, constants.ORDER_TYPE_BUY_STOP_LIMIT):
                hi_ask = min(hi_ask, o.price_open)
            elif t == constants.ORDER_TYPE_SELL_LIMIT:
                hi_bid = min(hi_bid, o.price_open)
            elif t in (constants.ORDER_TYPE_SELL_STOP, constants.ORDER_TYPE_SELL_STOP_LIMIT):
                lo_bid = max(lo_bid, o.price_open)
        self.levels[symbol] = TriggerLevels(lo_bid, hi_bid, lo_ask, hi_ask)

    def on_levels_crossed(self, symbol: str, gap: bool = True) -> None:
        """Trigger stops, targets and pending orders the current tick crossed.

        Between two modelled ticks of a bar the price moves continuously, so it passed through the
        level: the fill is at the level. A bar's first tick may gap past it (a weekend, news): then
        the fill is at that tick's price, as a real server fills a gapped stop.
        """
        q = self.quotes[symbol]
        bid, ask = q.bid, q.ask
        spec = self.specs[symbol]
        for p in [p for p in self.book.positions.values() if p.symbol == symbol]:
            if p.is_buy:
                hit = (
                    constants.DEAL_REASON_SL
                    if p.sl and bid <= p.sl
                    else constants.DEAL_REASON_TP
                    if p.tp and bid >= p.tp
                    else None
                )
            else:
                hit = (
                    constants.DEAL_REASON_SL
                    if p.sl and ask >= p.sl
                    else constants.DEAL_REASON_TP
                    if p.tp and ask <= p.tp
                    else None
                )
            if hit is not None:
                level = p.sl if hit == constants.DEAL_REASON_SL else p.tp
                tag = "sl" if hit == constants.DEAL_REASON_SL else "tp"
                self.close_at_market(p, hit, f"[{tag} {level:.{spec.digits}f}]", price=None if gap else level)
        for o in [o for o in self.book.orders.values() if o.symbol == symbol]:
            t, price = o.type, o.price_open
            if t == constants.ORDER_TYPE_BUY_STOP_LIMIT and ask >= price:
                o.type, o.price_open = constants.ORDER_TYPE_BUY_LIMIT, o.price_stoplimit
                t, price = o.type, o.price_open
            elif t == constants.ORDER_TYPE_SELL_STOP_LIMIT and bid <= price:
                o.type, o.price_open = constants.ORDER_TYPE_SELL_LIMIT, o.price_stoplimit
                t, price = o.type, o.price_open
            triggered = (
                (t == constants.ORDER_TYPE_BUY_LIMIT and ask <= price)
                or (t == constants.ORDER_TYPE_BUY_STOP and ask >= price)
                or (t == constants.ORDER_TYPE_SELL_LIMIT and bid >= price)
                or (t == constants.ORDER_TYPE_SELL_STOP and bid <= price)
            )
            if triggered:
                del self.book.orders[o.ticket]
                fill_price = (ask if o.is_buy else bid) if gap else price
                self.fill(o, None, o.volume_current, fill_price, constants.DEAL_REASON_EXPERT)
                o.volume_current = 0.0
                self._retire(o, constants.ORDER_STATE_FILLED, listed=False)
        self.rearm(symbol)

    def close_at_market(self, p: Position, reason: int, comment: str, price: float | None = None) -> Deal:
        """Close ``p`` at ``price``, or at the market (bid for a buy, ask for a sell) when not given."""
        q = self.quotes[p.symbol]
        bid, ask = q.bid, q.ask
        if price is None:
            price = bid if p.is_buy else ask
        order = Order(
            ticket=self.book.order_ticket(),
            symbol=p.symbol,
            type=constants.ORDER_TYPE_SELL if p.is_buy else constants.ORDER_TYPE_BUY,
            volume_initial=p.volume,
            volume_current=0.0,
            price_open=price,
            sl=0.0,
            tp=0.0,
            price_stoplimit=0.0,
            magic=p.magic,
            comment=comment,
            type_filling=constants.ORDER_FILLING_IOC,
            type_time=constants.ORDER_TIME_GTC,
            time_expiration=0,
            time_setup_msc=self.now_msc(),
            reason=reason,
        )
        deal = self.fill(order, p, p.volume, order.price_open, reason, comment)
        self._retire(order, constants.ORDER_STATE_FILLED, listed=False)
        return deal

    def rollover(self, now_msc: int) -> None:
        """Server midnight passed: charge each open position the swap of every night that ended (none for
        Saturday's and Sunday's, three for its symbol's ``swap_rollover3days``), and set the next midnight."""
        day = now_msc // DAY_MS
        previous, self._rollover_at = self._rollover_at, (day + 1) * DAY_MS
        if not previous or not self.book.positions:  # the first tick sets the first midnight
            return
        ended = range(previous // DAY_MS - 1, day)  # the days whose night is over
        currency = self.config.currency
        for p in self.book.positions.values():
            spec = self.specs[p.symbol]
            nights = sum(_nights(spec.swap_rollover3days, (d + 4) % 7) for d in ended)  # 1970-01-01: a Thursday
            if nights:
                charged = round(symbols.swap(spec, p.is_buy, p.volume, nights, currency, self.price_of), 2)
                p.swap = round(p.swap + charged, 2)
        self.open_swaps = sum(p.swap for p in self.book.positions.values())  # summed: no residue builds up

    def _settle_swap(self, position: Position, closed: float) -> float:
        """The swap a closing deal of ``closed`` lots takes from ``position`` (its share of what it accrued) into
        the balance: a deal's ``swap``."""
        share = (
            position.swap if closed >= position.volume - 1e-9 else round(position.swap * closed / position.volume, 2)
        )
        position.swap = round(position.swap - share, 2)
        self.open_swaps = sum(p.swap for p in self.book.positions.values())
        return share

    def stop_out(self) -> None:
        """Close the worst-losing position until the margin level is back above the stop-out level."""
        while self.book.positions and self.margin_used:
            level = self.equity() / self.margin_used * 100
            if level > self.config.margin_so_so:
                return
            worst = min(self.book.positions.values(), key=self.position_profit)
            self.close_at_market(worst, constants.DEAL_REASON_SO, f"[so {level:.2f}%]")

    def expire_orders(self, now_msc: int) -> None:
        """Expire timed pending orders and feed liquidity to partially filled market orders."""
        day = now_msc // 86_400_000
        for o in list(self.book.orders.values()):
            expired = (
                o.type_time in (constants.ORDER_TIME_SPECIFIED, constants.ORDER_TIME_SPECIFIED_DAY)
                and o.time_expiration
                and now_msc // 1000 >= o.time_expiration
            ) or (o.type_time == constants.ORDER_TIME_DAY and day > o.time_setup_msc // 86_400_000)
            if expired and o.type not in MARKET_TYPES:
                self._retire(o, constants.ORDER_STATE_EXPIRED)
            elif o.type in MARKET_TYPES and o.state == constants.ORDER_STATE_PARTIAL:
                spec = self.specs[o.symbol]
                volume = min(o.volume_current, self.config.liquidity_lots or o.volume_current)
                volume = round(math.floor(volume / spec.volume_step + 1e-9) * spec.volume_step, 8)
                target = self.book.positions.get(o.position_id)
                closing = target if target is not None and target.is_buy != o.is_buy else None
                self.fill(o, closing, volume, self._fill_price(spec, o.is_buy, 0), o.reason)
                o.volume_current = round(o.volume_current - volume, 8)
                if o.volume_current <= 1e-9:
                    self._retire(o, constants.ORDER_STATE_FILLED)
