"""The report's charts, drawn with matplotlib's Agg backend into PNG files (no display needed).

Each function draws one figure from :class:`ReportData` and returns the file name, or None when
there is nothing to draw (the page then says so instead of showing an empty chart).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tradeguard.report.data import ReportData, when
from tradeguard.report.data import currency_exposure as exposure_points

DPI = 100
GREEN, RED, GREY, BLUE, ORANGE = "#2e7d32", "#c62828", "#616161", "#1565c0", "#ef6c00"


def _save(fig: Figure, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=DPI)
    plt.close(fig)
    return name


def equity_and_drawdown(data: ReportData, out: Path) -> str | None:
    """Balance and equity over time; below, drawdown from peak and from the day's start, with the limits."""
    snaps = data.snapshots
    if len(snaps) < 2:
        return None
    times = [when(s["time"]) for s in snaps]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    top.plot(times, [s["equity"] for s in snaps], color=BLUE, lw=1.2, label="equity")
    top.plot(times, [s["balance"] for s in snaps], color=GREY, lw=1, ls="--", label="balance")
    top.set_ylabel("account currency")
    top.set_title("Equity and drawdown")
    bottom.fill_between(times, [-s["drawdown_pct"] for s in snaps], color=RED, alpha=0.3, label="drawdown from peak")
    bottom.plot(times, [-s["daily_drawdown_pct"] for s in snaps], color=ORANGE, lw=1, label="loss since day start")
    for limit in data.limits:
        bottom.axhline(
            -limit.pct,
            color=ORANGE if limit.daily else RED,
            ls=":" if limit.daily else "--",
            lw=1.2,
            label=f"{limit.label} {limit.pct:g}%",
        )
    for event in data.kill_events:
        at = when(event["time"])
        for ax in (top, bottom):
            ax.axvline(at, color="black", lw=0.8, alpha=0.6)
        top.annotate(
            f"{event['to_state']} ({event['trigger']})",
            (at, top.get_ylim()[1]),
            fontsize=8,
            rotation=90,
            va="top",
            ha="right",
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
        )
    bottom.set_ylabel("% (negative = loss)")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    _zoom(bottom, data)
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    fig.autofmt_xdate()
    return _save(fig, out, "equity_drawdown.png")


def trades_on_price(data: ReportData, out: Path) -> list[str]:
    """One chart per traded series: closes, entries (triangles) and exits (crosses)."""
    names = []
    for (symbol, timeframe), closes in data.bars.items():
        if len(closes) < 2:
            continue
        fig, ax = plt.subplots(figsize=(11, 4.5))
        ax.plot(
            [datetime.fromtimestamp(t, UTC) for t, _ in closes],  # type: ignore[arg-type]  # dates: matplotlib converts
            [c for _, c in closes],
            color=GREY,
            lw=0.8,
            label=f"{symbol} {timeframe} close",
        )
        fills = [f for f in data.fills if f["symbol"] == symbol]
        for entry, side, marker, color, label in (
            ("in", "buy", "^", GREEN, "buy entry"),
            ("in", "sell", "v", RED, "sell entry"),
            ("out", None, "x", "black", "exit"),
        ):
            chosen = [
                f
                for f in fills
                if (f["entry"] == entry or (entry == "out" and f["entry"] != "in"))
                and (side is None or f["side"] == side)
            ]
            if chosen:
                ax.scatter(
                    [when(f["time"]) for f in chosen],  # type: ignore[arg-type]  # dates: matplotlib converts
                    [f["price"] for f in chosen],
                    marker=marker,
                    s=60,
                    color=color,
                    label=f"{label} ({len(chosen)})",
                    zorder=3,
                )
        ax.set_title(f"Trades on price: {symbol} {timeframe}")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        _zoom(ax, data)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        fig.autofmt_xdate()
        names.append(_save(fig, out, f"trades_{symbol}_{timeframe}.png"))
    return names


def currency_exposure(data: ReportData, out: Path) -> str | None:
    """Net lots per currency over time, a step after each deal: where the book stacks one currency."""
    points = exposure_points(data.fills)
    currencies = sorted({ccy for _, net in points for ccy, lots in net.items() if lots})
    if not currencies:
        return None
    fig, ax = plt.subplots(figsize=(11, 4.5))
    times = [t for t, _ in points]
    for ccy in currencies:
        ax.step(times, [net.get(ccy, 0.0) for _, net in points], where="post", lw=1.1, label=ccy)  # type: ignore[arg-type]
    ax.axhline(0, color=GREY, lw=0.8)
    ax.set_ylabel("net lots (+ long the currency)")
    ax.set_title("Exposure by currency")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncol=min(len(currencies), 8))
    _zoom(ax, data)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    fig.autofmt_xdate()
    return _save(fig, out, "exposure.png")


def _zoom(ax: Axes, data: ReportData) -> None:
    """The time axis over the run, ended after its last deal when nothing traded for long after it."""
    window = data.window
    if window is not None:
        ax.set_xlim(window[0], window[1])  # type: ignore[arg-type]  # dates: matplotlib converts


def rejections_by_reason(data: ReportData, out: Path) -> str | None:
    if not data.rejections:
        return None
    ranked = data.rejections.most_common()[::-1]
    fig, ax = plt.subplots(figsize=(11, max(3.0, 0.6 + 0.45 * len(ranked))))
    ax.barh([r for r, _ in ranked], [n for _, n in ranked], color=RED, alpha=0.7)
    for i, (_, n) in enumerate(ranked):
        ax.annotate(f"{n:,}", (n, i), xytext=(4, 0), textcoords="offset points", va="center", fontsize=9)
    ax.set_xlabel("rejected signals")
    ax.set_title("Rejections by reason")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out, "rejections.png")


def latency_histograms(data: ReportData, out: Path) -> str | None:
    """The stored latency histograms, one panel each, buckets labelled by their upper bound."""
    hists = [(name, h) for name, h in sorted(data.histograms.items()) if h.get("count")]
    if not hists:
        return None
    fig, axes = plt.subplots(len(hists), 1, figsize=(11, 2.6 * len(hists)), squeeze=False)
    for ax, (name, h) in zip(axes[:, 0], hists, strict=True):
        labels = [_duration(b) for b in h["bounds"]]
        ax.bar(range(len(labels)), h["counts"], color=BLUE, alpha=0.75)
        ax.set_xticks(range(len(labels)), labels, fontsize=8, rotation=45)
        mean = h["sum"] / h["count"]
        ax.set_title(f"{name}: {int(h['count']):,} observations, mean {_duration(mean)}", fontsize=10)
        ax.set_ylabel("count")
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xlabel("bucket (upper bound)")
    return _save(fig, out, "latency.png")


def scores_and_calibration(data: ReportData, out: Path) -> str | None:
    """Left: combined scores of approved and rejected signals. Right: score against observed hit rate."""
    approved = [d.combined_score for d in data.decisions if d.approved and d.combined_score is not None]
    rejected = [d.combined_score for d in data.decisions if not d.approved and d.combined_score is not None]
    calibration = data.accuracy.get("calibration", [])
    if not approved and not rejected:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    bins = [i / 20 for i in range(21)]
    left.hist(
        [rejected, approved],
        bins=bins,
        stacked=True,
        color=[RED, GREEN],
        alpha=0.7,
        label=[f"rejected ({len(rejected):,})", f"approved ({len(approved):,})"],
    )
    left.set_xlabel("combined score")
    left.set_ylabel("signals")
    left.set_title("Combined confluence score")
    left.legend(fontsize=8)
    right.plot([0, 1], [0, 1], color=GREY, ls=":", lw=1, label="score = hit rate")
    if calibration:
        right.plot(
            [c["mean_score"] for c in calibration],
            [c["hit_rate"] for c in calibration],
            marker="o",
            color=BLUE,
            label="observed",
        )
        for c in calibration:
            right.annotate(
                str(c["n"]), (c["mean_score"], c["hit_rate"]), xytext=(3, 3), textcoords="offset points", fontsize=7
            )
    right.set_xlim(0, 1)
    right.set_ylim(0, 1)
    right.set_xlabel("mean score in bucket")
    right.set_ylabel("share reaching target first")
    right.set_title("Calibration (labels: signals per bucket)")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return _save(fig, out, "scores.png")


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "+inf"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e6:.2g} µs"
