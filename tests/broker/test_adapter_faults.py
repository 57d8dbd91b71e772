"""Every injected fault shows its documented symptom; bad input never reaches order_send;
the same seed gives the same deal history, byte for byte."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tradeguard.broker import constants
from tradeguard.broker.emulator.terminal import Terminal
from tradeguard.broker.mt5 import MT5Adapter
from tradeguard.broker.retcodes import CLASSES, NAMES, RetcodeClass, classify
from tradeguard.broker.settings import BrokerSettings
from tradeguard.broker.types import BrokerError, OrderRefused
from tradeguard.errors import StartupError

from .conftest import EPOCH, FUTURE, market

Adapter = Callable[..., MT5Adapter]


def test_every_retcode_is_classified_once() -> None:
    assert set(CLASSES) == set(NAMES) and len(NAMES) == 41  # 10004..10046 without 10005 and 10037
    assert {k for k, v in CLASSES.items() if v is RetcodeClass.SUCCESS} == {10008, 10009, 10010}
    assert {k for k, v in CLASSES.items() if v is RetcodeClass.RETRY_PRICE} == {10004, 10020, 10021}
    assert {k for k, v in CLASSES.items() if v is RetcodeClass.RETRY_BACKOFF} == {10024}
    assert {k for k, v in CLASSES.items() if v is RetcodeClass.AMBIGUOUS} == {10012, 10031}
    assert classify(None) is RetcodeClass.AMBIGUOUS and classify(99999) is RetcodeClass.FINAL
    assert classify(10046) is RetcodeClass.FINAL and NAMES[10046] == "TRADE_RETCODE_HEDGE_PROHIBITED"


@pytest.mark.parametrize(
    ("fault", "retcode", "category"),
    [
        ("requote_rate", 10004, RetcodeClass.RETRY_PRICE),
        ("price_changed_rate", 10020, RetcodeClass.RETRY_PRICE),
        ("too_many_requests_rate", 10024, RetcodeClass.RETRY_BACKOFF),
        ("reject_rate", 10006, RetcodeClass.FINAL),
        ("market_closed_rate", 10018, RetcodeClass.FINAL),
        ("timeout_lost_rate", 10012, RetcodeClass.AMBIGUOUS),
    ],
)
def test_refusing_faults_return_their_retcode_and_trade_nothing(
    adapter: Adapter, fault: str, retcode: int, category: RetcodeClass
) -> None:
    broker = adapter(faults={fault: 1.0})
    res = broker.send(market(broker, constants.ORDER_TYPE_BUY))
    assert (res.retcode, res.category, res.deal, res.order) == (retcode, category, 0, 0)
    assert broker.positions() == [] and broker.history_deals(EPOCH, FUTURE) == []


def test_timeout_whose_order_was_executed(adapter: Adapter) -> None:
    broker = adapter(faults={"timeout_executed_rate": 1.0})
    res = broker.send(market(broker, constants.ORDER_TYPE_BUY, comment="tg-abc123"))
    assert (res.retcode, res.category, res.deal) == (10012, RetcodeClass.AMBIGUOUS, 0)
    (deal,) = broker.history_deals(EPOCH, FUTURE)  # ... but the deal is there, findable by its comment
    assert (deal.comment, deal.magic) == ("tg-abc123", 42)
    assert [p.comment for p in broker.positions()] == ["tg-abc123"]


def test_autotrading_disabled(adapter: Adapter) -> None:
    broker = adapter(faults={"autotrading_off_rate": 1.0, "autotrading_off_seconds": 7200})
    res = broker.send(market(broker, constants.ORDER_TYPE_BUY))
    assert res.retcode == 10027 and res.name == "CLIENT_DISABLES_AT"
    assert broker.terminal().trade_allowed is False
    broker.mt5.admin_set_algo_trading(False)
    assert broker.mt5.execute_request(market(broker, constants.ORDER_TYPE_BUY)).retcode == 10027


def test_disconnect_window(adapter: Adapter) -> None:
    broker = adapter(faults={"disconnect_rate": 1.0, "disconnect_seconds": 3600, "seed": 3})
    outcomes = {broker.send(market(broker, constants.ORDER_TYPE_BUY)).retcode for _ in range(20)}
    assert outcomes == {None, 10031}  # answered None (last_error set) or 10031, never traded
    res = next(
        r for r in (broker.send(market(broker, constants.ORDER_TYPE_BUY)) for _ in range(50)) if r.retcode is None
    )
    assert res.category is RetcodeClass.AMBIGUOUS and res.last_error == (-10004, "No IPC connection")
    assert broker.terminal().connected is False and broker.positions() == []


def test_disconnect_window_ends_with_server_time() -> None:
    term = Terminal()
    term.initialize(faults={"disconnect_rate": 1.0, "disconnect_seconds": 60})
    broker = MT5Adapter(term, BrokerSettings())
    assert broker.send(market(broker, constants.ORDER_TYPE_BUY)).category is RetcodeClass.AMBIGUOUS
    term.replay_step(4)  # an hour later
    assert broker.terminal().connected is True


def test_latency_is_added_to_calls_and_reported_as_ping(adapter: Adapter) -> None:
    broker = adapter(faults={"latency_ms": 20})
    started = time.perf_counter()
    broker.account()
    assert time.perf_counter() - started >= 0.02
    assert broker.terminal().ping_ms == pytest.approx(20.0)


def test_stale_ticks_stop_the_published_quote_while_the_market_moves(adapter: Adapter) -> None:
    broker = adapter(faults={"stale_tick_rate": 1.0})
    term = broker.mt5
    term.replay_step(4)
    published = broker.quote("EURUSD").time
    term.replay_step(8)
    assert broker.quote("EURUSD").time == published
    assert term.now_msc() / 1000 > published.timestamp() + 3600


def _spy(term: Terminal) -> tuple[Any, list[dict]]:
    sent: list[dict] = []
    original = term.order_send

    def order_send(request: dict) -> Any:
        sent.append(request)
        return original(request)

    term.order_send = order_send  # type: ignore[method-assign]
    return term, sent


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"volume": 0.015}, "volume"),
        ({"volume": 0.0}, "volume"),
        ({"volume": float("nan")}, "volume"),
        ({"volume": 1000.0}, "volume"),
        ({"sl": "inside"}, "sl"),
        ({"tp": "wrong_side"}, "tp"),
        ({"symbol": "NOPE"}, "symbol"),
        ({"comment": "x" * 27}, "comment"),
        ({"price": float("nan")}, "price"),
    ],
)
def test_bad_input_is_refused_before_order_send(terminal: Callable[..., Terminal], change: dict, field: str) -> None:
    term, sent = _spy(terminal())
    broker = MT5Adapter(term, BrokerSettings())
    q = broker.quote("EURUSD")
    req = {"action": constants.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1, "type": constants.ORDER_TYPE_BUY}
    req.update(change)
    if req.get("sl") == "inside":
        req["sl"] = round(q.bid - 0.00005, 5)  # stops level is 10 points = 0.0001
    if req.get("tp") == "wrong_side":
        req["tp"] = round(q.bid - 0.01, 5)
    with pytest.raises(OrderRefused) as exc:
        broker.send(broker.prepare(req))
    assert exc.value.field == field and field in str(exc.value)
    assert sent == []


def test_volume_is_normalised_never_rounded_up(adapter: Adapter) -> None:
    spec = adapter().symbol_spec("EURUSD")
    assert spec.normalize_volume(0.30000000000000004) == 0.3
    assert spec.floor_volume(0.129) == 0.12
    assert spec.round_price(1.071234) == 1.07123


def test_filling_mode_is_chosen_from_the_symbol_flags(adapter: Adapter) -> None:
    broker = adapter(symbols={"GBPUSD": {"filling_mode": 1}, "XAUUSD": {"exemode": 1}})
    assert broker.filling_for(broker.symbol_spec("EURUSD"), constants.ORDER_TYPE_BUY) == constants.ORDER_FILLING_IOC
    assert broker.filling_for(broker.symbol_spec("GBPUSD"), constants.ORDER_TYPE_SELL) == constants.ORDER_FILLING_FOK
    assert broker.filling_for(broker.symbol_spec("XAUUSD"), constants.ORDER_TYPE_BUY) == constants.ORDER_FILLING_FOK
    assert (
        broker.filling_for(broker.symbol_spec("EURUSD"), constants.ORDER_TYPE_BUY_LIMIT)
        == constants.ORDER_FILLING_RETURN
    )
    req = broker.prepare({"action": 1, "symbol": "GBPUSD", "volume": 0.1, "type": 0})
    assert broker.send(req).retcode == 10009


class FlakyStart:
    """A real terminal whose first ``fail`` initialize calls fail, as a terminal still starting does."""

    def __init__(self, fail: int, error: tuple[int, str] = (-10005, "IPC timeout")) -> None:
        self.term, self.fail, self.calls, self.error = Terminal(), fail, 0, error
        self.seen: dict[str, Any] = {}

    def initialize(self, **kw: Any) -> bool:
        self.calls += 1
        self.seen = kw
        if self.calls <= self.fail:
            self.term._last_error = self.error
            return False
        kw.pop("path", None)  # the emulator has no terminal64.exe to start
        return self.term.initialize(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.term, name)


def test_connect_retries_then_succeeds_and_gives_up_naming_the_error() -> None:
    waits: list[float] = []
    module = FlakyStart(fail=2)
    broker = MT5Adapter(module, BrokerSettings(connect_retries=3, retry_delay_seconds=0.5), sleep=waits.append)
    broker.connect()
    assert broker.connected and module.calls == 3 and waits == [0.5, 1.0]
    broker = MT5Adapter(FlakyStart(fail=5), BrokerSettings(connect_retries=2), sleep=waits.append)
    with pytest.raises(BrokerError, match=r"initialize failed after 2 attempts: the terminal did not answer within"):
        broker.connect()


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (-10003, "set broker.path to its terminal64.exe, and broker.portable = true"),
        (-10004, "under the same user as tradeguard"),
        (-10005, "raise broker.timeout_ms"),
    ],
)
def test_an_ipc_failure_names_its_likely_fix_and_the_settings_reach_initialize(code: int, hint: str) -> None:
    module = FlakyStart(fail=9, error=(code, "IPC failure"))
    cfg = BrokerSettings(connect_retries=2, portable=True, timeout_ms=5_000, path="C:/mt5/terminal64.exe")
    with pytest.raises(BrokerError, match=hint) as failed:
        MT5Adapter(module, cfg, sleep=lambda _: None).connect()
    assert f"last_error {code}: IPC failure" in str(failed.value) and module.calls == 2
    assert {k: module.seen[k] for k in ("portable", "timeout", "path")} == {
        "portable": True,
        "timeout": 5_000,
        "path": "C:/mt5/terminal64.exe",
    }


def test_login_with_wrong_account_fails_with_auth_error_and_is_not_retried() -> None:
    """Asking again with the same wrong password fails alike, and brokers lock accounts that keep asking."""
    waits: list[float] = []
    module = FlakyStart(fail=0)
    broker = MT5Adapter(module, BrokerSettings(login=123, connect_retries=3), sleep=waits.append)
    with pytest.raises(BrokerError, match=r"initialize refused \(last_error -6: Terminal: Authorization failed"):
        broker.connect()
    assert (module.calls, waits) == (1, [])


def test_a_broken_data_file_is_refused_once_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "bars.csv"
    broken.write_text("time,open,high,low,close\n2017-01-02 00:00,1.0,0.9,1.1,1.05\n")
    module, waits = FlakyStart(fail=0), []
    broker = MT5Adapter(module, BrokerSettings(connect_retries=3), sleep=waits.append)
    with pytest.raises(StartupError, match=r"^\S*bars.csv, row 2, column 'high': high 0.9") as refused:
        broker.connect(data=str(broken))  # the data problem leads, not MT5's "initialize refused (last_error -2"
    assert "last_error" not in str(refused.value)
    assert (module.calls, waits, broker.connected) == (1, [], False)


def _scripted_run(seed: int) -> str:
    """A fixed script of requests over a hostile terminal; returns the deal history as text."""
    term = Terminal()
    term.initialize(
        faults={
            "seed": seed,
            "requote_rate": 0.2,
            "reject_rate": 0.1,
            "timeout_executed_rate": 0.1,
            "disconnect_rate": 0.05,
            "disconnect_seconds": 7200,
        },
        slippage_points=3,
    )
    broker = MT5Adapter(term, BrokerSettings())
    for n, _bar in enumerate(term.replay_bars()):
        if n >= 600:
            break
        side = constants.ORDER_TYPE_BUY if n % 2 else constants.ORDER_TYPE_SELL
        q = broker.quote("EURUSD")
        ref = q.bid if side == constants.ORDER_TYPE_BUY else q.ask
        sign = 1 if side == constants.ORDER_TYPE_BUY else -1
        broker.send(
            broker.prepare(
                {
                    "action": 1,
                    "symbol": "EURUSD",
                    "volume": 0.1,
                    "type": side,
                    "magic": 9,
                    "sl": round(ref - sign * 0.003, 5),
                    "tp": round(ref + sign * 0.003, 5),
                    "comment": f"tg-{n}",
                }
            )
        )
    return repr(term.history_deals_get(0, 2**40))


def test_same_seed_gives_byte_identical_deal_histories() -> None:
    first, second = _scripted_run(11), _scripted_run(11)
    assert first == second and first.count("TradeDeal(") > 100
    assert _scripted_run(12) != first


class EmptyHistory:
    """A terminal whose history reads come back empty, with or without an error (MT5_API.md: both happen)."""

    def __init__(self, error: tuple[int, str]) -> None:
        self.term, self.error = Terminal(), error
        self.term.initialize()

    def history_deals_get(self, *args: Any, **kw: Any) -> tuple[()]:
        self.term._last_error = self.error
        return ()

    def last_error(self) -> tuple[int, str]:
        return self.term._last_error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.term, name)


def test_an_empty_history_with_an_error_is_a_failed_read_not_no_deals() -> None:
    from datetime import UTC, datetime

    start, end = datetime(2017, 1, 1, tzinfo=UTC), datetime(2018, 1, 1, tzinfo=UTC)
    failing = MT5Adapter(EmptyHistory((-2, "Invalid parameters")), BrokerSettings())
    with pytest.raises(BrokerError, match=r"history_deals_get failed \(empty, with an error\).*-2: Invalid parameters"):
        failing.history_deals(start, end)
    quiet = MT5Adapter(EmptyHistory((1, "Success")), BrokerSettings())
    assert quiet.history_deals(start, end) == []  # empty and no error: truly no deals


class MarketWatch:
    """A terminal whose Market Watch refuses ``refused`` and whose ticks for a symbol come ``late`` reads after
    it was selected (MT5_API.md: a symbol's quotes arrive only once it is in Market Watch)."""

    def __init__(self, refused: set[str] = frozenset(), late: int = 0) -> None:
        self.term, self.refused, self.late = Terminal(), set(refused), late
        self.term.initialize()

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        return symbol not in self.refused and bool(self.term.symbol_select(symbol, enable))

    def symbol_info_tick(self, symbol: str) -> Any:
        if self.late:
            self.late -= 1
            return None
        return self.term.symbol_info_tick(symbol)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.term, name)


def test_followed_symbols_are_selected_and_quoted_before_run_starts() -> None:
    from tradeguard.errors import StartupError
    from tradeguard.replay.loop import _selected

    waits: list[float] = []
    _selected(MT5Adapter(MarketWatch(late=3), BrokerSettings()), ["EURUSD"], sleep=waits.append)
    assert waits == [0.5, 0.5, 0.5]  # it waited for the first quote
    with pytest.raises(StartupError, match="GBPUSD cannot be selected in the terminal's Market Watch"):
        _selected(MT5Adapter(MarketWatch(refused={"GBPUSD"}), BrokerSettings()), ["EURUSD", "GBPUSD"])
    with pytest.raises(StartupError, match="EURUSD shows no quote after selecting it"):
        _selected(MT5Adapter(MarketWatch(late=99), BrokerSettings()), ["EURUSD"], sleep=waits.append)


def test_a_derived_offset_is_adopted_only_when_it_is_a_real_one() -> None:
    """Derivation reads a fresh tick against the wall clock: the emulator's 2017 ticks give -84,000-odd hours,
    which is no offset, so the configured zone stays (it used to become the offset, and 2017 became today)."""
    term = Terminal()
    assert term.initialize()
    broker = MT5Adapter(
        term,
        BrokerSettings(module="MetaTrader5", derive_server_offset=True, server_timezone="+02:00"),
        sleep=lambda _: term.replay_step(1),  # the tick moves while it waits: the market is open
    )
    assert broker.observed_offset("EURUSD") is None
    broker.connect()
    assert broker.zone.name == "+02:00"
