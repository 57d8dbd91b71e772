"""Settings: every bad key stops start-up with its dotted name, the value and what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tradeguard import ConfigError
from tradeguard.kernel.runtime import Runtime
from tradeguard.plugins.risk.risk_guard import RiskGuard

GUARD = ("risk_guard", RiskGuard())


def build(path: Path | None = None, env: str | None = None) -> Runtime:
    return Runtime.build(path, env, discover=False, plugins=[GUARD])


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[default.risk_guard]\nmax_open = 3\n",
            "risk_guard.max_open = 3: unknown key; allowed keys: require_stop, max_risk_per_trade_pct",
        ),
        (
            '[default.risk_guard]\nmax_open_positions = "five"\n',
            "risk_guard.max_open_positions = 'five': Input should be a valid integer",
        ),
        (
            "[default.risk_guard]\nmax_open_positions = -1\n",
            "risk_guard.max_open_positions = -1: Input should be greater than or equal to 0",
        ),
        (
            "[default.risk_guard]\nmax_volume_per_order = 0.0\n",
            "risk_guard.max_volume_per_order = 0.0: Input should be greater than 0",
        ),
        (
            "[default.broker.emulator]\nspeed = 2\n",  # a nested table's key: the nested table's keys are listed
            "broker.emulator.speed = 2: unknown key; allowed keys: data, data_kind, timeframe",
        ),
        ("[default.risk_gaurd]\nmax_open_positions = 1\n", "risk_gaurd: unknown settings table"),
        ('[default.logging]\nlevel = "LOUD"\n', "logging.level = 'LOUD': Input should be 'DEBUG'"),
        ("[default.pipeline]\nmin_score = 1.5\n", "pipeline.min_score = 1.5: Input should be less than or equal to 1"),
        ('[default.runtime]\ninstance = "far-too-long"\n', "runtime.instance = 'far-too-long'"),
        ("[default]\nrisk_guard = 5\n", "risk_guard = 5: must be a table"),
    ],
)
def test_bad_setting_is_refused_naming_key_value_and_allowed(
    settings_file: Callable[[str], Path], toml: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        build(settings_file(toml))
    assert expected in str(exc.value)


def test_every_problem_is_reported_at_once(settings_file: Callable[[str], Path]) -> None:
    path = settings_file("[default.risk_guard]\nmax_open_positions = -1\nbogus = 1\n")
    with pytest.raises(ConfigError) as exc:
        build(path)
    assert len(exc.value.problems) == 2


def test_environment_table_overrides_default(settings_file: Callable[[str], Path]) -> None:
    path = settings_file("[default.risk_guard]\nmax_open_positions = 5\n[paper.risk_guard]\nmax_open_positions = 3\n")
    assert build(path).settings.risk_guard.max_open_positions == 5
    rt = build(path, env="paper")
    assert rt.settings.risk_guard.max_open_positions == 3
    assert rt.settings.env == "paper"


def test_tradeguard_env_variable_selects_environment(
    settings_file: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = settings_file('[live.risk_guard]\nmax_open_positions = 1\n[live.broker]\nmodule = "mt5linux"\n')
    monkeypatch.setenv("TRADEGUARD_ENV", "live")
    assert build(path).settings.risk_guard.max_open_positions == 1


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="TRADEGUARD_ENV = 'staging': allowed: default, paper, live"):
        build(env="staging")


def test_environment_variable_overrides_with_double_underscore_nesting(
    settings_file: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = settings_file("[default.risk_guard]\nmax_open_positions = 5\nmax_positions_per_symbol = 2\n")
    monkeypatch.setenv("TRADEGUARD_RISK_GUARD__MAX_OPEN_POSITIONS", "3")
    rt = build(path)
    assert rt.settings.risk_guard.max_open_positions == 3
    assert rt.settings.risk_guard.max_positions_per_symbol == 2  # merged, not replaced


def test_a_later_layer_replaces_a_list_instead_of_adding_to_it(
    settings_file: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """dynaconf's merge appended lists: an environment's `required` or `symbols` added to the default's."""
    path = settings_file(
        '[default.plugins]\nrequired = ["kill_switch", "risk_guard"]\n'
        '[paper.plugins]\nrequired = ["risk_guard"]\n'
        '[default.runtime]\nsymbols = ["EURUSD"]\ntimeframe = "H4"\n'
    )
    assert build(path, env="paper").settings.plugins.required == ["risk_guard"]
    monkeypatch.setenv("TRADEGUARD_RUNTIME__SYMBOLS", '["GBPUSD"]')
    runtime = build(path).settings.runtime
    assert (runtime.symbols, runtime.timeframe) == (["GBPUSD"], "H4")  # the list replaced, the table merged


def test_a_table_outside_the_environments_is_refused(settings_file: Callable[[str], Path]) -> None:
    """dynaconf took [risk_guard] for an environment nobody selects and ignored it without a word."""
    with pytest.raises(ConfigError, match=r"\[risk_guard\] is not an environment: settings go in \[default.<table>\]"):
        build(settings_file("[risk_guard]\nmax_open_positions = 1\n"))


def test_environment_variable_with_wrong_type_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGUARD_RISK_GUARD__MAX_OPEN_POSITIONS", "lots")
    with pytest.raises(ConfigError, match=r"risk_guard\.max_open_positions = 'lots'"):
        build()


def test_defaults_apply_without_a_file() -> None:
    rt = build()
    assert rt.settings.source is None
    assert rt.settings.risk_guard.max_open_positions == 5
    assert rt.settings.plugins.required == ["kill_switch", "risk_guard"]


def test_missing_explicit_file_and_broken_toml_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: not found"):
        build(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[default.risk_guard\nmax_open_positions = 1\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: cannot be read"):
        build(broken)


def test_secrets_file_is_read_and_secrets_never_shown(settings_file: Callable[[str], Path], tmp_path: Path) -> None:
    from pydantic import Field, SecretStr

    from tradeguard import PluginSettings, hookimpl

    class ChannelSettings(PluginSettings):
        api_token: SecretStr = Field(default=SecretStr(""))
        retries: int = 3

    class Channel:
        @hookimpl
        def tradeguard_settings(self) -> type[ChannelSettings]:
            return ChannelSettings

    path = settings_file("[default.channel]\nretries = 2\n")
    (tmp_path / ".secrets.toml").write_text('[default.channel]\napi_token = "s3cr3t-value"\n')
    rt = Runtime.build(path, discover=False, plugins=[("channel", Channel())])
    assert rt.settings.channel.api_token.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in str(rt.settings.redacted())
    assert rt.settings.redacted()["channel"]["api_token"] == "<redacted>"
    (tmp_path / ".secrets.toml").write_text("[default.channel]\napi_token = 12345678\n")
    with pytest.raises(ConfigError) as exc:
        Runtime.build(path, discover=False, plugins=[("channel", Channel())])
    assert "channel.api_token = <redacted>" in str(exc.value) and "12345678" not in str(exc.value)


def test_live_refuses_the_emulator(settings_file: Callable[[str], Path]) -> None:
    """An operator who forgot broker.module must not believe a replayed market is the account."""
    with pytest.raises(ConfigError, match=r"broker\.module = 'emulator': the live environment trades a real account"):
        build(settings_file("[default.risk_guard]\nmax_open_positions = 1\n"), env="live")
    assert build(settings_file(""), env="paper").settings.broker.module == "emulator"


def test_live_keeps_the_wall_clock(settings_file: Callable[[str], Path]) -> None:
    terminal = '[live.broker]\nmodule = "mt5linux"\n'
    with pytest.raises(ConfigError, match=r"runtime\.clock = 'market': live judges stale quotes"):
        build(settings_file(terminal + '[default.runtime]\nclock = "market"\n'), env="live")
    assert build(settings_file('[default.runtime]\nclock = "market"\n'), env="paper").settings.runtime.clock == "market"


def test_live_keeps_the_kill_switch_and_risk_guard_required(settings_file: Callable[[str], Path]) -> None:
    """A [live.plugins] required list replaces the default's; it may add to the floor, never drop from it."""
    path = settings_file('[live.plugins]\nrequired = ["kill_switch"]\n[live.broker]\nmodule = "mt5linux"\n')
    with pytest.raises(
        ConfigError,
        match=r"plugins\.required = \['kill_switch'\]: live trades only with "
        r"kill_switch and risk_guard required: add risk_guard",
    ):
        build(path, env="live")
    assert build(path, env="paper").settings.plugins.required == ["kill_switch", "risk_guard"]  # [live.*] only
    more = settings_file(
        '[live.plugins]\nrequired = ["kill_switch", "risk_guard", "x"]\n[live.broker]\nmodule = "mt5linux"\n'
    )
    assert build(more, env="live").settings.plugins.required == ["kill_switch", "risk_guard", "x"]
