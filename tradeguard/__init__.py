"""tradeguard: the control plane between trading strategies and a MetaTrader 5 account.

Everything is a plugin. A third-party check is a package that declares an entry point::

    # pyproject.toml
    [project.entry-points."tradeguard.plugins"]
    max_spread = "my_checks:MaxSpread"

and implements hooks from :mod:`tradeguard.hookspecs`::

    from pydantic import Field
    from tradeguard import PluginSettings, Reason, hookimpl

    class MaxSpreadSettings(PluginSettings):
        max_points: int = Field(default=20, ge=0)

    class MaxSpread:
        @hookimpl
        def tradeguard_settings(self):
            return MaxSpreadSettings                 # table [default.max_spread]

        @hookimpl
        def validate_signal(self, signal, runtime):
            limit = runtime.settings.max_spread.max_points
            spread = signal.metadata.get("spread_points", 0)
            if spread > limit:
                return [Reason(code="spread_too_wide", message=f"spread_too_wide: {spread} > {limit} points")]
            return []

``pip install`` it and it is discovered; ``plugins.disabled = ["max_spread"]`` switches it off.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from tradeguard.core.configured import ConfiguredPlugin, WriteBehindPlugin
from tradeguard.core.schema import PluginSettings
from tradeguard.errors import (
    ConfigError,
    IllegalStateTransition,
    PluginError,
    StartupError,
    TradeguardError,
)
from tradeguard.hookspecs import hookimpl
from tradeguard.models import (
    AccountSnapshot,
    Alert,
    AlertChannel,
    Bar,
    ClosedBy,
    DealEntry,
    Decision,
    Fill,
    HaltEvent,
    HealthReport,
    HealthStatus,
    Job,
    KillState,
    OperatorAction,
    OrderEvent,
    OrderEventKind,
    OrderIntent,
    OrderState,
    OrderType,
    Position,
    Reason,
    ReconciliationReport,
    Rejected,
    Score,
    Severity,
    Side,
    Signal,
    Targets,
    TradeOutcome,
)
from tradeguard.ports import Broker, Execution, Held, JournalEntry, JournalView, Runtime, Store

try:
    __version__ = version("tradeguard")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AccountSnapshot",
    "Alert",
    "AlertChannel",
    "Bar",
    "Broker",
    "ClosedBy",
    "ConfigError",
    "ConfiguredPlugin",
    "DealEntry",
    "Decision",
    "Execution",
    "Fill",
    "HaltEvent",
    "HealthReport",
    "HealthStatus",
    "Held",
    "IllegalStateTransition",
    "Job",
    "JournalEntry",
    "JournalView",
    "KillState",
    "OperatorAction",
    "OrderEvent",
    "OrderEventKind",
    "OrderIntent",
    "OrderState",
    "OrderType",
    "PluginError",
    "PluginSettings",
    "Position",
    "Reason",
    "ReconciliationReport",
    "Rejected",
    "Runtime",
    "Score",
    "Severity",
    "Side",
    "Signal",
    "StartupError",
    "Store",
    "Targets",
    "TradeOutcome",
    "TradeguardError",
    "WriteBehindPlugin",
    "__version__",
    "hookimpl",
]
