"""What the report shows, read from the SQLite store (and the limits from the settings)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
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

    @property
    def approved(self) -> int:
        return sum(d.approved for d in self.decisions)


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
    return ReportData(
        store_path=store.path,
        snapshots=[json.loads(r[0]) for r in store.query("SELECT record FROM account_snapshots ORDER BY id")],
        limits=limits_from(settings),
        kill_events=[dict(r) for r in store.query("SELECT * FROM kill_switch_events ORDER BY id")],
        fills=fills,
        trades=closed_trades(fills),
        loss_alert_r=float(getattr(settings["risk_guard"], "loss_alert_r", 1.5)) if "risk_guard" in settings else 0.0,
        bars=bars,
        decisions=decisions,
        rejections=rejections,
        histograms=store.kv_get("latency_metrics", "histograms") or {},
        insights=store.kv_get("insights_engine", "table") or [],
        accuracy=store.kv_get("accuracy_metrics", "tables") or {},
        profiler=store.kv_get("profiler", "table") or [],
        factor_means=factor_means(decisions),
    )


def closed_trades(fills: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per closed trade, from the closing deal that left it flat: its realised R against the risk it
    was sized on, and how far past its level the stop or target filled (execution/outcomes.py)."""
    opened: dict[int, str] = {}
    rows = []
    for f in sorted(fills, key=lambda f: f["deal_ticket"]):
        opened.setdefault(f["position_id"], f["time"])
        if not f.get("outcome"):
            continue
        o = json.loads(f["outcome"])
        if not o["trade_closed"]:
            continue
        rows.append(
            {
                "position": f["position_id"],
                "client_id": f["client_id"],
                "symbol": f["symbol"],
                "side": "sell" if f["side"] == "buy" else "buy",
                "opened": opened.pop(f["position_id"]),
                "closed": f["time"],
                **o,
            }
        )
        if f["entry"] == "inout":  # a netting reversal: the next trade opens with this deal
            opened[f["position_id"]] = f["time"]
    return rows


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
