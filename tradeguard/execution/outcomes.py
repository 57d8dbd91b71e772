"""What a trade did against its plan: the risk it was sized on, the slippage of its stop or target, its realised R.

A trade is a position from flat to flat (a netting reversal closes one trade and opens the next on the
same position id). Its *planned risk* is the money its opening volume loses at the stop its order named,
with the symbol's tick value, exactly as sizing counted it; its *money* is every deal's profit, commission
and swap since it opened; its *realised R* is money over planned risk. A stop filled 290 pips past its
level by a weekend gap shows as about -10R here, not as the -1R a plan assumes.

Everything is derived from the journal when the deal is journaled (the trade's earlier deals are read back
by position id), so a deal imported after a restart or days late is judged exactly as one seen live.
"""

from __future__ import annotations

from tradeguard.broker.types import BrokerDeal, SymbolSpec
from tradeguard.models import ClosedBy, TradeOutcome

EPS = 1e-9


class TradeSoFar:
    """A trade's planned risk and money from its journaled deals (see :func:`trade_so_far`)."""

    __slots__ = ("money", "risk")

    def __init__(self) -> None:
        self.risk = 0.0
        self.money = 0.0


def split(net_before: float, signed_volume: float) -> tuple[float, float]:
    """(closing, opening) lots of a deal of ``signed_volume`` (buy +) on a position at ``net_before``."""
    if net_before * signed_volume >= 0:
        return 0.0, abs(signed_volume)
    closing = min(abs(signed_volume), abs(net_before))
    return closing, round(abs(signed_volume) - closing, 8)


def planned_risk(price: float | None, stop: float | None, volume: float, spec: SymbolSpec) -> float | None:
    """Money ``volume`` lots lose from ``price`` to ``stop`` (None without both): what sizing risked."""
    if price is None or stop is None or volume <= 0 or spec.tick_size <= 0:
        return None
    return round(spec.money(abs(price - stop), volume), 2)


def trade_so_far(rows: list[tuple[str, float, float | None, float, float, float]]) -> TradeSoFar:
    """The open trade of a position from its deals in ticket order: (side, volume, planned risk, profit,
    commission, swap). A deal that leaves the position flat ends a trade; the next one starts afresh."""
    trade, net = TradeSoFar(), 0.0
    for side, volume, risk, profit, commission, swap in rows:
        signed = volume if side == "buy" else -volume
        closing, opening = split(net, signed)
        share = closing / volume if volume else 0.0
        if closing:
            trade.money += profit + swap + commission * share
        net = round(net + signed, 8)
        if closing and (abs(net) < EPS or opening):  # flat, or reversed: the next deal starts anew
            trade = TradeSoFar()
        if opening:
            trade.risk += risk or 0.0
            trade.money += commission * (1 - share)
    return trade


def outcome(
    deal: BrokerDeal,
    net_before: float,
    closing: float,
    levels: tuple[float, float] | None,
    spec: SymbolSpec,
    trade: TradeSoFar,
) -> TradeOutcome:
    """The outcome of a deal closing ``closing`` lots of a position at ``net_before`` (buy +), the trade's
    earlier deals summed in ``trade``."""
    closed_by = deal.closed_by
    level = None
    if levels is not None and closed_by in (ClosedBy.STOP, ClosedBy.TARGET):
        level = (levels[0] if closed_by is ClosedBy.STOP else levels[1]) or None
    slip_points = slip_money = None
    if level is not None and spec.point > 0 and spec.tick_size > 0:
        long = 1.0 if net_before > 0 else -1.0  # a long closes by selling: below its level is worse
        slip_points = round((level - deal.price) * long / spec.point, 1) or 0.0  # not -0.0: shown, it reads as worse
        slip_money = round(spec.money(slip_points * spec.point, closing), 2) or 0.0
    share = closing / deal.volume
    money = round(trade.money + deal.profit + deal.swap + deal.commission * share, 2)
    risk = round(trade.risk, 2) or None
    return TradeOutcome(
        closed_by=closed_by,
        level=level,
        slippage_points=slip_points,
        slippage_money=slip_money,
        planned_risk=risk,
        money=money,
        r_multiple=round(money / risk, 2) if risk else None,
        trade_closed=closing >= abs(net_before) - EPS,
    )
