"""The MetaTrader5 API surface: names, types, constants and the classic error retcodes.

Runs against the emulator always. Set TRADEGUARD_MT5_CONFORMANCE=MetaTrader5 (Windows, a demo
terminal running) or =mt5linux:HOST:PORT to run the same assertions against a real module; only
read calls and order_check are used, so a real demo account is never traded.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np
import pytest

from tradeguard.broker.emulator.terminal import Terminal

TARGET = os.environ.get("TRADEGUARD_MT5_CONFORMANCE", "")
FIELDS = {
    "account_info": "login trade_mode leverage limit_orders margin_so_mode trade_allowed trade_expert margin_mode "
    "currency_digits fifo_close balance credit profit equity margin margin_free margin_level margin_so_call "
    "margin_so_so margin_initial margin_maintenance assets liabilities commission_blocked name server currency "
    "company",
    "terminal_info": "community_account community_connection connected dlls_allowed trade_allowed tradeapi_disabled "
    "email_enabled ftp_enabled notifications_enabled mqid build maxbars codepage ping_last community_balance "
    "retransmission company name language path data_path commondata_path",
    "tick": "time bid ask last volume time_msc flags volume_real",
}
RATES = [
    ("time", "<i8"),
    ("open", "<f8"),
    ("high", "<f8"),
    ("low", "<f8"),
    ("close", "<f8"),
    ("tick_volume", "<u8"),
    ("spread", "<i4"),
    ("real_volume", "<u8"),
]


def _modules() -> list[Any]:
    params = [pytest.param("emulator", id="emulator")]
    if TARGET:
        params.append(pytest.param(TARGET, id=TARGET.split(":")[0]))
    else:
        params.append(
            pytest.param(
                "real",
                id="real-terminal",
                marks=pytest.mark.skip(
                    reason="set TRADEGUARD_MT5_CONFORMANCE=MetaTrader5 or mt5linux:HOST:PORT to run against a "
                    "real module"
                ),
            )
        )
    return params


@pytest.fixture(params=_modules())
def mt5(request: pytest.FixtureRequest) -> Any:
    if request.param == "emulator":
        module: Any = Terminal()
        module.constants = importlib.import_module("tradeguard.broker.constants")
    elif request.param.startswith("mt5linux"):
        from mt5linux import MetaTrader5  # type: ignore[import-not-found]

        _, host, port = request.param.split(":")
        module = MetaTrader5(host=host, port=int(port))
        module.constants = module
    else:
        module = importlib.import_module(request.param)
        module.constants = module
    assert module.initialize(), module.last_error()
    yield module
    if request.param != "emulator":
        module.shutdown()


def fields(value: Any) -> str:
    return " ".join(value._fields)


def test_structures_have_the_real_field_names_in_order(mt5: Any) -> None:
    assert fields(mt5.account_info()) == FIELDS["account_info"]
    assert fields(mt5.terminal_info()) == FIELDS["terminal_info"]
    assert fields(mt5.symbol_info_tick("EURUSD")) == FIELDS["tick"]
    info = mt5.symbol_info("EURUSD")
    for name in (
        "digits",
        "point",
        "trade_tick_value",
        "trade_tick_size",
        "trade_contract_size",
        "volume_min",
        "volume_max",
        "volume_step",
        "trade_stops_level",
        "trade_freeze_level",
        "filling_mode",
        "trade_mode",
        "trade_exemode",
        "currency_profit",
    ):
        assert name in info._fields
    assert info._asdict()["name"] == "EURUSD" and info[info._fields.index("digits")] == info.digits


def test_field_types(mt5: Any) -> None:
    a = mt5.account_info()
    assert isinstance(a.login, int) and isinstance(a.balance, float) and isinstance(a.currency, str)
    t = mt5.symbol_info_tick("EURUSD")
    assert isinstance(t.time, int) and isinstance(t.bid, float) and isinstance(t.time_msc, int)
    assert t.ask >= t.bid > 0


def test_rates_arrays_use_the_real_dtype(mt5: Any) -> None:
    rates = mt5.copy_rates_from_pos("EURUSD", mt5.constants.TIMEFRAME_H1, 0, 5)
    assert rates.dtype == np.dtype(RATES) and 1 <= len(rates) <= 5
    assert np.all(np.diff(rates["time"]) > 0)


def test_constants(mt5: Any) -> None:
    c = mt5.constants
    assert (
        c.TRADE_ACTION_DEAL,
        c.TRADE_ACTION_PENDING,
        c.TRADE_ACTION_SLTP,
        c.TRADE_ACTION_MODIFY,
        c.TRADE_ACTION_REMOVE,
        c.TRADE_ACTION_CLOSE_BY,
    ) == (1, 5, 6, 7, 8, 10)
    assert (c.ORDER_FILLING_FOK, c.ORDER_FILLING_IOC, c.ORDER_FILLING_RETURN) == (0, 1, 2)
    assert (c.TIMEFRAME_H1, c.TIMEFRAME_D1, c.TIMEFRAME_W1, c.TIMEFRAME_MN1) == (16385, 16408, 32769, 49153)
    assert (c.TRADE_RETCODE_DONE, c.TRADE_RETCODE_TIMEOUT, c.TRADE_RETCODE_FIFO_CLOSE) == (10009, 10012, 10045)
    assert (c.DEAL_ENTRY_INOUT, c.DEAL_REASON_SO, c.POSITION_TYPE_SELL) == (2, 6, 1)
    assert c.RES_E_INTERNAL_FAIL_CONNECT == -10004
    assert not hasattr(c, "TRADE_RETCODE_5") and c.SYMBOL_TRADE_MODE_CLOSEONLY == 3


def test_last_error_after_success(mt5: Any) -> None:
    mt5.account_info()
    assert tuple(mt5.last_error()) == (1, "Success")


def _request(mt5: Any, **kw: Any) -> dict[str, Any]:
    c = mt5.constants
    tick = mt5.symbol_info_tick("EURUSD")
    req = {
        "action": c.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": c.ORDER_TYPE_BUY,
        "price": tick.ask,
        "deviation": 10,
        "type_filling": c.ORDER_FILLING_IOC,
        "magic": 1,
    }
    req.update(kw)
    return req


@pytest.mark.parametrize(
    ("case", "retcode"),
    [
        ({"volume": 0.123}, 10014),
        ({"volume": 100000.0}, 10014),
        ({"sl": "ask"}, 10016),
        ({"volume": 90.0}, 10019),
        ({"type_filling": 2}, 10030),
    ],
)
def test_classic_error_retcodes_from_order_check(mt5: Any, case: dict[str, Any], retcode: int) -> None:
    req = _request(mt5, **case)
    if req.get("sl") == "ask":  # a buy's stop above the price
        req["sl"] = mt5.symbol_info_tick("EURUSD").ask + 0.001
    res = mt5.order_check(req)
    assert res.retcode == retcode, res
    assert fields(res) == "retcode balance equity profit margin margin_free margin_level comment request"


def test_passing_check_is_retcode_zero_done(mt5: Any) -> None:
    res = mt5.order_check(_request(mt5))
    assert (res.retcode, res.comment) == (0, "Done") and res.margin > 0


def test_comment_too_long_is_refused_client_side(mt5: Any) -> None:
    assert mt5.order_check(_request(mt5, comment="x" * 40)) is None
    assert tuple(mt5.last_error()) == (-2, 'Invalid "comment" argument')


def test_market_closed_at_the_end_of_the_replay() -> None:
    term = Terminal()
    term.initialize()
    while term.replay_step(10_000):
        pass
    import tradeguard.broker.constants as c

    res = term.order_send(
        {
            "action": c.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": 0,
            "type_filling": c.ORDER_FILLING_IOC,
        }
    )
    assert res.retcode == 10018 and res.deal == 0 and res.order == 0


def test_calls_after_shutdown_fail_with_no_ipc() -> None:
    term = Terminal()
    term.initialize()
    term.shutdown()
    assert term.account_info() is None and term.last_error() == (-10004, "No IPC connection")
    assert term.initialize() and term.account_info() is not None  # reconnects to the same terminal state


# -- the read-only parts of docs/mt5-failure-modes.md a real demo account allows (issue 27, part 3) -----------


def test_an_unknown_symbol_is_neither_known_nor_selectable(mt5: Any) -> None:
    assert mt5.symbol_info("NOSUCHSYMBOL") is None
    assert mt5.symbol_select("NOSUCHSYMBOL", True) is False


def test_a_selected_symbol_has_a_quote(mt5: Any) -> None:
    assert mt5.symbol_select("EURUSD", True) is True
    tick = mt5.symbol_info_tick("EURUSD")
    assert tick is not None and tick.bid > 0 and tick.ask >= tick.bid


def test_a_history_without_deals_is_empty_with_success(mt5: Any) -> None:
    """What the adapter's _deals_read relies on: "no deals" is an empty answer with (1, "Success"); an empty
    answer with an error set is a failed read."""
    from datetime import UTC, datetime

    found = mt5.history_deals_get(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC))
    assert found is not None and len(found) == 0
    assert tuple(mt5.last_error()) == (1, "Success")


def test_the_trading_flags_the_health_check_reads_are_booleans(mt5: Any) -> None:
    terminal, account = mt5.terminal_info(), mt5.account_info()
    assert all(isinstance(v, bool) for v in (terminal.connected, terminal.trade_allowed))
    assert all(isinstance(v, bool) for v in (account.trade_allowed, account.trade_expert))
