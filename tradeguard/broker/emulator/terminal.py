"""A MetaTrader 5 terminal and trade server in one process: state, market data, the replay loop.

The public methods are the MetaTrader5 API (same names, arguments, return types and
``last_error`` behaviour). Methods prefixed ``replay_``/``admin_`` are the emulator's own
controls (advance the replay, deposit, switch Algo Trading), used by tradeguard's replay and tests.

The replay loop is the hot path: per tick it publishes the price, compares it with four
pre-computed trigger levels per symbol (SL/TP and pending-order prices), and, with positions
open, updates floating P&L incrementally and checks the stop-out level. Everything else runs only
when a level is crossed.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np

from tradeguard.broker import constants
from tradeguard.broker.data import is_tick_file, load_bars, load_ticks
from tradeguard.broker.emulator import symbols
from tradeguard.broker.emulator.api import NO_IPC, OK, api
from tradeguard.broker.emulator.book import Book, Order, Position, group_match
from tradeguard.broker.emulator.config import EmulatorConfig
from tradeguard.broker.emulator.faults import PROFILES, FaultInjector, FaultProfile
from tradeguard.broker.emulator.feed import TIMEFRAME_SECONDS, Feed
from tradeguard.broker.emulator.market import Market
from tradeguard.broker.emulator.market_state import LiveQuote, OpenExposure, TriggerLevels
from tradeguard.broker.emulator.structures import (
    RATES_DTYPE,
    TICKS_DTYPE,
    AccountInfo,
    SymbolInfo,
    TerminalInfo,
    Tick,
)
from tradeguard.broker.emulator.trading import TradeServer
from tradeguard.broker.server_time import ServerZone

INF = float("inf")


class Terminal(TradeServer):
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.initialized = False
        self.loaded = False
        self.latency_s = 0.0  # the latency fault, slept at the start of every API call
        self._last_error: tuple[int, str] = NO_IPC

    # ------------------------------------------------------------------ set-up ----------------

    def _load(self, config: EmulatorConfig) -> None:
        self.config = config
        profile = config.faults if isinstance(config.faults, FaultProfile) else PROFILES[config.faults]
        self.faults = FaultInjector(profile)
        self.latency_s = profile.latency_ms / 1000
        import random

        self._slip_rng = random.Random(profile.seed + 1)  # seeded: slippage is part of the emulation
        self.zone = ServerZone(config.server_timezone)
        self.specs: dict[str, symbols.SymbolDefinition] = {}
        for name, spec in symbols.CATALOGUE.items():
            self.specs[name] = spec.with_overrides(**config.symbols.get(name, {}))
        self.market = Market({symbol: self._feed(symbol, path) for symbol, path in config.datasets().items()})
        self._static_info: dict[str, SymbolInfo] = {}  # what symbol_info shows that never moves, per symbol
        self.selected = set(self.market.symbols)
        self.quotes: dict[str, LiveQuote] = {}  # symbols without data stand still at static_bid
        for name, spec in self.specs.items():
            feed = self.market.feeds.get(name)
            if feed is not None:  # until its first tick: its first price, timed never (infinitely old)
                self.quotes[name] = LiveQuote(float(feed.bid[0]), float(feed.ask[0]), 0)
                continue
            bid = round(spec.static_bid, spec.digits)
            self.quotes[name] = LiveQuote(bid, round(bid + spec.spread * spec.point, spec.digits))
        self.published: dict[str, tuple[float, float, int]] = {}
        self.book = Book()
        self.balance = config.balance
        self.credit = 0.0
        self.algo_trading = True
        self.paused = False  # a served market held still (admin_pause)
        self.trade_expert = True
        self.index = -1
        self.clock_msc = 0  # the latest tick's time, whichever symbol's: the market's now
        self._stale = bool(self.faults.profile.stale_tick_rate)
        self._stale_until: dict[str, int] = {}  # symbol -> its feed index up to which its ticks are withheld
        self.levels: dict[str, TriggerLevels] = {s: TriggerLevels() for s in self.specs}
        self.exposure: dict[str, OpenExposure] = {s: OpenExposure() for s in self.specs}
        # symbols whose profit is in the account currency: their floating P&L needs no conversion per tick
        self._same_currency = {s for s, spec in self.specs.items() if spec.currency_profit == config.currency}
        self._revalued = self._revalued_on_tick()
        self.converted_by = {name: self._converted_through(name) for name in self.market.symbols}
        for name, through in self.converted_by.items():
            missing = sorted(through - set(self.market.symbols))
            if missing:
                raise ValueError(
                    f"{name}'s money converts into {config.currency} through {', '.join(missing)}: replay "
                    f"{' and '.join(missing)} too (a standing price would make its profit and margin up)"
                )
        self.open_swaps = 0.0  # swaps charged to open positions, in the account currency: part of equity
        self._rollover_at = 0  # the next server midnight (ms), when swaps are charged
        self.floating = 0.0
        self.margin_used = 0.0
        self.request_id = 0
        # the last answers and the state they were built from: they are immutable, so while nothing
        # they show has moved the same one is returned (a replay asks for both on every bar)
        self._terminal_info: tuple[tuple[bool, bool], TerminalInfo] | None = None
        self._account_info: tuple[tuple[float, float, float, float, float, bool], AccountInfo] | None = None
        self.loaded = True
        self._advance_one()

    def _feed(self, symbol: str, path: str) -> Feed:
        """One symbol's data file as a feed (bars or ticks, by the file or ``data_kind``), its times read in the
        data's zone and moved onto the server's clock."""
        config, spec = self.config, self.specs[symbol]
        data_zone = ServerZone(config.data_timezone)
        kind = config.data_kind if config.data_kind != "auto" else ("ticks" if is_tick_file(path) else "bars")
        if kind == "ticks":
            tf = getattr(constants, f"TIMEFRAME_{config.timeframe}", None)
            if tf not in TIMEFRAME_SECONDS:
                raise ValueError(f"timeframe {config.timeframe!r}: not a timeframe bars can be built in")
            ticks = load_ticks(path)
            seconds = data_zone.to_utc_epochs(ticks["time_msc"] // 1000)
            shift = self.zone.to_server_epochs(seconds) - ticks["time_msc"] // 1000
            return Feed.from_ticks(symbol, ticks, spec.digits, tf, shift)
        bars = load_bars(path)
        utc = data_zone.to_utc_epochs(bars["time"])
        return Feed.from_bars(symbol, bars, spec.digits, spec.spread, self.zone.to_server_epochs(utc) - bars["time"])

    def server_timezone(self) -> str:
        """The zone this server's clock keeps (an emulator control: a real terminal does not say)."""
        return self.config.server_timezone

    def _rate_symbol(self, currency: str) -> str | None:
        """The symbol whose quote converts ``currency`` into the account's, as ``symbols.to_account`` looks it
        up (the direct pair first, else the inverse); None for the account's own currency."""
        account = self.config.currency
        if currency == account:
            return None
        direct = currency + account
        return direct if direct in self.specs else account + currency

    def _converted_through(self, name: str) -> set[str]:
        """The symbols whose quotes convert ``name``'s profit and margin into the account currency."""
        spec = self.specs[name]
        forex = spec.calc_mode in (constants.SYMBOL_CALC_MODE_FOREX, constants.SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE)
        currencies = {spec.currency_profit, spec.currency_margin if forex else spec.currency_profit}
        return {through for c in currencies if (through := self._rate_symbol(c)) is not None} - {name}

    def _revalued_on_tick(self) -> dict[str, tuple[str, ...]]:
        """Symbol -> the symbols whose floating P&L moves when it ticks: itself, and those whose profit currency
        converts into the account's through its quote (EURGBP's GBP through GBPUSD, USDJPY's JPY through USDJPY)."""
        moved: dict[str, list[str]] = {name: [name] for name in self.specs}
        for name, spec in self.specs.items():
            through = self._rate_symbol(spec.currency_profit)
            if through in moved and through != name:
                moved[through].append(name)
        return {name: tuple(names) for name, names in moved.items()}

    # ------------------------------------------------------------------ session ---------------

    def initialize(
        self,
        path: str | None = None,
        *,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        timeout: int = 60000,
        portable: bool = False,
        reset: bool = False,
        config: dict[str, Any] | None = None,
        **options: Any,
    ) -> bool:
        """Connect; the first call (or ``reset=True``) builds the market and account from ``config``.

        ``config`` and extra keyword arguments are the emulator's :class:`EmulatorConfig`; without any,
        the shipped EURUSD sample and a default demo account open, as a terminal opens its last account.
        ``login``/``password``/``server`` log in, as MT5's do; the demo account's own are ``config``'s.
        """
        with self._lock:
            if not self.loaded or reset:
                try:
                    self._load(EmulatorConfig(**{**(config or {}), **options}))
                except Exception as exc:  # a bad argument or data file: asking again will not help
                    self._last_error = (constants.RES_E_INVALID_PARAMS, f"Invalid arguments: {exc}")
                    return False
            self.initialized = True
            self._last_error = OK
            if login is not None:
                return self.login(login, password=password, server=server)
            return True

    @api(False)
    def login(self, login: int, password: str | None = None, server: str | None = None, timeout: int = 60000) -> bool:
        cfg = self.config
        if login != cfg.login or (cfg.password and password != cfg.password) or (server and server != cfg.server):
            self._last_error = (constants.RES_E_AUTH_FAILED, "Terminal: Authorization failed")
            return False
        return True

    def shutdown(self) -> None:
        with self._lock:
            self.initialized = False
            self._last_error = NO_IPC

    @api()
    def version(self) -> tuple[int, int, str] | None:
        return (500, 5735, "16 Oct 2026")

    def last_error(self) -> tuple[int, str]:
        return self._last_error

    @api()
    def terminal_info(self) -> TerminalInfo | None:
        now = self.now_msc()
        state = (self.faults.connected(now), self.algo_trading and self.faults.autotrading(now))
        if self._terminal_info is not None and self._terminal_info[0] == state:  # immutable: the same one will do
            return self._terminal_info[1]
        info = TerminalInfo(
            community_account=False,
            community_connection=False,
            connected=state[0],
            dlls_allowed=False,
            trade_allowed=state[1],
            tradeapi_disabled=False,
            email_enabled=False,
            ftp_enabled=False,
            notifications_enabled=False,
            mqid=False,
            build=5735,
            maxbars=100000,
            codepage=0,
            ping_last=int(self.faults.profile.latency_ms * 1000),
            community_balance=0.0,
            retransmission=0.0,
            company=self.config.company,
            name=constants.TERMINAL_NAME,
            language="English",
            path="emulator",
            data_path="emulator",
            commondata_path="emulator",
        )
        self._terminal_info = (state, info)
        return info

    @api()
    def account_info(self) -> AccountInfo | None:
        state = (self.balance, self.credit, self.floating, self.open_swaps, self.margin_used, self.trade_expert)
        if self._account_info is not None and self._account_info[0] == state:  # nothing moved since the last one
            return self._account_info[1]
        cfg = self.config
        equity = self.equity()
        margin = self.margin_used
        margin_mode = (
            constants.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
            if self.hedging
            else constants.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
        )
        info = AccountInfo(  # built when the account moved (the last answer is kept while it does not)
            login=cfg.login,
            trade_mode=constants.ACCOUNT_TRADE_MODE_DEMO,
            leverage=cfg.leverage,
            limit_orders=cfg.limit_orders,
            margin_so_mode=constants.ACCOUNT_STOPOUT_MODE_PERCENT,
            trade_allowed=True,
            trade_expert=self.trade_expert,
            margin_mode=margin_mode,
            currency_digits=2,
            fifo_close=False,
            balance=round(self.balance, 2),
            credit=self.credit,
            profit=round(self.floating + self.open_swaps, 2),
            equity=round(equity, 2),
            margin=round(margin, 2),
            margin_free=round(equity - margin, 2),
            margin_level=round(equity / margin * 100, 2) if margin else 0.0,
            margin_so_call=cfg.margin_so_call,
            margin_so_so=cfg.margin_so_so,
            margin_initial=0.0,
            margin_maintenance=0.0,
            assets=0.0,
            liabilities=0.0,
            commission_blocked=0.0,
            name=cfg.name,
            server=cfg.server,
            currency=cfg.currency,
            company=cfg.company,
        )
        self._account_info = (state, info)
        return info

    # ------------------------------------------------------------------ symbols and quotes -----

    @api()
    def symbols_total(self) -> int | None:
        return len(self.specs)

    @api()
    def symbols_get(self, group: str | None = None) -> tuple[Any, ...] | None:
        names = [n for n in self.specs if group is None or group_match(n, group)]
        return tuple(self._symbol_info(n) for n in names)

    @api()
    def symbol_info(self, symbol: str) -> Any:
        if symbol not in self.specs:
            self._last_error = (constants.RES_E_NOT_FOUND, "Terminal: Not found")
            return None
        return self._symbol_info(symbol)

    def _symbol_info(self, symbol: str) -> Any:
        bid, ask, t = self._published(symbol)
        static = self._static_info.get(symbol)
        if static is None:
            static = self._static_info[symbol] = symbols.static_info(self.specs[symbol])
        return symbols.symbol_info(
            static,
            self.specs[symbol],
            bid,
            ask,
            t // 1000,
            symbol in self.selected,
            self.config.currency,
            self.price_of,
        )

    def _published(self, symbol: str) -> tuple[float, float, int]:
        """The quote clients see: the live one, or the last published one while ticks are stale."""
        if symbol in self.published:
            return self.published[symbol]
        q = self.quotes[symbol]
        t = q.time_msc if symbol in self.market.feeds else self.now_msc()  # no data: the standing quote is now's
        return q.bid, q.ask, int(t)

    @api()
    def symbol_info_tick(self, symbol: str) -> Tick | None:
        if symbol not in self.specs:
            self._last_error = (constants.RES_E_NOT_FOUND, "Terminal: Not found")
            return None
        bid, ask, t = self._published(symbol)
        # time bid ask last volume time_msc flags volume_real, by position: asked on every capture
        return Tick(t // 1000, bid, ask, 0.0, 0, t, constants.TICK_FLAG_BID | constants.TICK_FLAG_ASK, 0.0)

    @api(False)
    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        if symbol not in self.specs:
            self._last_error = (constants.RES_E_NOT_FOUND, "Terminal: Not found")
            return False
        (self.selected.add if enable else self.selected.discard)(symbol)
        return True

    @api(False)
    def market_book_add(self, symbol: str) -> bool:
        self._last_error = (constants.RES_E_UNSUPPORTED, "Terminal: market depth is not emulated")
        return False

    market_book_release = market_book_add

    def market_book_get(self, symbol: str) -> None:
        self.market_book_add(symbol)

    # ------------------------------------------------------------------ rates and ticks --------

    def _rates(self, symbol: str, timeframe: int) -> np.ndarray | None:
        feed = self.market.feeds.get(symbol)
        if feed is None:
            self._last_error = (constants.RES_E_NOT_FOUND, "Terminal: Not found")
            return None
        seconds = TIMEFRAME_SECONDS.get(timeframe)
        if seconds is None or seconds < feed.bar_seconds or seconds % feed.bar_seconds:
            self._last_error = (constants.RES_E_INVALID_PARAMS, f"Invalid timeframe {timeframe} for the replayed data")
            return None
        rates = feed.rates_until(self.market.reached[symbol])
        return rates if seconds == feed.bar_seconds else resample(rates, seconds)

    @api()
    def copy_rates_from_pos(self, symbol: str, timeframe: int, start_pos: int, count: int) -> np.ndarray | None:
        rates = self._rates(symbol, timeframe)
        if rates is None:
            return None
        end = len(rates) - start_pos
        return rates[max(0, end - count) : max(0, end)].copy()

    @api()
    def copy_rates_from(self, symbol: str, timeframe: int, date_from: Any, count: int) -> np.ndarray | None:
        rates = self._rates(symbol, timeframe)
        if rates is None:
            return None
        end = int(np.searchsorted(rates["time"], _epoch(date_from), side="right"))
        return rates[max(0, end - count) : end].copy()

    @api()
    def copy_rates_range(self, symbol: str, timeframe: int, date_from: Any, date_to: Any) -> np.ndarray | None:
        rates = self._rates(symbol, timeframe)
        if rates is None:
            return None
        t = rates["time"]
        return rates[(t >= _epoch(date_from)) & (t <= _epoch(date_to))].copy()

    def _ticks(self, symbol: str, lo_ms: int, hi_ms: int, count: int | None) -> np.ndarray | None:
        feed = self.market.feeds.get(symbol)
        if feed is None:
            self._last_error = (constants.RES_E_NOT_FOUND, "Terminal: Not found")
            return None
        times = feed.time_msc[: self.market.reached[symbol] + 1]
        start = int(np.searchsorted(times, lo_ms, side="left"))
        stop = int(np.searchsorted(times, hi_ms, side="right"))
        if count is not None:
            stop = min(stop, start + count)
        out = np.zeros(stop - start, dtype=TICKS_DTYPE)
        out["time_msc"] = times[start:stop]
        out["time"] = out["time_msc"] // 1000
        out["bid"], out["ask"] = feed.bid[start:stop], feed.ask[start:stop]
        out["flags"] = constants.TICK_FLAG_BID | constants.TICK_FLAG_ASK
        return out

    @api()
    def copy_ticks_from(self, symbol: str, date_from: Any, count: int, flags: int) -> np.ndarray | None:
        return self._ticks(symbol, _epoch(date_from) * 1000, 2**62, count)

    @api()
    def copy_ticks_range(self, symbol: str, date_from: Any, date_to: Any, flags: int) -> np.ndarray | None:
        return self._ticks(symbol, _epoch(date_from) * 1000, _epoch(date_to) * 1000, None)

    # ------------------------------------------------------------------ records -----------------

    @api()
    def orders_total(self) -> int | None:
        return len(self.book.orders)

    @api()
    def orders_get(self, symbol: str | None = None, group: str | None = None, ticket: int | None = None) -> Any:
        for o in self.book.orders.values():
            q = self.quotes[o.symbol]
            o.price_current = q.ask if o.is_buy else q.bid
        return tuple(o.as_tuple() for o in self._filter(self.book.orders.values(), symbol, group, ticket))

    @api()
    def positions_total(self) -> int | None:
        return len(self.book.positions)

    @api()
    def positions_get(self, symbol: str | None = None, group: str | None = None, ticket: int | None = None) -> Any:
        chosen = self._filter(self.book.positions.values(), symbol, group, ticket)
        return tuple(p.as_tuple(self.position_profit(p)) for p in chosen)

    @staticmethod
    def _filter(items: Any, symbol: str | None, group: str | None, ticket: int | None) -> list[Any]:
        if symbol is not None:  # symbol overrides ticket, as in MT5
            return [x for x in items if x.symbol == symbol]
        if group is not None:
            return [x for x in items if group_match(x.symbol, group)]
        if ticket is not None:
            return [x for x in items if x.ticket == ticket]
        return list(items)

    def _history(
        self,
        items: list[Any],
        times: list[int],
        by_ticket: Any,
        by_position: dict[int, list[Any]],
        args: tuple[Any, ...],
        group: str | None,
        ticket: int | None,
        position: int | None,
    ) -> list[Any] | None:
        """The three MT5 call forms: ``(from, to[, group=])``, ``(ticket=)`` or ``(position=)``."""
        if ticket is not None:
            return list(by_ticket(ticket))
        if position is not None:
            return list(by_position.get(position, ()))
        if len(args) != 2:
            self._last_error = (constants.RES_E_INVALID_PARAMS, "Invalid arguments")
            return None
        chosen = _window(items, times, *args)
        return [x for x in chosen if group_match(x.symbol, group)] if group else chosen

    @api()
    def history_orders_get(
        self, *args: Any, group: str | None = None, ticket: int | None = None, position: int | None = None
    ) -> Any:
        b = self.book
        found = self._history(
            b.history_orders,
            b.order_times,
            lambda t: [b.orders_by_ticket[t]] if t in b.orders_by_ticket else [],
            b.orders_by_position,
            args,
            group,
            ticket,
            position,
        )
        return None if found is None else tuple(o.as_tuple() for o in found)

    @api()
    def history_orders_total(self, date_from: Any, date_to: Any) -> int:
        lo, hi = _bounds(self.book.order_times, date_from, date_to)
        return hi - lo

    @api()
    def history_deals_get(
        self, *args: Any, group: str | None = None, ticket: int | None = None, position: int | None = None
    ) -> Any:
        """``ticket`` selects deals by their ORDER ticket (``deal.order``), as the real API does."""
        b = self.book
        found = self._history(
            b.deals,
            b.deal_times,
            lambda t: b.deals_by_order.get(t, ()),
            b.deals_by_position,
            args,
            group,
            ticket,
            position,
        )
        if found is None:
            return None
        lag = self.faults.profile.history_lag_ms
        if lag:  # a real server's history shows a deal a little after the order said DONE
            found = [d for d in found if d.time_msc + lag <= self.now_msc()]
        return tuple(d.as_tuple() for d in found)

    @api()
    def history_deals_total(self, date_from: Any, date_to: Any) -> int:
        """Counted without building the deal tuples: the cheap "anything new?" question pollers ask."""
        lo, hi = _bounds(self.book.deal_times, date_from, date_to)
        lag = self.faults.profile.history_lag_ms
        if lag:
            hi = bisect.bisect_right(self.book.deal_times, self.now_msc() - lag, lo, max(lo, hi))
        return hi - lo

    # ------------------------------------------------------------------ replay ------------------

    def replay_step(self, ticks: int = 1) -> int:
        """Process up to ``ticks`` ticks; return how many were processed (0 at the end of the data)."""
        with self._lock:
            done = 0
            while done < ticks and not self.replay_finished:
                self._advance_one()
                done += 1
            return done

    def replay_bars(self) -> Iterator[tuple[str, np.void]]:
        """Advance tick by tick; yield each closed bar (symbol, MT5 rates record) once every tick of the instant
        that closed it has been processed, so every symbol's quote is current when its bar is handed out."""
        market, advance = self.market, self._advance_one
        last, bar_end, times = len(market) - 1, market.bar_end, market.time
        while True:
            with self._lock:
                closed = []
                while self.index < last:  # not replay_finished
                    advance()
                    i = self.index
                    if bar_end[i]:
                        closed.append(market.closed_bar(i))
                    if closed and (i == last or times[i + 1] != times[i]):
                        break
            if not closed:
                return
            yield from closed

    def _advance_one(self) -> None:
        i = self.index = self.index + 1
        market = self.market
        sym, local = market.symbol_at[i], market.local_at[i]
        bid, ask, t = market.bid[i], market.ask[i], market.time[i]
        market.reached[sym] = local
        self.clock_msc = t
        q = self.quotes[sym]
        if self._stale and local and market.bar_start[i] and self.faults.stale_bar():  # this bar's ticks withheld
            self._stale_until[sym] = market.last_tick_of_bar(sym, local)
            self.published.setdefault(sym, (q.bid, q.ask, q.time_msc))
        elif self.published and sym in self.published and local > self._stale_until.get(sym, -1):
            del self.published[sym]
        q.bid, q.ask, q.time_msc = bid, ask, t
        if t >= self._rollover_at:  # midnight passed: what was held over it pays before this tick trades anything
            self.rollover(t)
        lv = self.levels[sym]  # compared inline: the hot path, one tick at a time (no call per tick)
        if bid <= lv.lo_bid or bid >= lv.hi_bid or ask <= lv.lo_ask or ask >= lv.hi_ask:
            self.on_levels_crossed(sym, gap=market.bar_start[i])
        if self.margin_used:
            for name in self._revalued[sym]:
                e = self.exposure[name]
                if e.bought or e.sold:
                    mq = self.quotes[name]
                    f = e.bought * mq.bid - e.bought_cost + e.sold_proceeds - e.sold * mq.ask  # OpenExposure.pnl
                    if name not in self._same_currency:
                        f *= self.conversion(name)
                    self.floating += f - e.floating
                    e.floating = f
            equity = self.balance + self.credit + self.floating + self.open_swaps
            if equity * 100 <= self.margin_used * self.config.margin_so_so:
                self.stop_out()
        if self.book.orders:
            self.expire_orders(t)

    # ------------------------------------------------------------------ admin -------------------

    def admin_deposit(self, amount: float, comment: str = "deposit") -> int:
        """A balance deal with no trade behind it (deposit > 0, withdrawal < 0)."""
        with self._lock:
            return self.balance_deal(amount, comment)

    def admin_set_algo_trading(self, enabled: bool) -> None:
        with self._lock:
            self.algo_trading = enabled

    def admin_set_trade_mode(self, symbol: str, mode: int) -> None:
        with self._lock:
            self.specs[symbol] = self.specs[symbol].with_overrides(trade_mode=mode)

    def admin_set_symbol(self, symbol: str, **changes: Any) -> None:
        """The broker changes a symbol's rules mid-run (a wider stops level for news, a freeze level)."""
        with self._lock:
            self.specs[symbol] = self.specs[symbol].with_overrides(**changes)
            self._static_info.pop(symbol, None)

    def admin_add_position(self, symbol: str, is_buy: bool, volume: float, magic: int = 0, comment: str = "") -> int:
        """Open a position as another EA or a person at the terminal would (magic 0 = manual)."""
        with self._lock:
            request = {
                "action": constants.TRADE_ACTION_DEAL,
                "symbol": symbol,
                "volume": volume,
                "magic": magic,
                "type": constants.ORDER_TYPE_BUY if is_buy else constants.ORDER_TYPE_SELL,
                "comment": comment,
                "type_filling": constants.ORDER_FILLING_IOC,
            }
            result = self.execute_request(
                request, reason=constants.DEAL_REASON_CLIENT if magic == 0 else constants.DEAL_REASON_EXPERT
            )
            if result.retcode != constants.TRADE_RETCODE_DONE:
                raise RuntimeError(f"admin_add_position failed: {result.retcode} {result.comment}")
            return int(result.order)

    def admin_close_position(self, ticket: int, volume: float | None = None) -> int:
        """Close (part of) a position by hand at the terminal: a deal with magic 0, reason CLIENT. Returns its order,
        or 0 when the position is no longer open (its stop or target got there first)."""
        with self._lock:
            held = self.book.positions.get(ticket)
            if held is None:
                return 0
            request = {
                "action": constants.TRADE_ACTION_DEAL,
                "symbol": held.symbol,
                "volume": volume or held.volume,
                "magic": 0,
                "type": constants.ORDER_TYPE_SELL if held.is_buy else constants.ORDER_TYPE_BUY,
                "type_filling": constants.ORDER_FILLING_IOC,
                "comment": "closed at the terminal",
            }
            if self.hedging:
                request["position"] = ticket
            result = self.execute_request(request, reason=constants.DEAL_REASON_CLIENT)
            if result.retcode != constants.TRADE_RETCODE_DONE:
                raise RuntimeError(f"admin_close_position failed: {result.retcode} {result.comment}")
            return int(result.order)

    def admin_pause(self, paused: bool) -> None:
        """Hold the served market still (``emulator serve --ticks-per-second`` stops advancing) or let it go."""
        self.paused = paused

    def admin_state(self) -> dict[str, Any]:
        """A plain summary for assertions and the served process's health line."""
        with self._lock:
            return {
                "index": self.index,
                "time_msc": self.now_msc(),
                "balance": round(self.balance, 2),
                "equity": round(self.equity(), 2),
                "positions": len(self.book.positions),
                "orders": len(self.book.orders),
                "deals": len(self.book.deals),
                "faults": dict(self.faults.injected),
            }


def _window(items: list[Any], times: list[int], date_from: Any, date_to: Any) -> list[Any]:
    """The history entries between two MT5 times (``times`` in ms, sorted, parallel to ``items``)."""
    lo, hi = _bounds(times, date_from, date_to)
    return items[lo:hi]


def _bounds(times: list[int], date_from: Any, date_to: Any) -> tuple[int, int]:
    """The index range of the entries between two MT5 times; counting it copies nothing."""
    lo = bisect.bisect_left(times, _epoch(date_from) * 1000)
    return lo, max(lo, bisect.bisect_right(times, _epoch(date_to) * 1000))


def _epoch(value: Any) -> int:
    """MT5 accepts datetimes (aware: as is; naive: local zone) or int seconds, on the server scale."""
    if isinstance(value, datetime):
        return int(value.timestamp())  # naive: in the local zone
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"expected a datetime or epoch seconds, got {type(value).__name__}")


def resample(rates: np.ndarray, seconds: int) -> np.ndarray:
    """Aggregate bars into a higher timeframe aligned to multiples of ``seconds`` (D1 at server midnight)."""
    if len(rates) == 0:
        return rates
    buckets = rates["time"] // seconds * seconds
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    ends = np.r_[starts[1:], len(rates)]
    out = np.zeros(len(starts), dtype=RATES_DTYPE)
    out["time"] = buckets[starts]
    out["open"] = rates["open"][starts]
    out["close"] = rates["close"][ends - 1]
    out["high"] = np.maximum.reduceat(rates["high"], starts)
    out["low"] = np.minimum.reduceat(rates["low"], starts)
    out["tick_volume"] = np.add.reduceat(rates["tick_volume"], starts)
    out["spread"] = rates["spread"][starts]
    return out


__all__ = ["EmulatorConfig", "Order", "Position", "Terminal"]
