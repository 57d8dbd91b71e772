"""What the risk tests share: the risk guard's rules switched off, and an account snapshot at given losses."""

from __future__ import annotations

from tradeguard import AccountSnapshot
from tradeguard.testing import T0

#: every limit that would get in a test's way, off: each test switches on the rule it is about
OFF = {
    "max_risk_per_trade_pct": 0.0,
    "daily_loss_limit_pct": 0.0,
    "max_drawdown_pct": 0.0,
    "min_margin_level_pct": 0.0,
    "max_orders_per_minute": 0,
    "max_open_positions": 100,
    "max_positions_per_symbol": 100,
}


def snapshot(daily: float = 0.0, dd: float = 0.0) -> AccountSnapshot:
    return AccountSnapshot(
        time=T0,
        balance=10_000,
        equity=10_000,
        day_start_equity=10_000,
        peak_equity=10_000,
        daily_drawdown_pct=daily,
        drawdown_pct=dd,
    )
