"""The fleet database against a real PostgreSQL: atomic reservations (many accounts deciding at once never take
more than the budget), leases, the kill switch and its hash-chained record, limits kept in one place."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tradeguard.errors import TradeguardError
from tradeguard.fleet.database import AccountFigures, Ask, BookRow, FleetDB, Refusal

from .conftest import fresh_database

LIMITS = {"max_lots_per_symbol": 1.0, "max_lots_per_currency": 1.5, "max_open_positions": 4}


def figures(login: int, equity: float = 10_000.0, day_start: float = 10_000.0) -> AccountFigures:
    return AccountFigures(login, "Demo", "USD", 1.0, equity, equity, day_start)


def joined(url: str, accounts: list[str], limits: dict[str, float] = LIMITS, fleet: str = "main") -> FleetDB:
    db = FleetDB(url, fleet)
    db.migrate()
    db.join("USD", limits)
    for n, account in enumerate(accounts):
        db.claim(account, figures(1000 + n), pid=n, host="test", stale_after=0.0)
    return db


def ask(symbol: str = "EURUSD", lots: float = 0.3, positions: int = 1, sid: str = "s") -> Ask:
    base, profit = symbol[:3], symbol[3:]
    return Ask(sid, symbol, lots, base, profit, positions)


def test_migration_is_versioned_and_idempotent(fleet_url: str) -> None:
    db = FleetDB(fleet_url, "main")
    assert db.migrate() == 2
    assert db.migrate() == 2  # again: nothing to do
    with psycopg.connect(fleet_url, autocommit=True) as conn:
        conn.execute("UPDATE tradeguard_fleet_schema SET version = 99")
    with pytest.raises(TradeguardError, match="schema 99; this tradeguard knows up to 2"):
        db.migrate()


def test_concurrent_reservations_never_exceed_the_budget(fleet_url: str) -> None:
    """Eight accounts, each on its own connection and thread, ask for the last of a budget at the same moment."""
    accounts = [f"acc{n}" for n in range(8)]
    joined(fleet_url, accounts, {"max_lots_per_symbol": 1.0}).close()
    granted: list[tuple[str, float]] = []
    refused: Counter[str] = Counter()
    start = threading.Barrier(len(accounts))

    def decide(account: str) -> None:
        db = FleetDB(fleet_url, "main")
        start.wait()
        for n in range(6):
            answer = db.reserve(account, ask(lots=0.2, sid=f"{account}-{n}"), lease_seconds=30)
            if isinstance(answer, Refusal):
                refused[answer.code] += 1
            else:
                granted.append((account, 0.2))
        db.close()

    threads = [threading.Thread(target=decide, args=(a,)) for a in accounts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(lots for _, lots in granted) == pytest.approx(1.0)  # exactly the budget: five of 0.2
    assert refused["fleet_lots_symbol"] == 8 * 6 - 5  # the limit bound: every other ask was refused


@settings(max_examples=25, deadline=None)
@given(
    asks=st.lists(
        st.tuples(
            st.sampled_from(["EURUSD", "GBPUSD", "EURGBP", "USDJPY"]),
            st.sampled_from([0.1, 0.2, 0.3, 0.5]),
            st.sampled_from([0, 1]),
        ),
        min_size=1,
        max_size=40,
    ),
    book=st.lists(st.sampled_from(["EURUSD", "USDJPY"]), max_size=3),
)
# one sequence that must meet each limit, whatever the random examples happen to try
@example(asks=[("EURUSD", 0.5, 0), ("EURUSD", 0.5, 0), ("EURUSD", 0.2, 0)], book=[])
@example(asks=[("EURUSD", 0.5, 0), ("GBPUSD", 0.5, 0), ("USDJPY", 0.5, 0), ("USDJPY", 0.2, 0)], book=[])
@example(asks=[("EURUSD", 0.1, 1)] * 5, book=[])
def no_sequence_of_asks_breaks_a_limit(postgres: object, asks: list[tuple[str, float, int]], book: list[str]) -> None:
    """Whatever is published and asked, what the fleet holds and reserves stays within every limit; the test also
    checks that the limits bound (something was refused) across the examples."""
    url = fresh_database(postgres)  # type: ignore[arg-type]
    db = joined(url, ["a", "b"])
    db.publish_book("b", [BookRow("position", n + 1, s, "buy", 0.2, s[:3], s[3:]) for n, s in enumerate(book)])
    for n, (symbol, lots, positions) in enumerate(asks):
        answer = db.reserve("a", ask(symbol, lots, positions, sid=str(n)), lease_seconds=30)
        if isinstance(answer, Refusal):
            _REFUSED[answer.code] += 1
    totals = db.totals(reserved=True)
    db.close()
    assert max(totals.lots_by_symbol.values(), default=0) <= LIMITS["max_lots_per_symbol"] + 1e-9
    assert max(totals.lots_by_currency.values(), default=0) <= LIMITS["max_lots_per_currency"] + 1e-9
    assert totals.positions <= LIMITS["max_open_positions"]


_REFUSED: Counter[str] = Counter()


def test_no_sequence_of_asks_breaks_a_limit_and_every_limit_bound(postgres: object) -> None:
    _REFUSED.clear()
    no_sequence_of_asks_breaks_a_limit(postgres)
    assert {"fleet_lots_symbol", "fleet_lots_currency", "fleet_open_positions"} <= set(_REFUSED), _REFUSED


def test_a_published_fill_replaces_its_reservation_atomically(fleet_url: str) -> None:
    db = joined(fleet_url, ["a"])
    held = db.reserve("a", ask(lots=0.6), lease_seconds=30)
    assert isinstance(held, int)
    assert db.totals(reserved=True).lots_by_symbol == {"EURUSD": pytest.approx(0.6)}
    assert db.totals().lots_by_symbol == {}  # held: nothing yet
    db.publish_book("a", [BookRow("position", 7, "EURUSD", "buy", 0.6, "EUR", "USD")], release=[held])
    totals = db.totals(reserved=True)
    assert totals.lots_by_symbol == {"EURUSD": pytest.approx(0.6)}  # counted once: the position, not both
    assert totals.reservations == 0


def test_a_dead_process_reservation_expires_with_its_lease(fleet_url: str) -> None:
    db = joined(fleet_url, ["a", "b"])
    assert isinstance(db.reserve("a", ask(lots=1.0), lease_seconds=0.5), int)
    assert isinstance(db.reserve("b", ask(lots=0.1, sid="b1"), lease_seconds=30), Refusal)  # a holds it all
    time.sleep(0.7)  # nobody renewed a's lease
    assert isinstance(db.reserve("b", ask(lots=0.1, sid="b2"), lease_seconds=30), int)


def test_the_kill_switch_only_tightens_and_its_record_is_a_chain(fleet_url: str) -> None:
    db = joined(fleet_url, ["a"])
    assert db.kill("REDUCE_ONLY", "fleet_limit", "loss", operator="a", via="automatic") is not None
    assert db.kill("REDUCE_ONLY", "fleet_kill", "again", operator="ops", via="cli") is None
    halted = db.kill("HALTED", "fleet_kill", "news", operator="ops", via="cli", auth="none")
    assert halted is not None and db.kill_state() == halted
    answer = db.reserve("a", ask(), lease_seconds=30)
    assert isinstance(answer, Refusal) and answer.code == "fleet_kill"
    assert db.reset("calm", operator="ops", via="cli", auth="operator secret") is not None
    assert db.reset("again", operator="ops", via="cli", auth="operator secret") is None
    assert db.verify_record() == (3, "")
    db.connect().execute("SET TIME ZONE 'Asia/Tokyo'")  # another session's clock: the same chain
    assert db.verify_record() == (3, "")
    with psycopg.connect(fleet_url, autocommit=True) as conn:  # someone flips the switch by hand
        conn.execute("UPDATE fleets SET kill_state = 'HALTED'")
    assert db.verify_record() == (
        3,
        f"the fleet's row says HALTED (event {halted.event + 1}), its record ACTIVE (event {halted.event + 1})",
    )
    with psycopg.connect(fleet_url, autocommit=True) as conn:  # and edits the record
        conn.execute("UPDATE fleets SET kill_state = 'ACTIVE'")
        conn.execute("UPDATE fleet_events SET operator = 'nobody' WHERE kind = 'kill' AND trigger = 'fleet_kill'")
    assert db.verify_record() == (3, f"event {halted.event} does not hash to its record")


def test_limits_live_in_the_database_and_a_change_is_recorded(fleet_url: str) -> None:
    db = joined(fleet_url, ["a"])
    assert db.join("USD", {"max_open_positions": 99}) == LIMITS  # a later process does not replace them
    changes = db.set_limits({**LIMITS, "max_open_positions": 9}, operator="ops", via="cli", auth="none", reason="x")
    assert changes == ["max_open_positions: 4 -> 9"] and db.limits()["max_open_positions"] == 9
    assert [(e["kind"], e["operator"]) for e in db.events()] == [("limits", "ops")]
    with pytest.raises(TradeguardError, match="reports in USD; this process says EUR"):
        db.join("EUR", LIMITS)


def test_one_live_process_per_account(fleet_url: str) -> None:
    db = joined(fleet_url, ["a"])
    with pytest.raises(TradeguardError, match="published by pid 0 on test"):
        db.claim("a", figures(1000), pid=42, host="other", stale_after=30)
    with pytest.raises(TradeguardError, match="is MT5 account 1000@Demo"):
        db.claim("a", figures(2000), pid=0, host="test", stale_after=30)
    db.stop("a")
    db.claim("a", figures(1000), pid=42, host="other", stale_after=30)  # a clean stop frees it


def test_loss_limits_judge_the_fleet_in_its_currency(fleet_url: str) -> None:
    db = joined(fleet_url, ["a", "b"], {"daily_loss": 500.0, "max_drawdown_pct": 10.0})
    db.publish_account("a", figures(1000, equity=9_800, day_start=10_000), "ACTIVE", "")
    eur = AccountFigures(1001, "Demo", "EUR", 1.1, 9_700.0, 9_700.0, 10_000.0)  # -300 EUR = -330 USD
    db.publish_account("b", eur, "ACTIVE", "")
    answer = db.reserve("a", ask(), lease_seconds=30)
    assert isinstance(answer, Refusal) and answer.code == "fleet_daily_loss", answer
    assert db.totals().day_pnl == pytest.approx(-530.0)


def test_unreachable_is_one_error_that_never_shows_the_password() -> None:
    from tradeguard.fleet.database import FleetUnreachable

    db = FleetDB("postgresql://desk:hunter22@127.0.0.1:1/fleet", "main", connect_timeout=1)
    with pytest.raises(FleetUnreachable, match="fleet database unreachable") as raised:
        db.kill_state()
    assert "hunter22" not in str(raised.value) and len(str(raised.value).splitlines()) == 1


def test_a_wrong_url_is_refused_without_showing_it(settings_file: Any) -> None:
    from tradeguard.errors import ConfigError
    from tradeguard.kernel.runtime import Runtime

    for url, problem in (
        ("mysql://desk:hunter22@db/fleet", "a postgresql:// URL"),
        ("postgresql://desk:hunter%zz22@db/fleet", "not a URL libpq can read"),  # libpq would quote it back
        ("postgresql://desk:hunter22@db:99999/fleet", "not a URL libpq can read"),
    ):
        path = settings_file(f'[default.fleet]\nurl = "{url}"\n')
        with pytest.raises(ConfigError) as raised:
            Runtime.build(path, discover=False)
        assert f"fleet.url = <redacted>: {problem}" in str(raised.value) and "hunter" not in str(raised.value)


def test_a_partly_filled_order_keeps_its_reservation_for_the_rest(fleet_url: str) -> None:
    db = joined(fleet_url, ["a", "b"], {"max_lots_per_symbol": 1.0})
    held = db.reserve("a", ask(lots=1.0), lease_seconds=30)
    assert isinstance(held, int)
    db.publish_book("a", [BookRow("position", 1, "EURUSD", "buy", 0.3, "EUR", "USD")], shrink={held: 0.7})
    assert db.totals(reserved=True).lots_by_symbol == {"EURUSD": pytest.approx(1.0)}  # 0.3 held + 0.7 to come
    answer = db.reserve("b", ask(lots=0.1, sid="b"), lease_seconds=30)
    assert isinstance(answer, Refusal) and answer.code == "fleet_lots_symbol"
