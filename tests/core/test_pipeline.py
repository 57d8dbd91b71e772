"""The decision pipeline: order of steps, veto order, fail-closed gates, isolated observers."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tradeguard import (
    Fill,
    OrderIntent,
    Reason,
    Rejected,
    Score,
    Signal,
    Targets,
    hookimpl,
)
from tradeguard.kernel.runtime import Runtime
from tradeguard.testing import T0, make_runtime, signal

from ..helpers import Sizer


class Veto:
    def __init__(self, code: str) -> None:
        self.code = code
        self.calls = 0

    @hookimpl
    def evaluate_risk(self, order: OrderIntent) -> Rejected:
        self.calls += 1
        return Rejected(reason=self.code, message=f"{self.code}: by test")


class FirstVeto(Veto):
    @hookimpl(tryfirst=True)
    def evaluate_risk(self, order: OrderIntent) -> Rejected:
        self.calls += 1
        return Rejected(reason=self.code, message=f"{self.code}: by test")


class Raises:
    def __init__(self, hook: str) -> None:
        self.hook = hook

    def _boom(self, **_: Any) -> None:
        raise RuntimeError(f"boom in {self.hook}")


def raising(hook: str) -> object:
    """A plugin whose implementation of ``hook`` raises."""

    def impl(self: object, runtime: Runtime) -> None:
        raise RuntimeError(f"boom in {hook}")

    impl.__name__ = hook
    return type(f"Raises_{hook}", (), {hook: hookimpl(impl)})()


def metric(rt: Runtime, name: str, **labels: str) -> float:
    value = rt.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_approved_signal_reaches_execution_and_is_recorded() -> None:
    rt = make_runtime(("sizer", Sizer()))
    d = rt.decide(signal())
    assert d.approved and d.stage == "done" and d.client_id == "tg-00000001"
    assert d.targets == Targets(stop_loss=1.095, take_profit=None, method="signal")
    assert d.order is not None and d.order.volume == 0.1 and d.order.stop_loss == 1.095
    assert rt.store.decisions() == [d]
    assert [p.volume for p in rt.execution.get_positions_snapshot()] == [0.1]
    assert metric(rt, "tradeguard_decisions_total", outcome="approved", stage="done") == 1


def test_all_validation_reasons_from_all_plugins_are_collected() -> None:
    class A:
        @hookimpl
        def validate_signal(self, signal: Signal) -> list[Any]:
            return [Reason(code="stale_signal", message="stale_signal: 9 s"), "cooldown_active"]

    class B:
        @hookimpl
        def validate_signal(self, signal: Signal) -> list[Any]:
            return [Reason(code="spread_too_wide", message="spread_too_wide: 30 > 20")]

    class C:
        @hookimpl
        def validate_signal(self, signal: Signal) -> list[Any]:
            return []

    rt = make_runtime(("a", A()), ("b", B()), ("c", C()), ("sizer", Sizer()))
    d = rt.decide(signal())
    assert not d.approved and d.stage == "validate"
    assert sorted((r.code, r.plugin) for r in d.reasons) == [
        ("cooldown_active", "a"),
        ("spread_too_wide", "b"),
        ("stale_signal", "a"),
    ]
    assert metric(rt, "tradeguard_risk_rejections_total", reason="stale_signal", qualifier="") == 1
    assert rt.execution.get_positions_snapshot() == []


def test_unregistered_reason_code_still_rejects_as_unknown_reason() -> None:
    class Odd:
        @hookimpl
        def validate_signal(self, signal: Signal) -> list[str]:
            return ["moon_phase"]

    d = make_runtime(("odd", Odd()), ("sizer", Sizer())).decide(signal())
    assert not d.approved
    assert d.reasons[0].code == "unknown_reason:odd" and "moon_phase" in d.reasons[0].message


def test_tryfirst_veto_wins_and_stops_the_chain() -> None:
    later, first = Veto("max_drawdown"), FirstVeto("kill_switch_halted")
    rt = make_runtime(("later", later), ("first", first), ("sizer", Sizer()))
    d = rt.decide(signal())
    assert [(r.code, r.plugin) for r in d.reasons] == [("kill_switch_halted", "first")]
    assert (first.calls, later.calls) == (1, 0)
    assert d.stage == "risk" and d.order is not None and rt.execution.get_positions_snapshot() == []


def test_firstresult_without_tryfirst_follows_registration_order_last_registered_first() -> None:
    a, b = Veto("max_drawdown"), Veto("daily_loss_limit")
    d = make_runtime(("a", a), ("b", b), ("sizer", Sizer())).decide(signal())
    assert d.reasons[0].code == "daily_loss_limit" and (a.calls, b.calls) == (0, 1)


@pytest.mark.parametrize("hook", ["validate_signal", "score_signal", "compute_targets", "size_position"])
def test_raising_gate_rejects_fail_closed(hook: str) -> None:
    rt = make_runtime(("sizer", Sizer()), ("bad", raising(hook)))  # registered last = called first
    d = rt.decide(signal())
    assert not d.approved
    assert [r.code for r in d.reasons] == ["plugin_error:bad"]
    assert f"boom in {hook}" in d.reasons[0].message
    assert metric(rt, "tradeguard_plugin_errors_total", plugin="bad", hook=hook) == 1
    assert metric(rt, "tradeguard_risk_rejections_total", reason="plugin_error", qualifier="bad") == 1


def test_raising_veto_rejects_even_when_a_later_veto_would_approve() -> None:
    class Approves:
        @hookimpl
        def evaluate_risk(self, order: OrderIntent) -> None:
            return None

    alerts: list[Any] = []

    class Listener:
        @hookimpl
        def on_alert(self, alert: Any) -> None:
            alerts.append(alert)

    rt = make_runtime(("ok", Approves()), ("bad", raising("evaluate_risk")), ("sizer", Sizer()), ("l", Listener()))
    d = rt.decide(signal())
    assert not d.approved and d.stage == "risk" and d.reasons[0].code == "plugin_error:bad"
    assert rt.execution.get_positions_snapshot() == []
    assert [(a.module, a.error_code) for a in alerts] == [("bad", "plugin_error")]


@pytest.mark.parametrize("answer", [True, "ok", 0.0, -1.0, math.nan, math.inf])
def test_contract_breaking_answers_fail_closed(answer: Any) -> None:
    class Weird:
        @hookimpl
        def size_position(self) -> Any:
            return answer

    d = make_runtime(("weird", Weird())).decide(signal())
    assert not d.approved and d.reasons[0].code == "plugin_error:weird"


def test_veto_returning_something_other_than_rejected_fails_closed() -> None:
    class Truthy:
        @hookimpl
        def evaluate_risk(self) -> bool:
            return False

    d = make_runtime(("truthy", Truthy()), ("sizer", Sizer())).decide(signal())
    assert not d.approved and d.reasons[0].code == "plugin_error:truthy"


def test_targets_fall_back_to_signal_stop_and_without_one_reject() -> None:
    rt = make_runtime(("sizer", Sizer()))
    d = rt.decide(signal(stop_loss=None, take_profit=None))
    assert not d.approved and d.stage == "targets" and d.reasons[0].code == "no_targets"


def test_no_sizing_plugin_rejects_with_no_size() -> None:
    d = make_runtime().decide(signal())
    assert not d.approved and d.stage == "size" and d.reasons[0].code == "no_size"


def test_scores_are_combined_by_weight_and_gated() -> None:
    class High:
        @hookimpl
        def score_signal(self, signal: Signal) -> Score:
            return Score(name="trend", value=0.9, factors={"h4": 0.9})

    class Low:
        @hookimpl
        def score_signal(self, signal: Signal) -> float:
            return 0.3

    settings = {"pipeline": {"min_score": 0.6, "score_weights": {"trend": 3.0}}}
    d = make_runtime(("high", High()), ("low", Low()), ("sizer", Sizer()), settings=settings).decide(signal())
    assert d.approved and d.combined_score == pytest.approx((3 * 0.9 + 0.3) / 4)
    settings["pipeline"]["score_weights"] = {"trend": 0.5}
    rt = make_runtime(("high", High()), ("low", Low()), ("sizer", Sizer()), settings=settings)
    d = rt.decide(signal())
    assert not d.approved and d.stage == "score" and d.combined_score == pytest.approx(0.5)
    assert d.reasons[0].code == "score_below_minimum"
    assert d.reasons[0].message == "score_below_minimum: combined 0.500 < minimum 0.600"
    assert {s.name for s in d.scores} == {"trend", "low"} and rt.execution.get_positions_snapshot() == []


def test_execution_refusal_is_a_rejection_not_a_crash() -> None:
    d = make_runtime(("sizer", Sizer())).decide(signal(order_type="limit"))
    assert not d.approved and d.stage == "execution" and d.reasons[0].code == "execution_refused"
    assert "market orders only" in d.reasons[0].message


def test_raising_observer_is_isolated_and_the_others_still_run() -> None:
    seen: list[str] = []

    class Good:
        def __init__(self, name: str) -> None:
            self.name = name

        @hookimpl
        def on_fill(self, fill: Fill) -> None:
            seen.append(self.name)

    rt = make_runtime(("g1", Good("g1")), ("bad", raising("on_fill")), ("g2", Good("g2")), ("sizer", Sizer()))
    d = rt.decide(signal())
    assert d.approved
    assert sorted(seen) == ["g1", "g2"]
    assert metric(rt, "tradeguard_plugin_errors_total", plugin="bad", hook="on_fill") == 1


def test_raising_alert_channel_does_not_recurse() -> None:
    rt = make_runtime(("bad", raising("on_alert")))
    rt.alert(channel="SYSTEM", severity="ERROR", module="t", error_code="x", message="hello")
    assert metric(rt, "tradeguard_plugin_errors_total", plugin="bad", hook="on_alert") == 1


def test_generate_signals_feeds_the_pipeline_and_isolates_a_broken_strategy() -> None:
    from tradeguard import Bar

    class Strategy:
        @hookimpl
        def generate_signals(self, bar: Bar) -> list[Signal]:
            return [signal(price=bar.close, stop_loss=bar.low)]

    bar = Bar(symbol="EURUSD", timeframe="H1", time=T0, open=1.1, high=1.102, low=1.098, close=1.101)
    rt = make_runtime(("s", Strategy()), ("broken", raising("generate_signals")), ("sizer", Sizer()))
    decisions = rt.on_bar(bar)
    assert [d.approved for d in decisions] == [True]
    assert metric(rt, "tradeguard_plugin_errors_total", plugin="broken", hook="generate_signals") == 1


def test_startup_failure_names_the_plugin() -> None:
    from tradeguard import StartupError

    rt = make_runtime(("bad", raising("tradeguard_startup")), start=False)
    with pytest.raises(StartupError, match="plugin 'bad' failed to start: RuntimeError: boom"):
        rt.start()
