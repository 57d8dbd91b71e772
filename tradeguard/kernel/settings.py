"""Settings: read in layers, pydantic models validate every key before anything trades.

Sources, later ones winning: the built-in defaults of each model, ``settings.toml`` (tables
``[default.*]`` then the selected environment's ``[paper.*]``/``[live.*]``), ``.secrets.toml``
beside it, and environment variables ``TRADEGUARD_<TABLE>__<KEY>`` (``__`` nests; dynaconf parses them). The
environment is chosen by ``TRADEGUARD_ENV`` (``default``, ``paper`` or ``live``).

Each plugin declares its table through ``tradeguard_settings()``; the kernel owns the tables
below. An unknown table or key, a wrong type or an out-of-range value is a ``ConfigError``
naming the dotted key, the value (redacted when the key is a secret) and what is allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator

from tradeguard.broker.settings import BrokerSettings
from tradeguard.errors import ConfigError
from tradeguard.fleet.settings import FleetSettings
from tradeguard.kernel.schema import PluginSettings, validated_for_live
from tradeguard.kernel.sessions import DEFAULT_SESSIONS, check_sessions
from tradeguard.kernel.triggers import MOVED, TriggersSettings

__all__ = ["KERNEL_TABLES", "PluginSettings", "Settings", "validate"]

ENVIRONMENTS = ("default", "paper", "live")
#: What a live trading process cannot run without: the latched kill switch and the hard limits that trip it.
LIVE_FLOOR = ("kill_switch", "risk_guard")
ENV_VAR = "TRADEGUARD_ENV"
FILE_VAR = "TRADEGUARD_SETTINGS_FILE"
#: Keys dynaconf itself (or our own switches) put in the tree; they are not settings.
#: TRADEGUARD_OPERATOR / TRADEGUARD_OPERATOR_SECRET feed the CLI's kill/reset, never the settings tree.
_META_KEYS = frozenset({"env", "load_dotenv", "settings_file", "operator", "operator_secret"})
#: Key names whose values are never shown. URLs are credentials too: a database URL may hold its password, and
#: anyone holding a Slack incoming-webhook URL can post to the channel.
SECRET_KEY = re.compile(r"secret|password|passwd|token|api_key|apikey|hmac|private|credential|url", re.I)
REDACTED = "<redacted>"


class PluginsSettings(PluginSettings):
    """``[default.plugins]``: which discovered plugins load."""

    enabled: list[str] | None = Field(
        default=None, description="when set, only these plugins load (the production style)"
    )
    disabled: list[str] = Field(default_factory=list, description="plugins that do not load")
    required: list[str] = Field(
        default_factory=lambda: ["kill_switch", "risk_guard"],
        description="plugins that must load; they cannot be disabled in the live environment",
    )

    @field_validator("required")
    @classmethod
    def _safety_floor_live(cls, value: list[str], info: ValidationInfo) -> list[str]:
        """A live [plugins] required list replaces the default's: it must not drop what stops a bad day."""
        missing = [name for name in LIVE_FLOOR if name not in value]
        if missing and validated_for_live(info, trading=True):
            raise ValueError(f"live trades only with {' and '.join(LIVE_FLOOR)} required: add {', '.join(missing)}")
        return value


class LoggingSettings(PluginSettings):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: str = Field(default="", description="log file; empty = standard error")
    format: Literal["auto", "text", "json"] = Field(
        default="auto", description="text lines or JSON objects; auto: text on a terminal, JSON otherwise"
    )


class PipelineSettings(PluginSettings):
    min_score: float = Field(default=0.0, ge=0.0, le=1.0, description="combined score gate; 0 = off")
    score_weights: dict[str, float] = Field(
        default_factory=dict, description="scorer name -> weight in the combined score (default 1)"
    )
    sessions: dict[str, list[int]] = Field(
        default_factory=lambda: dict(DEFAULT_SESSIONS),
        description="session name -> [start_hour, end_hour) UTC; first match wins; other hours are 'off'",
    )

    _sessions = field_validator("sessions")(check_sessions)

    @field_validator("score_weights")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not v >= 0}
        if bad:
            raise ValueError(f"weights must be >= 0, got {bad}")
        return value


class RuntimeSettings(PluginSettings):
    instance: str = Field(
        default="tg",
        pattern=r"^[A-Za-z0-9]{1,6}$",
        description="short instance tag; prefixes client ids (kept short: the MT5 comment holds 26 chars)",
    )
    magic: int = Field(default=20261125, ge=0, le=2**63 - 1, description="MT5 magic number of this instance")
    data_dir: str = Field(default="var", description="where the store, exports and reports live")
    symbols: list[str] = Field(
        default_factory=lambda: ["EURUSD"],
        description="symbols `run` follows; unset over the built-in emulator: those its data replays",
    )
    timeframe: str = Field(default="H1", description="the bars `run` hands to the strategies")
    poll_seconds: float = Field(default=1.0, gt=0, le=60, description="how often `run` polls the broker")
    emulator_ticks_per_poll: int = Field(default=4, ge=0, description="in-process emulator: ticks per poll in `run`")
    clock: Literal["auto", "wall", "market"] = Field(
        default="auto",
        validate_default=True,
        description="`run`'s clock: 'market' follows a simulated market's time (the emulator, in process or "
        "served), 'wall' is the machine's; 'auto' is the market's over the built-in emulator, outside live",
    )
    gc_tuning: bool = Field(
        default=True, description="after start-up, freeze the start-up objects and collect young garbage less often"
    )

    @field_validator("clock")
    @classmethod
    def _wall_clock_live(cls, value: str, info: ValidationInfo) -> str:
        if value == "market" and validated_for_live(info):
            raise ValueError("live judges stale quotes and order timeouts by the machine's clock: 'auto' or 'wall'")
        return value


class StoreSettings(PluginSettings):
    """``[default.store]``: the embedded SQLite store."""

    path: str = Field(default="tradeguard.db", description="the store file, relative to runtime.data_dir")
    synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL", description="FULL survives a power cut, NORMAL a process kill"
    )


#: The kernel's own tables.
KERNEL_TABLES: dict[str, type[BaseModel]] = {
    "plugins": PluginsSettings,
    "logging": LoggingSettings,
    "pipeline": PipelineSettings,
    "runtime": RuntimeSettings,
    "broker": BrokerSettings,
    "store": StoreSettings,
    "triggers": TriggersSettings,
    "fleet": FleetSettings,
}


class Settings:
    """The validated settings tree: ``settings.risk_guard.max_open_positions``.

    Each table is the plugin's (or kernel's) immutable pydantic model.
    """

    def __init__(self, env: str, tables: Mapping[str, BaseModel], source: Path | None) -> None:
        self.env = env
        self.source = source
        self._tables = dict(tables)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._tables[name]
        except KeyError:
            raise AttributeError(f"no settings table {name!r}") from None

    def __getitem__(self, name: str) -> BaseModel:
        return self._tables[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tables

    def tables(self) -> dict[str, BaseModel]:
        return dict(self._tables)

    def redacted(self) -> dict[str, Any]:
        """The whole tree as plain data with every secret replaced: safe to print or log."""
        return {name: redact(model.model_dump(mode="json")) for name, model in self._tables.items()}


def redact(value: Any, key: str = "") -> Any:
    if key and SECRET_KEY.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _lower_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def resolve_env(env: str | None) -> str:
    chosen = (env or os.environ.get(ENV_VAR) or "default").lower()
    if chosen not in ENVIRONMENTS:
        raise ConfigError([f"{ENV_VAR} = {chosen!r}: allowed: {', '.join(ENVIRONMENTS)}"])
    return chosen


def resolve_file(path: str | Path | None) -> Path | None:
    """The settings file: the argument, else ``$TRADEGUARD_SETTINGS_FILE``, else ``./settings.toml``."""
    explicit = path or os.environ.get(FILE_VAR)
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise ConfigError([f"settings file {p}: not found"])
        return p
    default = Path("settings.toml")
    return default if default.is_file() else None


def load_raw(path: Path | None, env: str) -> dict[str, Any]:
    """Read files and environment for ``env`` into a plain lower-cased tree (not yet validated).

    Layers merge table by table and a later layer's value replaces the key: a list too. (dynaconf's
    ``merge_enabled`` appends lists, so ``TRADEGUARD_RUNTIME__SYMBOLS='["GBPUSD"]'`` used to follow
    EURUSD and GBPUSD, and ``[live.plugins] enabled`` added to the default's instead of choosing.)
    The files are TOML, read here; dynaconf reads the environment variables (TOML-typed, ``__`` nests).
    """
    tree: dict[str, Any] = {}
    files = [] if path is None else [path, path.with_name(".secrets.toml")]
    for file in files:
        if file == path or file.is_file():
            layers = _environment_tables(file)
            for name in dict.fromkeys(("default", env)):
                merge(tree, layers.get(name, {}))
    merge(tree, _environment_variables())
    return {k: v for k, v in tree.items() if k not in _META_KEYS}


def _environment_tables(file: Path) -> dict[str, dict[str, Any]]:
    """``{environment: its tables}`` of one settings file; anything else at the top is refused by name."""
    import tomllib

    try:
        with file.open("rb") as fh:
            data: dict[str, dict[str, Any]] = _lower_keys(tomllib.load(fh))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"{file}: cannot be read: {exc}"]) from exc
    stray = [k for k, v in data.items() if k not in ENVIRONMENTS or not isinstance(v, dict)]
    if stray:
        raise ConfigError(
            [
                f"{file}: [{k}] is not an environment: settings go in [default.<table>], "
                "[paper.<table>] or [live.<table>]"
                for k in stray
            ]
        )
    return data


def _environment_variables() -> dict[str, Any]:
    from dynaconf import Dynaconf  # deferred: dynaconf import costs ~50 ms, only start-up needs it

    try:
        tables: dict[str, Any] = _lower_keys(
            Dynaconf(envvar_prefix="TRADEGUARD", environments=False, load_dotenv=False).as_dict()
        )
        return tables
    except Exception as exc:  # dynaconf raises many types for a value it cannot parse
        raise ConfigError([f"environment variables TRADEGUARD_*: cannot be read: {exc}"]) from exc


def merge(tree: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """Lay ``layer`` over ``tree`` in place: tables merge key by key, any other value replaces."""
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(tree.get(key), dict):
            merge(tree[key], value)
        else:
            tree[key] = dict(value) if isinstance(value, Mapping) else value


def _owner(model: type[BaseModel], path: list[str]) -> type[BaseModel]:
    """The nested table a key's path leads to (``broker.emulator.x`` is the emulator's key, not the broker's)."""
    for part in path:
        field = model.model_fields.get(part)
        inner = field.annotation if field is not None else None
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            break
        model = inner
    return model


def _describe(table: str, model: type[BaseModel], err: Any) -> str:
    loc = [str(p) for p in err["loc"]]
    dotted = ".".join([table, *loc])
    value = err.get("input")
    shown = REDACTED if any(SECRET_KEY.search(p) for p in loc) else repr(value)
    if err["type"] == "extra_forbidden" and dotted in MOVED:
        return f"{dotted}: moved; set {MOVED[dotted]}"
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(_owner(model, loc[:-1]).model_fields) or "none"
        return f"{dotted} = {shown}: unknown key; allowed keys: {allowed}"
    if err["type"] == "missing":
        return f"{dotted}: required, not set"
    return f"{dotted} = {shown}: {err['msg'].removeprefix('Value error, ')}"  # a validator's own words


def validate_table(
    table: str, model: type[BaseModel], data: Any, context: Mapping[str, Any] | None = None
) -> tuple[BaseModel | None, list[str]]:
    """One table. A model that needs to know what the settings are for (what live demands of a trading
    process) reads the validation context: ``info.context["env"]``, and ``info.context["trading"]``,
    False for the operator's commands (``kill`` must work wherever the journal can be reached)."""
    if not isinstance(data, Mapping):
        return None, [f"{table} = {redact(data, table)!r}: must be a table of keys"]
    try:
        return model.model_validate(dict(data), context=dict(context or {})), []
    except ValidationError as exc:
        return None, [_describe(table, model, e) for e in exc.errors()]


def validate(
    raw: Mapping[str, Any],
    models: Mapping[str, type[BaseModel]],
    *,
    env: str,
    source: Path | None,
    tolerated: Iterable[str] = (),
    trading: bool = True,
) -> Settings:
    """Validate the whole tree; collect every problem, then raise one ``ConfigError`` for all of them.

    ``tolerated`` names tables of plugins that are installed but not loaded (disabled, failed):
    their tables are kept out of validation instead of being reported as unknown.
    """
    problems: list[str] = []
    skip = set(tolerated)
    for key in raw:
        if key not in models and key not in skip:
            known = ", ".join(sorted(models))
            problems.append(f"{key}: unknown settings table; known tables: {known}")
    tables: dict[str, BaseModel] = {}
    for name, model in models.items():
        value, errs = validate_table(name, model, raw.get(name, {}), {"env": env, "trading": trading})
        problems.extend(errs)
        if value is not None:
            tables[name] = value
    if problems:
        raise ConfigError(problems)
    _follow_the_data(tables)
    return Settings(env, tables, source)


def _follow_the_data(tables: dict[str, BaseModel]) -> None:
    """Over the built-in emulator, ``runtime.symbols`` left unset follows the symbols its data replays."""
    runtime, broker = tables.get("runtime"), tables.get("broker")
    if (
        isinstance(runtime, RuntimeSettings)
        and isinstance(broker, BrokerSettings)
        and broker.module == "emulator"
        and "symbols" not in runtime.model_fields_set
    ):
        tables["runtime"] = runtime.model_copy(update={"symbols": list(broker.emulator.datasets())})
