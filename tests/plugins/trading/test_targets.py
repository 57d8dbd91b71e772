"""Target/stop engine: stops from the signal or ATR, R-multiple targets, wrong-side refusal."""

from __future__ import annotations

import pytest

from tradeguard.plugins.risk.sizing import PositionSizing
from tradeguard.plugins.trading.targets import TargetStopEngine
from tradeguard.testing import make_runtime, signal


def decide(cfg: dict | None = None, **sig: object):  # type: ignore[no-untyped-def]
    rt = make_runtime(("target_stop_engine", TargetStopEngine()), ("position_sizing", PositionSizing()),
                      settings={"target_stop_engine": cfg or {}})  # fmt: skip
    return rt.decide(signal(**sig))


def test_signal_stop_and_two_r_target_for_a_buy() -> None:
    t = decide(price=1.1000, stop_loss=1.0950).targets
    assert t.stop_loss == 1.0950 and t.take_profit == pytest.approx(1.1100) and t.method == "signal_stop"


def test_atr_stop_for_a_sell() -> None:
    t = decide({"atr_multiple": 1.5, "take_profit_r": 3.0}, side="sell", price=1.1, stop_loss=None, atr=0.002).targets
    assert t.stop_loss == pytest.approx(1.103) and t.take_profit == pytest.approx(1.091) and t.method == "atr_x1.5"


def test_signal_take_profit_is_kept_when_on_the_right_side() -> None:
    assert decide(take_profit=1.12).targets.take_profit == 1.12
    assert decide(take_profit=1.09).targets.take_profit == pytest.approx(1.11)  # wrong side: replaced


@pytest.mark.parametrize(("side", "stop"), [("buy", 1.1050), ("sell", 1.0950), ("buy", 1.1000)])
def test_stop_on_wrong_side_is_refused(side: str, stop: float) -> None:
    d = decide(side=side, price=1.1, stop_loss=stop)
    assert not d.approved and d.stage == "targets" and d.reasons[0].code == "stop_wrong_side"


def test_no_stop_and_no_atr_leaves_no_targets() -> None:
    d = decide(stop_loss=None)
    assert not d.approved and d.reasons[0].code == "no_targets"
