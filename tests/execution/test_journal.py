"""The journal's mirror is what the file holds; a fill and the state it settles commit together.

``Journal.create`` builds the new entry from the values it inserted and the table's defaults
instead of reading the row back (the intent's commit is the one durable write before
``order_send``). A schema default or a column's type conversion that the mirror misses would make
the engine decide on an entry the file does not hold: this compares the two, types included.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeguard import Fill, IllegalStateTransition, OrderIntent
from tradeguard.execution.journal import Journal, Transition
from tradeguard.models import NettingEffect, OrderState, OrderType, Side
from tradeguard.store.sqlite import Store

prices = st.none() | st.floats(min_value=1e-5, max_value=1e6) | st.integers(1, 5)
orders = st.builds(
    OrderIntent.trusted,  # as the pipeline builds them: a plugin's int volume or price reaches the journal as is
    signal_id=st.text(max_size=20),
    client_id=st.just(""),
    strategy=st.text(max_size=10),
    symbol=st.sampled_from(["EURUSD", "XAUUSD"]),
    side=st.sampled_from(list(Side)),
    volume=st.floats(min_value=0.01, max_value=100) | st.integers(1, 50),
    order_type=st.sampled_from(list(OrderType)),
    price=prices,
    stop_loss=prices,
    take_profit=prices,
    position_ticket=st.none() | st.integers(1, 2**40),
    reduce_only=st.booleans(),
    created_at=st.just(datetime(2017, 4, 20, tzinfo=UTC)),
    netting=st.none() | st.sampled_from(list(NettingEffect)),
)
zones = st.sampled_from([UTC, timezone(timedelta(hours=3)), timezone(timedelta(hours=-5, minutes=-30))])
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=zones)


@settings(max_examples=150, deadline=None)
@given(batch=st.lists(st.tuples(orders, moments), min_size=1, max_size=4))
def test_a_new_intent_is_mirrored_as_the_file_holds_it(batch: list[tuple[OrderIntent, datetime]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "journal.db", synchronous="NORMAL")
        journal = Journal(store, "tg")
        ids = [journal.create(order, when) for order, when in batch]
        fresh = Journal(store, "tg")  # reads every entry from the file
        for client_id in ids:
            mirrored, stored = journal.get(client_id), fresh.get(client_id)
            assert mirrored == stored
            assert [type(v) for v in mirrored] == [type(v) for v in stored]  # 1 and 1.0 are equal, not the same
        assert journal.open_entries() == fresh.open_entries()
        store.close()


def _fill(client_id: str, ticket: int = 1) -> Fill:
    return Fill(
        deal_ticket=ticket,
        order_ticket=7,
        position_id=7,
        client_id=client_id,
        symbol="EURUSD",
        side="buy",
        entry="in",
        volume=0.1,
        price=1.07,
        commission=0.0,
        swap=0.0,
        profit=0.0,
        magic=1,
        comment=client_id,
        time=datetime(2017, 4, 20, tzinfo=UTC),
    )


def test_a_fill_and_the_transition_it_settles_commit_or_roll_back_together(tmp_path: Path) -> None:
    journal = Journal(Store(tmp_path / "j.db"), "tg")
    when = datetime(2017, 4, 20, tzinfo=UTC)
    cid = journal.create(OrderIntent(symbol="EURUSD", side="buy", volume=0.1, created_at=when), when)
    asked: list[float] = []

    def to(state: OrderState) -> object:
        def settle(entry: object) -> Transition:
            asked.append(entry.filled_volume)  # type: ignore[attr-defined]
            return Transition(state, when, 10009, "DONE", 7)

        return settle

    with pytest.raises(IllegalStateTransition):  # new -> submitted -> new: refused, and the deal with it
        journal.record_fill(_fill(cid), to(OrderState.NEW))
    assert asked == [0.1]  # asked with the deal's volume counted
    assert journal.fills() == [] and journal.get(cid).state is OrderState.NEW and journal.get(cid).filled_volume == 0
    assert journal.store.query("SELECT COUNT(*) FROM order_events")[0][0] == 0

    recorded = journal.record_fill(_fill(cid), to(OrderState.FILLED))
    assert recorded == (True, OrderState.SUBMITTED)
    entry = journal.get(cid)
    assert (entry.state, entry.filled_volume, entry.broker_order, entry.last_message) == (
        OrderState.FILLED,
        0.1,
        7,
        "DONE",
    )
    fresh = Journal(journal.store, "tg")  # the file, not the mirror
    assert fresh.get(cid) == entry and len(fresh.fills()) == 1
    assert journal.record_fill(_fill(cid)) == (False, None)  # the same deal again: nothing new, nothing moved
