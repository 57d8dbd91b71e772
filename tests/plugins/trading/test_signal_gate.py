"""Signal validation gate: each check, and all failing reasons returned together."""

from __future__ import annotations

from datetime import timedelta

from tradeguard.plugins.risk.sizing import PositionSizing
from tradeguard.plugins.trading.signal_gate import SignalValidationGate
from tradeguard.testing import T0, make_runtime, signal


def decide(cfg: dict, **sig: object):  # type: ignore[no-untyped-def]
    rt = make_runtime(("signal_validation_gate", SignalValidationGate()), ("position_sizing", PositionSizing()),
                      settings={"signal_validation_gate": cfg})  # fmt: skip
    return rt.decide(signal(**sig))


def test_passes_at_the_thresholds() -> None:
    d = decide({"min_confidence": 0.6, "max_age_seconds": 60, "symbols": ["EURUSD"]},
               confidence=0.6, created_at=T0 - timedelta(seconds=60))  # fmt: skip
    assert d.approved


def test_every_failing_check_is_reported() -> None:
    d = decide({"min_confidence": 0.6, "max_age_seconds": 60, "symbols": ["GBPUSD", "USDJPY"]},
               confidence=0.59, created_at=T0 - timedelta(seconds=61))  # fmt: skip
    assert not d.approved
    assert [r.message for r in d.reasons] == [
        "confidence_below_minimum: 0.590 < minimum 0.600",
        "stale_signal: age 61 s > limit 60 s",
        "symbol_not_allowed: EURUSD not in GBPUSD, USDJPY",
    ]
    assert {r.plugin for r in d.reasons} == {"signal_validation_gate"}
