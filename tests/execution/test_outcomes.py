"""Every closing deal carries what it did against the plan: slippage past its stop or target, and the trade's
realised R against the risk it was sized on (issue 24, item 2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tradeguard import ClosedBy
from tradeguard.execution.outcomes import split, trade_so_far

from .conftest import sell


def test_a_deal_splits_into_closing_and_opening_lots() -> None:
    assert split(0.0, 0.3) == (0.0, 0.3)
    assert split(0.5, 0.2) == (0.0, 0.2)  # adds
    assert split(0.5, -0.2) == (0.2, 0.0)  # reduces
    assert split(0.5, -0.8) == (0.5, 0.3)  # reverses (netting)


def test_the_open_trade_is_summed_from_its_deals_and_a_reversal_starts_the_next() -> None:
    rows: list[tuple[str, float, float | None, float, float, float]] = [
        ("buy", 0.2, 40.0, 0.0, -1.4, 0.0),  # opens, risking 40
        ("sell", 0.1, None, 25.0, -0.7, -0.3),  # closes half at +25
    ]
    trade = trade_so_far(rows)
    assert (trade.risk, trade.money) == (40.0, pytest.approx(-1.4 + 25.0 - 0.7 - 0.3))
    rows.append(("sell", 0.4, 30.0, 10.0, -2.8, 0.0))  # closes the rest (0.1) and opens a short of 0.3
    trade = trade_so_far(rows)
    assert trade.risk == 30.0 and trade.money == pytest.approx(-2.8 * 0.75)  # only the new short's share
    rows.append(("buy", 0.3, None, -5.0, -2.1, 0.0))  # flat: nothing open
    assert (trade_so_far(rows).risk, trade_so_far(rows).money) == (0.0, 0.0)


def samples(rt: Any, name: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(s.labels.values()): s.value
        for m in rt.metrics.registry.collect()
        if m.name == name
        for s in m.samples
        if s.name == f"{name}_count"
    }


def test_a_short_stopped_by_the_french_election_gap_shows_its_slippage_and_realised_r(
    engine_runtime: Callable[..., Any],
) -> None:
    """Two trades on the shipped EURUSD data: a short half closed by an order, then stopped by the 2017-04-23
    gap (the market opened ~100 pips above its stop)."""
    rt, eng, rec = engine_runtime(emulator={"margin_mode": "netting"})
    eng.submit_order(sell(0.2, price=1.0716, stop_loss=1.0790))
    (opening,) = rec.fills
    assert opening.planned_risk == pytest.approx(0.2 * 74 * 10.0, abs=0.01)  # 74 pips x 0.2 lots x $10 a pip
    eng.close_position(opening.position_id, 0.1)
    half = rec.fills[-1].outcome
    assert half is not None and half.closed_by is ClosedBy.ORDER and not half.trade_closed
    assert half.slippage_points is None and half.r_multiple == pytest.approx(half.money / 148.0, abs=0.01)
    term = rt.broker.mt5
    while rt.broker.positions():
        assert term.replay_step(1), "the data ended before the stop"
        eng.poll_fills()
    stop = rec.fills[-1]
    result = stop.outcome
    assert result is not None and result.closed_by is ClosedBy.STOP and result.trade_closed
    assert result.level == 1.0790 and stop.price > 1.0880  # filled at the gap's open, not at the stop
    assert result.slippage_points == pytest.approx((stop.price - 1.0790) / 0.00001, abs=0.1)
    assert result.slippage_money == pytest.approx(result.slippage_points * 0.1, abs=0.01)  # $1 a point, 0.1 lots
    money = sum(f.profit + f.commission + f.swap for f in rec.fills)
    assert result.money == pytest.approx(money, abs=0.01) and -1.5 < result.r_multiple < -1  # the gap
    assert result.r_multiple == pytest.approx(money / 148.0, abs=0.01)
    journaled = [f.outcome for f in eng.journal.fills()]
    assert journaled == [None, half, result]  # stored with the deal, read back the same
    assert samples(rt, "tradeguard_stop_slippage_points") == {("stop",): 1.0}
    assert samples(rt, "tradeguard_trade_r_multiple") == {(): 1.0}  # the half close closed no trade


def test_a_deal_whose_symbol_cannot_be_read_is_journaled_without_its_outcome(
    engine_runtime: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The figures are extras: a symbol the terminal no longer lists never keeps a deal out of the journal."""
    rt, eng, rec = engine_runtime()
    eng.submit_order(sell(0.1, price=1.0716, stop_loss=1.0790))
    (opening,) = rec.fills
    rt.broker.mt5.admin_close_position(opening.position_id)  # closed by hand at the terminal

    def gone(symbol: str) -> Any:
        raise KeyError(symbol)

    monkeypatch.setattr(rt.broker, "symbol_spec", gone)
    (closing,) = eng.poll_fills()
    assert closing.outcome is None and [f.deal_ticket for f in eng.journal.fills()][-1] == closing.deal_ticket


def test_after_a_netting_reversal_the_stop_is_the_reversing_orders(engine_runtime: Callable[..., Any]) -> None:
    """Review finding: the slippage was measured against the reversed trade's stop."""
    from .conftest import buy

    rt, eng, rec = engine_runtime(emulator={"margin_mode": "netting"})
    eng.submit_order(buy(0.1, price=1.0717, stop_loss=1.0600))
    eng.submit_order(sell(0.2, price=1.0716, stop_loss=1.0790))  # reverses to a short of 0.1, stop 1.0790
    term = rt.broker.mt5
    while rt.broker.positions():
        assert term.replay_step(1), "the data ended before the stop"
        eng.poll_fills()
    result = rec.fills[-1].outcome
    assert result is not None and result.closed_by is ClosedBy.STOP and result.level == 1.0790
    assert result.slippage_points == pytest.approx((rec.fills[-1].price - 1.0790) / 0.00001, abs=0.1)
