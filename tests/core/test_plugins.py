"""Discovery, selection and registration of plugins through real entry points."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tradeguard import ConfigError, PluginError, StartupError
from tradeguard.kernel.runtime import Runtime
from tradeguard.testing import signal

GOOD = """
from tradeguard import Reason, hookimpl

class Plugin:
    @hookimpl
    def validate_signal(self, signal, runtime):
        return [Reason(code="symbol_not_allowed", message="symbol_not_allowed: from good")]
"""
BROKEN = """
import a_module_that_does_not_exist
"""
MISSPELT_HOOK = """
from tradeguard import hookimpl

class Plugin:
    @hookimpl
    def validate_signals(self, signal, runtime):
        return []
"""
MISSPELT_ARG = """
from tradeguard import hookimpl

class Plugin:
    @hookimpl
    def validate_signal(self, sig, runtime):
        return []
"""
WRAPPER = """
from tradeguard import hookimpl

class Plugin:
    @hookimpl(wrapper=True)
    def evaluate_risk(self, order, runtime):
        return (yield)
"""
RAISING_INIT = """
class Plugin:
    def __init__(self):
        raise RuntimeError("cannot reach my database")
"""


def build(path: Path, env: str | None = None) -> Runtime:
    return Runtime.build(path, env)


def record(rt: Runtime, name: str):  # type: ignore[no-untyped-def]
    return next(r for r in rt.plugins if r.name == name)


def test_entry_point_plugin_is_discovered_registered_and_used(
    fake_dist: Callable[..., str], settings_file: Callable[[str], Path]
) -> None:
    fake_dist({"good": GOOD}, {"good_check": "good:Plugin"})
    rt = build(settings_file('[default.plugins]\ndisabled = ["execution_engine"]\n'))
    rec = record(rt, "good_check")
    assert (rec.status, rec.distribution, rec.version) == ("loaded", "fake-plugins", "1.2.3")
    assert rec.hooks == ("validate_signal",)
    assert {r.name for r in rt.plugins if r.status == "loaded"} >= {"kill_switch", "risk_guard", "good_check"}
    rt.start()
    decision = rt.decide(signal())
    assert [(r.code, r.plugin) for r in decision.reasons] == [("symbol_not_allowed", "good_check")]


def test_broken_plugin_is_reported_and_left_out(
    fake_dist: Callable[..., str], settings_file: Callable[[str], Path], caplog: pytest.LogCaptureFixture
) -> None:
    fake_dist({"good": GOOD, "broken": BROKEN}, {"good_check": "good:Plugin", "broken_check": "broken:Plugin"})
    rt = build(settings_file(""))
    rec = record(rt, "broken_check")
    assert rec.status == "failed"
    assert "ModuleNotFoundError" in rec.error and "a_module_that_does_not_exist" in rec.error
    assert record(rt, "good_check").status == "loaded"
    assert "broken_check" not in [name for name, _ in rt.pm.list_name_plugin()]


def test_plugin_whose_constructor_raises_is_reported_as_failed(
    fake_dist: Callable[..., str], settings_file: Callable[[str], Path]
) -> None:
    fake_dist({"bad": RAISING_INIT}, {"db_check": "bad:Plugin"})
    rec = record(build(settings_file("")), "db_check")
    assert rec.status == "failed" and "cannot reach my database" in rec.error


def test_required_plugin_that_fails_to_import_stops_startup(
    fake_dist: Callable[..., str], settings_file: Callable[[str], Path]
) -> None:
    fake_dist({"broken": BROKEN}, {"broken_check": "broken:Plugin"})
    path = settings_file('[default.plugins]\nrequired = ["kill_switch", "broken_check"]\n')
    with pytest.raises(StartupError, match=r"required plugin 'broken_check' \(fake-plugins 1.2.3\) failed to load"):
        build(path)


def test_required_plugin_not_installed_stops_startup(settings_file: Callable[[str], Path]) -> None:
    with pytest.raises(StartupError, match="required plugin 'margin_police' is not installed"):
        build(settings_file('[default.plugins]\nrequired = ["margin_police"]\n'))


def test_disabled_plugin_is_not_even_imported(
    fake_dist: Callable[..., str], settings_file: Callable[[str], Path]
) -> None:
    prefix = fake_dist({"good": GOOD}, {"good_check": "good:Plugin"})
    rt = build(settings_file('[default.plugins]\ndisabled = ["good_check", "execution_engine"]\n'))
    assert record(rt, "good_check").status == "disabled"
    assert f"{prefix}.good" not in sys.modules
    rt.start()
    assert "symbol_not_allowed" not in [r.code for r in rt.decide(signal()).reasons]


def test_enabled_list_loads_only_those(settings_file: Callable[[str], Path]) -> None:
    rt = build(settings_file('[default.plugins]\nenabled = ["kill_switch", "risk_guard"]\n'))
    loaded = {r.name for r in rt.plugins if r.status == "loaded"}
    assert loaded == {"kill_switch", "risk_guard"}
    assert record(rt, "position_sizing").status == "disabled"


def test_unknown_plugin_name_in_lists_is_a_config_error(settings_file: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError, match=r"plugins\.disabled = 'kill_swich': no installed plugin of that name"):
        build(settings_file('[default.plugins]\ndisabled = ["kill_swich"]\n'))


def test_required_plugin_cannot_be_disabled_in_live(settings_file: Callable[[str], Path]) -> None:
    terminal = '[live.broker]\nmodule = "mt5linux"\n'  # live refuses the emulator before it looks at plugins
    path = settings_file(terminal + '[default.plugins]\ndisabled = ["kill_switch"]\n')
    with pytest.raises(StartupError, match="required plugins cannot be disabled in the live environment"):
        build(path, env="live")
    with pytest.raises(StartupError, match="'risk_guard' is switched off"):
        build(settings_file(terminal + '[live.plugins]\nenabled = ["kill_switch"]\n'), env="live")


def test_required_plugin_may_be_disabled_outside_live_with_a_warning(
    settings_file: Callable[[str], Path], caplog: pytest.LogCaptureFixture
) -> None:
    rt = build(settings_file('[default.plugins]\ndisabled = ["kill_switch"]\n'), env="paper")
    assert record(rt, "kill_switch").status == "disabled"


def test_disabled_plugins_settings_table_is_tolerated(settings_file: Callable[[str], Path]) -> None:
    path = settings_file('[default.plugins]\ndisabled = ["position_sizing"]\n[default.position_sizing]\nold = 1\n')
    assert record(build(path), "position_sizing").status == "disabled"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (MISSPELT_HOOK, "implements a hook the contract does not have"),
        (MISSPELT_ARG, "does not match the hook contract"),
        (WRAPPER, "wraps evaluate_risk: wrappers are not allowed"),
    ],
)
def test_contract_violation_stops_startup_naming_the_plugin(
    fake_dist: Callable[..., str], settings_file: Callable[[str], Path], source: str, message: str
) -> None:
    fake_dist({"odd": source}, {"odd_check": "odd:Plugin"})
    with pytest.raises(PluginError, match=message) as exc:
        build(settings_file(""))
    assert exc.value.plugin == "odd_check"
    assert "plugin 'odd_check' (distribution fake-plugins 1.2.3)" in str(exc.value)


def test_misspelt_argument_error_names_the_argument(
    fake_dist: Callable[..., str], settings_file: Callable[[str], Path]
) -> None:
    fake_dist({"odd": MISSPELT_ARG}, {"odd_check": "odd:Plugin"})
    with pytest.raises(PluginError, match="sig"):
        build(settings_file(""))
