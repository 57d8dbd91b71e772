"""One table says what each automatic trigger does (issue 24, item 4, finding 4): the state it latches and whether
it flattens, whoever fires it; `config check` names settings that can never take effect together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tradeguard import KillState, OrderIntent
from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.kernel.triggers import KILL_SWITCH_THRESHOLDS, TriggersSettings, ineffective
from tradeguard.plugins.risk.kill_switch import KillSwitch, KillSwitchSettings
from tradeguard.plugins.risk.risk_guard import RiskGuard
from tradeguard.testing import T0

from ...helpers import tradeguard
from .conftest import OFF, snapshot


def started(runtime: Any, **triggers: Any) -> tuple[Any, KillSwitch, ExecutionEngine, RiskGuard]:
    ks, eng, guard = KillSwitch(), ExecutionEngine(), RiskGuard()
    rt = runtime(
        ("kill_switch", ks),
        ("execution_engine", eng),
        ("risk_guard", guard),
        risk_guard={**OFF, "daily_loss_limit_pct": 5.0},
        triggers=triggers,
    )
    eng.submit_order(OrderIntent(symbol="EURUSD", side="buy", volume=0.1, created_at=T0))
    return rt, ks, eng, guard


def test_a_daily_loss_trip_flattens_when_its_row_says_so_though_it_latches_reduce_only(runtime: Any) -> None:
    """Finding 4: flatten_on_halt did nothing on a daily-loss trip (it latches REDUCE_ONLY); its row now can."""
    rt, ks, _eng, guard = started(runtime, daily_loss_limit={"state": "REDUCE_ONLY", "flatten": True})
    assert rt.broker.positions()
    guard.update_equity(snapshot(daily=5.0))
    assert ks.state is KillState.REDUCE_ONLY and rt.store.kill_state()[:2] == ("REDUCE_ONLY", "daily_loss_limit")
    assert not rt.broker.positions()  # closed: the row's flatten


def test_without_the_flatten_the_same_trip_keeps_the_position(runtime: Any) -> None:
    rt, ks, _eng, guard = started(runtime)
    guard.update_equity(snapshot(daily=5.0))
    assert ks.state is KillState.REDUCE_ONLY and rt.broker.positions()


def test_a_row_decides_the_state_whoever_asks_and_off_latches_nothing(runtime: Any) -> None:
    rt, ks, _eng, _guard = started(
        runtime, reconciliation_inconsistent={"state": "REDUCE_ONLY"}, latency={"state": "OFF"}
    )
    assert rt.request_halt("latency", "ping 900 ms", source="test") is None and ks.state is KillState.ACTIVE
    event = rt.request_halt("reconciliation_inconsistent", "2 inconsistencies", source="test")  # asked: HALTED
    assert event is not None and event.state is KillState.REDUCE_ONLY and ks.state is KillState.REDUCE_ONLY
    manual = rt.request_halt("manual", "an operator's halt", source="test")  # no row: the state asked for
    assert manual is not None and manual.state is KillState.HALTED and ks.state is KillState.HALTED


def test_every_kill_switch_threshold_fires_a_row() -> None:
    assert set(KILL_SWITCH_THRESHOLDS) <= set(KillSwitchSettings.model_fields)
    assert set(KILL_SWITCH_THRESHOLDS.values()) <= set(TriggersSettings.model_fields)


SETTINGS: list[tuple[str, str]] = [
    (
        "[default.kill_switch]\nflatten_on_halt = true\n",
        "kill_switch.flatten_on_halt = true never acts on daily_loss_limit, "
        "max_drawdown, margin_call, store_failure, fleet_limit (they latch REDUCE_ONLY)",
    ),
    (
        '[default.triggers]\nstop_out = { state = "OFF", flatten = true }\n',
        "triggers.stop_out.flatten = true never acts: its state is OFF",
    ),
    (
        '[default.kill_switch]\nlatency_ms = 500\n[default.triggers]\nlatency = { state = "OFF" }\n',
        "kill_switch.latency_ms = 500 never acts: triggers.latency.state is OFF",
    ),
    (
        '[default.kill_switch]\ndaily_loss_latch_ends = "next_server_day"\n[default.triggers]\n'
        'daily_loss_limit = { state = "OFF" }\n',
        "kill_switch.daily_loss_latch_ends = next_server_day never acts",
    ),
    (
        "[default.kill_switch]\nallow_closes_when_halted = false\n[default.triggers]\n"
        'stop_out = { state = "HALTED", flatten = true }\n',
        "kill_switch.allow_closes_when_halted = false refuses the closes that stop_out ask for",
    ),
]


@pytest.mark.parametrize(("text", "warning"), SETTINGS, ids=[f"s{i}" for i in range(len(SETTINGS))])
def test_config_check_names_a_setting_that_never_takes_effect(tmp_path: Path, text: str, warning: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    done = tradeguard(path, "config", "check")
    assert done.returncode == 0, done.stderr
    assert f"warning: {warning}" in done.stdout


def test_the_shipped_settings_have_nothing_that_never_acts(runtime: Any) -> None:
    rt = runtime(("kill_switch", KillSwitch()), ("execution_engine", ExecutionEngine()))
    assert ineffective(rt.settings) == []


def test_a_settings_file_with_a_key_the_table_replaced_says_where_it_went(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('[default.kill_switch]\nstop_out_state = "HALTED"\n')
    done = tradeguard(path, "config", "check")
    assert done.returncode == 1
    assert "kill_switch.stop_out_state: moved; set triggers.stop_out.state" in done.stderr


def test_a_reduce_only_latch_cancels_our_working_pending_orders_they_would_open_exposure(runtime: Any) -> None:
    rt, ks, eng, guard = started(runtime)
    limit = OrderIntent(symbol="EURUSD", side="buy", volume=0.1, order_type="limit", price=1.0600, created_at=T0)
    eng.submit_order(limit)
    assert rt.broker.orders()
    guard.update_equity(snapshot(daily=5.0))  # daily_loss_limit: REDUCE_ONLY, no flatten
    assert ks.state is KillState.REDUCE_ONLY and not rt.broker.orders() and rt.broker.positions()


def test_the_kill_switchs_own_threshold_flattens_once_though_the_switch_is_latched_already(runtime: Any) -> None:
    """Review finding: a row with flatten = true did nothing when the latch was at that state already."""
    ks, eng = KillSwitch(), ExecutionEngine()
    rt = runtime(
        ("kill_switch", ks),
        ("execution_engine", eng),
        kill_switch={"max_drawdown_pct": 8.0},
        triggers={"max_drawdown": {"state": "REDUCE_ONLY", "flatten": True}},
    )
    eng.submit_order(OrderIntent(symbol="EURUSD", side="buy", volume=0.1, created_at=T0))
    rt.request_halt("store_failure", "the journal cannot be written: test", source="test")  # REDUCE_ONLY first
    assert ks.state is KillState.REDUCE_ONLY and rt.broker.positions()
    rt.notify("on_account_snapshot", snapshot=snapshot(dd=9.0))
    assert not rt.broker.positions()  # the row's flatten, though the latch was REDUCE_ONLY already
    magic = int(rt.settings.runtime.magic)
    rt.broker.mt5.admin_add_position("EURUSD", True, 0.1, magic=magic)  # one of ours, opened after the flatten
    rt.notify("on_account_snapshot", snapshot=snapshot(dd=9.5))  # the breach goes on: one flatten per latch
    assert [p.magic for p in rt.broker.positions()] == [magic]
