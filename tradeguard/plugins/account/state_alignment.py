"""State alignment (ALN): after a restart, make the journal agree with the broker before any signal.

Runs last at start-up and holds the pipeline while it works:

1. import the deals that happened while the process was down (each exactly once);
2. resolve every in-flight journal entry (new, submitted, unknown, accepted, part filled) by looking
   it up at the broker by magic and comment; what the broker never saw is marked rejected;
3. write the decisions a crash lost: from the audit chain, else rebuilt from their orders (counted);
4. report positions the journal does not know (another EA's, manual ones) per policy.

The kill-switch latch is restored by the kill switch itself at start-up. If the broker cannot be
read, start-up fails: trading on a journal that may be wrong is worse than not trading.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from tradeguard import AlertChannel, ConfiguredPlugin, PluginSettings, Runtime, Severity, StartupError, hookimpl

log = logging.getLogger("tradeguard.state_alignment")


class AlignmentSettings(PluginSettings):
    foreign_positions: Literal["alert", "ignore"] = Field(
        default="alert", description="positions of other EAs or manual trades found at start-up"
    )


@dataclass
class AlignmentReport:
    imported_fills: int = 0
    decisions_restored: int = 0  # from the audit chain
    decisions_rebuilt: int = 0  # from their orders' rows: the audit lost them too
    resolved: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    foreign_positions: list[int] = field(default_factory=list)
    seconds: float = 0.0


class StateAlignment(ConfiguredPlugin):
    settings_model = AlignmentSettings
    stage = 7

    def __init__(self) -> None:
        super().__init__()
        self.last_report: AlignmentReport | None = None

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        runtime.hold("state_alignment")
        try:
            self.last_report = self.align(runtime)
        except Exception as exc:
            raise StartupError(f"state alignment failed, not trading: {type(exc).__name__}: {exc}") from exc
        runtime.release("state_alignment")

    def align(self, runtime: Runtime) -> AlignmentReport:
        started = time.perf_counter()
        report = AlignmentReport()
        engine = runtime.execution
        if engine.journal is None:  # paper execution keeps no journal to align
            return report
        report.imported_fills = len(engine.poll_fills(heal=True))
        for entry in engine.get_open_orders():
            if engine.resolve(entry.client_id):
                report.resolved.append(entry.client_id)
            else:
                engine.mark_lost(entry.client_id, "not found at the broker after restart")
                report.lost.append(entry.client_id)
        report.decisions_restored, report.decisions_rebuilt = runtime.sqlite_store().restore_decisions()
        ours = int(runtime.settings.runtime.magic)
        report.foreign_positions = [p.ticket for p in runtime.broker.positions() if p.magic != ours]
        report.seconds = time.perf_counter() - started
        log.info(
            "aligned with the broker",
            extra={
                "imported_fills": report.imported_fills,
                "resolved": len(report.resolved),
                "lost": report.lost,
                "decisions_restored": report.decisions_restored,
                "decisions_rebuilt": report.decisions_rebuilt,
                "foreign_positions": report.foreign_positions,
                "seconds": round(report.seconds, 4),
            },
        )
        if report.lost:
            runtime.alert(
                channel=AlertChannel.EXECUTION,
                severity=Severity.WARNING,
                module="state_alignment",
                error_code="orders_lost_in_restart",
                message=f"{len(report.lost)} journaled orders never reached the broker: {', '.join(report.lost[:10])}",
            )
        if report.decisions_rebuilt:
            runtime.alert(
                channel=AlertChannel.SYSTEM,
                severity=Severity.WARNING,
                module="state_alignment",
                error_code="decisions_rebuilt",
                message=f"{report.decisions_rebuilt} decisions of orders sent before a crash were lost "
                "with the process; rebuilt from the orders, without their scores",
            )
        if report.foreign_positions and self.cfg.foreign_positions == "alert":
            runtime.alert(
                channel=AlertChannel.EXECUTION,
                severity=Severity.WARNING,
                module="state_alignment",
                error_code="foreign_positions",
                message=f"positions not opened by this instance: {report.foreign_positions}",
            )
        return report
