"""The portfolio limits on a real market path (issue 26, item 6): ``examples/portfolio.toml`` replays the seven
shipped symbols; two trend strategies keep stacking the same dollar trade. After every decision a watcher reads
the emulator's own book (positions, pending orders, account) and measures it with its own arithmetic: no approved
order takes the book past the lots per currency, a sector, a correlated group, the money lost if every stop is hit,
or the margin floor; and each of those limits refused orders in that replay, so the check cannot pass vacuously."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tradeguard import Decision, Runtime, Signal, hookimpl
from tradeguard.broker import constants
from tradeguard.broker.data import PORTFOLIO
from tradeguard.broker.emulator.config import datasets_in
from tradeguard.kernel.clock import ReplayClock
from tradeguard.kernel.runtime import Runtime as Kernel
from tradeguard.replay.loop import replay

from ..conftest import REPO

BUYS = (constants.ORDER_TYPE_BUY, constants.ORDER_TYPE_BUY_LIMIT, constants.ORDER_TYPE_BUY_STOP)


class BookWatch:
    """After each decision: the broker's book, measured against the example's limits."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.approvals = 0
        self.with_pending = 0  # approvals whose book held a pending order
        self.refused_by: Counter[str] = Counter()
        self.rates: dict[str, np.ndarray] = {}

    @hookimpl
    def on_decision(self, decision: Decision, signal: Signal, runtime: Runtime) -> None:
        term = runtime.emulator()
        assert term is not None
        cfg = runtime.settings.risk_guard
        self.rates = {}
        book = Book(term)
        if not decision.approved:
            for reason in decision.reasons:
                self.refused_by[reason.base] += 1
                if reason.base == "sector_exposure":
                    self.refused_by[self._group_kind(term, cfg, book, signal)] += 1
            return
        order = decision.order
        assert order is not None
        self.approvals += 1
        self.with_pending += bool(book.pending)
        when = f"{decision.client_id} {order.side.value} {order.volume} {order.symbol} at {term.now_msc()}"
        for ccy, lots in book.lots_per_currency().items():
            if lots > cfg.max_lots_per_currency + 1e-9:
                self.violations.append(f"{when}: {lots:g} lots touching {ccy}")
        direction = 1 if order.side.value == "buy" else -1
        same = self._same_direction(term, cfg, book, order.symbol, direction, sectors_only=False)
        if same > cfg.max_group_lots + 1e-9:
            self.violations.append(f"{when}: {same:g} lots moving with it")
        account = term.account_info()
        at_risk = book.stop_risk()
        if at_risk > account.equity * cfg.max_total_stop_risk_pct / 100 * 1.005:
            self.violations.append(f"{when}: {at_risk:.2f} lost if every stop is hit, equity {account.equity}")
        if account.margin and account.margin_level < cfg.min_margin_level_pct * 0.995:
            self.violations.append(f"{when}: margin level {account.margin_level}")

    def _group_kind(self, term: Any, cfg: Any, book: Book, signal: Signal) -> str:
        """Which grouping refused: the named sector alone would have, or only the correlation did."""
        direction = 1 if signal.side == "buy" else -1
        sectors_only = self._same_direction(term, cfg, book, signal.symbol, direction, sectors_only=True)
        return "sector_exposure:sector" if sectors_only + 0.01 > cfg.max_group_lots else "sector_exposure:correlation"

    def _same_direction(
        self, term: Any, cfg: Any, book: Book, symbol: str, direction: int, *, sectors_only: bool
    ) -> float:
        total = 0.0
        for other, net in book.net_lots().items():
            sign = 1.0 if other == symbol else self._moves_with(term, cfg, symbol, other, sectors_only)
            if sign and net * sign * direction > 0:
                total += abs(net)
        return total

    def _moves_with(self, term: Any, cfg: Any, symbol: str, other: str, sectors_only: bool) -> float:
        if any(symbol in members and other in members for members in cfg.sectors.values()):
            return 1.0
        if sectors_only:
            return 0.0
        a, b = (self._closes(term, s, cfg.correlation_bars) for s in (symbol, other))
        _, ia, ib = np.intersect1d(a["time"], b["time"], return_indices=True)
        if len(ia) < 10:
            return 0.0
        corr = np.corrcoef(np.diff(np.log(a["close"][ia])), np.diff(np.log(b["close"][ib])))[0, 1]
        return float(np.sign(corr)) if abs(corr) >= cfg.correlation_threshold else 0.0

    def _closes(self, term: Any, symbol: str, count: int) -> np.ndarray:
        """The bars the terminal shows now (only bars before the decision exist for it)."""
        if symbol not in self.rates:
            self.rates[symbol] = term.copy_rates_from_pos(symbol, constants.TIMEFRAME_H1, 0, count)
        return self.rates[symbol]


class Book:
    """The broker's open positions and working orders, as its own records show them."""

    def __init__(self, term: Any) -> None:
        self.term = term
        self.positions = term.positions_get()
        self.pending = term.orders_get()

    def legs(self) -> list[tuple[str, bool, float]]:
        """(symbol, is_buy, lots) of every position and pending order."""
        held = [(p.symbol, p.type == constants.POSITION_TYPE_BUY, p.volume) for p in self.positions]
        return held + [(o.symbol, o.type in BUYS, o.volume_current) for o in self.pending]

    def lots_per_currency(self) -> dict[str, float]:
        lots: dict[str, float] = defaultdict(float)
        for symbol, _, volume in self.legs():
            info = self.term.symbol_info(symbol)
            lots[info.currency_base] += volume
            lots[info.currency_profit] += volume
        return lots

    def net_lots(self) -> dict[str, float]:
        net: dict[str, float] = defaultdict(float)
        for symbol, is_buy, volume in self.legs():
            net[symbol] += volume if is_buy else -volume
        return net

    def stop_risk(self) -> float:
        """Money lost if every stop is hit: positions from where they stand, pending orders from their price."""
        total = 0.0
        for p in self.positions:
            sign = 1 if p.type == constants.POSITION_TYPE_BUY else -1
            total += self._money(p.symbol, max(0.0, sign * (p.price_current - p.sl)), p.volume)
        for o in self.pending:
            total += self._money(o.symbol, abs(o.price_open - o.sl), o.volume_current)
        return total

    def _money(self, symbol: str, distance: float, lots: float) -> float:
        info = self.term.symbol_info(symbol)
        return distance / info.trade_tick_size * info.trade_tick_value * lots


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[BookWatch, Kernel, Any]:
    watch = BookWatch()
    data_dir: Path = tmp_path_factory.mktemp("portfolio")
    overrides = {
        "broker": {"emulator": {"data": datasets_in(PORTFOLIO)}},
        "runtime": {"data_dir": str(data_dir)},
        "logging": {"level": "ERROR"},
        "metrics_server": {"port": 0},
    }
    rt = Kernel.build(
        REPO / "examples" / "portfolio.toml",
        plugins=[("book_watch", watch)],
        overrides=overrides,
        clock=ReplayClock(datetime(1970, 1, 2, tzinfo=UTC)),
    )
    summary = replay(rt)
    return watch, rt, summary


def test_no_approved_order_takes_the_book_past_a_portfolio_limit(replayed: tuple[BookWatch, Kernel, Any]) -> None:
    watch, _rt, summary = replayed
    assert watch.violations == []
    assert watch.approvals == summary.approved > 200  # the book traded all year, not one week
    assert set(summary.symbols) == {"AUDUSD", "EURGBP", "EURUSD", "GBPUSD", "USDCHF", "USDJPY", "XAUUSD"}


def test_each_portfolio_limit_refused_orders_in_the_replay(replayed: tuple[BookWatch, Kernel, Any]) -> None:
    watch, _rt, _summary = replayed
    for limit in (
        "max_exposure_currency",
        "sector_exposure:sector",
        "sector_exposure:correlation",
        "max_total_stop_risk",
        "margin_level_floor",
        "daily_loss_limit",
    ):
        assert watch.refused_by[limit] > 0, (limit, watch.refused_by)


def test_pending_orders_and_partial_fills_were_on_the_book(replayed: tuple[BookWatch, Kernel, Any]) -> None:
    """The limits counted working limit orders and the rest of partially filled ones: both happened."""
    watch, rt, _summary = replayed
    term = rt.emulator()
    assert term is not None
    assert watch.with_pending > 10
    journal = rt.execution.journal
    assert journal is not None
    per_order = Counter(f.client_id for f in journal.fills() if f.entry.value == "in")
    assert sum(n > 1 for n in per_order.values()) > 5  # orders filled in more than one deal (the rest resubmitted)
    limits = [o for o in term.history_orders_get(0, 2**40) if o.type in (2, 3)]
    assert sum(o.state == constants.ORDER_STATE_FILLED for o in limits) > 10


def test_the_report_speaks_per_symbol_and_for_the_book(replayed: tuple[BookWatch, Kernel, Any], tmp_path: Path) -> None:
    from tradeguard.report.render import write_report

    _watch, rt, summary = replayed
    page = write_report(rt.sqlite_store(), rt.settings, tmp_path).read_text()
    by_symbol = page[page.index('id="symbols"') : page.index("</table>", page.index('id="symbols"'))]
    for symbol, part in summary.symbols.items():
        assert f'<td class="l">{symbol}</td><td>{part.trades}</td>' in by_symbol, symbol
    book = sum(part.net for part in summary.symbols.values())
    assert f'<td class="l">book</td><td>{sum(p.trades for p in summary.symbols.values())}</td>' in by_symbol
    assert f"{book:.2f}" in by_symbol
    assert sum(name.startswith("trades_") for name in (p.name for p in tmp_path.iterdir())) == 7
    assert (tmp_path / "exposure.png").is_file()
    trades = page[page.index('id="trades"') : page.index("</table>", page.index('id="trades"'))]
    assert trades.count("<tr") - 1 == sum(part.trades for part in summary.symbols.values())
