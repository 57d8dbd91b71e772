"""Write the report: charts as PNG files, the decisions as CSV, and one HTML page that shows them."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from tradeguard import __version__
from tradeguard.report import charts
from tradeguard.report.data import TABLE_ROWS, ReportData, load, symbol_results
from tradeguard.store.sqlite import Store


def write_report(store: Store, settings: Any, out: Path) -> Path:
    """Draw everything into ``out`` (created if needed); return the HTML file's path."""
    out.mkdir(parents=True, exist_ok=True)
    data = load(store, settings)
    images = {
        "equity": charts.equity_and_drawdown(data, out),
        "trades": charts.trades_on_price(data, out),
        "exposure": charts.currency_exposure(data, out),
        "rejections": charts.rejections_by_reason(data, out),
        "latency": charts.latency_histograms(data, out),
        "scores": charts.scores_and_calibration(data, out),
    }
    rows = _decision_rows(data)
    _decisions_csv(rows, out / "decisions.csv")
    env = Environment(loader=PackageLoader("tradeguard", "report"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["held"] = held
    page = env.get_template("report.html.j2").render(
        data=data,
        images=images,
        summary=_summary(data),
        rows=_table_rows(rows),
        symbols=symbol_results(data.fills, data.trades),
        quiet_after=data.quiet_after(),
        version=__version__,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _summary(data: ReportData) -> list[tuple[str, str]]:
    rows = [("store", data.store_path), ("decisions", f"{len(data.decisions):,} ({data.approved:,} approved)")]
    period = data.period
    if period is not None:  # the bars traded on, as the replay's summary gives them
        rows.append(("period", f"{period[0].isoformat()[:16]} -> {period[1].isoformat()[:16]}"))
    if data.snapshots:
        first, last = data.snapshots[0], data.snapshots[-1]
        worst = max(s["drawdown_pct"] for s in data.snapshots)
        if period is None:
            rows.append(("period", f"{first['time'][:16]} -> {last['time'][:16]}"))
        rows += [
            ("balance", f"{first['balance']:,.2f} -> {last['balance']:,.2f}"),
            ("final equity", f"{last['equity']:,.2f}"),
            ("max drawdown", f"{worst:.2f}%"),
        ]
    realised = sum(f["profit"] + f["commission"] + f["swap"] for f in data.fills)
    rows.append(("fills (deals)", f"{len(data.fills):,}, realised {realised:,.2f}"))
    if data.kill_events:
        last = data.kill_events[-1]
        rows.append(("kill switch", f"{last['to_state']} since {last['time'][:16]} ({last['trigger']})"))
    return rows


def _decision_rows(data: ReportData) -> list[dict[str, Any]]:
    rows = []
    for d in data.decisions:
        order = d.order
        rows.append(
            {
                "time": d.decided_at.strftime("%Y-%m-%d %H:%M"),
                "signal_id": d.signal_id,
                "strategy": order.strategy if order else "",
                "side": order.side if order else "",
                "approved": "yes" if d.approved else "no",
                "stage": d.stage,
                "reasons": "; ".join(r.code + (f"@{r.plugin}" if r.plugin else "") for r in d.reasons),
                "score": "" if d.combined_score is None else f"{d.combined_score:.3f}",
                "volume": "" if d.volume is None else f"{d.volume:g}",
                "client_id": d.client_id,
            }
        )
    return rows


def _table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every approved decision and the latest rejections, ``TABLE_ROWS`` in all at most, in time order."""
    approved = [i for i, r in enumerate(rows) if r["approved"] == "yes"][-TABLE_ROWS:]
    rejected = [i for i, r in enumerate(rows) if r["approved"] == "no"]
    room = TABLE_ROWS - len(approved)  # 0 when approvals fill the table (a [-0:] slice would keep them all)
    return [rows[i] for i in sorted(approved + rejected[len(rejected) - room :])]


def _decisions_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["time"])
        writer.writeheader()
        writer.writerows(rows)


def held(seconds: float) -> str:
    """A holding time as a trader reads it: 3d 4h, 5h 20m, 12m."""
    minutes = int(seconds // 60)
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins}m" if hours else f"{mins}m"
