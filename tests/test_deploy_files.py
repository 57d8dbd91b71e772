"""The shipped Grafana dashboard and Prometheus rules use only series that tradeguard exports."""

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

from .conftest import REPO, require

RULES = REPO / "deploy" / "prometheus" / "tradeguard-rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "tradeguard-dashboard.json"
NAME = re.compile(r"\btradeguard_[a-z_]+")


def rule_exprs() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"]}


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> str:
    """/metrics of a runtime with every built-in plugin, after one real order."""
    builtins = [(name, ep.load()()) for name, ep in candidates().items() if ep.value.startswith("tradeguard.")]
    tmp = tmp_path_factory.mktemp("deploy")
    rt = make_runtime(*builtins, store=Store(tmp / "d.db"), settings={"metrics_server": {"port": 0}})
    try:
        rt.decide(signal(price=1.0717, stop_loss=1.0697))
        rt.scheduler.run_due(rt)  # health, account and reconciliation checks feed their gauges
        port = rt.pm.get_plugin("metrics_server").port
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        rt.stop()


def exported(exposition: str) -> set[str]:
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            family, kind = line.split()[2:4]
            names |= {family} | {
                family + s for s in {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(kind, ())
            }
    return names


def test_the_rules_cover_what_the_desk_must_hear_about() -> None:
    exprs = rule_exprs()
    assert {
        "TradeguardKillSwitchActive",
        "TradeguardHealthCritical",
        "TradeguardDrawdownNearLimit",
        "TradeguardNoFreshTicks",
    } <= set(exprs)


def test_every_series_in_the_rules_and_dashboard_is_exported(exposition: str) -> None:
    names = exported(exposition)
    used = {n for expr in [*rule_exprs().values(), *dashboard_exprs()] for n in NAME.findall(expr)}
    assert used, "no tradeguard series found in the deploy files"
    assert sorted(used - names) == []


def test_promtool_accepts_the_rules_and_the_exposition(exposition: str, tmp_path: Path) -> None:
    require(shutil.which("promtool") is not None, "promtool not installed (Debian package prometheus)")
    rules = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    metrics = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60
    )
    assert metrics.returncode == 0, metrics.stdout + metrics.stderr
