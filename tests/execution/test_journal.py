"""The journal's mirror of a new intent is what the file holds.

``Journal.create`` builds the new entry from the values it inserted and the table's defaults
instead of reading the row back (the intent's commit is the one durable write before
``order_send``). A schema default or a column's type conversion that the mirror misses would make
the engine decide on an entry the file does not hold: this compares the two, types included.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tradeguard import OrderIntent
from tradeguard.core.store import Store
from tradeguard.execution.journal import Journal
from tradeguard.models import OrderType, Side

prices = st.none() | st.floats(min_value=1e-5, max_value=1e6) | st.integers(1, 5)
orders = st.builds(
    OrderIntent.trusted,  # as the pipeline builds them: a plugin's int volume or price reaches the journal as is
    signal_id=st.text(max_size=20), client_id=st.just(""), strategy=st.text(max_size=10),
    symbol=st.sampled_from(["EURUSD", "XAUUSD"]), side=st.sampled_from(list(Side)),
    volume=st.floats(min_value=0.01, max_value=100) | st.integers(1, 50), order_type=st.sampled_from(list(OrderType)),
    price=prices, stop_loss=prices, take_profit=prices, position_ticket=st.none() | st.integers(1, 2**40),
    reduce_only=st.booleans(), created_at=st.just(datetime(2017, 4, 20, tzinfo=UTC)),
)  # fmt: skip
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
