"""The `tradeguard` command, run as a user runs it: a real subprocess, real exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tradeguard

from ..conftest import REPO


def tg(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}  # rich wraps tables at 80 columns when not on a terminal
    return subprocess.run(
        [sys.executable, "-m", "tradeguard", *args], capture_output=True, text=True, cwd=cwd, timeout=60, env=env
    )


def test_version() -> None:
    r = tg("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"tradeguard {tradeguard.__version__}"


def test_config_check_accepts_the_shipped_settings_in_every_environment() -> None:
    for env in ("default", "paper", "live"):
        r = tg("config", "check", "--settings", str(REPO / "settings.toml"), "--env", env)
        assert r.returncode == 0, r.stderr
        assert f"settings OK: environment {env}" in r.stdout


def test_config_check_names_the_bad_key_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[default.risk_guard]\nmax_open_positions = -2\n")
    r = tg("config", "check", "--settings", str(bad))
    assert r.returncode == 1
    assert "risk_guard.max_open_positions = -2" in r.stderr


def test_config_show_redacts_secrets(tmp_path: Path) -> None:
    r = tg("config", "check", "--show", "--settings", str(REPO / "settings.toml"))
    assert r.returncode == 0 and '"max_open_positions": 5' in r.stdout


def test_plugins_lists_built_ins_with_status() -> None:
    r = tg("plugins", "--settings", str(REPO / "settings.toml"))
    assert r.returncode == 0, r.stderr
    for name in ("kill_switch", "risk_guard", "position_sizing", "target_stop_engine"):
        assert name in r.stdout
    assert "(required)" in r.stdout


def test_unknown_command_is_a_usage_error() -> None:
    assert tg("frobnicate").returncode == 2


def test_demo_pushes_signals_through_every_plugin() -> None:
    r = tg("demo", "--settings", str(REPO / "settings.toml"))
    assert r.returncode == 0, r.stderr
    assert "6 signals, 2 approved, 4 rejected" in r.stdout
    for code in ("confidence_below_minimum", "stop_wrong_side", "stop_not_placeable", "kill_switch_halted"):
        assert code in r.stdout
