"""Position reconciler (POS): the journal against the terminal, per ticket (hedging) or symbol (netting).

Reports, every few minutes, at start-up, right after a kill-switch trip and on demand:

* ``missing``        - the journal holds a position the broker does not;
* ``unknown``        - the broker holds a position with our magic that the journal never saw;
* ``volume_drift``   - both hold it, with different volumes (or a different net exposure per symbol);
* ``sltp_mismatch``  - the protective levels differ from what the journal last asked for;
* ``unprotected``    - one of our positions has no stop loss;
* ``foreign``        - positions of another EA (magic) or manual ones (magic 0); never traded against.

``apply_corrections()`` applies the policy: adopt foreign positions (they stop being reported), and
re-arm missing stops through the execution engine, outside the stops level. An inconsistency count
at or above ``halt_after_issues`` requests a halt.

A scheduled run first asks what could have changed: requests sent, open positions and deals at
the broker, and our fills. When none has since the last full comparison, less than
``every_seconds`` of real time ago, nothing it compares can differ, and that report stands
(replays spend most bars so). A level moved by hand at the terminal changes none of them; it
shows at the next full comparison, at most ``every_seconds`` of real time later, as live.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from tradeguard import (
    AlertChannel,
    Children,
    ConfiguredPlugin,
    HaltEvent,
    Job,
    PluginSettings,
    ReconciliationReport,
    Runtime,
    Severity,
    hookimpl,
)

log = logging.getLogger("tradeguard.reconciler")
#: import-and-read-again passes before what is left is reported (each pass that imports nothing ends them)
HEAL_PASSES = 3


class ReconcilerSettings(PluginSettings):
    every_seconds: float = Field(default=300.0, gt=0, description="how often the journal is reconciled")
    foreign_policy: Literal["adopt", "ignore", "alert"] = Field(
        default="alert", description="positions of other EAs or manual trades: adopt, ignore or alert"
    )
    rearm_missing_stops: bool = Field(default=False, description="apply_corrections() sets a stop where none is")
    rearm_stop_points: int = Field(default=200, gt=0, description="distance of a re-armed stop, in points")
    exposure_tolerance_lots: float = Field(default=0.0, ge=0, description="volume differences up to this are fine")
    expected_symbols: list[str] = Field(default_factory=list, description="alert on positions elsewhere; empty = any")
    halt_after_issues: int = Field(default=3, ge=1, description="this many inconsistencies request a halt")


class PositionReconciler(ConfiguredPlugin):
    settings_model = ReconcilerSettings
    stage = 8

    def __init__(self) -> None:
        super().__init__()
        self.last_report: ReconciliationReport | None = None
        self._fills = 0  # fills taken in: part of the change marker
        self._marker: tuple[int, ...] | None = None  # the change marker at the last full comparison
        self._compared_at = 0.0  # time.monotonic() of the last full comparison

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime
        self._adopted: set[int] = set(runtime.store.kv_get("reconciler", "adopted") or [])
        drift = runtime.metrics.gauge(
            "tradeguard_reconciliation_drift",
            "Discrepancies in the last reconciliation, by kind (volume: lots)",
            ("kind",),
        )
        self._drift = Children(drift)
        if runtime.execution.journal is not None:  # paper execution has no broker to reconcile with
            self.run_reconciliation("startup")

    @hookimpl
    def on_fill(self, fill: Any, runtime: Runtime) -> None:
        self._fills += 1

    @hookimpl
    def periodic_jobs(self, runtime: Runtime) -> list[Job]:
        return [
            Job(
                name="reconciler.run",
                every=timedelta(seconds=self.cfg.every_seconds),
                run=lambda rt: self.run_reconciliation("schedule") if rt.execution.journal is not None else None,
            )
        ]

    @hookimpl
    def on_halt(self, event: HaltEvent, runtime: Runtime) -> None:
        if event.trigger != "reconciliation_inconsistent" and runtime.execution.journal is not None:
            self.run_reconciliation("halt")

    # ------------------------------------------------------------------ the comparison ----------

    def _expected(self, hedging: bool) -> dict[Any, float]:
        """Signed net volume per position id (hedging) or per symbol (netting), as the journal holds them
        (the execution engine keeps them from every fill)."""
        held = self.rt.execution.held_positions()
        if hedging:
            return {pid: h.net for pid, h in held.items()}
        by_symbol: dict[str, float] = defaultdict(float)
        for h in held.values():
            by_symbol[h.symbol] += h.net
        return {k: round(v, 8) for k, v in by_symbol.items() if abs(v) > 1e-9}

    def _marker_now(self, broker: Any) -> tuple[int, ...]:
        """What moves whenever the comparison could come out differently (see the module docstring)."""
        return broker.sent, broker.positions_total(), broker.deals_count(), self._fills

    def run_reconciliation(self, cause: str) -> ReconciliationReport:
        engine, broker, magic = self.rt.execution, self.rt.broker, int(self.rt.settings.runtime.magic)
        cfg = self.cfg
        if (
            cause == "schedule"
            and self.last_report is not None
            and self._marker == self._marker_now(broker)
            and time.monotonic() - self._compared_at < cfg.every_seconds
        ):
            return self.last_report
        hedging = broker.account().hedging
        tol = cfg.exposure_tolerance_lots + 1e-9
        positions, ours, others, actual = self._read(broker, magic, hedging)
        missing, unknown, drift = self._differences(hedging, ours, actual, tol)
        for _ in range(HEAL_PASSES):
            if not (missing or unknown or drift):
                break
            # first the broker's own history: a stop, a target, a stop-out or a close at the terminal since the
            # last poll is a deal to import, not a loss of truth. The market moves between two reads (a stop
            # hit after the positions were read): the positions are read again after each import, and only
            # what a pass that imported nothing still finds is reported
            broker.forget_reads()  # the import compares the journal with positions read now, not the pass's
            imported = engine.poll_fills(heal=True)
            broker.forget_reads()
            positions, ours, others, actual = self._read(broker, magic, hedging)
            missing, unknown, drift = self._differences(hedging, ours, actual, tol)
            if not imported:
                break
        mismatch, unprotected = [], []
        for p in ours:
            if not p.sl:
                unprotected.append(p.ticket)
            want = engine.expected_levels(p.identifier) if hedging else None
            if want is not None and (abs(want[0] - p.sl) > 1e-9 or abs(want[1] - p.tp) > 1e-9):
                mismatch.append(p.ticket)
        details = {str(p.ticket): ("manual" if p.magic == 0 else f"ea:{p.magic}") for p in others}
        allowed = set(cfg.expected_symbols)
        unexpected = sorted({p.symbol for p in positions if allowed and p.symbol not in allowed})
        if unexpected:
            details["unexpected_symbols"] = ",".join(unexpected)
        report = ReconciliationReport(
            time=self.rt.clock.now(),
            cause=cause,
            consistent=not (missing or unknown or drift or mismatch),
            missing=missing,
            unknown=unknown,
            volume_drift=drift,
            sltp_mismatch=tuple(mismatch),
            unprotected=tuple(unprotected),
            foreign=tuple(p.ticket for p in others),
            details=details,
        )
        # taken after the comparison (a fills poll it made is part of what it saw), before anything reacts
        self._marker, self._compared_at = self._marker_now(broker), time.monotonic()
        previous, self.last_report = self.last_report, report
        if previous is None or _verdict(report) != _verdict(previous):  # persisted when it changes, not every run
            self.rt.store.kv_put("reconciliation", "last", report.model_dump(mode="json"))
        self._raise_alerts(report)
        for kind, value in (
            ("missing", len(missing)),
            ("unknown", len(unknown)),
            ("sltp_mismatch", len(mismatch)),
            ("unprotected", len(unprotected)),
            ("foreign", len(others)),
            ("volume", sum(abs(v) for v in drift.values())),
        ):
            self._drift[kind,].set(value)
        self.rt.notify("on_reconciliation", report=report)
        issues = len(missing) + len(unknown) + len(drift) + len(mismatch)
        if issues >= cfg.halt_after_issues:
            self.rt.request_halt(
                "reconciliation_inconsistent",
                f"{issues} inconsistencies between journal and broker ({cause})",
                source="position_reconciler",
            )
        log.info("reconciled", extra={"cause": cause, "consistent": report.consistent, "issues": issues})
        return report

    def _read(self, broker: Any, magic: int, hedging: bool) -> tuple[list[Any], list[Any], list[Any], dict[Any, float]]:
        """The broker's positions: all, ours, others' (not adopted), and our signed volume per id or symbol."""
        positions = broker.positions()
        ours = [p for p in positions if p.magic == magic]
        others = [p for p in positions if p.magic != magic and p.ticket not in self._adopted]
        actual: dict[Any, float] = defaultdict(float)
        for p in ours:
            actual[p.identifier if hedging else p.symbol] += p.volume if p.is_buy else -p.volume
        return positions, ours, others, actual

    def _differences(
        self, hedging: bool, ours: list[Any], actual: dict[Any, float], tol: float
    ) -> tuple[tuple[Any, ...], tuple[int, ...], dict[str, float]]:
        """(missing, unknown, volume drift) of the journal's positions against the broker's."""
        expected = self._expected(hedging)
        missing = tuple(k for k in expected if k not in actual) if hedging else ()
        unknown = tuple(p.ticket for p in ours if (p.identifier if hedging else p.symbol) not in expected)
        drift = {
            str(k): round(actual.get(k, 0.0) - v, 8)
            for k, v in expected.items()
            if (k in actual or not hedging) and abs(actual.get(k, 0.0) - v) > tol
        }
        return missing, unknown, drift

    def _raise_alerts(self, r: ReconciliationReport) -> None:
        def alert(code: str, message: str, severity: Severity = Severity.WARNING) -> None:
            self.rt.alert(
                channel=AlertChannel.EXECUTION,
                severity=severity,
                module="position_reconciler",
                error_code=code,
                message=message,
            )

        if r.unknown:
            alert(
                "orphan_positions", f"positions with our magic the journal never saw: {list(r.unknown)}", Severity.ERROR
            )
        if r.missing:
            alert("missing_positions", f"journal positions gone at the broker: {list(r.missing)}", Severity.ERROR)
        if r.volume_drift:
            alert("exposure_difference", f"broker minus journal volume: {r.volume_drift}", Severity.ERROR)
        if r.sltp_mismatch:
            alert("sltp_mismatch", f"protective levels differ from the journal's: {list(r.sltp_mismatch)}")
        if r.unprotected:
            alert("unprotected_positions", f"positions without a stop loss: {list(r.unprotected)}")
        if r.foreign and self.cfg.foreign_policy == "alert":
            alert("foreign_positions", f"positions of other EAs or manual trades: {r.details}", Severity.INFO)
        if "unexpected_symbols" in r.details:
            alert("unexpected_symbols", f"positions on unexpected symbols: {r.details['unexpected_symbols']}")

    # ------------------------------------------------------------------ corrections -------------

    def apply_corrections(self, report: ReconciliationReport | None = None) -> list[str]:
        """Apply the policy to a report (default: the last one); returns what was done, one line each."""
        report = report or self.last_report
        if report is None:
            return []
        done: list[str] = []
        if self.cfg.foreign_policy == "adopt" and report.foreign:
            self._adopted |= set(report.foreign)
            self._marker = None  # what counts as foreign changed: compare in full next time
            self.rt.store.kv_put("reconciler", "adopted", sorted(self._adopted))
            done += [f"adopted {t}" for t in report.foreign]
        if self.cfg.rearm_missing_stops:
            engine, magic = self.rt.execution, int(self.rt.settings.runtime.magic)
            for p in self.rt.broker.positions():
                if p.ticket in report.unprotected and p.magic == magic:
                    done.append(self._rearm(engine, p))
        return done

    def _rearm(self, engine: Any, p: Any) -> str:
        spec = engine.broker.symbol_spec(p.symbol)
        quote = engine.broker.quote(p.symbol)
        points = max(self.cfg.rearm_stop_points, spec.stops_level + 1)
        ref = quote.bid if p.is_buy else quote.ask
        stop = spec.round_price(ref - points * spec.point if p.is_buy else ref + points * spec.point)
        ok = engine.modify_order(p.ticket, stop, p.tp or None)
        return f"{'re-armed' if ok else 'could not re-arm'} stop {stop} on {p.ticket}"


def _verdict(r: ReconciliationReport) -> tuple[Any, ...]:
    """Everything a report says except when and why it ran."""
    return (r.consistent, r.missing, r.unknown, r.volume_drift, r.sltp_mismatch, r.unprotected, r.foreign, r.details)
