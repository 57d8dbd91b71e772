"""10,000 intents through the engine over a hostile emulated terminal: zero duplicates, zero lost fills.

Faults on: timeouts whose order executed, timeouts whose order did not, disconnect windows
(None and 10031), requotes, price changes, too-many-requests and random final rejections. The
market moves one tick per intent. A netting account keeps the position count small while every
intent that filled still leaves its own deal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta

from tradeguard.models import OrderState

from .conftest import buy, sell

INTENTS = 10_000
HOSTILE = {
    "seed": 20261125,
    "timeout_executed_rate": 0.05,
    "timeout_lost_rate": 0.03,
    "disconnect_rate": 0.01,
    "disconnect_seconds": 1800,
    "requote_rate": 0.05,
    "price_changed_rate": 0.03,
    "too_many_requests_rate": 0.02,
    "reject_rate": 0.02,
}


def test_ten_thousand_intents_no_duplicate_no_lost_fill(engine_runtime: Callable[..., tuple]) -> None:
    rt, eng, rec = engine_runtime(
        emulator={"faults": HOSTILE, "margin_mode": "netting", "balance": 1e7}, engine={"unconfirmed_sla_seconds": 1.0}
    )
    terminal = rt.broker.mt5
    for n in range(INTENTS):
        eng.submit_order((buy if n % 2 else sell)(volume=0.01))
        terminal.replay_step(1)
    # let every disconnect window pass, then resolve whatever is still unconfirmed
    terminal.replay_step(40)
    rt.clock.advance(timedelta(minutes=10))
    eng.enforce_sla()
    eng.poll_fills()

    entries = eng.journal.entries()
    assert len(entries) == INTENTS
    states = defaultdict(int)
    for e in entries:
        states[e.state] += 1
    assert set(states) <= {OrderState.FILLED, OrderState.REJECTED}, states

    orders_per_client: dict[str, set[int]] = defaultdict(set)
    deals = terminal.history_deals_get(0, 2**40)
    for d in deals:
        orders_per_client[d.comment].add(d.order)
    assert all(len(orders) == 1 for orders in orders_per_client.values()), "an intent reached the broker twice"
    filled = {e.client_id for e in entries if e.state is OrderState.FILLED}
    assert set(orders_per_client) == filled  # every filled intent has its deal, and no deal lacks its intent
    assert {f.deal_ticket for f in eng.journal.fills()} == {d.ticket for d in deals}  # no lost fill
    assert len(rec.fills) == len(deals)  # announced exactly once each
    injected = terminal.faults.injected
    for fault in ("timeout_executed", "timeout_lost", "disconnected", "requote", "reject"):
        assert injected.get(fault, 0) > 50, injected  # the faults really happened, often
    assert states[OrderState.FILLED] > INTENTS * 0.8
