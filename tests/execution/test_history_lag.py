"""A deal that reaches the history a little after the order said DONE (issue 27, part 3): the order is not
taken for unfilled, nothing is sent twice, and the fill poll journals the deal once it shows."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tradeguard.models import OrderState

from .conftest import buy


@pytest.mark.parametrize("policy", ["resubmit_rest", "cancel_rest"])
def test_a_done_whose_deal_lags_is_filled_once(engine_runtime: Callable[..., tuple], policy: str) -> None:
    rt, eng, _rec = engine_runtime(emulator={"faults": {"history_lag_ms": 1000}}, engine={"partial_policy": policy})
    terminal = rt.broker.mt5
    cid = eng.submit_order(buy(volume=0.3))
    entry = eng.journal.get(cid)
    assert entry.state is OrderState.FILLED and "not in the history yet" in entry.last_message
    assert [p.volume for p in terminal.positions_get()] == [0.3]  # sent once, not again for a "missing" 0.3
    assert eng.journal.fills(cid) == []
    terminal.replay_step(2)  # the market moves on: the deal shows in the history
    eng.poll_fills()
    (fill,) = eng.journal.fills(cid)
    assert fill.volume == 0.3 and eng.journal.get(cid).state is OrderState.FILLED
    assert len(terminal.history_deals_get(0, 2**40)) == 1


def test_a_partial_done_whose_deal_lags_resends_only_the_true_rest(engine_runtime: Callable[..., tuple]) -> None:
    rt, eng, _rec = engine_runtime(
        emulator={"faults": {"history_lag_ms": 1000}, "liquidity_lots": 0.1},
        engine={"partial_policy": "resubmit_rest", "max_partial_resubmits": 5},
    )
    terminal = rt.broker.mt5
    cid = eng.submit_order(buy(volume=0.3))
    assert sum(p.volume for p in terminal.positions_get()) == pytest.approx(0.3)  # 0.1 + 0.1 + 0.1, no more
    terminal.replay_step(2)
    eng.poll_fills()
    assert sum(f.volume for f in eng.journal.fills(cid)) == pytest.approx(0.3)
    assert eng.journal.get(cid).state is OrderState.FILLED


def test_an_ambiguous_answer_whose_deal_lags_is_resolved_filled(engine_runtime: Callable[..., tuple]) -> None:
    """order_send times out (10012) but the order executed, and its deal lags: the lookup finds the order done in
    the broker's history and the journal says filled, not cancelled; nothing is sent again."""
    rt, eng, _rec = engine_runtime(emulator={"faults": {"history_lag_ms": 1000, "timeout_executed_rate": 1.0}})
    terminal = rt.broker.mt5
    cid = eng.submit_order(buy(volume=0.2))
    entry = eng.journal.get(cid)
    assert entry.state is OrderState.FILLED and "its deal is not there yet" in entry.last_message
    assert [p.volume for p in terminal.positions_get()] == [0.2]
    terminal.replay_step(2)
    eng.poll_fills()
    assert [f.volume for f in eng.journal.fills(cid)] == [0.2] and eng.journal.get(cid).state is OrderState.FILLED


def test_only_the_first_partials_deal_lagging_sends_no_lot_twice(engine_runtime: Callable[..., tuple]) -> None:
    """The first partial's deal lags, the later ones show at once: each rest is what its own request left, so
    the journal missing the first deal never makes a lot go out twice."""
    rt, eng, _rec = engine_runtime(
        emulator={"liquidity_lots": 0.1}, engine={"partial_policy": "resubmit_rest", "max_partial_resubmits": 5}
    )
    terminal = rt.broker.mt5
    real, hidden = terminal.history_deals_get, []

    def first_lags(*args: object, **kw: object) -> object:
        if "ticket" in kw and not hidden:
            hidden.append(kw["ticket"])
            return ()
        return real(*args, **kw)

    terminal.history_deals_get = first_lags
    cid = eng.submit_order(buy(volume=0.3))
    assert sum(p.volume for p in terminal.positions_get()) == pytest.approx(0.3) and hidden
    eng.poll_fills()
    entry = eng.journal.get(cid)
    assert entry.state is OrderState.FILLED and entry.filled_volume == pytest.approx(0.3)


def test_a_rest_left_when_the_resubmits_run_out_is_cancelled_not_left_working(
    engine_runtime: Callable[..., tuple],
) -> None:
    _rt, eng, _rec = engine_runtime(
        emulator={"liquidity_lots": 0.1}, engine={"partial_policy": "resubmit_rest", "max_partial_resubmits": 1}
    )
    cid = eng.submit_order(buy(volume=0.3))
    entry = eng.journal.get(cid)
    assert entry.state is OrderState.CANCELLED and entry.filled_volume == pytest.approx(0.2)
    assert "max_partial_resubmits" in entry.last_message
