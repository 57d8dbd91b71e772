"""Kill switch: every trigger latches; what REDUCE_ONLY and HALTED admit; the latch survives a
restart; reset needs the right secret, waits for the trigger to clear (or a forced reason) and is audited."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tradeguard import (
    AccountSnapshot,
    ConfigError,
    HealthReport,
    HealthStatus,
    KillState,
    OrderEvent,
    OrderIntent,
    ReconciliationReport,
)
from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.kernel.operator_secret import hash_secret, verify_secret
from tradeguard.kernel.triggers import TRIGGERS, TriggersSettings
from tradeguard.plugins.risk.kill_switch import KillSwitch, ResetRefused
from tradeguard.store.sqlite import Store
from tradeguard.testing import T0, crash, make_runtime

SECRET = "correct horse battery staple"
HASH = hash_secret(SECRET, salt=bytes(16))


def setup(db: Path, **cfg: Any) -> tuple[Any, KillSwitch, ExecutionEngine]:
    ks, eng = KillSwitch(), ExecutionEngine()
    rt = make_runtime(
        ("execution_engine", eng),
        ("kill_switch", ks),
        store=Store(db),
        settings={"kill_switch": {"operator_secret_hash": HASH, **cfg}},
    )
    return rt, ks, eng


def opening() -> OrderIntent:
    return OrderIntent(symbol="EURUSD", side="buy", volume=0.1, price=1.0717, stop_loss=1.0697, created_at=T0)


def snap(daily: float = 0.0, dd: float = 0.0) -> AccountSnapshot:
    return AccountSnapshot(time=T0, balance=1e4, equity=1e4, daily_drawdown_pct=daily, drawdown_pct=dd)


def health(connected: bool, seconds: float, ping: float = 1.0) -> HealthReport:
    return HealthReport(
        time=T0 + timedelta(seconds=seconds),
        status=HealthStatus.OK if connected else HealthStatus.CRITICAL,
        connected=connected,
        trade_allowed=True,
        ping_ms=ping,
    )


@pytest.mark.parametrize(
    ("cfg", "fire", "trigger"),
    [
        (
            {"daily_drawdown_pct": 3.0},
            lambda rt: rt.notify("on_account_snapshot", snapshot=snap(daily=3.0)),
            "daily_loss_limit",
        ),
        ({"max_drawdown_pct": 8.0}, lambda rt: rt.notify("on_account_snapshot", snapshot=snap(dd=8.5)), "max_drawdown"),
        (
            {"connection_loss_seconds": 30},
            lambda rt: [rt.notify("on_health", report=health(False, s)) for s in (0, 10, 30)],
            "connection_lost",
        ),
        ({"latency_ms": 500}, lambda rt: rt.notify("on_health", report=health(True, 0, ping=750)), "latency"),
        (
            {"error_streak": 3},
            lambda rt: [
                rt.notify("on_order_event", event=OrderEvent(client_id=f"c{i}", kind="rejected", time=T0))
                for i in range(3)
            ],
            "execution_errors",
        ),
        (
            {"reconciliation_issues": 2},
            lambda rt: rt.notify(
                "on_reconciliation", report=ReconciliationReport(time=T0, cause="t", consistent=False, unknown=(1, 2))
            ),
            "reconciliation_inconsistent",
        ),
        (
            {"plugin_error_storm": 3},
            lambda rt: [
                rt.alert(channel="SYSTEM", severity="ERROR", module="x", error_code="plugin_error", message="boom")
                for _ in range(3)
            ],
            "plugin_error_storm",
        ),
        ({}, lambda rt: rt.request_halt("manual", "operator", source="cli"), "manual"),
    ],
)
def test_each_trigger_latches_and_persists(tmp_path: Path, cfg: dict, fire: Any, trigger: str) -> None:
    rt, ks, _ = setup(tmp_path / "k.db", **cfg)
    fire(rt)
    # what each latches is [default.triggers]'s (a manual halt: what it asked)
    state = KillState(getattr(TriggersSettings(), trigger).state) if trigger in TRIGGERS else KillState.HALTED
    assert (ks.state, ks.trigger) == (state, trigger)
    assert rt.store.kill_state()[:2] == (state.value, trigger)
    assert rt.metrics.registry.get_sample_value("tradeguard_kill_switch_active") == 1


def test_below_thresholds_nothing_latches(tmp_path: Path) -> None:
    rt, ks, _ = setup(tmp_path / "k.db", daily_drawdown_pct=3.0, connection_loss_seconds=30, error_streak=3)
    rt.notify("on_account_snapshot", snapshot=snap(daily=2.99))
    for s in (0, 29):
        rt.notify("on_health", report=health(False, s))
    for kind in ("rejected", "rejected", "filled", "rejected"):
        rt.notify("on_order_event", event=OrderEvent(client_id="c", kind=kind, time=T0))
    assert ks.state is KillState.ACTIVE


def test_reduce_only_admits_a_close_and_refuses_an_opening_order(tmp_path: Path) -> None:
    rt, _ks, eng = setup(tmp_path / "k.db")
    eng.submit_order(opening())
    ticket = eng.get_positions_snapshot()[0].ticket
    rt.request_halt("daily_loss_limit", "loss", source="risk_guard", state=KillState.REDUCE_ONLY)
    assert rt.pipeline.veto(opening()).code == "kill_switch_reduce_only"
    closer = eng.close_position(ticket)
    assert eng.journal.get(closer).state.value == "filled" and eng.get_positions_snapshot() == []


def test_halted_cancels_working_orders_and_can_flatten(tmp_path: Path) -> None:
    rt, _ks, eng = setup(tmp_path / "k.db")
    eng.submit_order(
        OrderIntent(
            symbol="EURUSD", side="buy", volume=0.1, order_type="limit", price=1.06, stop_loss=1.05, created_at=T0
        )
    )
    eng.submit_order(opening())
    rt.request_halt("manual", "stop", source="cli")
    assert rt.broker.orders() == [] and len(eng.get_positions_snapshot()) == 1  # pending cancelled, position kept
    rt2, _ks2, eng2 = setup(tmp_path / "k2.db", flatten_on_halt=True)
    eng2.submit_order(opening())
    rt2.request_halt("manual", "stop", source="cli")
    assert eng2.get_positions_snapshot() == []


def test_latch_survives_a_restart(tmp_path: Path) -> None:
    rt, _ks, _ = setup(tmp_path / "k.db")
    rt.request_halt("manual", "operator", source="cli", state=KillState.REDUCE_ONLY)
    crash(rt)
    rt2, ks2, _ = setup(tmp_path / "k.db")
    assert (ks2.state, ks2.trigger) == (KillState.REDUCE_ONLY, "manual")
    assert rt2.pipeline.veto(opening()).code == "kill_switch_reduce_only"


def test_a_kill_written_by_another_process_is_picked_up(tmp_path: Path) -> None:
    _rt, ks, _ = setup(tmp_path / "k.db")
    Store(tmp_path / "k.db").set_kill_state("HALTED", "manual", "from the CLI", operator="ops")
    ks.refresh_latch()
    assert ks.state is KillState.HALTED


def test_reset_needs_the_secret_and_is_audited(tmp_path: Path) -> None:
    rt, ks, _ = setup(tmp_path / "k.db")
    rt.request_halt("manual", "operator", source="cli")
    with pytest.raises(ResetRefused, match="wrong operator secret"):
        ks.reset("alice", "guess", "trying")
    assert ks.state is KillState.HALTED
    ks.reset("alice", SECRET, "checked the broker, all flat")
    assert ks.state is KillState.ACTIVE and rt.store.kill_state()[0] == "ACTIVE"
    events = rt.store.query("SELECT from_state, to_state, trigger, message, operator FROM kill_switch_events")
    assert tuple(events[-1]) == ("HALTED", "ACTIVE", "reset", "reset by alice: checked the broker, all flat", "alice")
    assert SECRET not in str(rt.store.query("SELECT * FROM kill_switch_events"))


def test_reset_waits_for_the_trigger_to_clear_unless_forced(tmp_path: Path) -> None:
    rt, ks, _ = setup(tmp_path / "k.db", daily_drawdown_pct=3.0)
    rt.notify("on_account_snapshot", snapshot=snap(daily=3.5))
    with pytest.raises(ResetRefused, match=r"still holds \(daily drawdown 3.50% >= 3%\)"):
        ks.reset("bob", SECRET, "please")
    ks.reset("bob", SECRET, "risk desk approved", force=True)
    assert ks.state is KillState.ACTIVE
    assert "forced while daily drawdown" in rt.store.kill_state()[2]


def test_no_secret_configured_refuses_every_reset(tmp_path: Path) -> None:
    ks = KillSwitch()
    rt = make_runtime(("kill_switch", ks), store=Store(tmp_path / "k.db"))
    rt.request_halt("manual", "x", source="cli")
    with pytest.raises(ResetRefused, match="no operator secret is configured"):
        ks.reset("alice", SECRET, "x")


def test_secret_hashing() -> None:
    stored = hash_secret("s3cret")
    assert stored.startswith("scrypt$16384$8$1$") and "s3cret" not in stored
    assert verify_secret("s3cret", stored) and not verify_secret("s3cret!", stored)
    assert not verify_secret("x", "plaintext") and hash_secret("x") != hash_secret("x")  # salted


def test_live_does_not_start_without_an_operator_secret(tmp_path: Path) -> None:
    live = {"broker": {"module": "mt5linux"}}
    with pytest.raises(ConfigError, match=r"kill_switch\.operator_secret_hash.*not set: live"):
        make_runtime(("kill_switch", KillSwitch()), env="live", settings=live, start=False)
    make_runtime(("kill_switch", KillSwitch()), env="paper", settings=live, start=False)  # paper may go without
    armed = {**live, "kill_switch": {"operator_secret_hash": hash_secret("s3cret-enough")}}
    rt = make_runtime(("kill_switch", KillSwitch()), env="live", settings=armed, start=False)
    rt.start()
    assert rt.started
