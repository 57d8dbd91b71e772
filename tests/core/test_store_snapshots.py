"""Account snapshot rows: what is stored is what the model says, byte for byte, however it was built."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tradeguard.models import AccountSnapshot
from tradeguard.store.sqlite import Store, snapshot_row

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
times = st.builds(
    lambda t, us, mins: (t + timedelta(microseconds=us)).astimezone(timezone(timedelta(minutes=mins))),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.integers(0, 999_999),
    st.sampled_from([0, 0, 60, -300, 330]),
)
snapshots = st.builds(
    dict,
    time=times,
    login=st.integers(0, 2**62),
    currency=st.sampled_from(["USD", "EUR", "JPY", 'a"\\é']),
    balance=finite,
    equity=finite,
    margin=finite,
    free_margin=finite,
    margin_level=finite.map(abs),
    floating_pnl=finite,
    realized_pnl_day=finite,
    day_start_equity=finite,
    peak_equity=finite,
    drawdown_pct=finite.map(abs),
    drawdown_money=finite,
    daily_drawdown_pct=finite.map(abs),
    daily_drawdown_money=finite,
)


@settings(max_examples=300)
@given(snapshots, st.booleans())
def test_a_snapshot_row_is_the_models_own_json_and_isoformat(fields: dict, trusted: bool) -> None:
    """Validated or built unvalidated (the capture's hot path), in any zone, with microseconds, any finite figure."""
    snap = AccountSnapshot.trusted(**fields) if trusted else AccountSnapshot(**fields)
    assert snapshot_row(snap) == (snap.time.isoformat(), snap.balance, snap.equity, snap.model_dump_json())
    assert AccountSnapshot.model_validate_json(snapshot_row(snap)[3]) == AccountSnapshot(**fields)


def test_stored_snapshots_read_back_equal(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    snap = AccountSnapshot(
        time=datetime(2017, 1, 2, 10, tzinfo=UTC),
        balance=10_000.0,
        equity=9_876.54,
        peak_equity=10_100.0,
        drawdown_pct=2.2124,
        drawdown_money=223.46,
    )
    store.record_snapshot(snap)
    store.flush()
    [(when, record)] = store.query("SELECT time, record FROM account_snapshots")
    assert when == "2017-01-02T10:00:00+00:00"
    assert AccountSnapshot.model_validate_json(record) == snap
