"""Symbol specifications the emulator trades, and the money arithmetic that depends on them.

The catalogue holds realistic retail-broker specs for the FX majors and crosses of the shipped portfolio,
a JPY pair, gold and an index CFD, because sizing and risk must be right across different tick values,
contract sizes and profit currencies. Swaps are in points, as most retail brokers quote them (2017-era
rates: the US dollar earned more than the euro, the franc and the yen), tripled on Wednesday nights.
Symbols without replay data trade at a fixed ``static_bid``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from tradeguard.broker import constants
from tradeguard.broker.emulator.structures import SymbolInfo


@dataclass
class SymbolDefinition:
    """A symbol as the emulated broker defines it (its catalogue entry, with any overrides): what
    ``symbol_info`` shows. tradeguard's own view of a symbol is ``broker.types.SymbolSpec``, which the
    adapter builds from that answer, as it does over a real terminal."""

    name: str
    description: str
    digits: int
    contract_size: float
    currency_base: str
    currency_profit: str
    currency_margin: str
    calc_mode: int = constants.SYMBOL_CALC_MODE_FOREX
    volume_min: float = 0.01
    volume_max: float = 100.0
    volume_step: float = 0.01
    volume_limit: float = 0.0
    stops_level: int = 0
    freeze_level: int = 0
    spread: int = 10
    trade_mode: int = constants.SYMBOL_TRADE_MODE_FULL
    exemode: int = constants.SYMBOL_TRADE_EXECUTION_MARKET
    filling_mode: int = constants.SYMBOL_FILLING_FOK | constants.SYMBOL_FILLING_IOC
    expiration_mode: int = 15
    order_mode: int = 127
    margin_rate: float = 1.0
    swap_long: float = 0.0  # points per lot per night, charged at the server's midnight
    swap_short: float = 0.0
    swap_rollover3days: int = 3  # the weekday (0 = Sunday) whose night is charged three times
    static_bid: float = 1.0
    path: str = ""
    category: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def point(self) -> float:
        return 10.0**-self.digits

    @property
    def tick_size(self) -> float:
        return self.point

    def with_overrides(self, **kw: Any) -> SymbolDefinition:
        unknown = set(kw) - set(asdict(self))
        if unknown:
            raise ValueError(f"symbol {self.name}: unknown spec fields {sorted(unknown)}")
        return replace(self, **kw)


def _fx(
    name: str,
    description: str,
    digits: int,
    spread: int,
    swap_long: float,
    swap_short: float,
    static_bid: float,
    group: str = "Majors",
) -> SymbolDefinition:
    """A currency pair as retail brokers define it: 100,000 of the base currency a lot, margin in the base."""
    base, quote = name[:3], name[3:]
    return SymbolDefinition(
        name,
        description,
        digits,
        100_000,
        base,
        quote,
        base,
        spread=spread,
        stops_level=10,
        swap_long=swap_long,
        swap_short=swap_short,
        static_bid=static_bid,
        path=f"Forex\\{group}\\{name}",
    )


CATALOGUE: dict[str, SymbolDefinition] = {
    s.name: s
    for s in (
        _fx("EURUSD", "Euro vs US Dollar", 5, 10, -7.5, 2.1, 1.08),
        _fx("GBPUSD", "Great Britain Pound vs US Dollar", 5, 12, -5.2, 0.4, 1.27),
        _fx("USDJPY", "US Dollar vs Japanese Yen", 3, 12, 4.8, -9.6, 150.0),
        _fx("USDCHF", "US Dollar vs Swiss Franc", 5, 14, 3.1, -8.3, 0.9),
        _fx("AUDUSD", "Australian Dollar vs US Dollar", 5, 12, -0.8, -3.9, 0.66),
        _fx("EURGBP", "Euro vs Great Britain Pound", 5, 14, -6.4, 1.2, 0.85, "Crosses"),
        SymbolDefinition(
            "XAUUSD",
            "Gold vs US Dollar",
            2,
            100,
            "XAU",
            "USD",
            "XAU",
            volume_max=50.0,
            spread=25,
            stops_level=50,
            swap_long=-28.0,
            swap_short=9.5,
            static_bid=2000.0,
            calc_mode=constants.SYMBOL_CALC_MODE_CFDLEVERAGE,
            path="Metals\\XAUUSD",
        ),
        SymbolDefinition(
            "US500",
            "US 500 Cash Index",
            2,
            1,
            "USD",
            "USD",
            "USD",
            calc_mode=constants.SYMBOL_CALC_MODE_CFDINDEX,
            volume_min=0.1,
            volume_max=500.0,
            volume_step=0.1,
            spread=50,
            stops_level=100,
            margin_rate=0.05,
            static_bid=5000.0,
            path="Indices\\US500",
        ),
    )
}


def to_account(amount: float, currency: str, account_currency: str, price_of: Any) -> float:
    """Convert ``amount`` in ``currency`` to the account currency using the emulator's own quotes.

    ``price_of(symbol)`` returns the current bid of a symbol or None. A direct pair (EURUSD for EUR
    into USD) multiplies; an inverse one (USDJPY for JPY into USD) divides.
    """
    if currency == account_currency:
        return amount
    direct = price_of(currency + account_currency)
    if direct:
        return amount * float(direct)
    inverse = price_of(account_currency + currency)
    if inverse:
        return amount / float(inverse)
    raise ValueError(f"no quote to convert {currency} into {account_currency}")


def profit(
    spec: SymbolDefinition,
    is_buy: bool,
    volume: float,
    price_open: float,
    price_close: float,
    account_currency: str,
    price_of: Any,
) -> float:
    """P&L in account currency of ``volume`` lots from ``price_open`` to ``price_close``."""
    diff = (price_close - price_open) if is_buy else (price_open - price_close)
    return to_account(diff * spec.contract_size * volume, spec.currency_profit, account_currency, price_of)


def margin(
    spec: SymbolDefinition, volume: float, price: float, leverage: int, account_currency: str, price_of: Any
) -> float:
    """Initial margin in account currency, by the symbol's calculation mode."""
    mode = spec.calc_mode
    if mode == constants.SYMBOL_CALC_MODE_FOREX:
        return to_account(volume * spec.contract_size / leverage, spec.currency_margin, account_currency, price_of)
    if mode == constants.SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE:
        return to_account(volume * spec.contract_size, spec.currency_margin, account_currency, price_of)
    if mode == constants.SYMBOL_CALC_MODE_CFDLEVERAGE:
        value = volume * spec.contract_size * price / leverage
    else:  # CFD, CFDINDEX and the exchange modes: notional times the margin rate
        value = volume * spec.contract_size * price * spec.margin_rate
    return to_account(value, spec.currency_profit, account_currency, price_of)


def swap(
    spec: SymbolDefinition, is_buy: bool, volume: float, nights: int, account_currency: str, price_of: Any
) -> float:
    """The swap of ``volume`` lots held ``nights`` nights, in account currency (points mode)."""
    points = spec.swap_long if is_buy else spec.swap_short
    return to_account(
        points * spec.point * spec.contract_size * volume * nights, spec.currency_profit, account_currency, price_of
    )


def tick_value(spec: SymbolDefinition, account_currency: str, price_of: Any) -> float:
    """Money per ``tick_size`` move for one lot, in account currency (MT5's ``trade_tick_value``)."""
    return to_account(spec.tick_size * spec.contract_size, spec.currency_profit, account_currency, price_of)


def static_info(spec: SymbolDefinition) -> SymbolInfo:
    """The symbol's ``symbol_info`` fields that do not move with the market (built once per symbol)."""
    values: dict[str, Any] = dict.fromkeys(SymbolInfo._fields, 0)
    values.update(
        custom=False,
        digits=spec.digits,
        spread_float=True,
        trade_calc_mode=spec.calc_mode,
        trade_stops_level=spec.stops_level,
        trade_freeze_level=spec.freeze_level,
        trade_exemode=spec.exemode,
        expiration_mode=spec.expiration_mode,
        filling_mode=spec.filling_mode,
        order_mode=spec.order_mode,
        swap_mode=constants.SYMBOL_SWAP_MODE_POINTS,
        swap_long=spec.swap_long,
        swap_short=spec.swap_short,
        swap_rollover3days=spec.swap_rollover3days,
        last=0.0,
        point=spec.point,
        trade_tick_size=spec.tick_size,
        trade_contract_size=spec.contract_size,
        volume_min=spec.volume_min,
        volume_max=spec.volume_max,
        volume_step=spec.volume_step,
        volume_limit=spec.volume_limit,
        margin_initial=0.0,
        margin_hedged=spec.contract_size,
        currency_base=spec.currency_base,
        currency_profit=spec.currency_profit,
        currency_margin=spec.currency_margin,
        bank="",
        basis="",
        category=spec.category,
        description=spec.description,
        exchange="",
        formula="",
        isin="",
        name=spec.name,
        page="",
        path=spec.path,
        session_open=0.0,
        session_close=0.0,
    )
    return SymbolInfo(**values)


def symbol_info(
    static: SymbolInfo,
    spec: SymbolDefinition,
    bid: float,
    ask: float,
    time: int,
    selected: bool,
    account_currency: str,
    price_of: Any,
) -> SymbolInfo:
    """``static`` with what moves: the quote, the selection, the tick value (cross rates) and the trade mode."""
    tv = tick_value(spec, account_currency, price_of)
    return static._replace(
        select=selected,
        visible=selected,
        time=time,
        spread=round((ask - bid) / spec.point),
        trade_mode=spec.trade_mode,
        bid=bid,
        bidhigh=bid,
        bidlow=bid,
        ask=ask,
        askhigh=ask,
        asklow=ask,
        trade_tick_value=tv,
        trade_tick_value_profit=tv,
        trade_tick_value_loss=tv,
    )
