"""Each built-in plugin imports alone, and importing it pulls in no other plugin package.

The import-linter contracts in pyproject.toml say the same statically; this checks it at run time.
"""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys

import pytest

BUILTINS = sorted(
    (ep.name, ep.value) for ep in md.entry_points(group="tradeguard.plugins") if ep.value.startswith("tradeguard.")
)


def test_every_builtin_is_an_entry_point() -> None:
    names = {n for n, _ in BUILTINS}
    assert {"kill_switch", "risk_guard", "position_sizing", "signal_validation_gate", "target_stop_engine"} <= names


@pytest.mark.parametrize(("name", "target"), BUILTINS)
def test_plugin_imports_alone_without_other_plugins(name: str, target: str) -> None:
    module = target.split(":")[0]
    package = module.rsplit(".", 1)[0]
    code = (
        f"import sys, {module}\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith(('tradeguard.plugins.', 'tradeguard.execution'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert module in out
    strangers = [m for m in out if not (m == package or m.startswith(package + "."))]
    assert strangers == [], f"{name} pulls in {strangers}"
