"""The closed set of rejection reason codes.

A code is lowercase ``snake_case`` and stable: users alert on it, metrics label by it. A reason
may carry one qualifier after a colon (``plugin_error:risk_guard``); metrics label by the code
before the colon and put the qualifier in a label of its own, so cardinality stays bounded.

Third-party plugins that need a code of their own call :func:`register` at import time; a code
that nobody registered is still a rejection (fail closed) but is reported as ``unknown_reason``.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"^[a-z][a-z0-9_]*$")

#: code -> one-line description. Grouped by the stage that emits it.
REASONS: dict[str, str] = {
    # kernel
    "plugin_error": "a plugin raised inside a gate or veto hook; the signal is rejected (fail closed)",
    "unknown_reason": "a plugin returned a reason code that is not registered",
    "invalid_signal": "the signal failed schema or value validation",
    "no_targets": "no plugin computed a stop loss and the signal carries none",
    "no_size": "no plugin computed a position size",
    "score_below_minimum": "the combined confluence score is below the configured minimum",
    "execution_refused": "the execution engine refused the approved order",
    "not_aligned": "the pipeline is held until the journal agrees with the broker (start-up alignment)",
    # signal validation gate
    "confidence_below_minimum": "the signal's confidence is below the configured minimum",
    "stale_signal": "the signal is older than the allowed age",
    "symbol_not_allowed": "the symbol is not in the configured list of tradable symbols",
    "spread_too_wide": "the current spread is above the configured ceiling",
    "market_closed": "the symbol's market is closed: its quote is older than the configured age",
    "cooldown_active": "a signal for the same symbol and direction was accepted too recently",
    "too_many_signals": "more signals than allowed in the rolling window",
    "bar_not_closed": "the signal relies on a bar that has not closed yet",
    "duplicate_signal": "the same signal (id or content) was seen within the deduplication window",
    "trend_disagrees": "the signal goes against the configured higher-timeframe trend",
    "level_not_confirmed": "the level the signal relies on is not confirmed",
    "symbol_not_tradable": "the symbol's trade mode does not allow this order now",
    "trading_disabled": "the terminal or the account does not allow expert trading now (Algo Trading off)",
    "outside_trading_hours": "the signal falls outside the configured trading hours",
    "news_blackout": "the signal falls inside a configured news blackout window",
    # targets and sizing
    "stop_not_placeable": "no valid stop loss can be placed for this signal",
    "margin_insufficient": "the free margin does not cover even the minimum volume",
    "missing_stop": "an opening order without a stop loss has unbounded risk",
    "stop_wrong_side": "the stop loss is on the wrong side of the entry price",
    "stop_too_close": "the stop loss is inside the broker's stops level",
    "volume_off_step": "the volume is not a multiple of the symbol's volume step",
    "volume_below_minimum": "the risk budget buys less than the symbol's minimum volume",
    "volume_above_maximum": "the volume exceeds the symbol's or the configured maximum",
    # risk guard
    "max_open_positions": "the number of open positions would exceed the limit",
    "max_risk_per_trade": "the money at risk on this order exceeds the per-trade limit",
    "daily_loss_limit": "the loss since broker-server midnight reached the daily limit",
    "account_stale": "the last account snapshot predates server midnight: the day's opening equity is unknown",
    "max_drawdown": "the drawdown from peak equity reached the limit",
    "max_exposure_symbol": "the committed volume or notional on the symbol would exceed its limit",
    "max_exposure_currency": "the committed volume in one currency would exceed its limit",
    "max_total_stop_risk": "the loss if every open stop and this one are hit would exceed the limit",
    "margin_level_floor": "the margin level after this order would fall below the floor",
    "orders_per_minute": "more orders than allowed in the last minute",
    "consecutive_losses": "trading is paused after a streak of losing trades",
    "sector_exposure": "same-direction exposure in a sector or correlated group would exceed its cap",
    "volatility_halt": "the symbol's volatility is above its norm: no new entries",
    # kill switch
    "kill_switch_halted": "the kill switch is HALTED: no new orders",
    "fleet_kill": "the fleet's kill switch is latched (tradeguard fleet kill, or a fleet limit reached)",
    "fleet_unreachable": "the fleet database is out of reach, or this account's state is not published again yet",
    "fleet_lots_symbol": "the fleet's lots on the symbol would exceed fleet_risk.max_lots_per_symbol",
    "fleet_lots_currency": "the fleet's lots touching a currency would exceed fleet_risk.max_lots_per_currency",
    "fleet_open_positions": "the fleet's open positions and pending orders would exceed fleet_risk.max_open_positions",
    "fleet_daily_loss": "the fleet's loss since server midnight reached fleet_risk.daily_loss",
    "fleet_drawdown": "the fleet's equity is fleet_risk.max_drawdown_pct or more under its peak",
    "kill_switch_reduce_only": "the kill switch is REDUCE_ONLY: only exposure-reducing orders",
}


def register(code: str, description: str) -> None:
    """Add a reason code for a third-party plugin; re-registering the same code is allowed."""
    if not _CODE.match(code):
        raise ValueError(f"reason code {code!r} must be lowercase snake_case")
    REASONS.setdefault(code, description)


def split(reason: str) -> tuple[str, str]:
    """``'plugin_error:risk_guard'`` -> ``('plugin_error', 'risk_guard')``; no qualifier -> ``''``."""
    code, _, qualifier = reason.partition(":")
    return code, qualifier


def is_known(reason: str) -> bool:
    return split(reason)[0] in REASONS


def markdown_table() -> str:
    """The reason-code table of ``docs/reasons.md`` (a test keeps the file in sync)."""
    rows = "\n".join(f"| `{code}` | {text} |" for code, text in sorted(REASONS.items()))
    return f"| code | meaning |\n| --- | --- |\n{rows}\n"


HEADER = (
    "# Rejection reason codes\n\nGenerated from `tradeguard/reasons.py` by `make docs` (`tests/test_docs.py` keeps it "
    "in sync). Metrics label by the code; a qualifier after a colon (`plugin_error:risk_guard`) goes in its own "
    "label.\n\n"
)

if __name__ == "__main__":
    import sys

    sys.stdout.write(HEADER + markdown_table())
