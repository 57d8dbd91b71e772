"""Account state tracker (ACC): the account's truth, captured on schedule, after every fill and at the first
bar past each broker-server midnight.

Each capture reads ``account_info`` and works out:

* floating P&L (equity - balance - credit);
* realised P&L of the day: every trade deal since **broker-server midnight** (the broker's day, not
  UTC's; MT5 time is the server's wall clock), commissions and swaps included;
* the day's anchor: the balance at server midnight, rebuilt exactly from that day's deals, trade
  and balance alike; daily drawdown = anchor - equity, so floating losses count;
* peak equity and drawdown from it. Deposits and withdrawals move the peak with them: money in or
  out is not profit or loss.

Snapshots are stored, announced through ``on_account_snapshot``, published as metrics and, when
configured, exported to rotating JSON-lines or Parquet files.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tradeguard import (
    HISTORY_END,
    AccountSnapshot,
    Bar,
    ConfiguredPlugin,
    DealKind,
    Fill,
    Job,
    PluginSettings,
    Runtime,
    hookimpl,
    on_scrape,
)
from tradeguard.plugins.account.anomalies import Anomaly, between, frozen_equity
from tradeguard.plugins.account.snapshot_export import SnapshotExport

log = logging.getLogger("tradeguard.account")


class AccountSettings(PluginSettings):
    capture_seconds: float = Field(default=60.0, gt=0, description="how often account_info is captured")
    heartbeat_seconds: float = Field(
        default=900.0, gt=0, description="a flat, unchanged account is still recorded this often (wall clock)"
    )
    export: Literal["none", "jsonl", "parquet"] = Field(default="none", description="snapshot export files")
    export_dir: str = Field(default="exports", description="export folder, relative to runtime.data_dir")
    export_rows_per_file: int = Field(default=10_000, ge=1, description="rotate the export file after this many")
    export_flush_seconds: float = Field(
        default=3600.0, gt=0, description="Parquet: write the rows waiting in memory as a file this often"
    )
    equity_jump_pct: float = Field(default=5.0, gt=0, description="anomaly: equity move between two captures, %")
    margin_level_floor: float = Field(default=150.0, ge=0, description="anomaly: margin level below this, %")
    stale_seconds: float = Field(default=900.0, gt=0, description="anomaly: equity frozen this long, positions open")


def _snapshot_builder(account: Any, realized: float, moved_in: float) -> Callable[..., AccountSnapshot]:
    """How to build this capture's snapshot: without validating it again when the figures that came from
    the terminal are finite and the margin level is not negative, which is all the model asks of them
    (everything else is this plugin's arithmetic on them); otherwise validated, so the error names the field.
    A capture per bar with a position open made the validation a tenth of the replay's account work."""
    figures = (
        account.balance,
        account.equity,
        account.margin,
        account.margin_free,
        account.margin_level,
        realized,
        moved_in,
    )
    sound = all(map(math.isfinite, figures)) and account.margin_level >= 0
    return AccountSnapshot.trusted if sound else AccountSnapshot


class AccountTracker(ConfiguredPlugin):
    settings_model = AccountSettings
    stage = 1

    def __init__(self) -> None:
        super().__init__()
        self.peak_equity = 0.0
        self.last: AccountSnapshot | None = None
        self._seen_deal = -1  # the highest deal ticket accounted for (MT5 deal tickets only increase)
        self._export: SnapshotExport | None = None
        self._written_at = 0.0  # time.monotonic() of the last snapshot written
        self._deals_key: tuple[datetime, int] | None = None  # (server midnight, deal count) at the last read
        # realised P&L and money moved in since server midnight at that read, and the P&L in cents
        self._day_totals = (0.0, 0.0, 0.0)
        self._peak_rounded: tuple[float | None, float] = (None, 0.0)  # (peak, in cents): it moves on few captures
        # the server day of the last capture, UTC: [midnight, next midnight), and the offset it was worked out with
        self._midnight: datetime | None = None
        self._next_midnight: datetime | None = None
        self._zone: object = None  # the server zone the midnights were computed in

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime
        self.db = runtime.sqlite_store()  # the snapshots are a table of the journal
        cfg = self.cfg
        if cfg.export != "none":
            folder = Path(runtime.settings.runtime.data_dir) / cfg.export_dir
            self._export = SnapshotExport(folder, cfg.export, cfg.export_rows_per_file)
        self.last = self.db.last_stored_snapshot()
        if self.last is not None:  # the peak survives restarts
            self.peak_equity = self.last.peak_equity
        m = runtime.metrics  # the last snapshot's figures, read when scraped
        for name, doc, field in (
            ("tradeguard_account_drawdown_pct_current", "Drawdown from peak equity, percent", "drawdown_pct"),
            ("tradeguard_account_daily_drawdown_pct", "Loss since server midnight, percent", "daily_drawdown_pct"),
            ("tradeguard_account_equity", "Account equity", "equity"),
            ("tradeguard_account_balance", "Account balance", "balance"),
        ):
            on_scrape(m.gauge(name, doc), self._reader(field))

    def _reader(self, field: str) -> Callable[[], float]:
        """The last snapshot's ``field``, read when Prometheus scrapes (0 before the first)."""
        return lambda: float(getattr(self.last, field)) if self.last else 0.0

    @hookimpl
    def periodic_jobs(self, runtime: Runtime) -> list[Job]:
        jobs = [
            Job(
                name="account.capture",
                every=timedelta(seconds=self.cfg.capture_seconds),
                run=lambda rt: self.capture(),
                run_at_start=True,
            )
        ]
        export = self._export
        if export is not None and self.cfg.export == "parquet":
            every = timedelta(seconds=self.cfg.export_flush_seconds)
            jobs.append(Job(name="account.export", every=every, run=lambda rt: export.flush(), wall_clock=True))
        return jobs

    @hookimpl
    def tradeguard_shutdown(self, runtime: Runtime) -> None:
        if self._export is not None:
            self._export.flush()

    @property
    def day_began(self) -> datetime | None:
        """The server midnight (UTC) the current day's P&L counts from: the daily limits' anchor."""
        return self._midnight

    @hookimpl
    def on_fill(self, fill: Fill, runtime: Runtime) -> None:
        self.capture()

    @hookimpl
    def on_bar(self, bar: Bar, runtime: Runtime) -> None:
        """The first bar to close past server midnight captures the new day at once, before its signals.

        The risk guard's daily limit waits for the day's first snapshot; the schedule may be a minute
        away live, and days of market time away in paper runs over a fast-stepping emulator."""
        due = self._next_midnight
        if due is not None and bar.closed_at >= due:
            self.capture()

    # ------------------------------------------------------------------ capture -----------------

    def capture(self) -> AccountSnapshot:
        """Snapshot the account; when flat and unchanged since the last snapshot today, return that one.

        Flat (no margin in use), equity = balance = the last snapshot's, and no server midnight
        since: nothing a snapshot would show has changed (a deposit moves the balance, an entry
        uses margin), so no row is written and no observer is woken, until ``heartbeat_seconds``
        of real time have passed (so ``status`` shows a live tracker). Replays spend most bars so.
        """
        broker = self.rt.broker
        account = broker.account()
        now = broker.now()
        midnight = self._midnight
        following = self._next_midnight
        if not (
            midnight is not None and following is not None and midnight <= now < following and self._zone is broker.zone
        ):
            self._zone = broker.zone
            midnight = self._midnight = broker.server_midnight(now)
            # a server day is 23 to 25 hours long across a daylight-saving switch: 25 hours on is in the next one
            self._next_midnight = broker.server_midnight(midnight + timedelta(hours=25))
        last = self.last
        if (
            last is not None
            and account.margin == 0
            and midnight <= last.time
            and account.equity == account.balance == last.equity == last.balance
            and time.monotonic() - self._written_at < self.cfg.heartbeat_seconds
        ):
            return last
        realized, moved_in, realized_cents, new_deals = self._deals(midnight)
        day_start = account.balance - realized - moved_in
        if self.last is not None and self.last.time < midnight <= now:
            log.info("new broker-server day", extra={"midnight_utc": midnight.isoformat(), "anchor": day_start})
        if new_deals:  # money in or out moves the peak with it: it is not profit or loss
            self.peak_equity += sum(d.profit for d in new_deals if d.kind is DealKind.FUNDING)
        self.peak_equity = max(self.peak_equity, account.equity)
        if self._peak_rounded[0] != self.peak_equity:  # a new peak, a deposit: the few captures that move it
            self._peak_rounded = (self.peak_equity, round(self.peak_equity, 2))
        dd = max(0.0, self.peak_equity - account.equity)
        daily = max(0.0, day_start - account.equity)
        snap = _snapshot_builder(account, realized, moved_in)(
            time=now,
            login=account.login,
            currency=account.currency,
            balance=account.balance,
            equity=account.equity,
            margin=account.margin,
            free_margin=account.margin_free,
            margin_level=account.margin_level,
            floating_pnl=round(account.equity - account.balance, 2),
            realized_pnl_day=realized_cents,
            day_start_equity=round(day_start, 2),
            peak_equity=self._peak_rounded[1],
            drawdown_pct=AccountSnapshot.loss_pct(self.peak_equity, account.equity),
            drawdown_money=round(dd, 2) if dd else 0.0,
            daily_drawdown_pct=AccountSnapshot.loss_pct(day_start, account.equity),
            daily_drawdown_money=round(daily, 2) if daily else 0.0,
        )
        self._store(snap)
        if self.last is not None:
            cfg = self.cfg
            self._record_anomalies(between(self.last, snap, new_deals, cfg.equity_jump_pct, cfg.margin_level_floor))
        self.last = snap
        self.rt.notify("on_account_snapshot", snapshot=snap)
        return snap

    def _deals(self, midnight: datetime) -> tuple[float, float, float, list[Any]]:
        """The day's realised P&L and money moved in since server midnight, the P&L rounded to cents (once per
        change, not per capture), and the deals no earlier capture accounted for (by ticket: captures may
        share a timestamp).

        The history is read again only when the broker's deal count or the server day has changed:
        deals are only ever added, so the same count means the same deals (a capture per bar with a
        position open used to read the day's history twice each time).
        """
        key = (midnight, self.rt.broker.deals_count())
        if key == self._deals_key:
            return (*self._day_totals, [])
        since = min(midnight, self.last.time if self.last is not None else midnight) - timedelta(days=1)
        deals = self.rt.broker.history_deals(since, HISTORY_END)
        day = [d for d in deals if d.time >= midnight]
        realized = sum((d.profit + d.commission + d.swap for d in day if d.kind is DealKind.TRADE), 0.0)  # floats, also
        moved_in = sum((d.profit for d in day if d.kind is DealKind.FUNDING), 0.0)  # when empty: the snapshot's type
        if self._seen_deal < 0:  # first capture of this process: deals up to the last snapshot are old news
            cutoff = self.last.time if self.last is not None else None
            self._seen_deal = max((d.ticket for d in deals if cutoff is None or d.time <= cutoff), default=0)
        fresh = [d for d in deals if d.ticket > self._seen_deal]
        self._seen_deal = max([self._seen_deal, *(d.ticket for d in fresh)])
        self._deals_key, self._day_totals = key, (realized, moved_in, round(realized, 2))
        return (*self._day_totals, fresh)

    def _record_anomalies(self, found: list[Anomaly]) -> None:
        if not found:
            return
        known = self.rt.store.kv_get("account", "anomalies") or []
        known.extend(
            {"kind": a.kind, "time": a.time.isoformat(), "amount": a.amount, "detail": a.detail} for a in found
        )
        self.rt.store.kv_put("account", "anomalies", known)
        for a in found:
            self.rt.alert(
                channel="RISK",
                severity="WARNING",
                module="account_tracker",
                error_code=a.kind,
                message=a.detail,
                amount=a.amount,
            )

    def _store(self, snap: AccountSnapshot) -> None:
        self.db.record_snapshot(snap)
        self._written_at = time.monotonic()
        if self._export is not None:
            self._export.add(snap)

    # ------------------------------------------------------------------ analysis ----------------

    def snapshots(self) -> list[AccountSnapshot]:
        self.db.flush()
        rows = self.db.query("SELECT record FROM account_snapshots ORDER BY id")
        return [AccountSnapshot.model_validate_json(r[0]) for r in rows]

    def compute_drawdown_series(self) -> list[tuple[datetime, float, float, float]]:
        """``(time, equity, peak_equity, drawdown_pct)`` for every stored snapshot, oldest first."""
        return [(s.time, s.equity, s.peak_equity, s.drawdown_pct) for s in self.snapshots()]

    def detect_anomalies(self) -> list[Anomaly]:
        """Balance changes no trade explains, equity jumps and margin collapse (found at each capture and
        kept in the store), and a frozen account: equity unchanged too long while positions are open."""
        found = [
            Anomaly(a["kind"], datetime.fromisoformat(a["time"]), a["amount"], a["detail"])
            for a in self.rt.store.kv_get("account", "anomalies") or []
        ]
        if self.rt.broker.positions():
            frozen = frozen_equity(self.snapshots(), self.cfg.stale_seconds)
            found += [frozen] if frozen is not None else []
        return found
