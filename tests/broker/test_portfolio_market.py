"""Seven real symbols on one market clock: each tick moves only its own quote, nothing looks ahead, a symbol
without a bar is closed and ages, money converts through the replayed cross rates, swaps are charged at midnight."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest

from tradeguard.broker import constants
from tradeguard.broker.data import PORTFOLIO, load_bars
from tradeguard.broker.emulator.config import EmulatorConfig, datasets_in
from tradeguard.broker.emulator.terminal import Terminal
from tradeguard.broker.mt5 import MT5Adapter

FILES = datasets_in(PORTFOLIO)
SYMBOLS = sorted(FILES)
H1 = constants.TIMEFRAME_H1


@pytest.fixture(scope="module")
def bars() -> dict[str, np.ndarray]:
    return {symbol: load_bars(path) for symbol, path in FILES.items()}


def portfolio(terminal: Callable[..., Terminal], **config: object) -> Terminal:
    return terminal(data=FILES, **config)


def test_the_folder_holds_the_seven_symbols() -> None:
    assert SYMBOLS == ["AUDUSD", "EURGBP", "EURUSD", "GBPUSD", "USDCHF", "USDJPY", "XAUUSD"]


def test_every_bar_comes_once_in_time_order_and_nothing_looks_ahead(
    terminal: Callable[..., Terminal], bars: dict[str, np.ndarray]
) -> None:
    term = portfolio(terminal)
    seen: dict[str, int] = dict.fromkeys(SYMBOLS, 0)
    last_time = 0
    checked = 0
    for symbol, bar in term.replay_bars():
        assert int(bar["time"]) >= last_time  # one clock: bars close in time order across symbols
        last_time = int(bar["time"])
        expected = bars[symbol][seen[symbol]]
        assert (bar["time"], bar["close"]) == (expected["time"], expected["close"])
        seen[symbol] += 1
        if sum(seen.values()) % 997 == 0:  # at this instant, every symbol shows only what has happened
            now_ms = term.now_msc()
            for other in SYMBOLS:
                rates = term.copy_rates_from_pos(other, H1, 0, 100_000)
                assert len(rates) == 0 or rates["time"][-1] * 1000 <= now_ms
                closed = int(np.searchsorted(bars[other]["time"], now_ms // 1000 - 3599, side="left"))
                assert len(rates) in (closed, closed + 1)  # the closed bars, and the forming one if any
                ticks = term.copy_ticks_from(other, datetime(2017, 1, 1, tzinfo=UTC), 10**9, constants.COPY_TICKS_ALL)
                assert len(ticks) == 0 or ticks["time_msc"][-1] <= now_ms
                tick = term.symbol_info_tick(other)
                assert tick.time_msc <= now_ms
            checked += 1
    assert seen == {s: len(b) for s, b in bars.items()}
    assert checked >= 30


def test_a_tick_moves_only_its_own_symbols_quote(terminal: Callable[..., Terminal]) -> None:
    term = portfolio(terminal)
    before = {s: term.symbol_info_tick(s) for s in SYMBOLS}
    moved = 0
    for _ in range(2000):
        i = term.index + 1
        mover = term.market.symbol_at[i]
        term.replay_step(1)
        after = {s: term.symbol_info_tick(s) for s in SYMBOLS}
        for s in SYMBOLS:
            if s != mover:
                assert after[s] == before[s], (s, mover)
        moved += after[mover] != before[mover]
        before = after
    assert moved > 1500  # most ticks move a price


def test_gold_in_its_daily_break_ages_and_is_closed_while_fx_trades(
    terminal: Callable[..., Terminal], bars: dict[str, np.ndarray]
) -> None:
    gold, fx = set(bars["XAUUSD"]["time"].tolist()), bars["EURUSD"]["time"].tolist()
    breaks = [t for t in fx if t not in gold and t - 3600 in gold and t + 3600 in gold]  # one hour without gold
    assert len(breaks) > 100
    term = portfolio(terminal)
    gold_buy = {"action": 1, "symbol": "XAUUSD", "volume": 0.1, "type": constants.ORDER_TYPE_BUY, "type_filling": 1}
    held = None
    for symbol, bar in term.replay_bars():
        if held is None and symbol == "XAUUSD":  # gold trading: a position to re-price later
            held = term.order_send(gold_buy)
            assert held.retcode == constants.TRADE_RETCODE_DONE, held.comment
        if symbol == "EURUSD" and int(bar["time"]) == breaks[10]:
            break
    now_ms = term.now_msc()
    gold_tick, fx_tick = term.symbol_info_tick("XAUUSD"), term.symbol_info_tick("EURUSD")
    assert now_ms - gold_tick.time_msc > 3_500_000 and now_ms - fx_tick.time_msc < 1000  # gold's quote has aged
    order = {"action": constants.TRADE_ACTION_DEAL, "volume": 0.1, "type": constants.ORDER_TYPE_BUY, "type_filling": 1}
    assert term.order_send({**order, "symbol": "XAUUSD"}).retcode == constants.TRADE_RETCODE_MARKET_CLOSED
    stop = round(gold_tick.bid - 20.0, 2)  # no re-pricing a closed market's stops either
    sltp = {"action": constants.TRADE_ACTION_SLTP, "symbol": "XAUUSD", "position": held.order, "sl": stop}
    assert term.order_send(sltp).retcode == constants.TRADE_RETCODE_MARKET_CLOSED
    assert term.order_send({**order, "symbol": "EURUSD"}).retcode == constants.TRADE_RETCODE_DONE


def test_the_same_data_gives_the_same_stream(terminal: Callable[..., Terminal]) -> None:
    first, second = portfolio(terminal), portfolio(terminal)
    assert first.market.symbol_at == second.market.symbol_at and first.market.time == second.market.time
    ties = sum(a == b for a, b in zip(first.market.time, first.market.time[1:], strict=False))
    assert ties > 10_000  # many instants carry several symbols' ticks: their order is by symbol name
    assert len(first.market) == sum(len(feed) for feed in first.market.feeds.values())  # one stream, no copies


def test_profit_equity_and_margin_agree_on_every_tick_across_currencies(terminal: Callable[..., Terminal]) -> None:
    """Positions in USD, JPY, GBP and gold: each position's profit is ``order_calc_profit`` at its current
    price, and the account's profit is their sum, on every tick (EURGBP's moves with GBPUSD's quote too)."""
    term = portfolio(terminal, leverage=500, balance=1_000_000)
    term.replay_step(40)  # every symbol has quoted
    for symbol, is_buy in (("EURUSD", True), ("USDJPY", False), ("EURGBP", True), ("XAUUSD", True), ("USDCHF", True)):
        kind = constants.ORDER_TYPE_BUY if is_buy else constants.ORDER_TYPE_SELL
        request = {"action": 1, "symbol": symbol, "volume": 1.0, "type": kind, "type_filling": 1}
        assert term.order_send(request).retcode == constants.TRADE_RETCODE_DONE, symbol
    margins = {p.symbol: term.order_calc_margin(p.type, p.symbol, p.volume, p.price_open) for p in term.positions_get()}
    compared = 0
    for _ in range(3000):
        term.replay_step(1)
        account, positions = term.account_info(), term.positions_get()
        assert len(positions) == 5
        for p in positions:
            assert p.profit == term.order_calc_profit(p.type, p.symbol, p.volume, p.price_open, p.price_current)
        assert account.profit == pytest.approx(sum(p.profit + p.swap for p in positions), abs=0.06)
        assert account.equity == pytest.approx(account.balance + account.profit, abs=0.011)
        assert account.margin == pytest.approx(sum(margins.values()), abs=0.011)
        compared += 1
    assert compared == 3000 and term.account_info().profit != 0


def test_a_position_held_over_a_wednesday_pays_three_nights(terminal: Callable[..., Terminal]) -> None:
    term = terminal()  # EURUSD alone: its swap_long is charged in points
    spec = term.specs["EURUSD"]
    nightly = round(spec.swap_long * spec.point * spec.contract_size * 1.0, 2)
    while datetime.fromtimestamp(term.now_msc() / 1000, UTC).weekday() != 0:  # to a Monday
        term.replay_step(1)
    buy = {"action": 1, "symbol": "EURUSD", "volume": 1.0, "type": constants.ORDER_TYPE_BUY, "type_filling": 1}
    assert term.order_send(buy).retcode == constants.TRADE_RETCODE_DONE
    charged: dict[str, float] = {}
    day = datetime.fromtimestamp(term.now_msc() / 1000, UTC).date()
    while len(charged) < 4:  # Tuesday, Wednesday, Thursday, Friday mornings
        before = term.positions_get()[0].swap
        term.replay_step(1)
        today = datetime.fromtimestamp(term.now_msc() / 1000, UTC).date()
        if today != day:
            charged[today.strftime("%a")] = round(term.positions_get()[0].swap - before, 2)
            day = today
    assert charged == {"Tue": nightly, "Wed": nightly, "Thu": 3 * nightly, "Fri": nightly}
    assert nightly < 0
    held = term.positions_get()[0]
    balance = term.account_info().balance
    sell = {**buy, "type": constants.ORDER_TYPE_SELL, "position": held.ticket}
    assert term.order_send(sell).retcode == constants.TRADE_RETCODE_DONE
    (closing,) = [d for d in term.history_deals_get(0, 2**40) if d.entry == constants.DEAL_ENTRY_OUT]
    assert closing.swap == held.swap == pytest.approx(6 * nightly)
    assert term.account_info().balance == pytest.approx(balance + closing.profit + closing.swap)


def test_one_symbols_data_under_another_name_is_refused_unless_meant() -> None:
    eurusd = FILES["EURUSD"]
    with pytest.raises(ValueError, match="looks like EURUSD's data, not GBPUSD's"):
        EmulatorConfig(data=eurusd, symbol="GBPUSD")
    with pytest.raises(ValueError, match="looks like EURUSD's data, not GBPUSD's"):
        EmulatorConfig(data={"GBPUSD": eurusd})
    assert EmulatorConfig(data=eurusd, symbol="GBPUSD", allow_renamed_data=True).datasets() == {"GBPUSD": eurusd}
    assert EmulatorConfig(data={"eurusd": eurusd}).datasets() == {"EURUSD": eurusd}  # settings keys come lower-cased


def test_a_cross_symbols_tick_value_follows_its_conversion_rate(adapter: Callable[..., MT5Adapter]) -> None:
    """EURGBP's profit is in GBP: its tick value in the account's dollars moves with GBPUSD, and the adapter's
    spec follows it (a spec read once would under-state the money at stake as the pound rises)."""
    broker = adapter(data=FILES)
    term = broker.mt5
    values = set()
    for _ in range(400):
        term.replay_step(10)
        with broker.read_scope():
            spec = broker.symbol_spec("EURGBP")
            assert spec.tick_value == pytest.approx(term.symbol_info("EURGBP").trade_tick_value)
            values.add(spec.tick_value)
            assert broker.symbol_spec("EURUSD").tick_value == 1.0  # USD profit: fixed
    assert len(values) > 50


def test_midnight_charges_what_was_held_over_it_before_the_first_tick_trades(terminal: Callable[..., Terminal]) -> None:
    """On the first tick of a server day the night's swap is charged first: a stop that tick fills pays it, a
    limit order that tick fills does not (it was not held over midnight)."""
    term = terminal()
    market = term.market
    point = term.specs["EURUSD"].point
    gaps = [
        i
        for i in range(len(market) - 1)
        if market.time[i] // 86_400_000 < market.time[i + 1] // 86_400_000
        and datetime.fromtimestamp(market.time[i] / 1000, UTC).weekday()
        in (0, 1, 3, 4)  # one night (Friday: the weekend)
        and market.bid[i] - market.bid[i + 1] >= 14 * point
    ]
    assert gaps, "the sample has down-gapping midnights"
    i = gaps[0]
    term.replay_step(i - term.index)
    assert term.index == i
    ask = market.ask[i]
    buy = {"action": 1, "symbol": "EURUSD", "volume": 1.0, "type": constants.ORDER_TYPE_BUY, "type_filling": 1}
    held = term.order_send({**buy, "sl": round(market.bid[i + 1] + 3 * point, 5)})
    assert held.retcode == constants.TRADE_RETCODE_DONE, held.comment
    limit = round(market.ask[i + 1] + 3 * point, 5)
    assert limit < ask - 10 * point
    pending = {**buy, "action": 5, "type": constants.ORDER_TYPE_BUY_LIMIT, "price": limit, "type_filling": 2}
    placed = term.order_send(pending)
    assert placed.retcode == constants.TRADE_RETCODE_PLACED, placed.comment
    term.replay_step(1)  # the midnight tick: the stop fills, the limit fills
    nightly = round(term.specs["EURUSD"].swap_long * point * 100_000, 2)
    (stopped,) = [d for d in term.history_deals_get(0, 2**40) if d.position_id == held.order and d.entry == 1]
    assert stopped.reason == constants.DEAL_REASON_SL and stopped.swap == nightly != 0
    (opened,) = term.positions_get()
    assert opened.swap == 0.0 and opened.ticket == placed.order


def test_closing_by_settles_each_sides_swap(terminal: Callable[..., Terminal]) -> None:
    term = terminal()
    buy = {"action": 1, "symbol": "EURUSD", "volume": 1.0, "type": constants.ORDER_TYPE_BUY, "type_filling": 1}
    long = term.order_send(buy)
    short = term.order_send({**buy, "type": constants.ORDER_TYPE_SELL})
    day = term.now_msc() // 86_400_000
    while term.now_msc() // 86_400_000 < day + 3:  # three midnights (and weekdays' nights) pass
        term.replay_step(1)
    swaps = {p.ticket: p.swap for p in term.positions_get()}
    assert swaps[long.order] != 0 and swaps[short.order] != 0
    balance = term.account_info().balance
    by = term.order_send({"action": 10, "position": long.order, "position_by": short.order})
    assert by.retcode == constants.TRADE_RETCODE_DONE and term.positions_get() == ()
    deals = [d for d in term.history_deals_get(0, 2**40) if d.entry == constants.DEAL_ENTRY_OUT_BY]
    assert sorted(d.swap for d in deals) == sorted(swaps.values())
    account = term.account_info()
    assert account.balance == pytest.approx(balance + sum(d.profit + d.swap for d in deals))
    assert account.equity == account.balance and term.open_swaps == 0


def test_the_gate_judges_each_symbols_market_by_its_own_quote(bars: dict[str, np.ndarray]) -> None:
    """At a close of EURUSD inside gold's daily break: a gold signal is refused as market_closed, a EURUSD one
    is not (the same clock, each symbol's own quote)."""
    from tradeguard.kernel.clock import ReplayClock
    from tradeguard.plugins.trading.signal_validation_gate import SignalValidationGate
    from tradeguard.testing import make_runtime, signal

    gold, fx = set(bars["XAUUSD"]["time"].tolist()), bars["EURUSD"]["time"].tolist()
    breaks = [t for t in fx if t not in gold and t - 3600 in gold and t + 3600 in gold]
    gate = SignalValidationGate()
    clock = ReplayClock(datetime(2017, 1, 1, tzinfo=UTC))
    rt = make_runtime(
        ("signal_validation_gate", gate),
        settings={"broker": {"emulator": {"data": FILES}}, "signal_validation_gate": {"max_quote_age_seconds": 900}},
        clock=clock,
    )
    term = rt.emulator()
    assert term is not None
    for symbol, bar in term.replay_bars():
        if symbol == "EURUSD" and int(bar["time"]) == breaks[3]:
            break
    clock.set(rt.broker.to_utc(term.now_msc() / 1000))
    at = clock.now()

    def refused(symbol: str) -> list[str]:
        found = gate.validate_signal(signal(symbol=symbol, bar_time=at.replace(minute=0, second=0), created_at=at), rt)
        return [r.base for r in found]

    assert "market_closed" in refused("XAUUSD") and "market_closed" not in refused("EURUSD")


@pytest.mark.parametrize(("ages", "stale"), [({}, True), ({"xauusd": 3900}, False)])
def test_gold_in_its_break_is_stale_unless_its_own_age_allows_the_break(
    bars: dict[str, np.ndarray], ages: dict[str, float], stale: bool
) -> None:
    from tradeguard.kernel.clock import ReplayClock
    from tradeguard.plugins.health.mt5_health_monitor import MT5HealthMonitor
    from tradeguard.testing import make_runtime

    gold, fx = set(bars["XAUUSD"]["time"].tolist()), bars["EURUSD"]["time"].tolist()
    breaks = [t for t in fx if t not in gold and t - 3600 in gold and t + 3600 in gold]
    monitor, clock = MT5HealthMonitor(), ReplayClock(datetime(2017, 1, 1, tzinfo=UTC))
    settings = {"broker": {"emulator": {"data": FILES}}, "mt5_health_monitor": {"tick_age_by_symbol": ages}}
    rt = make_runtime(("mt5_health_monitor", monitor), settings=settings, clock=clock)
    term = rt.emulator()
    assert term is not None
    for symbol, bar in term.replay_bars():
        if symbol == "EURUSD" and int(bar["time"]) == breaks[5]:
            break
    clock.set(rt.broker.to_utc(term.now_msc() / 1000))
    checks = monitor.aggregate_health().checks
    assert ("XAUUSD.ticks" in checks) is stale and "EURUSD.ticks" not in checks
