"""A real HTTP scrape of /metrics shows the base series with the values the events imply."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tradeguard import StartupError
from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.kernel.clock import WallClock
from tradeguard.plugins.account.account_tracker import AccountTracker
from tradeguard.plugins.monitoring.metrics_server import MetricsServer
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.plugins.risk.position_sizing import PositionSizing
from tradeguard.plugins.risk.risk_guard import RiskGuard
from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime, signal

from ...helpers import scrape


def test_scrape_shows_the_base_metrics_with_the_values_the_events_imply(tmp_path: Path) -> None:
    server = MetricsServer()
    plugins = [
        ("execution_engine", ExecutionEngine()),
        ("kill_switch", KillSwitch()),
        ("risk_guard", RiskGuard()),
        ("position_sizing", PositionSizing()),
        ("account_tracker", AccountTracker()),
        ("metrics_server", server),
    ]
    rt = make_runtime(
        *plugins,
        store=Store(tmp_path / "m.db"),
        settings={"metrics_server": {"port": 0}, "risk_guard": {"max_positions_per_symbol": 1}},
    )
    try:
        assert rt.decide(signal(price=1.0717, stop_loss=1.0697)).approved  # filled: one success
        rejected = rt.decide(signal(price=1.0717, stop_loss=1.0697, side="sell"))  # one per symbol: refused
        assert rejected.reasons[0].code == "max_open_positions"
        rt.request_halt("manual", "test", source="cli")
        m = scrape(server.port)
        assert m["tradeguard_execution_submit_success_total"] == 1
        assert m['tradeguard_risk_rejections_total{qualifier="",reason="max_open_positions"}'] == 1
        assert m["tradeguard_execution_latency_seconds_count"] == 1
        assert m["tradeguard_kill_switch_active"] == 1
        assert m["tradeguard_account_drawdown_pct_current"] >= 0 and m["tradeguard_account_equity"] > 9900
        assert m['tradeguard_decisions_total{outcome="approved",stage="done"}'] == 1
    finally:
        rt.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=2)  # stopped with the runtime


def test_a_non_loopback_address_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="not a loopback address"):
        make_runtime(
            ("metrics_server", MetricsServer()),
            store=Store(tmp_path / "m.db"),
            settings={"metrics_server": {"host": "0.0.0.0", "port": 0}},
        )


def test_latency_and_broker_metrics_follow_real_orders(tmp_path: Path) -> None:
    from tradeguard.plugins.monitoring.broker_metrics import BrokerMetrics
    from tradeguard.plugins.monitoring.latency_metrics import LatencyMetrics

    plugins = [
        ("execution_engine", ExecutionEngine()),
        ("position_sizing", PositionSizing()),
        ("latency_metrics", LatencyMetrics()),
        ("broker_metrics", BrokerMetrics()),
    ]
    rt = make_runtime(
        *plugins,
        clock=WallClock(),  # the latencies are the machine's: on a market clock (a replay) they are not observed
        store=Store(tmp_path / "b.db"),
        settings={
            "broker": {
                "emulator": {"slippage_points": 3, "faults": {"seed": 1, "requote_rate": 0.3, "reject_rate": 0.2}}
            },
            "execution_engine": {"max_price_retries": 0},
        },
    )
    for n in range(30):
        buy = n % 2 == 1
        rt.decide(
            signal(price=1.0717, stop_loss=1.0697 if buy else 1.0737, side="buy" if buy else "sell", signal_id=f"s{n}")
        )
    value = rt.metrics.registry.get_sample_value
    filled = value("tradeguard_execution_submit_success_total")
    rejected = value("tradeguard_execution_submit_fail_total", {"reason": "rejected"})
    assert filled and rejected and value("tradeguard_broker_fill_ratio") == pytest.approx(filled / (filled + rejected))
    retcodes = {
        code: value("tradeguard_execution_retcodes_total", {"retcode": code}) or 0.0
        for code in ("DONE", "REQUOTE", "PRICE_CHANGED", "REJECT")
    }
    assert retcodes["REQUOTE"] + retcodes["PRICE_CHANGED"] > 0
    assert value("tradeguard_broker_requote_rate") == pytest.approx(
        (retcodes["REQUOTE"] + retcodes["PRICE_CHANGED"]) / sum(retcodes.values())
    )
    assert value("tradeguard_slippage_points_count", {"symbol": "EURUSD"}) == filled
    # the emulator slips by 0..3 points, always against us; negative buckets mean the client exports no _sum
    assert value("tradeguard_slippage_points_bucket", {"symbol": "EURUSD", "le": "-1.0"}) == 0
    assert value("tradeguard_slippage_points_bucket", {"symbol": "EURUSD", "le": "5.0"}) == filled
    assert value("tradeguard_signal_to_decision_seconds_count") == 30
    assert value("tradeguard_decision_to_send_seconds_count") == 30
    assert value("tradeguard_fill_to_journal_seconds_count") == filled


def test_a_port_in_use_is_named_with_the_setting_to_change(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=rf"cannot listen on 127\.0\.0\.1:{port} .*metrics_server\.port"):
            make_runtime(
                ("metrics_server", MetricsServer()),
                store=Store(tmp_path / "m.db"),
                settings={"metrics_server": {"port": port}},
            )
