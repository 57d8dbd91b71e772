"""The one MT5 adapter: drives any module with the MetaTrader5 API, the same code in every mode.

``broker.module`` chooses the module: ``emulator`` (tradeguard's own, in process),
``MetaTrader5`` (the official Windows package) or ``mt5linux`` (the RPyC bridge to a terminal under
Wine, or to ``tradeguard emulator serve``). Everything the terminal returns is converted to typed,
UTC values; every request is checked here first, so that bad input (off-step volume, stops inside
the stops level, an unknown symbol, a comment that a build would cut) never reaches ``order_send``.

Not thread-safe, like the terminal it drives: one thread owns the broker.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from tradeguard.broker import constants, retcodes
from tradeguard.broker.server_time import ServerZone, from_offset_hours, shown_offset
from tradeguard.broker.types import (
    HISTORY_END,
    HISTORY_START,
    AccountState,
    BrokerDeal,
    BrokerError,
    BrokerFindings,
    BrokerOrder,
    BrokerPosition,
    CheckResult,
    DealKind,
    OrderRefused,
    Quote,
    SendResult,
    SymbolSpec,
    TerminalState,
)
from tradeguard.errors import StartupError
from tradeguard.models import ClosedBy, DealEntry, OrderIntent, OrderState, OrderType, Side

if TYPE_CHECKING:
    from tradeguard.broker.settings import BrokerSettings

T = TypeVar("T")

# MT5's integer codes, read and written here and nowhere else: the rest of tradeguard sees enums
ACTION_DEAL, ACTION_PENDING, ACTION_SLTP, ACTION_REMOVE = 1, 5, 6, 8  # TRADE_ACTION_*
MARKET_EXECUTION = (2, 3)  # SYMBOL_TRADE_EXECUTION_MARKET, _EXCHANGE: the request's price is ignored
PENDING_TYPES = {
    (OrderType.LIMIT, Side.BUY): 2,
    (OrderType.LIMIT, Side.SELL): 3,
    (OrderType.STOP, Side.BUY): 4,
    (OrderType.STOP, Side.SELL): 5,
    (OrderType.STOP_LIMIT, Side.BUY): 6,
    (OrderType.STOP_LIMIT, Side.SELL): 7,
}
DEAL_KINDS = {
    0: DealKind.TRADE,
    1: DealKind.TRADE,
    2: DealKind.FUNDING,
    3: DealKind.FUNDING,
    4: DealKind.FUNDING,
    5: DealKind.FUNDING,
    6: DealKind.FUNDING,
}
DEAL_ENTRIES = {0: DealEntry.IN, 1: DealEntry.OUT, 2: DealEntry.INOUT, 3: DealEntry.OUT_BY}
#: DEAL_REASON_*: client (desktop), mobile, web, expert, SL, TP, stop-out
CLOSED_BY = {
    0: ClosedBy.HAND,
    1: ClosedBy.HAND,
    2: ClosedBy.HAND,
    3: ClosedBy.ORDER,
    4: ClosedBy.STOP,
    5: ClosedBy.TARGET,
    6: ClosedBy.STOP_OUT,
}
BUY_ORDER_TYPES = (
    constants.ORDER_TYPE_BUY,
    constants.ORDER_TYPE_BUY_LIMIT,
    constants.ORDER_TYPE_BUY_STOP,
    constants.ORDER_TYPE_BUY_STOP_LIMIT,
)
ORDER_TYPES = {
    0: OrderType.MARKET,
    1: OrderType.MARKET,
    2: OrderType.LIMIT,
    3: OrderType.LIMIT,
    4: OrderType.STOP,
    5: OrderType.STOP,
    6: OrderType.STOP_LIMIT,
    7: OrderType.STOP_LIMIT,
}
#: ORDER_STATE_*: started, placed, (partial: working) are ACCEPTED; request_* are changes in flight
ORDER_STATES = {
    2: OrderState.CANCELLED,
    3: OrderState.PARTIALLY_FILLED,
    4: OrderState.FILLED,
    5: OrderState.REJECTED,
    6: OrderState.EXPIRED,
}
log = logging.getLogger("tradeguard.broker")
#: what to do about the IPC failures ``initialize`` reports (MT5_API.md §2)
INIT_HINTS = {
    constants.RES_E_INTERNAL_FAIL_INIT: (
        ": the terminal was not found or did not start; set broker.path to its terminal64.exe, and "
        "broker.portable = true for a portable installation"
    ),
    constants.RES_E_INTERNAL_FAIL_CONNECT: (
        ": no IPC link to the terminal; is it running, logged in, and under the same user as tradeguard?"
    ),
    constants.RES_E_INTERNAL_FAIL_TIMEOUT: (
        ": the terminal did not answer within broker.timeout_ms; it may still be starting or updating: "
        "raise broker.timeout_ms or broker.connect_retries"
    ),
}
#: refusals that say the symbol's rules differ from the spec read (the broker widened its stops level for news,
#: made the symbol close-only, froze it): the next read of its spec asks the terminal again
SYMBOL_RULE_REFUSALS = frozenset(
    {
        constants.TRADE_RETCODE_INVALID_STOPS,
        constants.TRADE_RETCODE_TRADE_DISABLED,
        constants.TRADE_RETCODE_FROZEN,
        constants.TRADE_RETCODE_INVALID_FILL,
        constants.TRADE_RETCODE_CLOSE_ONLY,
        constants.TRADE_RETCODE_LONG_ONLY,
        constants.TRADE_RETCODE_SHORT_ONLY,
    }
)
#: ``initialize`` answers no retry can change: invalid arguments, authorization failed
FINAL_INIT_ERRORS = frozenset({constants.RES_E_INVALID_PARAMS, constants.RES_E_AUTH_FAILED})

MAX_COMMENT = 26  # builds cut the comment between 27 and 31 characters (MT5_API.md §6)
TIMEFRAME_CODES = {
    name.removeprefix("TIMEFRAME_"): value for name, value in vars(constants).items() if name.startswith("TIMEFRAME_")
}


#: the package each broker module needs, and how to install it
_PACKAGES = {
    "MetaTrader5": ("MetaTrader5", "Windows: pip install 'tradeguard[mt5]'"),
    "mt5linux": ("mt5linux", "pip install --no-deps mt5linux rpyc"),
}


def module_problem(cfg: BrokerSettings) -> str:
    """Why the broker module the settings name cannot be imported here ('' when it can), without importing it:
    ``config check`` says so before ``run`` would fail on it."""
    package = _PACKAGES.get(cfg.module)
    if package is None or importlib.util.find_spec(package[0]) is not None:
        return ""
    return f"broker.module = {cfg.module!r}: package {package[0]} not installed ({package[1]})"


def load_module(cfg: BrokerSettings) -> Any:
    """Import (or connect) the MetaTrader5-compatible module the settings name.

    ``emulator`` gives a private terminal (same API as the module): each runtime replays its own
    market, so two runtimes in one process never share an account.
    """
    if cfg.module == "emulator":
        from tradeguard.broker.emulator.terminal import Terminal  # deferred: a live process never loads it

        return Terminal()
    if cfg.module == "MetaTrader5":
        try:
            return importlib.import_module("MetaTrader5")
        except ImportError as exc:
            raise BrokerError(module_problem(cfg)) from exc
    try:
        from mt5linux import MetaTrader5
    except ImportError as exc:
        raise BrokerError(module_problem(cfg)) from exc
    try:
        return MetaTrader5(host=cfg.host, port=cfg.port)
    except OSError as exc:
        raise BrokerError(f"broker.module = 'mt5linux': cannot reach {cfg.host}:{cfg.port}: {exc}") from exc


def _local(result: Any) -> Any:
    """Bring an RPyC proxy (mt5linux) over by value in one transfer; reading it field by field
    would cost a network round trip per field. Keeps the proxy when it cannot be copied."""
    if not type(result).__module__.startswith("rpyc"):
        return result
    try:
        from rpyc.utils.classic import obtain

        return obtain(result)
    except Exception:  # a structure the client cannot rebuild (the real terminal's types on Linux)
        return result


class _ByValue:
    """A terminal in another process (the mt5linux client): every answer is brought over by value.

    An in-process module (the official package, the emulator) is driven as it is: its answers are
    already local, and a replay makes a handful of calls per bar."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._module, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return _local(attr(*args, **kwargs))

        return call


def _driven(module: Any) -> Any:
    """The module as it is when its answers are local (the official package, tradeguard's in-process emulator);
    anything else (the mt5linux client above all) has its answers brought over by value."""
    local = isinstance(module, types.ModuleType) or type(module).__module__.startswith("tradeguard.")
    return module if local else _ByValue(module)


def _account_state(a: Any) -> AccountState:
    return AccountState(  # converted whenever the account moved
        login=int(a.login),
        currency=str(a.currency),
        balance=float(a.balance),
        equity=float(a.equity),
        margin=float(a.margin),
        margin_free=float(a.margin_free),
        margin_level=float(a.margin_level),
        profit=float(a.profit),
        leverage=int(a.leverage),
        hedging=int(a.margin_mode) == 2,
        trade_allowed=bool(a.trade_allowed),
        trade_expert=bool(a.trade_expert),
        margin_so_call=float(a.margin_so_call),
        margin_so_so=float(a.margin_so_so),
        server=str(a.server),
    )


def _terminal_state(t: Any) -> TerminalState:
    return TerminalState(
        connected=bool(t.connected),
        trade_allowed=bool(t.trade_allowed),
        ping_ms=int(t.ping_last) / 1000,
        build=int(t.build),
        name=str(t.name),
    )


class _ReadScope:
    """The adapter's one read scope (see :meth:`MT5Adapter.read_scope`): a context manager made once, counting
    how deep scopes are opened, so a decision or a pass of jobs costs no allocation for it."""

    __slots__ = ("_adapter", "_depth")

    def __init__(self, adapter: MT5Adapter) -> None:
        self._adapter, self._depth = adapter, 0

    def __enter__(self) -> None:
        self._depth += 1
        if self._depth == 1:
            self._adapter._memo = {}

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._adapter._memo = None


class MT5Adapter:
    def __init__(self, module: Any, cfg: BrokerSettings, sleep: Any = time.sleep) -> None:
        self.mt5 = _driven(module)
        self.cfg = cfg
        self._sleep = sleep
        self._specs: dict[str, SymbolSpec] = {}
        self._cross_valued: set[str] = set()  # symbols whose tick value moves with a cross rate
        self.zone = ServerZone(cfg.server_timezone)  # the server's clock: derived again only when asked to
        self.connected = False
        self._memo: dict[Any, Any] | None = None
        self._scope = _ReadScope(self)
        #: requests this process has sent (``order_send``): a change marker for whoever compares broker state
        self.sent = 0
        self._all_history: tuple[ServerZone, datetime, datetime] | None = None  # deals_count's bounds, server scale

    # ------------------------------------------------------------------ decision scope ----------

    def read_scope(self) -> _ReadScope:
        """Within one scope (a decision, a pass of jobs) the broker's state is read once: the plugins asking
        for the account, positions, orders or a quote share the answer. One thread owns the broker, so nothing
        moves in between; sending or checking an order ends the sharing early (whatever was read no longer
        holds). A scope opened inside another adds nothing. ``with adapter.read_scope(): ...``"""
        return self._scope

    def forget_reads(self) -> None:
        """Read afresh from here on, inside an open scope too (the reconciler after it imported deals)."""
        if self._memo is not None:
            self._memo = {}

    def _memoised(self, key: Any, read: Callable[..., T], *args: Any) -> T:
        """``read(*args)``, once per scope for ``key`` (no closure to build: a quote is asked every bar)."""
        memo = self._memo
        if memo is None:
            return read(*args)
        if key in memo:
            found: T = memo[key]
            return found
        value = memo[key] = read(*args)
        return value

    # ------------------------------------------------------------------ session ---------------

    def last_error(self) -> tuple[int, str]:
        code, message = self.mt5.last_error()
        return int(code), str(message)

    def connect(self, **initialize_kwargs: Any) -> None:
        """``initialize`` (and log in) with bounded retries; raise naming the terminal's last error."""
        cfg = self.cfg
        kwargs: dict[str, Any] = dict(initialize_kwargs)
        if cfg.path:
            kwargs["path"] = cfg.path
        kwargs.setdefault("portable", cfg.portable)
        kwargs.setdefault("timeout", cfg.timeout_ms)
        if cfg.login:
            kwargs.update(login=cfg.login, password=cfg.password.get_secret_value(), server=cfg.server)
        if cfg.module == "emulator" and not initialize_kwargs:  # apart: the demo account has a login of its own
            kwargs["config"] = cfg.emulator.model_dump(exclude_defaults=True)
        error: tuple[int, str] | None = None
        for attempt in range(1, cfg.connect_retries + 1):
            if self.mt5.initialize(**kwargs):
                self.connected = True
                log.info("terminal connected", extra={"broker_module": cfg.module, "attempt": attempt})
                if cfg.derive_server_offset:
                    self._derive_offset()
                else:
                    self._check_zone()
                return
            error = self.last_error()
            if cfg.module == "emulator" and error[0] == constants.RES_E_INVALID_PARAMS:  # its data or settings
                raise StartupError(error[1].removeprefix("Invalid arguments: "))  # the problem leads, not MT5's code
            log.warning("initialize failed", extra={"attempt": attempt, "code": error[0], "error": error[1]})
            if error[0] in FINAL_INIT_ERRORS:  # a wrong argument or password: a retry fails alike (or locks it)
                raise BrokerError("initialize refused", error)
            if attempt < cfg.connect_retries:
                self._sleep(cfg.retry_delay_seconds * attempt)
        hint = INIT_HINTS.get(error[0], "") if error else ""
        raise BrokerError(f"initialize failed after {cfg.connect_retries} attempts{hint}", error)

    def shutdown(self) -> None:
        self.mt5.shutdown()
        self.connected = False

    def _derive_offset(self) -> None:
        """A real terminal only: the server's offset is a fresh tick's server time minus the wall clock, to the
        quarter hour, adopted when it is a real offset (-12 to +14 hours); otherwise the configured zone stays."""
        observed = self.observed_offset()
        if observed is None:
            log.warning("server offset not derived: no fresh tick", extra={"zone": self.zone.name})
            return
        self.zone = ServerZone(from_offset_hours(observed.total_seconds() / 3600))
        log.info("server offset derived", extra={"zone": self.zone.name})

    def observed_offset(self, symbol: str | None = None, wait: float = 1.0) -> timedelta | None:
        """The server clock minus the wall clock as the terminal shows it now: a tick of ``symbol`` (default: the
        first selected symbol) that moved within ``wait`` seconds, against the wall clock, to the quarter hour.
        None while its market is shut (no fresh tick), or when the difference is no real offset."""
        if symbol is None:
            selected = [s for s in self.mt5.symbols_get() or () if s.select]
            if not selected:
                return None
            symbol = str(selected[0].name)
        first = self.mt5.symbol_info_tick(symbol)
        self._sleep(wait)
        tick = self.mt5.symbol_info_tick(symbol)
        if first is None or tick is None or int(tick.time_msc) == int(first.time_msc):
            return None
        return shown_offset(int(tick.time_msc) / 1000, datetime.now(UTC))

    def _check_zone(self) -> None:
        """The configured zone against the one the terminal keeps: over the emulator the zone it declares; over a
        real terminal a fresh tick against the wall clock (a shut market says nothing). A disagreement refuses
        start: every time converted would be off."""
        declared = getattr(self.mt5, "server_timezone", None)
        if callable(declared):  # the built-in emulator (in process or served) says which zone it keeps
            theirs = ServerZone(str(declared()))
            if not self.zone.same_clock(theirs):
                raise BrokerError(
                    f"broker.server_timezone = {self.zone.name!r}, but the emulator's server keeps {theirs.name!r} "
                    "(broker.emulator.server_timezone): set both alike",
                    (0, "server clock mismatch"),
                )
            return
        if self.cfg.module == "emulator":
            return  # a stand-in module that does not say: nothing to compare
        observed = self.observed_offset()
        expected = self.zone.offset_at(datetime.now(UTC))
        if observed is not None and observed != expected:
            raise BrokerError(
                f"broker.server_timezone = {self.zone.name!r} (UTC{_hours(expected)} now), but the terminal's ticks "
                f"run at UTC{_hours(observed)}: set broker.server_timezone to the server's zone",
                (0, "server clock mismatch"),
            )

    # ------------------------------------------------------------------ time -------------------

    def to_utc(self, server_epoch: float) -> datetime:
        """MT5 epochs are the server's wall clock encoded as if UTC: the instant in UTC, by the server's zone."""
        return self.zone.to_utc(server_epoch)

    def to_server(self, when: datetime) -> int:
        """A UTC datetime as the server-scale epoch the terminal expects for date arguments."""
        return self.zone.to_server(when)

    def server_midnight(self, when: datetime) -> datetime:
        """The UTC instant of the server midnight that began the server day ``when`` is in (the daily limits'
        anchor; it moves with the server's daylight saving)."""
        return self.zone.midnight(when)

    # ------------------------------------------------------------------ symbols -----------------

    def symbol_spec(self, symbol: str) -> SymbolSpec:
        """``symbol``'s spec (selected in Market Watch on first use). It is read once, except when the symbol's
        profit currency is not the account's: its tick value moves with the cross rate (EURGBP's with GBPUSD), so
        it is read again in every read scope, as a quote is."""
        spec = self._specs.get(symbol)
        if spec is None or symbol in self._cross_valued:
            spec = self._memoised(("spec", symbol), self._read_spec, symbol)
        return spec

    def _read_spec(self, symbol: str) -> SymbolSpec:
        first = symbol not in self._specs
        info = self.mt5.symbol_info(symbol)
        if info is None:
            raise OrderRefused("symbol", f"{symbol!r} is not known to the terminal {self.last_error()}")
        if first and not self.mt5.symbol_select(symbol, True):  # known, but Market Watch would not take it
            raise OrderRefused("symbol", f"{symbol!r} could not be selected in Market Watch {self.last_error()}")
        spec = SymbolSpec(
            name=symbol,
            digits=int(info.digits),
            point=float(info.point),
            tick_size=float(info.trade_tick_size),
            tick_value=float(info.trade_tick_value),
            contract_size=float(info.trade_contract_size),
            volume_min=float(info.volume_min),
            volume_max=float(info.volume_max),
            volume_step=float(info.volume_step),
            volume_limit=float(info.volume_limit),
            stops_level=int(info.trade_stops_level),
            freeze_level=int(info.trade_freeze_level),
            filling_mode=int(info.filling_mode),
            expiration_mode=int(info.expiration_mode),
            order_mode=int(info.order_mode),
            trade_mode=int(info.trade_mode),
            exemode=int(info.trade_exemode),
            calc_mode=int(info.trade_calc_mode),
            currency_base=str(info.currency_base),
            currency_profit=str(info.currency_profit),
            currency_margin=str(info.currency_margin),
        )
        self._specs[symbol] = spec
        if first and spec.currency_profit != self.account().currency:
            self._cross_valued.add(symbol)
        return spec

    def refresh_spec(self, symbol: str) -> SymbolSpec:
        """Read the spec again (trade mode, stops level or tick value may have changed); the one cached stays
        when the terminal cannot answer now."""
        return self._read_spec(symbol)

    def _reread_rules(self, symbol: str) -> None:
        """After a refusal for the symbol's rules: its spec read now; the cached one kept if that fails."""
        if symbol in self._specs:
            try:
                self._read_spec(symbol)
            except (BrokerError, OrderRefused):
                log.warning("symbol spec not read again after a refusal", extra={"symbol": symbol})

    def quote(self, symbol: str) -> Quote:
        return self._memoised(("quote", symbol), self._quote, symbol)

    def _quote(self, symbol: str) -> Quote:
        tick = self.mt5.symbol_info_tick(symbol)
        if tick is None:
            raise BrokerError(f"no tick for {symbol}", self.last_error())
        return Quote(symbol, float(tick.bid), float(tick.ask), self.to_utc(int(tick.time_msc) / 1000))

    def now(self) -> datetime:
        """The broker's current time in UTC: the latest tick of the symbols in use (or in Market Watch)."""
        names: Any = self._specs
        if not names:
            names = [str(s.name) for s in self.mt5.symbols_get() or () if s.select]
        latest = None
        for name in names:
            when = self.quote(name).time
            if latest is None or when > latest:
                latest = when
        if latest is None:
            raise BrokerError("no symbol selected: the broker's time is unknown", self.last_error())
        return latest

    def rates(self, symbol: str, timeframe: str, count: int) -> np.ndarray:
        """The last ``count`` bars of ``timeframe`` (``"H1"``, ``"H4"``, ...), oldest first, forming bar last."""
        code = TIMEFRAME_CODES.get(timeframe)
        if code is None:
            raise OrderRefused("timeframe", f"{timeframe!r} is not an MT5 timeframe")
        rates = self.mt5.copy_rates_from_pos(symbol, code, 0, count)
        if rates is None:
            raise BrokerError(f"copy_rates_from_pos({symbol}, {timeframe}) failed", self.last_error())
        return np.asarray(rates)

    def calc_margin(self, is_buy: bool, symbol: str, volume: float, price: float) -> float:
        return self._memoised(
            ("margin", is_buy, symbol, volume, price), self._calc_margin, is_buy, symbol, volume, price
        )

    def _calc_margin(self, is_buy: bool, symbol: str, volume: float, price: float) -> float:
        margin = self.mt5.order_calc_margin(
            constants.ORDER_TYPE_BUY if is_buy else constants.ORDER_TYPE_SELL, symbol, volume, price
        )
        if margin is None:
            raise BrokerError(f"order_calc_margin({symbol}) failed", self.last_error())
        return float(margin)

    def filling_for(self, spec: SymbolSpec, order_type: int) -> int:
        """The filling mode MT5 accepts for this symbol and order type (MT5_API.md §4)."""
        if order_type not in (constants.ORDER_TYPE_BUY, constants.ORDER_TYPE_SELL):
            return constants.ORDER_FILLING_RETURN
        if spec.exemode in (constants.SYMBOL_TRADE_EXECUTION_MARKET, constants.SYMBOL_TRADE_EXECUTION_EXCHANGE):
            if spec.filling_mode & constants.SYMBOL_FILLING_IOC:
                return constants.ORDER_FILLING_IOC
            if spec.filling_mode & constants.SYMBOL_FILLING_FOK:
                return constants.ORDER_FILLING_FOK
            return constants.ORDER_FILLING_RETURN
        return constants.ORDER_FILLING_FOK

    # ------------------------------------------------------------------ account and records ----

    def account(self) -> AccountState:
        return self._memoised("account", self._account)

    def _account(self) -> AccountState:
        a = self.mt5.account_info()
        if a is None:
            raise BrokerError("account_info failed", self.last_error())
        return _account_state(a)

    def terminal(self) -> TerminalState:
        return self._memoised("terminal", self._terminal)

    def _terminal(self) -> TerminalState:
        t = self.mt5.terminal_info()
        if t is None:
            raise BrokerError("terminal_info failed", self.last_error())
        return _terminal_state(t)

    def positions(self, symbol: str | None = None) -> list[BrokerPosition]:
        return self._memoised(("positions", symbol), self._positions, symbol)

    def _positions(self, symbol: str | None) -> list[BrokerPosition]:
        raw = self.mt5.positions_get(symbol=symbol) if symbol else self.mt5.positions_get()
        if raw is None:
            raise BrokerError("positions_get failed", self.last_error())
        return [
            BrokerPosition(
                ticket=int(p.ticket),
                identifier=int(p.identifier),
                symbol=str(p.symbol),
                is_buy=int(p.type) == 0,
                volume=float(p.volume),
                price_open=float(p.price_open),
                sl=float(p.sl),
                tp=float(p.tp),
                price_current=float(p.price_current),
                profit=float(p.profit),
                magic=int(p.magic),
                comment=str(p.comment),
                time=self.to_utc(int(p.time_msc) / 1000),
            )
            for p in raw
        ]

    def _order(self, o: Any) -> BrokerOrder:
        done = int(o.time_done_msc)
        return BrokerOrder(
            ticket=int(o.ticket),
            symbol=str(o.symbol),
            side=Side.BUY if int(o.type) in BUY_ORDER_TYPES else Side.SELL,
            order_type=ORDER_TYPES.get(int(o.type), OrderType.MARKET),
            state=ORDER_STATES.get(int(o.state), OrderState.ACCEPTED),
            volume_initial=float(o.volume_initial),
            volume_current=float(o.volume_current),
            price_open=float(o.price_open),
            sl=float(o.sl),
            tp=float(o.tp),
            magic=int(o.magic),
            comment=str(o.comment),
            position_id=int(o.position_id),
            time_setup=self.to_utc(int(o.time_setup_msc) / 1000),
            time_done=self.to_utc(done / 1000) if done else None,
        )

    def orders(self, symbol: str | None = None) -> list[BrokerOrder]:
        return self._memoised(("orders", symbol), self._orders, symbol)

    def _orders(self, symbol: str | None) -> list[BrokerOrder]:
        raw = self.mt5.orders_get(symbol=symbol) if symbol else self.mt5.orders_get()
        if raw is None:
            raise BrokerError("orders_get failed", self.last_error())
        return [self._order(o) for o in raw]

    def history_orders(self, start: datetime, end: datetime) -> list[BrokerOrder]:
        raw = self.mt5.history_orders_get(self.to_server(start), self.to_server(end))
        if raw is None:
            raise BrokerError("history_orders_get failed", self.last_error())
        return [self._order(o) for o in raw]

    def history_deals(self, start: datetime, end: datetime) -> list[BrokerDeal]:
        return self._deals_read(self.mt5.history_deals_get(self.to_server(start), self.to_server(end)))

    def _deals_read(self, raw: Any) -> list[BrokerDeal]:
        """A ``history_deals_get`` answer: None, or an empty one with an error set, is a failed read (raised, to
        be asked again), never "no deals"."""
        if raw is None:
            raise BrokerError("history_deals_get failed", self.last_error())
        if not raw and self.last_error()[0] != constants.RES_S_OK:
            raise BrokerError("history_deals_get failed (empty, with an error)", self.last_error())
        return [self._deal(d) for d in raw]

    def positions_total(self) -> int:
        total = self.mt5.positions_total()
        if total is None:
            raise BrokerError("positions_total failed", self.last_error())
        return int(total)

    def deals_count(self) -> int:
        """Every deal in the account's history. Deals are only ever added, so the same count means nothing
        new: the fills poll, the account capture and the reconciler ask it on one pass, and share it."""
        return self._memoised("deals_count", self._deals_count)

    def _deals_count(self) -> int:
        bounds = self._all_history
        if bounds is None or bounds[0] != self.zone:  # the zone moves only when it is derived again
            bounds = self._all_history = (self.zone, self._server_dt(HISTORY_START), self._server_dt(HISTORY_END))
        return self._deals_total(bounds[1], bounds[2])

    def deals_total(self, start: datetime, end: datetime) -> int:
        """How many deals the account has between ``start`` and ``end`` (``history_deals_total``)."""
        return self._deals_total(self._server_dt(start), self._server_dt(end))

    def _server_dt(self, when: datetime) -> datetime:
        # aware datetimes on the server scale: mt5linux's client calls .astimezone() on date arguments
        return datetime.fromtimestamp(self.to_server(when), UTC)

    def _deals_total(self, lo: datetime, hi: datetime) -> int:
        total = self.mt5.history_deals_total(lo, hi)
        if total is None:
            raise BrokerError("history_deals_total failed", self.last_error())
        return int(total)

    def _deal(self, d: Any) -> BrokerDeal:
        return BrokerDeal(
            ticket=int(d.ticket),
            order=int(d.order),
            position_id=int(d.position_id),
            symbol=str(d.symbol),
            kind=DEAL_KINDS.get(int(d.type), DealKind.OTHER),
            side=Side.BUY if int(d.type) == 0 else Side.SELL if int(d.type) == 1 else None,
            entry=DEAL_ENTRIES.get(int(d.entry), DealEntry.IN),
            closed_by=CLOSED_BY.get(int(d.reason), ClosedBy.OTHER),
            volume=float(d.volume),
            price=float(d.price),
            commission=float(d.commission),
            swap=float(d.swap),
            profit=float(d.profit),
            magic=int(d.magic),
            comment=str(d.comment),
            time=self.to_utc(int(d.time_msc) / 1000),
        )

    def deals_for_order(self, order_ticket: int) -> list[BrokerDeal]:
        """Every deal of one order (``history_deals_get(ticket=)`` selects by the ORDER ticket)."""
        return self._deals_read(self.mt5.history_deals_get(ticket=order_ticket))

    def deals_for_position(self, position_id: int) -> list[BrokerDeal]:
        """Every deal of one position (``history_deals_get(position=)``): how a missed deal is read by identity."""
        return self._deals_read(self.mt5.history_deals_get(position=position_id))

    def find_by_comment(self, magic: int, comment: str, since: datetime) -> BrokerFindings:
        """Everything the broker holds for one client id: working orders, positions, history orders, deals.

        This is how an ambiguous ``order_send`` is resolved before anything is sent again.
        """
        far = datetime(2100, 1, 1, tzinfo=UTC)

        def ours(x: object) -> bool:
            return int(x.magic) == magic and str(x.comment) == comment  # type: ignore[attr-defined]

        start = since - timedelta(days=1)
        return (
            [o for o in self.orders() if ours(o)],
            [p for p in self.positions() if ours(p)],
            [o for o in self.history_orders(start, far) if ours(o)],
            [d for d in self.history_deals(start, far) if ours(d)],
        )

    # ------------------------------------------------------------------ requests ----------------

    def order_request(self, order: OrderIntent, magic: int, deviation: int) -> dict[str, Any]:
        """The MT5 request for ``order`` (a deal at market, or a pending order), prepared (:meth:`prepare`):
        bad input raises ``OrderRefused`` naming the field. Instant and request execution quote the price they
        accept: the side's price now; market execution fills at market, with no price asked."""
        req: dict[str, Any] = {"symbol": order.symbol, "volume": order.volume, "magic": magic, "deviation": deviation}
        if order.order_type is OrderType.MARKET:
            req.update(action=ACTION_DEAL, type=0 if order.side is Side.BUY else 1)
            if self.symbol_spec(order.symbol).exemode not in MARKET_EXECUTION:
                req["price"] = self.side_price(order.symbol, order.side)
            if (order.position_ticket is not None or order.reduce_only) and self.account().hedging:
                if order.position_ticket is None:  # on hedging an opposite deal without position= opens a position
                    raise OrderRefused("position_ticket", "a close on a hedging account names the position it closes")
                req["position"] = order.position_ticket
        else:
            if order.price is None:
                raise OrderRefused("price", f"a {order.order_type.value} order needs its price")
            req.update(action=ACTION_PENDING, type=PENDING_TYPES[(order.order_type, order.side)], price=order.price)
        if order.stop_loss is not None and order.position_ticket is None:
            req["sl"] = order.stop_loss
        if order.take_profit is not None and order.position_ticket is None:
            req["tp"] = order.take_profit
        return self.prepare(req)

    def sltp_request(
        self, symbol: str, position: int, stop_loss: float | None, take_profit: float | None
    ) -> dict[str, Any]:
        """The request that sets a position's SL/TP (0: none), prepared."""
        return self.prepare(
            {
                "action": ACTION_SLTP,
                "symbol": symbol,
                "position": position,
                "sl": stop_loss or 0.0,
                "tp": take_profit or 0.0,
            }
        )

    @staticmethod
    def remove_request(order_ticket: int) -> dict[str, Any]:
        """The request that removes a working pending order."""
        return {"action": ACTION_REMOVE, "order": order_ticket}

    def side_price(self, symbol: str, side: Side) -> float:
        """What ``side`` trades at now: the ask for a buy, the bid for a sell."""
        q = self.quote(symbol)
        return q.ask if side is Side.BUY else q.bid

    def repriced(self, request: dict[str, Any]) -> dict[str, Any]:
        """A market request that quotes its price (instant or request execution) at the side's price now; any
        other request as it is."""
        if request.get("action") != ACTION_DEAL or "price" not in request:
            return request
        return {**request, "price": self.side_price(request["symbol"], Side.BUY if request["type"] == 0 else Side.SELL)}

    @staticmethod
    def keeps_rest(request: dict[str, Any]) -> bool:
        """Whether a partly filled request's rest keeps working at the broker (RETURN filling)."""
        return bool(request.get("type_filling") == 2)

    def prepare(self, request: dict[str, Any]) -> dict[str, Any]:
        """Check and normalise a request locally; raise :class:`OrderRefused` naming the field.

        Volume must already be on the step (it is refused, never rounded up); prices are rounded
        to the symbol's tick; SL/TP must be on the right side and outside the stops level.
        """
        req = dict(request)
        symbol = req.get("symbol", "")
        if not isinstance(symbol, str) or not symbol:
            raise OrderRefused("symbol", "missing")
        spec = self.symbol_spec(symbol)
        comment = req.get("comment", "")
        if not (isinstance(comment, str) and comment.isascii() and len(comment) <= MAX_COMMENT):
            raise OrderRefused("comment", f"{comment!r} must be at most {MAX_COMMENT} ASCII characters")
        if "volume" in req:
            req["volume"] = spec.normalize_volume(req["volume"])
        for key in ("price", "sl", "tp", "stoplimit"):
            value = req.get(key)
            if value is None:
                continue
            if not isinstance(value, int | float) or value != value or value < 0 or value in (float("inf"),):
                raise OrderRefused(key, f"{value!r} is not a valid price")
            req[key] = spec.round_price(value) if value else 0.0
        order_type = req.get("type")
        if (
            order_type in (constants.ORDER_TYPE_BUY, constants.ORDER_TYPE_SELL)
            and (req.get("sl") or req.get("tp"))
            and not req.get("position")
        ):
            q = self.quote(symbol)
            self.check_stops(
                spec,
                order_type == constants.ORDER_TYPE_BUY,
                q.bid if order_type == constants.ORDER_TYPE_BUY else q.ask,
                req.get("sl", 0.0),
                req.get("tp", 0.0),
            )
        if order_type is not None and "type_filling" not in req:
            req["type_filling"] = self.filling_for(spec, order_type)
        return req

    @staticmethod
    def check_stops(spec: SymbolSpec, is_buy: bool, ref: float, sl: float, tp: float) -> None:
        """Refuse SL/TP on the wrong side of ``ref`` or inside the stops level (MT5 would answer 10016)."""
        sign, need = (1 if is_buy else -1), spec.stops_distance - spec.point * 1e-6
        for name, level, distance in (("sl", sl, sign * (ref - sl)), ("tp", tp, sign * (tp - ref))):
            if level and (distance <= 0 or distance < need):
                raise OrderRefused(
                    name, f"{level} is on the wrong side of {ref} or within {spec.stops_level} points of it"
                )

    def check(self, request: dict[str, Any]) -> CheckResult:
        self._memo = None
        res = self.mt5.order_check(request)
        if res is None:
            raise BrokerError("order_check returned None", self.last_error())
        code = int(res.retcode)
        if code in SYMBOL_RULE_REFUSALS:  # as after order_send: the symbol's rules moved, read them again
            self._reread_rules(str(request.get("symbol", "")))
        return CheckResult(
            code,
            "DONE" if code == 0 else retcodes.name(code),
            code == 0,
            float(res.margin),
            float(res.margin_free),
            float(res.margin_level),
            str(res.comment),
        )

    def send(self, request: dict[str, Any]) -> SendResult:
        """``order_send`` once, timed and classified. Never retries: that is the execution engine's call."""
        self._memo = None  # whatever was read before no longer holds once an order goes out
        self.sent += 1
        started = time.perf_counter()
        res = self.mt5.order_send(request)
        seconds = time.perf_counter() - started
        if res is None:
            return SendResult(
                None,
                retcodes.name(None),
                retcodes.classify(None),
                last_error=self.last_error(),
                request=request,
                seconds=seconds,
            )
        code = int(res.retcode)
        if code in SYMBOL_RULE_REFUSALS:  # the symbol's rules moved under us (stops level, trade mode): read again
            self._reread_rules(str(request.get("symbol", "")))
        return SendResult(
            retcode=code,
            name=retcodes.name(code),
            category=retcodes.classify(code),
            deal=int(res.deal),
            order=int(res.order),
            volume=float(res.volume),
            price=float(res.price),
            bid=float(res.bid),
            ask=float(res.ask),
            comment=str(res.comment),
            request=request,
            seconds=seconds,
        )


def _hours(offset: timedelta) -> str:
    """+03:00 for three hours east of UTC."""
    return from_offset_hours(offset.total_seconds() / 3600)
