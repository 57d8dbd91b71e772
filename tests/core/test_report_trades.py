"""The report's trade table from journal rows: entries and exits volume-weighted over partial deals, what closed
each trade (the broker's reason, or for our orders: a signal, a flatten, a close order), and a netting reversal
opening the next trade with the rest of its deal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tradeguard.report.data import closed_trades, currency_exposure


def deal(ticket: int, position: int, side: str, entry: str, volume: float, price: float, time: str, **kw: Any) -> dict:
    outcome = kw.pop("outcome", None)
    return {
        "deal_ticket": ticket,
        "position_id": position,
        "client_id": kw.pop("client_id", ""),
        "symbol": kw.pop("symbol", "EURUSD"),
        "side": side,
        "entry": entry,
        "volume": volume,
        "price": price,
        "time": f"2017-05-0{time}+00:00",
        "profit": kw.pop("profit", 0.0),
        "commission": 0.0,
        "swap": 0.0,
        "outcome": None if outcome is None else json.dumps(outcome),
    }


def outcome(closed_by: str, closed: bool, money: float = 0.0, r: float | None = None) -> dict:
    empty = {"level": None, "slippage_points": None, "slippage_money": None, "planned_risk": 10.0}
    return {"closed_by": closed_by, "trade_closed": closed, "money": money, "r_multiple": r, **empty}


def test_entries_exits_and_what_closed_each_trade() -> None:
    orders = {
        "tg-1": {"signal_id": "s1", "strategy": "ma_crossover"},
        "tg-2": {"signal_id": "", "strategy": "flatten"},
        "tg-3": {"signal_id": "", "strategy": "close"},
        "tg-4": {"signal_id": "s4", "strategy": "ma_crossover"},
    }
    fills = [
        deal(1, 10, "buy", "in", 0.1, 1.1000, "1T10:00:00"),
        deal(2, 10, "buy", "in", 0.3, 1.1040, "1T10:00:01"),  # the rest of a partial fill: one trade of 0.4
        deal(3, 10, "sell", "out", 0.2, 1.1100, "1T12:00:00", outcome=outcome("target", False)),
        deal(4, 10, "sell", "out", 0.2, 1.1060, "2T15:30:00", client_id="tg-1", outcome=outcome("order", True, 30)),
        deal(5, 11, "sell", "in", 0.2, 1.1000, "3T09:00:00"),
        deal(6, 11, "buy", "out", 0.2, 1.1010, "3T09:05:00", client_id="tg-2", outcome=outcome("order", True, -2)),
        deal(7, 12, "buy", "in", 0.1, 1.1000, "3T10:00:00"),
        deal(8, 12, "sell", "out", 0.1, 1.0990, "3T11:00:00", client_id="tg-3", outcome=outcome("order", True)),
        deal(9, 13, "buy", "in", 0.1, 1.1000, "4T10:00:00"),
        deal(10, 13, "sell", "inout", 0.3, 1.0950, "4T11:00:00", client_id="tg-4", outcome=outcome("stop", True)),
        deal(11, 13, "buy", "out", 0.2, 1.0900, "4T12:00:00", outcome=outcome("stop_out", True)),
    ]
    rows = closed_trades(fills, orders)
    assert [r["closed_by"] for r in rows] == ["signal", "flatten", "close order", "stop", "stop-out"]
    first = rows[0]
    assert (first["side"], first["volume"]) == ("buy", 0.4)
    assert first["entry_price"] == pytest.approx((0.1 * 1.1000 + 0.3 * 1.1040) / 0.4)
    assert first["exit_price"] == pytest.approx((0.2 * 1.1100 + 0.2 * 1.1060) / 0.4)
    assert first["held"] == (29 * 3600 + 30 * 60)
    turned = rows[-1]  # the reversal's rest: a short of 0.2 opened by deal 10, closed by the stop-out
    assert (turned["side"], turned["volume"], turned["entry_price"]) == ("sell", 0.2, 1.0950)


def test_net_exposure_per_currency_after_each_deal() -> None:
    fills = [
        deal(1, 1, "buy", "in", 0.3, 1.1, "1T10:00:00"),
        deal(2, 2, "sell", "in", 0.1, 0.9, "1T11:00:00", symbol="USDCHF"),
        deal(3, 3, "buy", "in", 0.1, 1200.0, "1T12:00:00", symbol="XAUUSD"),
        deal(4, 1, "sell", "out", 0.3, 1.1, "1T13:00:00"),
        deal(5, 4, "buy", "in", 1.0, 5000.0, "1T14:00:00", symbol="US500"),  # no currency pair in its name
    ]
    points = currency_exposure(fills)
    assert len(points) == 4
    assert points[2][1] == {"EUR": 0.3, "USD": -0.5, "CHF": 0.1, "XAU": 0.1}
    assert points[3][1] == {"EUR": 0.0, "USD": -0.2, "CHF": 0.1, "XAU": 0.1}
