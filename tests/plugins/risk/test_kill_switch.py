"""Kill switch: latches tighter only; what REDUCE_ONLY and HALTED still let through."""

from __future__ import annotations

import pytest

from tradeguard import KillState, OrderIntent
from tradeguard.core.runtime import Runtime
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.plugins.risk.sizing import PositionSizing
from tradeguard.testing import T0, make_runtime, signal


def opening() -> OrderIntent:
    return OrderIntent(symbol="EURUSD", side="buy", volume=0.1, price=1.1, stop_loss=1.09, created_at=T0)


def closing() -> OrderIntent:
    return OrderIntent(symbol="EURUSD", side="sell", volume=0.1, price=1.1, position_ticket=7, created_at=T0)


def setup(**cfg: object) -> tuple[Runtime, KillSwitch]:
    ks = KillSwitch()
    return make_runtime(("kill_switch", ks), ("position_sizing", PositionSizing()),
                        settings={"kill_switch": cfg}), ks  # fmt: skip


def gauge(rt: Runtime) -> float | None:
    return rt.metrics.registry.get_sample_value("tradeguard_kill_switch_active")


def test_active_lets_orders_through() -> None:
    rt, ks = setup()
    assert ks.state is KillState.ACTIVE and gauge(rt) == 0
    assert rt.pipeline.veto(opening()) is None and rt.decide(signal()).approved


def test_reduce_only_admits_a_close_and_refuses_an_opening_order() -> None:
    rt, ks = setup()
    rt.request_halt("daily_loss_limit", "loss 510 > 500", source="risk_guard", state=KillState.REDUCE_ONLY)
    assert ks.state is KillState.REDUCE_ONLY and gauge(rt) == 1
    assert rt.pipeline.veto(closing()) is None
    reason = rt.pipeline.veto(opening())
    assert reason is not None and (reason.code, reason.plugin) == ("kill_switch_reduce_only", "kill_switch")
    assert "daily_loss_limit" in reason.message
    d = rt.decide(signal())
    assert not d.approved and d.reasons[0].code == "kill_switch_reduce_only"


@pytest.mark.parametrize(("allow", "close_passes"), [(True, True), (False, False)])
def test_halted_refuses_openings_and_closes_per_setting(allow: bool, close_passes: bool) -> None:
    rt, ks = setup(allow_closes_when_halted=allow)
    rt.request_halt("manual", "operator", source="cli")
    assert ks.state is KillState.HALTED
    assert rt.pipeline.veto(opening()).code == "kill_switch_halted"  # type: ignore[union-attr]
    assert (rt.pipeline.veto(closing()) is None) is close_passes


def test_latch_never_loosens_on_a_milder_request() -> None:
    rt, ks = setup()
    rt.request_halt("manual", "operator", source="cli")
    rt.request_halt("latency", "slow", source="health", state=KillState.REDUCE_ONLY)
    assert ks.state is KillState.HALTED and ks.trigger == "manual"


def test_kill_switch_vetoes_before_any_other_veto() -> None:
    from tradeguard.plugins.risk.risk_guard import RiskGuard

    ks = KillSwitch()
    rt = make_runtime(("risk_guard", RiskGuard()), ("kill_switch", ks), ("position_sizing", PositionSizing()),
                      settings={"risk_guard": {"max_volume_per_order": 0.01}})  # fmt: skip
    assert rt.decide(signal()).reasons[0].code == "volume_above_maximum"
    rt.request_halt("manual", "operator", source="cli")
    assert [r.plugin for r in rt.decide(signal(signal_id="2")).reasons] == ["kill_switch"]
