"""What an account does that no trade explains, found between two account snapshots: a balance change
without a deal (a deposit, a withdrawal, a broker's adjustment), an equity jump, the margin level
falling under a floor; and, over the stored snapshots, equity frozen while positions are open (a feed
that stopped). The account tracker stores and alerts what these find.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from tradeguard import AccountSnapshot, DealKind


@dataclass(frozen=True)
class Anomaly:
    kind: Literal["balance_without_deal", "equity_jump", "margin_collapse", "stale_account"]
    time: datetime
    amount: float
    detail: str


def between(
    before: AccountSnapshot, after: AccountSnapshot, new_deals: list[Any], jump_pct: float, margin_floor: float
) -> list[Anomaly]:
    """What changed from ``before`` to ``after`` that ``new_deals`` (the broker deals in between) do not explain."""
    found: list[Anomaly] = []
    if new_deals or after.balance != before.balance:
        traded = sum(d.profit + d.commission + d.swap for d in new_deals if d.kind is DealKind.TRADE)
        unexplained = round(after.balance - before.balance - traded, 2)
    else:  # most captures: the round would give 0.0
        unexplained = 0.0
    if abs(unexplained) >= 0.01:
        detail = f"balance moved {unexplained:+.2f} with no trade behind it (deposit, withdrawal or broker adjustment)"
        found.append(Anomaly("balance_without_deal", after.time, unexplained, detail))
    if before.equity > 0:
        jump = (after.equity - before.equity - unexplained) / before.equity * 100
        if abs(jump) > jump_pct:
            found.append(
                Anomaly("equity_jump", after.time, round(jump, 2), f"equity moved {jump:+.2f}% between captures")
            )
    was_below = before.margin > 0 and before.margin_level < margin_floor
    if after.margin > 0 and after.margin_level < margin_floor and not was_below:
        detail = f"margin level {after.margin_level:.1f}% < floor {margin_floor}%"
        found.append(Anomaly("margin_collapse", after.time, after.margin_level, detail))
    return found


def frozen_equity(snaps: list[AccountSnapshot], stale_seconds: float) -> Anomaly | None:
    """Equity unchanged over the trailing snapshots for longer than ``stale_seconds`` (positions open)."""
    if len(snaps) < 2:
        return None
    last = snaps[-1]
    same_since = last.time  # the start of the trailing run of captures with this very equity
    for snap in reversed(snaps):
        if snap.equity != last.equity:
            break
        same_since = snap.time
    if (last.time - same_since).total_seconds() <= stale_seconds:
        return None
    return Anomaly(
        "stale_account", last.time, last.equity, f"equity unchanged since {same_since.isoformat()} with positions open"
    )
