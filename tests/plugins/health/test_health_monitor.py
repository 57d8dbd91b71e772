"""Health status transitions over the emulator's fault injection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tradeguard import Alert, HealthReport, HealthStatus, hookimpl
from tradeguard.kernel.clock import ReplayClock
from tradeguard.plugins.health.mt5_health_monitor import MT5HealthMonitor
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime


class Seen:
    def __init__(self) -> None:
        self.reports: list[HealthReport] = []
        self.alerts: list[Alert] = []

    @hookimpl
    def on_health(self, report: HealthReport) -> None:
        self.reports.append(report)

    @hookimpl
    def on_alert(self, alert: Alert) -> None:
        self.alerts.append(alert)


def monitored(tmp_path: Path, faults: dict | None = None, **cfg: Any) -> tuple[Any, MT5HealthMonitor, Seen]:
    monitor, seen = MT5HealthMonitor(), Seen()
    settings = {"broker": {"emulator": {"faults": faults or {}}}, "mt5_health_monitor": cfg}
    rt = make_runtime(
        ("kill_switch", KillSwitch()),
        ("mt5_health_monitor", monitor),
        ("seen", seen),
        store=Store(tmp_path / "h.db"),
        clock=ReplayClock(datetime(2017, 4, 19, 9, tzinfo=UTC)),
        settings=settings,
    )
    return rt, monitor, seen


def gauge(rt: Any) -> float:
    return rt.metrics.registry.get_sample_value("tradeguard_health_connection_status")


def test_healthy_terminal_is_ok(tmp_path: Path) -> None:
    rt, monitor, seen = monitored(tmp_path)
    report = monitor.aggregate_health()
    assert report.status is HealthStatus.OK and report.connected and report.trade_allowed
    assert gauge(rt) == 2 and seen.reports[-1] is report and seen.alerts == []


def test_disconnect_is_critical_then_recovers_and_a_long_outage_halts(tmp_path: Path) -> None:
    rt, monitor, seen = monitored(
        tmp_path, faults={"disconnect_rate": 1.0, "disconnect_seconds": 7200}, outage_halt_seconds=3600
    )
    rt.broker.send({"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "type_filling": 1})  # starts the window
    report = monitor.aggregate_health()
    assert report.status is HealthStatus.CRITICAL and not report.connected and gauge(rt) == 0
    assert [a.error_code for a in seen.alerts] == ["health_critical"]
    rt.clock.advance(timedelta(hours=1))
    monitor.aggregate_health()  # still down an hour later: a halt is requested
    assert rt.store.kill_state()[:2] == ("HALTED", "connection_lost")
    rt.broker.mt5.replay_step(12)  # three hours of market later the window has closed
    rt.clock.advance(timedelta(hours=2))
    assert monitor.aggregate_health().status is HealthStatus.OK and gauge(rt) == 2


def test_stale_ticks_slow_ping_and_disabled_algo_trading(tmp_path: Path) -> None:
    rt, monitor, _ = monitored(tmp_path, faults={"stale_tick_rate": 1.0}, max_tick_age_seconds=3600)
    rt.broker.mt5.replay_step(8)  # two bars on, the published quote is still the first bar's
    rt.clock.advance(timedelta(hours=2))
    report = monitor.aggregate_health()
    assert report.status is HealthStatus.DEGRADED and "EURUSD.ticks" in report.checks
    sample = rt.metrics.registry.get_sample_value
    age = (rt.clock.now() - rt.broker.quote("EURUSD").time).total_seconds()
    assert age > 3600 and sample("tradeguard_tick_age_seconds", {"symbol": "EURUSD"}) == age  # the last reading
    assert sample("tradeguard_spread_points", {"symbol": "EURUSD"}) == pytest.approx(10)  # 1.07229 - 1.07219
    rt, monitor, _ = monitored(tmp_path / "2", faults={"latency_ms": 5}, max_ping_ms=1)
    report = monitor.aggregate_health()
    assert report.status is HealthStatus.DEGRADED and report.checks["latency"] == "ping 5 ms > 1 ms"
    assert rt.metrics.registry.get_sample_value("tradeguard_terminal_ping_seconds") == 0.005
    rt, monitor, _ = monitored(tmp_path / "3")
    rt.broker.mt5.admin_set_algo_trading(False)
    report = monitor.aggregate_health()
    assert report.status is HealthStatus.CRITICAL and report.checks["connection"].startswith(
        "Algo Trading is disabled: press 'Algo Trading' in the terminal's toolbar"
    )


def test_the_store_keeps_the_latest_status_change_for_the_status_command(tmp_path: Path) -> None:
    rt, monitor, _ = monitored(tmp_path)
    first = monitor.aggregate_health()
    rt.broker.mt5.replay_step(4)  # a bar later
    rt.clock.advance(timedelta(hours=1))
    assert monitor.aggregate_health().status is HealthStatus.OK  # still OK: the stored report is the first
    assert rt.store.kv_get("health", "last") == first.model_dump(mode="json")
    rt.broker.mt5.admin_set_algo_trading(False)
    worse = monitor.aggregate_health()
    assert worse.status is HealthStatus.CRITICAL and rt.store.kv_get("health", "last") == worse.model_dump(mode="json")


def test_close_only_symbol_degrades(tmp_path: Path) -> None:
    rt, monitor, _ = monitored(tmp_path)
    rt.broker.mt5.admin_set_trade_mode("EURUSD", 3)
    rt.broker.refresh_spec("EURUSD")
    report = monitor.aggregate_health()
    assert report.status is HealthStatus.DEGRADED and report.checks["EURUSD.trade_mode"] == "close only"


def test_a_lost_link_is_retried_with_doubling_pauses_up_to_five_minutes(tmp_path: Path) -> None:
    from tradeguard.broker.types import BrokerError

    rt, monitor, _seen = monitored(tmp_path, reconnect_backoff_seconds=5)
    start, tries = rt.clock.now(), []

    def refuse() -> None:
        tries.append((rt.clock.now() - start).total_seconds())
        raise BrokerError("IPC link down", (-10004, "No IPC connection"))

    rt.broker.mt5.shutdown()  # the terminal answers nothing
    rt.broker.connect = refuse
    for _ in range(1300):
        monitor.aggregate_health()
        rt.clock.advance(timedelta(seconds=1))
    gaps = [b - a for a, b in pairwise(tries)]
    assert gaps == [5, 10, 20, 40, 80, 160, 300, 300, 300]


@pytest.mark.parametrize(("configured", "alerted"), [("+02:00", True), ("+03:00", False)])
def test_a_server_clock_that_disagrees_with_the_setting_is_alerted_once(
    tmp_path: Path, configured: str, alerted: bool
) -> None:
    """Live (the wall clock): fresh ticks of a server at UTC+3 against broker.server_timezone. The terminal here
    is the emulator replaying ticks stamped around now, met through an adapter that was never asked to compare
    zones at start (as after a daylight-saving switch the setting does not know)."""
    from tradeguard.broker.emulator.terminal import Terminal
    from tradeguard.broker.mt5 import MT5Adapter
    from tradeguard.broker.settings import BrokerSettings
    from tradeguard.kernel.clock import WallClock

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    ticks = tmp_path / "EURUSD_ticks.csv"
    lines = ["time,bid,ask"] + [
        f"{start + timedelta(seconds=k):%Y-%m-%d %H:%M:%S},{1.1 + k * 1e-5:.5f},{1.1001 + k * 1e-5:.5f}"
        for k in range(600)
    ]
    ticks.write_text("\n".join(lines) + "\n")
    terminal = Terminal()
    assert terminal.initialize(data=str(ticks), timeframe="M1", server_timezone="+03:00"), terminal.last_error()
    adapter = MT5Adapter(terminal, BrokerSettings(server_timezone=configured))
    adapter.connected = True
    monitor, seen = MT5HealthMonitor(), Seen()
    rt = make_runtime(("mt5_health_monitor", monitor), ("seen", seen), start=False, clock=WallClock())
    rt.broker = adapter
    rt.start()
    for _ in range(4):  # the market moves between checks: each check sees a fresh quote
        terminal.replay_step(10)
        monitor.aggregate_health()
    mismatches = [a for a in seen.alerts if a.error_code == "server_clock_mismatch"]
    assert len(mismatches) == (1 if alerted else 0), [a.message for a in seen.alerts]
    if alerted:
        assert "UTC+3h" in mismatches[0].message and "'+02:00'" in mismatches[0].message


def test_each_way_trading_is_off_says_who_can_turn_it_on(tmp_path: Path) -> None:
    rt, monitor, _seen = monitored(tmp_path)
    terminal = rt.broker.mt5
    terminal.trade_expert = False  # the server's side: no button in the terminal lifts it
    report = monitor.aggregate_health()
    assert report.status is HealthStatus.CRITICAL and "only the broker can lift it" in report.checks["connection"]
    terminal.trade_expert = True
    terminal.admin_set_algo_trading(False)
    assert "press 'Algo Trading'" in monitor.aggregate_health().checks["connection"]


def _near_now_ticks(tmp_path: Path, spreads: list[float]) -> Path:
    """EURUSD ticks one second apart, stamped around now (UTC), with these spreads (in price)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    lines = ["time,bid,ask"] + [
        f"{start + timedelta(seconds=k):%Y-%m-%d %H:%M:%S},{1.1 + k * 1e-5:.5f},{1.1 + k * 1e-5 + spread:.5f}"
        for k, spread in enumerate(spreads)
    ]
    path = tmp_path / "EURUSD_ticks.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _live(tmp_path: Path, ticks: Path) -> tuple[Any, MT5HealthMonitor, Seen]:
    from tradeguard.broker.emulator.terminal import Terminal
    from tradeguard.broker.mt5 import MT5Adapter
    from tradeguard.broker.settings import BrokerSettings
    from tradeguard.kernel.clock import WallClock

    terminal = Terminal()
    assert terminal.initialize(data=str(ticks), timeframe="M1"), terminal.last_error()
    adapter = MT5Adapter(terminal, BrokerSettings())
    adapter.connected = True
    monitor, seen = MT5HealthMonitor(), Seen()
    rt = make_runtime(("mt5_health_monitor", monitor), ("seen", seen), start=False, clock=WallClock())
    rt.broker = adapter
    rt.start()
    return rt, monitor, seen


def test_live_health_reads_a_symbols_rules_afresh(tmp_path: Path) -> None:
    """The broker makes EURUSD close-only mid-run: the next live check sees it, and so does every reader of the
    symbol's spec (the gate) before any order meets the refusal."""
    rt, monitor, _seen = _live(tmp_path, _near_now_ticks(tmp_path, [0.0001] * 60))
    assert "EURUSD.trade_mode" not in monitor.aggregate_health().checks
    rt.broker.mt5.admin_set_trade_mode("EURUSD", 3)  # close only
    report = monitor.aggregate_health()
    assert report.checks["EURUSD.trade_mode"] == "close only" and rt.broker.symbol_spec("EURUSD").trade_mode == 3


def test_a_spread_blowout_degrades_the_symbol(tmp_path: Path) -> None:
    rt, monitor, seen = _live(tmp_path, _near_now_ticks(tmp_path, [0.0001] * 15 + [0.0012] + [0.0001] * 5))
    terminal = rt.broker.mt5
    for _ in range(14):  # fourteen quotes of a usual 10-point spread
        terminal.replay_step(1)
        assert "EURUSD.spread" not in monitor.aggregate_health().checks
    terminal.replay_step(1)  # 120 points: twelve times the usual
    report = monitor.aggregate_health()
    assert report.checks["EURUSD.spread"].startswith("120 points >") and report.status is HealthStatus.DEGRADED
    assert any(a.error_code == "health_degraded" for a in seen.alerts)
