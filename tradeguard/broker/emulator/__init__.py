"""A MetaTrader5-compatible module: ``import tradeguard.broker.emulator as mt5`` where code expects
``import MetaTrader5 as mt5``.

Module-level functions act on one module-level terminal, as the real package acts on one terminal
per process. ``initialize()`` with no arguments opens the shipped EURUSD H1 sample and a default
demo account; keyword arguments (see :class:`EmulatorConfig`) choose data, account, costs and
faults. :func:`replay_step`, :func:`replay_bars` and the ``admin_*`` functions are the emulator's own
controls and do not exist in the real package.
"""

from __future__ import annotations

from tradeguard.broker.constants import *  # noqa: F403  (the module's public constants, as in MetaTrader5)
from tradeguard.broker.emulator.faults import PROFILES, FaultProfile
from tradeguard.broker.emulator.structures import (
    AccountInfo,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradeRequest,
)
from tradeguard.broker.emulator.terminal import EmulatorConfig, Terminal

__version__ = "5.0.5735"
__author__ = "tradeguard (emulating MetaQuotes Ltd.'s MetaTrader5 package)"

terminal = Terminal()

initialize = terminal.initialize
login = terminal.login
shutdown = terminal.shutdown
version = terminal.version
last_error = terminal.last_error
terminal_info = terminal.terminal_info
account_info = terminal.account_info
symbols_total = terminal.symbols_total
symbols_get = terminal.symbols_get
symbol_info = terminal.symbol_info
symbol_info_tick = terminal.symbol_info_tick
symbol_select = terminal.symbol_select
market_book_add = terminal.market_book_add
market_book_get = terminal.market_book_get
market_book_release = terminal.market_book_release
copy_rates_from = terminal.copy_rates_from
copy_rates_from_pos = terminal.copy_rates_from_pos
copy_rates_range = terminal.copy_rates_range
copy_ticks_from = terminal.copy_ticks_from
copy_ticks_range = terminal.copy_ticks_range
orders_total = terminal.orders_total
orders_get = terminal.orders_get
positions_total = terminal.positions_total
positions_get = terminal.positions_get
history_orders_total = terminal.history_orders_total
history_orders_get = terminal.history_orders_get
history_deals_total = terminal.history_deals_total
history_deals_get = terminal.history_deals_get
order_calc_margin = terminal.order_calc_margin
order_calc_profit = terminal.order_calc_profit
order_check = terminal.order_check
order_send = terminal.order_send

replay_step = terminal.replay_step
replay_bars = terminal.replay_bars
admin_deposit = terminal.admin_deposit
admin_set_algo_trading = terminal.admin_set_algo_trading
admin_set_trade_mode = terminal.admin_set_trade_mode
admin_add_position = terminal.admin_add_position
admin_state = terminal.admin_state

__all__ = [
    "PROFILES",
    "AccountInfo",
    "EmulatorConfig",
    "FaultProfile",
    "OrderCheckResult",
    "OrderSendResult",
    "SymbolInfo",
    "Terminal",
    "TerminalInfo",
    "Tick",
    "TradeDeal",
    "TradeOrder",
    "TradePosition",
    "TradeRequest",
    "terminal",
]
