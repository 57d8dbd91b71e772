"""Properties of the whole built-in decision pipeline, for arbitrary signals, accounts and symbol specs.

No approved order has a volume off the step or outside [min, max], risks more than the per-trade
limit, or has its stop on the wrong side of its price; every rejection has at least one reason.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.plugins.risk.position_sizing import PositionSizing
from tradeguard.plugins.risk.risk_guard import RiskGuard
from tradeguard.plugins.trading.signal_deduplicator import SignalDeduplicator
from tradeguard.plugins.trading.signal_validation_gate import SignalValidationGate
from tradeguard.plugins.trading.target_stop_engine import TargetStopEngine
from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime, signal

STEPS = {0.01: (0.01, 100.0), 0.1: (0.1, 500.0), 1.0: (1.0, 1000.0)}


@st.composite
def cases(draw: Any) -> dict[str, Any]:
    symbol = draw(st.sampled_from(["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "US500"]))
    step = draw(st.sampled_from(list(STEPS)))
    vmin, vmax = STEPS[step]
    return {
        "symbol": symbol,
        "side": draw(st.sampled_from(["buy", "sell"])),
        "stop_points": draw(st.integers(min_value=1, max_value=20_000)),
        "balance": draw(st.floats(min_value=50, max_value=5_000_000)),
        "risk_pct": draw(st.floats(min_value=0.05, max_value=5.0)),
        "hint": draw(st.one_of(st.none(), st.floats(min_value=0.01, max_value=10))),
        "spec": {
            "volume_step": step,
            "volume_min": vmin * draw(st.integers(1, 3)),
            "volume_max": vmax,
            "stops_level": draw(st.integers(0, 200)),
        },
        "max_risk": draw(st.floats(min_value=0.1, max_value=5.0)),
    }


def test_no_approved_order_breaks_a_limit(tmp_path: Path) -> None:
    """Also asserts that its limits were reached: orders were approved (a run that rejected every signal proves
    nothing about approved orders) and signals were rejected."""
    seen: Counter[str] = Counter()

    @settings(max_examples=40, deadline=None)
    @given(case=cases())
    def check(case: dict[str, Any]) -> None:
        seen[decide_and_check(tmp_path, case)] += 1

    check()
    assert seen["approved"] >= 5 and sum(seen.values()) - seen["approved"] >= 1, seen


def decide_and_check(tmp_path: Path, case: dict[str, Any]) -> str:
    """One signal through the pipeline; the invariants of what it approved. Returns the outcome."""
    plugins = [
        ("kill_switch", KillSwitch()),
        ("risk_guard", RiskGuard()),
        ("position_sizing", PositionSizing()),
        ("target_stop_engine", TargetStopEngine()),
        ("signal_validation_gate", SignalValidationGate()),
        ("signal_deduplicator", SignalDeduplicator()),
    ]
    rt = make_runtime(
        *plugins,
        store=Store(tmp_path / f"p{abs(hash(str(case)))}.db"),
        settings={
            "broker": {"emulator": {"balance": case["balance"], "symbols": {case["symbol"]: case["spec"]}}},
            "position_sizing": {"risk_pct": case["risk_pct"]},
            "risk_guard": {"max_risk_per_trade_pct": case["max_risk"], "max_volume_per_order": 1e6},
        },
    )
    spec = rt.broker.symbol_spec(case["symbol"])
    quote = rt.broker.quote(case["symbol"])
    sign = 1 if case["side"] == "buy" else -1
    price = quote.ask if sign > 0 else quote.bid
    stop = round(price - sign * case["stop_points"] * spec.point, spec.digits)
    sig = signal(
        symbol=case["symbol"],
        side=case["side"],
        price=price,
        stop_loss=stop if stop > 0 else None,
        risk_hint=case["hint"],
        atr=case["stop_points"] * spec.point,
    )
    decision = rt.decide(sig)
    outcome = "approved" if decision.approved else f"rejected: {decision.reasons[0].base}"
    event(outcome)
    if not decision.approved:
        assert decision.reasons and all(r.code for r in decision.reasons)
        return outcome
    order = decision.order
    steps = order.volume / spec.volume_step
    assert abs(steps - round(steps)) < 1e-6, "volume off the step"
    assert spec.volume_min - 1e-9 <= order.volume <= spec.volume_max + 1e-9
    assert sign * (order.price - order.stop_loss) > 0, "stop on the wrong side"
    risk = abs(order.price - order.stop_loss) / spec.tick_size * spec.tick_value * order.volume
    equity = rt.broker.account().equity
    assert risk <= equity * min(case["max_risk"], case["risk_pct"] * min(case["hint"] or 1.0, 1.0)) / 100 + 1e-6
    return outcome
