"""The fleet's metrics carry the account's label, and the shipped fleet dashboard, federation config and alert
rules use only series a fleet account exports, and pass promtool (config, rules, and the rules' unit tests)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from tradeguard.kernel.plugins import candidates
from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime, signal

from ..conftest import REPO, require

PROMETHEUS = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS / "tradeguard-fleet-rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "tradeguard-fleet-dashboard.json"
NAME = re.compile(r"\btradeguard_[a-z_]+")


@pytest.fixture
def exposition(tmp_path: Path, fleet_url: str) -> str:
    """/metrics of an account in a fleet, with every built-in plugin, after one real order."""
    builtins = [(name, ep.load()()) for name, ep in candidates().items() if ep.value.startswith("tradeguard.")]
    settings = {"metrics_server": {"port": 0}, "fleet": {"url": fleet_url, "account": "alpha", "name": "desk"}}
    rt = make_runtime(*builtins, store=Store(tmp_path / "d.db"), settings=settings)
    try:
        rt.decide(signal(price=1.0717, stop_loss=1.0697))
        rt.scheduler.run_due(rt)
        port = rt.pm.get_plugin("metrics_server").port
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        rt.stop()


def test_every_series_is_labelled_with_the_account_and_fleet(exposition: str) -> None:
    samples = [line for line in exposition.splitlines() if line and not line.startswith("#")]
    assert samples and all('account="alpha"' in s and 'fleet="desk"' in s for s in samples)
    assert any(s.startswith("tradeguard_fleet_reserve_seconds_count") for s in samples)


def test_the_fleet_files_use_only_exported_series(exposition: str) -> None:
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            family, kind = line.split()[2:4]
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(kind, ())
            names |= {family} | {family + s for s in suffixes}
    rules = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    panels = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    used = {n for expr in [*rules, *panels] for n in NAME.findall(expr)}
    assert {"tradeguard_fleet_kill_latched", "tradeguard_fleet_limit_use_ratio"} <= used
    assert sorted(used - names) == []


@pytest.mark.parametrize(
    "command",
    [
        ["check", "rules", "tradeguard-fleet-rules.yml"],
        ["test", "rules", "tradeguard-fleet-rules.test.yml"],
        ["check", "config", "fleet-federation.yml"],
    ],
)
def test_promtool_accepts_the_fleet_files(command: list[str]) -> None:
    require(shutil.which("promtool") is not None, "promtool not installed (Debian package prometheus)")
    done = subprocess.run(["promtool", *command], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
