"""A real `pip install` of the example third-party package: discovered, effective, switchable.

Installed into a private target folder (not the test venv) so no other test sees it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

EXAMPLE = REPO / "examples" / "tradeguard-example-plugin"

CHECK = """
import sys
from tradeguard.kernel.runtime import Runtime
from tradeguard.testing import signal

rt = Runtime.build(sys.argv[1])
rec = {r.name: r for r in rt.plugins}
for name in ("max_spread", "example_momentum"):
    r = rec[name]
    print(name, r.status, r.distribution, r.version, ",".join(r.hooks))
rt.start()
# a buy at the emulator's first EURUSD quote (2017-04-19), stop 27 pips below
d = rt.decide(signal(price=1.0717, stop_loss=1.0690, metadata={"spread_points": 40}))
print("decision", d.approved, ";".join(f"{x.code}@{x.plugin}" for x in d.reasons))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("example")
    src = work / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return target


def run(site: Path, settings: Path, *args: str, script: str = CHECK) -> str:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "250"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(settings), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_installed_plugin_is_discovered_and_its_check_rejects(site: Path, tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text("[default.max_spread]\nmax_points = 25\n")
    lines = run(site, settings).splitlines()
    assert lines[0] == "max_spread loaded tradeguard-example-plugin 0.1.0 tradeguard_settings,validate_signal"
    assert lines[1].startswith("example_momentum loaded tradeguard-example-plugin 0.1.0 generate_signals")
    assert lines[2] == "decision False spread_too_wide@max_spread"


def test_disabling_the_installed_plugin_switches_it_off(site: Path, tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[default.plugins]\ndisabled = ["max_spread"]\n')
    lines = run(site, settings).splitlines()
    assert lines[0].startswith("max_spread disabled tradeguard-example-plugin")
    assert lines[2] == "decision True "


def test_cli_lists_the_installed_plugin(site: Path, tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text("")
    script = (
        "import sys; sys.argv = ['tradeguard', 'plugins', '--settings', sys.argv[1]]; "
        "from tradeguard.cli.commands import main; main()"
    )
    out = run(site, settings, script=script)
    assert "max_spread" in out and "tradeguard-example-plugin" in out


def test_example_packages_own_tests_pass_against_tradeguard(site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=site,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout
