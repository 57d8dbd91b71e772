"""The adapter over the emulator: orders, triggers, fills, hedging and netting, stop-out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tradeguard import ClosedBy, DealEntry, DealKind, OrderState
from tradeguard.broker import constants
from tradeguard.broker.mt5 import MT5Adapter
from tradeguard.broker.retcodes import RetcodeClass
from tradeguard.broker.types import OrderRefused

from .conftest import EPOCH, FUTURE, Adapter, market


def run_until(broker: MT5Adapter, done: Callable[[], bool], limit: int = 20_000) -> None:
    term = broker.mt5
    for _ in range(limit):
        if done():
            return
        if not term.replay_step(1):
            break
    assert done(), "condition never met during the replay"


def deals(broker: MT5Adapter) -> list:
    return broker.history_deals(EPOCH, FUTURE)


def test_market_buy_and_sell_fill_at_ask_and_bid(adapter: Adapter) -> None:
    broker = adapter()
    q = broker.quote("EURUSD")
    buy = broker.send(market(broker, constants.ORDER_TYPE_BUY))
    sell = broker.send(market(broker, constants.ORDER_TYPE_SELL, 0.2))
    assert (buy.retcode, buy.category, buy.price) == (10009, RetcodeClass.SUCCESS, q.ask)
    assert (sell.retcode, sell.price, sell.volume) == (10009, q.bid, 0.2)
    positions = broker.positions()
    assert [(p.is_buy, p.volume, p.magic, p.comment) for p in positions] == [
        (True, 0.1, 42, "tg-test"),
        (False, 0.2, 42, "tg-test"),
    ]
    assert positions[0].ticket == buy.order  # hedging: the position ticket is the opening order's
    assert [d.entry for d in deals(broker)] == [DealEntry.IN, DealEntry.IN]
    assert broker.deals_total(EPOCH, FUTURE) == 2  # history_deals_total: the count without the deals
    assert broker.deals_total(FUTURE, FUTURE) == 0
    assert broker.deals_count() == 2  # all history: the "anything new?" marker pollers share


def test_stop_loss_and_take_profit_trigger_on_the_tick_path(adapter: Adapter) -> None:
    broker = adapter()
    q = broker.quote("EURUSD")
    sl_trade = broker.send(market(broker, constants.ORDER_TYPE_BUY, sl=round(q.bid - 0.0020, 5)))
    tp_trade = broker.send(market(broker, constants.ORDER_TYPE_BUY, tp=round(q.bid + 0.0020, 5)))
    run_until(broker, lambda: not broker.positions())
    closes = {d.position_id: d for d in deals(broker) if d.entry == DealEntry.OUT}
    sl_close, tp_close = closes[sl_trade.order], closes[tp_trade.order]
    assert sl_close.closed_by == ClosedBy.STOP and sl_close.comment.startswith("[sl ")
    assert tp_close.closed_by == ClosedBy.TARGET and tp_close.comment.startswith("[tp ")
    assert sl_close.price <= q.bid - 0.0020 + 1e-9 and sl_close.profit < 0
    assert tp_close.price >= q.bid + 0.0020 - 1e-9 and tp_close.profit > 0


@pytest.mark.parametrize(
    ("kind", "offset", "stoplimit"),
    [
        (constants.ORDER_TYPE_BUY_LIMIT, -0.0015, 0.0),
        (constants.ORDER_TYPE_SELL_LIMIT, 0.0015, 0.0),
        (constants.ORDER_TYPE_BUY_STOP, 0.0015, 0.0),
        (constants.ORDER_TYPE_SELL_STOP, -0.0015, 0.0),
        (constants.ORDER_TYPE_BUY_STOP_LIMIT, 0.0015, 0.0005),
    ],
)
def test_pending_orders_trigger_and_open_a_position(
    adapter: Adapter, kind: int, offset: float, stoplimit: float
) -> None:
    broker = adapter()
    q = broker.quote("EURUSD")
    price = round((q.ask if kind in (2, 4, 6) else q.bid) + offset, 5)
    req = {
        "action": constants.TRADE_ACTION_PENDING,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": kind,
        "price": price,
        "magic": 42,
        "comment": "tg-pending",
    }
    if stoplimit:
        req["stoplimit"] = round(price - stoplimit, 5)
    placed = broker.send(broker.prepare(req))
    assert (placed.retcode, placed.category) == (10008, RetcodeClass.SUCCESS)
    assert [o.ticket for o in broker.orders()] == [placed.order]
    run_until(broker, lambda: bool(broker.positions()))
    assert broker.orders() == []
    (pos,) = broker.positions()
    assert pos.ticket == placed.order and pos.comment == "tg-pending"
    (done,) = [o for o in broker.history_orders(EPOCH, FUTURE) if o.ticket == placed.order]
    assert done.state == OrderState.FILLED


def test_pending_order_on_the_wrong_side_is_invalid_price(adapter: Adapter) -> None:
    broker = adapter()
    q = broker.quote("EURUSD")
    res = broker.send(
        broker.prepare(
            {
                "action": constants.TRADE_ACTION_PENDING,
                "symbol": "EURUSD",
                "volume": 0.1,
                "type": constants.ORDER_TYPE_BUY_LIMIT,
                "price": round(q.ask + 0.001, 5),
            }
        )
    )
    assert (res.retcode, res.name, res.category) == (10015, "INVALID_PRICE", RetcodeClass.FINAL)


def test_cancel_and_modify_pending_order(adapter: Adapter) -> None:
    broker = adapter()
    q = broker.quote("EURUSD")
    placed = broker.send(
        broker.prepare(
            {
                "action": constants.TRADE_ACTION_PENDING,
                "symbol": "EURUSD",
                "volume": 0.1,
                "type": constants.ORDER_TYPE_BUY_LIMIT,
                "price": round(q.ask - 0.01, 5),
            }
        )
    )
    moved = broker.send(
        {"action": constants.TRADE_ACTION_MODIFY, "order": placed.order, "price": round(q.ask - 0.02, 5)}
    )
    assert moved.retcode == 10009 and broker.orders()[0].price_open == round(q.ask - 0.02, 5)
    same = broker.send(
        {"action": constants.TRADE_ACTION_MODIFY, "order": placed.order, "price": round(q.ask - 0.02, 5)}
    )
    assert same.retcode == 10025
    removed = broker.send({"action": constants.TRADE_ACTION_REMOVE, "order": placed.order})
    assert removed.retcode == 10009 and broker.orders() == []
    assert broker.history_orders(EPOCH, FUTURE)[-1].state == OrderState.CANCELLED


def test_partial_fill_ioc_cancels_the_rest_and_return_keeps_working(adapter: Adapter) -> None:
    broker = adapter(liquidity_lots=0.5)
    ioc = broker.send(market(broker, constants.ORDER_TYPE_BUY, 1.0, type_filling=constants.ORDER_FILLING_IOC))
    assert (ioc.retcode, ioc.volume, ioc.category) == (10010, 0.5, RetcodeClass.SUCCESS)
    assert sum(p.volume for p in broker.positions()) == 0.5
    fok = broker.send(market(broker, constants.ORDER_TYPE_BUY, 1.0, type_filling=constants.ORDER_FILLING_FOK))
    assert fok.retcode == 10006 and sum(p.volume for p in broker.positions()) == 0.5

    broker = adapter(liquidity_lots=0.5, symbols={"EURUSD": {"exemode": 3, "filling_mode": 3}})
    ret = broker.send(market(broker, constants.ORDER_TYPE_BUY, 1.2, type_filling=constants.ORDER_FILLING_RETURN))
    assert (ret.retcode, ret.volume) == (10010, 0.5)
    assert [o.volume_current for o in broker.orders()] == [0.7]
    broker.mt5.replay_step(2)
    assert broker.orders() == [] and [p.volume for p in broker.positions()] == [1.2]
    assert len([d for d in deals(broker) if d.order == ret.order]) == 3


def test_close_by_ticket_on_hedging_leaves_the_other_position(adapter: Adapter) -> None:
    broker = adapter()
    first = broker.send(market(broker, constants.ORDER_TYPE_BUY, 0.3))
    second = broker.send(market(broker, constants.ORDER_TYPE_BUY, 0.1))
    partial = broker.send(market(broker, constants.ORDER_TYPE_SELL, 0.1, position=first.order))
    assert partial.retcode == 10009
    assert {p.ticket: p.volume for p in broker.positions()} == {first.order: 0.2, second.order: 0.1}
    closed = broker.send(market(broker, constants.ORDER_TYPE_SELL, 0.2, position=first.order))
    assert closed.retcode == 10009 and [p.ticket for p in broker.positions()] == [second.order]
    again = broker.send(market(broker, constants.ORDER_TYPE_SELL, 0.1, position=first.order))
    assert (again.retcode, again.name) == (10036, "POSITION_CLOSED")
    too_much = broker.send(market(broker, constants.ORDER_TYPE_SELL, 0.5, position=second.order))
    assert too_much.retcode == 10038
    outs = [d for d in deals(broker) if d.entry == DealEntry.OUT]
    assert [d.position_id for d in outs] == [first.order, first.order]


def test_close_by_opposite_position(adapter: Adapter) -> None:
    broker = adapter()
    buy = broker.send(market(broker, constants.ORDER_TYPE_BUY, 0.2))
    sell = broker.send(market(broker, constants.ORDER_TYPE_SELL, 0.1))
    res = broker.send({"action": constants.TRADE_ACTION_CLOSE_BY, "position": buy.order, "position_by": sell.order})
    assert res.retcode == 10009
    assert [(p.ticket, p.volume) for p in broker.positions()] == [(buy.order, 0.1)]
    assert [d.entry for d in deals(broker)][-2:] == [DealEntry.OUT_BY, DealEntry.OUT_BY]


def test_netting_adds_reduces_and_reverses(adapter: Adapter) -> None:
    broker = adapter(margin_mode="netting")
    assert not broker.account().hedging
    first = broker.send(market(broker, constants.ORDER_TYPE_BUY, 0.1))
    broker.send(market(broker, constants.ORDER_TYPE_BUY, 0.1))
    (pos,) = broker.positions()
    assert pos.volume == 0.2 and pos.ticket == first.order
    reverse = broker.send(market(broker, constants.ORDER_TYPE_SELL, 0.5))
    (pos,) = broker.positions()
    assert (pos.is_buy, pos.volume) == (False, 0.3)
    assert pos.identifier == first.order and pos.ticket == reverse.order  # identifier stays, ticket changes
    assert deals(broker)[-1].entry == DealEntry.INOUT
    close = broker.send(market(broker, constants.ORDER_TYPE_BUY, 0.3))
    assert close.retcode == 10009 and broker.positions() == [] and deals(broker)[-1].entry == DealEntry.OUT
    by = broker.send({"action": constants.TRADE_ACTION_CLOSE_BY, "position": 1, "position_by": 2})
    assert by.retcode == 10035  # no close-by on netting


def test_netting_positions_take_the_stops_of_the_order_that_increases_or_reverses_them(adapter: Adapter) -> None:
    """MT5's netting rules (issue 27, part 2): an add or a reversal gives the position that order's stop and
    target, zero values deleting them; a partial close leaves them; a full close removes the position with them."""
    broker = adapter(margin_mode="netting")
    ask = broker.quote("EURUSD").ask

    def levels() -> tuple[float, float]:
        (pos,) = broker.positions()
        return pos.sl, pos.tp

    broker.send(market(broker, constants.ORDER_TYPE_BUY, 0.3, sl=round(ask - 0.0100, 5), tp=round(ask + 0.0100, 5)))
    assert levels() == (round(ask - 0.0100, 5), round(ask + 0.0100, 5))
    broker.send(market(broker, constants.ORDER_TYPE_BUY, 0.1, sl=round(ask - 0.0050, 5), tp=round(ask + 0.0200, 5)))
    assert levels() == (round(ask - 0.0050, 5), round(ask + 0.0200, 5))  # the add's own, not the first order's
    broker.send(market(broker, constants.ORDER_TYPE_BUY, 0.1, sl=0.0, tp=round(ask + 0.0300, 5)))
    assert levels() == (0.0, round(ask + 0.0300, 5))  # a zero stop in the add deletes the position's stop
    broker.send(market(broker, constants.ORDER_TYPE_BUY, 0.1, sl=round(ask - 0.0080, 5), tp=0.0))
    kept = levels()
    assert kept == (round(ask - 0.0080, 5), 0.0)
    broker.send(market(broker, constants.ORDER_TYPE_SELL, 0.2, sl=round(ask + 0.0500, 5)))  # a partial close
    assert levels() == kept and broker.positions()[0].volume == pytest.approx(0.4)
    bid = broker.quote("EURUSD").bid
    broker.send(market(broker, constants.ORDER_TYPE_SELL, 0.6, sl=round(bid + 0.0070, 5), tp=round(bid - 0.0090, 5)))
    (pos,) = broker.positions()  # reversed: short 0.2 with the reversing order's levels
    assert (pos.is_buy, pos.volume) == (False, pytest.approx(0.2))
    assert (pos.sl, pos.tp) == (round(bid + 0.0070, 5), round(bid - 0.0090, 5))
    broker.send(market(broker, constants.ORDER_TYPE_BUY, 0.2))
    assert broker.positions() == []  # a full close: nothing left, no levels left to trigger
    assert broker.mt5.levels["EURUSD"] == type(broker.mt5.levels["EURUSD"])()  # type: ignore[attr-defined]


def test_margin_call_then_stop_out_closes_the_position(adapter: Adapter) -> None:
    broker = adapter(balance=1_100.0)
    res = broker.send(market(broker, constants.ORDER_TYPE_SELL, 1.0))  # EURUSD rallies through this sample
    assert res.retcode == 10009
    account = broker.account()
    assert account.margin == pytest.approx(1000 * broker.quote("EURUSD").bid, rel=0.01)
    too_big = broker.send(market(broker, constants.ORDER_TYPE_SELL, 1.0))
    assert (too_big.retcode, too_big.name) == (10019, "NO_MONEY")
    run_until(broker, lambda: broker.account().margin_level and broker.account().margin_level < 100)
    assert broker.positions()  # margin call: below 100 %, still open
    run_until(broker, lambda: not broker.positions())
    (out,) = [d for d in deals(broker) if d.entry == DealEntry.OUT]
    assert out.closed_by == ClosedBy.STOP_OUT and out.comment.startswith("[so ")
    assert broker.account().balance == pytest.approx(1100 + out.profit + out.swap) and out.profit < -500


def test_modify_sltp_validates_and_detects_no_change(adapter: Adapter) -> None:
    broker = adapter()
    trade = broker.send(market(broker, constants.ORDER_TYPE_BUY))
    q = broker.quote("EURUSD")
    ok = broker.send(
        {
            "action": constants.TRADE_ACTION_SLTP,
            "position": trade.order,
            "symbol": "EURUSD",
            "sl": round(q.bid - 0.002, 5),
            "tp": round(q.bid + 0.004, 5),
        }
    )
    assert ok.retcode == 10009 and broker.positions()[0].sl == round(q.bid - 0.002, 5)
    same = broker.send(
        {
            "action": constants.TRADE_ACTION_SLTP,
            "position": trade.order,
            "symbol": "EURUSD",
            "sl": round(q.bid - 0.002, 5),
            "tp": round(q.bid + 0.004, 5),
        }
    )
    inside = broker.send(
        {"action": constants.TRADE_ACTION_SLTP, "position": trade.order, "sl": round(q.bid - 0.00005, 5)}
    )
    assert (same.retcode, inside.retcode) == (10025, 10016)


def test_symbol_trade_modes(adapter: Adapter) -> None:
    broker = adapter()
    trade = broker.send(market(broker, constants.ORDER_TYPE_BUY))
    broker.mt5.admin_set_trade_mode("EURUSD", constants.SYMBOL_TRADE_MODE_CLOSEONLY)
    assert broker.send(market(broker, constants.ORDER_TYPE_BUY)).retcode == 10044
    assert broker.send(market(broker, constants.ORDER_TYPE_SELL, position=trade.order)).retcode == 10009
    broker.mt5.admin_set_trade_mode("EURUSD", constants.SYMBOL_TRADE_MODE_DISABLED)
    assert broker.send(market(broker, constants.ORDER_TYPE_BUY)).retcode == 10017


def test_deposit_is_a_balance_deal_without_symbol(adapter: Adapter) -> None:
    broker = adapter()
    broker.mt5.admin_deposit(500.0)
    (deal,) = deals(broker)
    assert (deal.kind, deal.symbol, deal.order, deal.position_id, deal.profit) == (DealKind.FUNDING, "", 0, 0, 500.0)
    assert broker.account().balance == 10_500.0


def test_commission_and_server_time_offset(adapter: Adapter) -> None:
    broker = adapter(zone="+03:00", server_timezone="+03:00", commission_per_lot=3.5)
    quote = broker.quote("EURUSD")
    assert quote.time == datetime(2017, 4, 19, 9, tzinfo=UTC)  # the data's UTC time, offset taken off
    assert broker.mt5.symbol_info_tick("EURUSD").time == int(datetime(2017, 4, 19, 12, tzinfo=UTC).timestamp())
    broker.send(market(broker, constants.ORDER_TYPE_BUY, 2.0))
    (deal,) = deals(broker)
    assert deal.commission == -7.0 and deal.time == quote.time
    assert broker.account().balance == 10_000 - 7.0


def test_other_symbols_trade_at_their_static_quotes_with_their_own_money_maths(adapter: Adapter) -> None:
    broker = adapter()
    for symbol, tick_value in (("USDJPY", 100_000 * 0.001 / 150.0), ("XAUUSD", 1.0), ("US500", 0.01)):
        spec = broker.symbol_spec(symbol)
        assert spec.tick_value == pytest.approx(tick_value), symbol
    jpy = broker.mt5.order_calc_profit(constants.ORDER_TYPE_BUY, "USDJPY", 1.0, 150.0, 151.0)
    assert jpy == pytest.approx(100_000 * 1.0 / 150.0, rel=1e-3)
    gold_margin = broker.mt5.order_calc_margin(constants.ORDER_TYPE_BUY, "XAUUSD", 1.0, 2000.0)
    assert gold_margin == pytest.approx(100 * 2000.0 / 100)


def test_stops_fill_at_their_level_inside_a_bar_and_at_the_price_across_a_gap(adapter: Adapter) -> None:
    broker = adapter()
    # bar 0 ticks 1.0716 -> 1.0722 -> 1.07083: the path passes 1.0710 between two ticks
    inside = broker.send(market(broker, constants.ORDER_TYPE_BUY, sl=1.0710))
    broker.mt5.replay_step(2)
    (out,) = [d for d in deals(broker) if d.position_id == inside.order and d.entry == DealEntry.OUT]
    assert (out.price, out.closed_by) == (1.0710, ClosedBy.STOP)
    # the French election weekend: Friday 2017-04-21 20:00 closes 1.07268, Sunday 21:00 opens 1.0893
    while broker.now() < datetime(2017, 4, 21, 20, 59, tzinfo=UTC):
        broker.mt5.replay_step(1)
    gapped = broker.send(market(broker, constants.ORDER_TYPE_SELL, sl=1.0760))
    while broker.positions():
        broker.mt5.replay_step(1)
    (out,) = [d for d in deals(broker) if d.position_id == gapped.order and d.entry == DealEntry.OUT]
    assert out.time == datetime(2017, 4, 23, 21, tzinfo=UTC) and out.price == 1.0894  # the open's ask, not 1.0760


def test_a_flat_account_has_exactly_no_margin_after_many_trades(adapter: Adapter) -> None:
    """Margin added and removed position by position once left a 1e-13 residue: the flat account then
    reported a margin level of -1e19, which the account snapshot refuses (found by a 20,000-bar replay)."""
    broker = adapter()
    term = broker.mt5
    for i in range(60):
        opened = [
            broker.send(market(broker, side, round(0.01 * (1 + (i * 7 + k) % 13), 2))).order
            for k, side in enumerate((constants.ORDER_TYPE_BUY, constants.ORDER_TYPE_SELL, constants.ORDER_TYPE_BUY))
        ]
        term.replay_step(3)
        for ticket, pos in zip(opened, broker.positions(), strict=True):
            close = constants.ORDER_TYPE_SELL if pos.is_buy else constants.ORDER_TYPE_BUY
            assert broker.send(market(broker, close, pos.volume, position=ticket)).retcode == 10009
        account = broker.account()
        assert (account.margin, account.margin_level, term.margin_used) == (0.0, 0.0, 0.0), i


def test_account_and_terminal_answers_follow_every_change(adapter: Adapter) -> None:
    """The emulator answers with the same structure while nothing moved; every change shows at once,
    through the adapter too."""
    broker = adapter()
    term = broker.mt5
    first = term.account_info()
    assert term.account_info() is first and broker.account() == broker.account()
    term.admin_deposit(100.0)
    assert term.account_info().balance == broker.account().balance == first.balance + 100.0
    assert broker.send(market(broker, constants.ORDER_TYPE_BUY, 1.0)).retcode == 10009
    opened = broker.account()
    assert opened.margin > 0 and opened.margin_level > 0
    raw = term.account_info()  # built by position: every field where the real terminal has it
    assert (raw.margin_free, raw.margin_level) == (
        round(raw.equity - raw.margin, 2),
        round(raw.equity / raw.margin * 100, 2),
    )
    cfg = term.config
    assert (
        raw.currency,
        raw.leverage,
        raw.trade_mode,
        raw.margin_so_mode,
        raw.margin_initial,
        raw.company,
        raw.margin_so_call,
        raw.margin_so_so,
    ) == (
        cfg.currency,
        cfg.leverage,
        constants.ACCOUNT_TRADE_MODE_DEMO,
        constants.ACCOUNT_STOPOUT_MODE_PERCENT,
        0.0,
        cfg.company,
        cfg.margin_so_call,
        cfg.margin_so_so,
    )
    assert cfg.margin_so_call != cfg.margin_so_so
    same = (
        "login",
        "currency",
        "balance",
        "equity",
        "margin",
        "margin_free",
        "margin_level",
        "profit",
        "leverage",
        "trade_allowed",
        "trade_expert",
        "margin_so_call",
        "margin_so_so",
    )
    assert [getattr(opened, f) for f in same] == [getattr(raw, f) for f in same] and opened.hedging
    tick = term.symbol_info_tick("EURUSD")
    assert tick.ask > tick.bid and (tick.time, tick.last, tick.volume, tick.flags, tick.volume_real) == (
        tick.time_msc // 1000,
        0.0,
        0,
        constants.TICK_FLAG_BID | constants.TICK_FLAG_ASK,
        0.0,
    )
    run_until(broker, lambda: broker.account().equity != opened.equity)
    moved = broker.account()
    assert moved.profit == round(moved.equity - moved.balance, 2) != opened.profit
    assert broker.terminal().trade_allowed
    term.admin_set_algo_trading(False)
    assert not term.terminal_info().trade_allowed and not broker.terminal().trade_allowed
    term.admin_set_algo_trading(True)
    assert broker.terminal().trade_allowed


def test_a_refusal_for_the_symbols_rules_makes_the_next_read_ask_again(adapter: Adapter) -> None:
    """The broker widens EURUSD's stops level for news: the adapter's spec still says 10 points, the server
    refuses an 80-point stop (10016), and the next spec read has the new level (stops are then placed by it)."""
    broker = adapter()
    assert broker.symbol_spec("EURUSD").stops_level == 10
    broker.mt5.admin_set_symbol("EURUSD", stops_level=100)  # type: ignore[attr-defined]
    assert broker.symbol_spec("EURUSD").stops_level == 10  # read once: it has not asked since
    ask = broker.quote("EURUSD").ask
    refused = broker.send(market(broker, constants.ORDER_TYPE_BUY, 0.1, sl=round(ask - 0.0008, 5)))
    assert refused.retcode == constants.TRADE_RETCODE_INVALID_STOPS
    assert broker.symbol_spec("EURUSD").stops_level == 100
    with pytest.raises(OrderRefused, match="within 100 points"):
        market(broker, constants.ORDER_TYPE_BUY, 0.1, sl=round(ask - 0.0008, 5))  # now refused before sending


def test_an_order_check_refusal_for_the_symbols_rules_also_makes_the_next_read_ask_again(adapter: Adapter) -> None:
    """The pipeline's orders meet order_check first: its refusal refreshes the spec as order_send's does."""
    broker = adapter()
    assert broker.symbol_spec("GBPUSD").stops_level == 10
    broker.mt5.admin_set_symbol("GBPUSD", stops_level=100)  # type: ignore[attr-defined]
    ask = broker.quote("GBPUSD").ask
    request = market(broker, constants.ORDER_TYPE_BUY, 0.1, symbol="GBPUSD", sl=round(ask - 0.0008, 5))
    checked = broker.check(request)
    assert checked.retcode == constants.TRADE_RETCODE_INVALID_STOPS and not checked.passed
    assert broker.symbol_spec("GBPUSD").stops_level == 100


def test_a_close_on_hedging_always_names_its_position(adapter: Adapter) -> None:
    """On hedging an opposite deal without ``position=`` opens a second position instead of closing one: a
    reducing order that names none is refused before it is sent; on netting it is how a position is reduced."""
    from datetime import UTC, datetime

    from tradeguard import OrderIntent

    closing = OrderIntent(symbol="EURUSD", side="sell", volume=0.1, reduce_only=True, created_at=datetime.now(UTC))
    hedging = adapter()
    with pytest.raises(OrderRefused, match="names the position it closes"):
        hedging.order_request(closing, magic=42, deviation=20)
    named = hedging.order_request(closing.model_copy(update={"position_ticket": 7}), magic=42, deviation=20)
    assert named["position"] == 7
    assert "position" not in adapter(margin_mode="netting").order_request(closing, magic=42, deviation=20)
