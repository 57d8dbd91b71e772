"""The profiler names the plugin that spends the time, on /metrics and in ``tradeguard status``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tradeguard import hookimpl
from tradeguard.plugins.monitoring.metrics_server import MetricsServer
from tradeguard.plugins.monitoring.profiler import Profiler
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime, signal

from ...core.test_cli_operator import tg
from ...helpers import scrape


class SlowObserver:
    """A third-party plugin that takes 2 ms over every decision."""

    @hookimpl
    def on_decision(self, decision: Any, runtime: Any) -> None:
        time.sleep(0.002)


def test_the_slow_plugin_is_named_on_metrics_and_in_status(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[default.runtime]\ndata_dir = "{tmp_path}"\n[default.logging]\nlevel = "ERROR"\n')
    server, profiler = MetricsServer(), Profiler()
    rt = make_runtime(
        ("kill_switch", KillSwitch()),
        ("slow_observer", SlowObserver()),
        ("profiler", profiler),
        ("metrics_server", server),
        store=Store(tmp_path / "tradeguard.db"),
        settings={"metrics_server": {"port": 0}},
    )
    try:
        for n in range(5):
            rt.decide(signal(signal_id=f"s{n}"))
        m = scrape(server.port)
        assert m['tradeguard_plugin_hook_calls_total{hook="on_decision",plugin="slow_observer"}'] == 5
        assert m['tradeguard_plugin_hook_seconds_total{hook="on_decision",plugin="slow_observer"}'] >= 5 * 0.002
        top = profiler.table()[0]
        assert (top["plugin"], top["hook"], top["calls"]) == ("slow_observer", "on_decision", 5)
    finally:
        rt.stop()  # shutdown writes the table for other processes
    status = tg(settings, "status")
    assert status.returncode == 0, status.stderr
    assert "slowest plugin hooks" in status.stdout
    lines = status.stdout.splitlines()
    row = {
        name: next(i for i, line in enumerate(lines) if f"│ {name} " in line)
        for name in ("slow_observer", "kill_switch")
    }
    assert row["slow_observer"] < row["kill_switch"]  # most total time first
    assert "on_decision" in lines[row["slow_observer"]] and "│     5 │" in lines[row["slow_observer"]]


def test_without_the_profiler_hooks_are_called_unwrapped() -> None:
    rt = make_runtime(("kill_switch", KillSwitch()))
    plugin = rt.pm.get_plugin("kill_switch")
    assert plugin is not None
    (name, fn, _), *_ = rt.hooks.plans["evaluate_risk"]
    assert name == "kill_switch" and fn == plugin.evaluate_risk and rt.hooks.stats is None
