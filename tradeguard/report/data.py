"""What the report shows, read from the SQLite store (and the limits from the settings)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tradeguard.models import Decision
from tradeguard.store.sqlite import Store

#: decisions shown in the HTML table (the CSV beside it has all of them)
TABLE_ROWS = 300


@dataclass
class Limit:
    label: str
    pct: float
    daily: bool


@dataclass
class ReportData:
    store_path: str
    snapshots: list[dict[str, Any]]
    limits: list[Limit]
    kill_events: list[dict[str, Any]]
    fills: list[dict[str, Any]]
    bars: dict[tuple[str, str], list[tuple[int, float]]]
    decisions: list[Decision]
    rejections: Counter[str]
    histograms: dict[str, dict[str, Any]]
    insights: list[dict[str, Any]]
    accuracy: dict[str, Any]
    profiler: list[dict[str, Any]]
    trades: list[dict[str, Any]] = field(default_factory=list)
    loss_alert_r: float = 0.0  # trades that lost more R than this are marked (risk_guard.loss_alert_r)
    factor_means: dict[str, dict[str, float]] = field(default_factory=dict)
    market_clock: bool = False  # the run kept a market's time (a replay): runtime-clock intervals are not latencies

    @property
    def approved(self) -> int:
        return sum(d.approved for d in self.decisions)

    @property
    def period(self) -> tuple[datetime, datetime] | None:
        """The bars the run traded on, first open to last open (the replay summary's period)."""
        series = [closes for closes in self.bars.values() if closes]
        if not series:
            return None
        first, last = min(c[0][0] for c in series), max(c[-1][0] for c in series)
        return datetime.fromtimestamp(first, UTC), datetime.fromtimestamp(last, UTC)

    @property
    def window(self) -> tuple[datetime, datetime] | None:
        """The time the charts show: the run, cut after its last deal when nothing traded for long after it
        (a latch in week one must not leave months of flat lines on every chart)."""
        period = self.period
        if period is None and len(self.snapshots) > 1:
            period = when(self.snapshots[0]["time"]), when(self.snapshots[-1]["time"])
        if period is None:
            return None
        start, end = period
        if self.fills:
            last_deal = when(self.fills[-1]["time"])
            pad = max(timedelta(days=2), (last_deal - start) / 20)
            end = min(end, last_deal + pad)
        return start, end

    def quiet_after(self) -> datetime | None:
        """When the charts stop before the run did: the last deal's time."""
        period, window = self.period, self.window
        if period is None or window is None or window[1] >= period[1]:
            return None
        return when(self.fills[-1]["time"])


def limits_from(settings: Any) -> list[Limit]:
    """The drawdown limits in force: the risk guard's vetoes and the kill switch's triggers (0 = off)."""
    found = []
    for table, key, label, daily in (
        ("risk_guard", "daily_loss_limit_pct", "risk guard: daily loss limit", True),
        ("risk_guard", "max_drawdown_pct", "risk guard: max drawdown", False),
        ("kill_switch", "daily_drawdown_pct", "kill switch: daily drawdown", True),
        ("kill_switch", "max_drawdown_pct", "kill switch: max drawdown", False),
    ):
        if table in settings and (pct := float(getattr(settings[table], key, 0.0))):
            found.append(Limit(label, pct, daily))
    return found


def load(store: Store, settings: Any) -> ReportData:
    decisions = store.decisions()
    rejections: Counter[str] = Counter(r.base for d in decisions if not d.approved for r in d.reasons)
    bars = {}
    for symbol, timeframe in store.bar_series():
        bars[(symbol, timeframe)] = [(b.time, b.close) for b in store.bars(symbol, timeframe)]
    fills = [dict(r) for r in store.query("SELECT * FROM fills ORDER BY time, deal_ticket")]
    orders = {r["client_id"]: dict(r) for r in store.query("SELECT client_id, signal_id, strategy FROM orders")}
    kill_events = [dict(r) for r in store.query("SELECT * FROM kill_switch_events ORDER BY id")]
    return ReportData(
        store_path=store.path,
        snapshots=[json.loads(r[0]) for r in store.query("SELECT record FROM account_snapshots ORDER BY id")],
        limits=limits_from(settings),
        kill_events=kill_events,
        fills=fills,
        trades=closed_trades(fills, orders),
        loss_alert_r=float(getattr(settings["risk_guard"], "loss_alert_r", 1.5)) if "risk_guard" in settings else 0.0,
        bars=bars,
        decisions=decisions,
        rejections=rejections,
        histograms=store.kv_get("latency_metrics", "histograms") or {},
        insights=store.kv_get("insights_engine", "table") or [],
        accuracy=store.kv_get("accuracy_metrics", "tables") or {},
        profiler=store.kv_get("profiler", "table") or [],
        factor_means=factor_means(decisions),
        market_clock=bool(store.kv_get("latency_metrics", "market_clock")),
    )


@dataclass
class _Open:
    """A trade being built from its deals: when it opened, lots and value in, lots and value out."""

    opened: str
    lots_in: float = 0.0
    value_in: float = 0.0
    lots_out: float = 0.0
    value_out: float = 0.0


def closed_trades(fills: list[dict[str, Any]], orders: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per closed trade, from the deals of its position: entry and exit (volume-weighted), lots, result
    in the account currency, realised R against the risk it was sized on, how long it was held, what closed it,
    and how far past its level the stop or target filled (execution/outcomes.py)."""
    trades: dict[int, _Open] = {}
    rows = []
    for f in sorted(fills, key=lambda f: f["deal_ticket"]):
        trade = trades.setdefault(f["position_id"], _Open(f["time"]))
        if f["entry"] == "in":
            trade.lots_in += f["volume"]
            trade.value_in += f["volume"] * f["price"]
            continue
        held = trade.lots_in - trade.lots_out
        closing = min(f["volume"], held) if held > 0 else f["volume"]
        trade.lots_out += closing
        trade.value_out += closing * f["price"]
        o = json.loads(f["outcome"]) if f.get("outcome") else None
        if o is None or not o["trade_closed"]:
            continue
        rows.append(
            {
                "position": f["position_id"],
                "client_id": f["client_id"],
                "symbol": f["symbol"],
                "side": "sell" if f["side"] == "buy" else "buy",
                "opened": trade.opened,
                "closed": f["time"],
                "volume": round(trade.lots_in, 8),
                "entry_price": trade.value_in / trade.lots_in if trade.lots_in else None,
                "exit_price": trade.value_out / trade.lots_out if trade.lots_out else f["price"],
                "held": (when(f["time"]) - when(trade.opened)).total_seconds(),
                **o,
                "closed_by": how_closed(o["closed_by"], f, orders or {}),
            }
        )
        del trades[f["position_id"]]
        if f["entry"] == "inout":  # a netting reversal: the next trade opens with the rest of this deal
            rest = f["volume"] - closing
            trades[f["position_id"]] = _Open(f["time"], rest, rest * f["price"])
    return rows


def how_closed(closed_by: str, deal: dict[str, Any], orders: dict[str, dict[str, Any]]) -> str:
    """The broker's reason, and for our own closing orders what sent them: a strategy's signal, a flatten (the
    kill switch's or an operator's: everything at once), or a close order (an operator's, one position)."""
    if closed_by != "order":
        return closed_by.replace("_", "-")
    order = orders.get(deal["client_id"])
    if order is None:
        return "order"
    if order["signal_id"]:
        return "signal"
    return "flatten" if order["strategy"] == "flatten" else "close order"


def symbol_results(fills: list[dict[str, Any]], trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per symbol: closed trades, winners, net result (profit, commission and swap of every deal), swap, mean R."""
    net: dict[str, float] = defaultdict(float)
    swap: dict[str, float] = defaultdict(float)
    for f in fills:
        net[f["symbol"]] += f["profit"] + f["commission"] + f["swap"]
        swap[f["symbol"]] += f["swap"]
    rows = []
    for symbol in sorted(net):
        mine = [t for t in trades if t["symbol"] == symbol]
        rs = [t["r_multiple"] for t in mine if t.get("r_multiple") is not None]
        rows.append(
            {
                "symbol": symbol,
                "trades": len(mine),
                "won": sum(t["money"] > 0 for t in mine),
                "net": net[symbol],
                "swap": swap[symbol],
                "mean_r": sum(rs) / len(rs) if rs else None,
            }
        )
    return rows


def currency_exposure(fills: list[dict[str, Any]]) -> list[tuple[datetime, dict[str, float]]]:
    """Net lots per currency after each deal: long EURUSD is +EUR and -USD. Currencies are read from the
    symbol's name (six letters: EURUSD, XAUUSD); other symbols are left out."""
    net: dict[str, float] = defaultdict(float)
    points = []
    for f in fills:
        symbol = f["symbol"]
        if len(symbol) != 6 or not symbol.isalpha():
            continue
        signed = f["volume"] if f["side"] == "buy" else -f["volume"]
        net[symbol[:3]] += signed
        net[symbol[3:]] -= signed
        points.append((when(f["time"]), {ccy: round(lots, 8) for ccy, lots in net.items()}))
    return points


def factor_means(decisions: list[Decision]) -> dict[str, dict[str, float]]:
    """Mean contribution of each score factor, for approved and for rejected signals."""
    sums: dict[str, dict[str, list[float]]] = {"approved": {}, "rejected": {}}
    for d in decisions:
        side = sums["approved" if d.approved else "rejected"]
        for score in d.scores:
            for name, value in score.factors.items():
                side.setdefault(f"{score.name}.{name}", []).append(value)
    return {k: {f: sum(v) / len(v) for f, v in side.items()} for k, side in sums.items()}


def when(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)
