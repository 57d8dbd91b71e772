"""tradeguard: the control plane between trading strategies and a MetaTrader 5 account.

Everything is a plugin. A third-party check is a package that declares an entry point::

    # pyproject.toml
    [project.entry-points."tradeguard.plugins"]
    max_spread = "my_checks:MaxSpread"

and implements hooks from :mod:`tradeguard.hookspecs`::

    from pydantic import Field
    from tradeguard import PluginSettings, Reason, Runtime, Signal, hookimpl

    class MaxSpreadSettings(PluginSettings):
        max_points: int = Field(default=20, ge=0)

    class MaxSpread:
        @hookimpl
        def tradeguard_settings(self) -> type[PluginSettings]:
            return MaxSpreadSettings                 # table [default.max_spread]

        @hookimpl
        def validate_signal(self, signal: Signal, runtime: Runtime) -> list[Reason]:
            limit = runtime.settings.max_spread.max_points
            quote = runtime.broker.quote(signal.symbol)
            spread = (quote.ask - quote.bid) / runtime.broker.symbol_spec(signal.symbol).point
            if spread > limit:
                return [Reason(code="spread_too_wide", message=f"spread_too_wide: {spread:.0f} > {limit} points")]
            return []

``pip install`` it and it is discovered; ``plugins.disabled = ["max_spread"]`` switches it off.

A plugin imports only ``tradeguard``: the models, the hook marker, the typed ports it is handed
(``Runtime``, ``Broker``, ``Execution``, ``JournalView``, ``Store``: typing.Protocols, checked by mypy) and
the kernel's helpers exported below. ``tradeguard.kernel``, ``store``, ``cli``, ``replay`` and ``broker`` are
internals that may change; an import-linter contract holds the built-in plugins to this.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from tradeguard.broker.server_time import shown_offset

# What a plugin may use of the kernel's own, beside the models and ports above: a plugin imports only
# ``tradeguard`` (an import-linter contract holds the built-in ones to it).
from tradeguard.broker.types import (
    HISTORY_END,
    HISTORY_START,
    BrokerDeal,
    BrokerOrder,
    BrokerPosition,
    DealKind,
    SymbolSpec,
)
from tradeguard.errors import (
    ConfigError,
    IllegalStateTransition,
    PluginError,
    StartupError,
    TradeguardError,
)
from tradeguard.fleet.database import AccountFigures, Ask, BookRow, FleetKill, FleetUnreachable
from tradeguard.fleet.link import FleetLink
from tradeguard.fleet.settings import FleetLimits
from tradeguard.hookspecs import hookimpl
from tradeguard.kernel.bars import rolling_atr, true_ranges
from tradeguard.kernel.clock import backoff, server_midnight
from tradeguard.kernel.configured import ConfiguredPlugin, WriteBehindPlugin
from tradeguard.kernel.metrics import Children, Readings, on_scrape, seed
from tradeguard.kernel.operator_desk import REQUEST_TTL_SECONDS
from tradeguard.kernel.operator_secret import verify_secret
from tradeguard.kernel.pipeline import score_bucket
from tradeguard.kernel.schema import (
    PluginSettings,
    validated_for_live,
)
from tradeguard.kernel.sessions import OFF_SESSION, session_of
from tradeguard.kernel.status import kill_switch_record, read_status
from tradeguard.kernel.tokens import TokenEntry, holder
from tradeguard.kernel.triggers import action_for
from tradeguard.kernel.windows import SortedWindow, percentile
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
    NettingEffect,
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
from tradeguard.store.audit import GENESIS, canonical, chain_hash, missing_from_chain, write_anchor
from tradeguard.store.sqlite import Store as SQLiteStore
from tradeguard.store.sqlite import StoreUnwritable, iso

try:
    __version__ = version("tradeguard")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "GENESIS",
    "HISTORY_END",
    "HISTORY_START",
    "OFF_SESSION",
    "REQUEST_TTL_SECONDS",
    "AccountFigures",
    "AccountSnapshot",
    "Alert",
    "AlertChannel",
    "Ask",
    "Bar",
    "BookRow",
    "Broker",
    "BrokerDeal",
    "BrokerOrder",
    "BrokerPosition",
    "Children",
    "ClosedBy",
    "ConfigError",
    "ConfiguredPlugin",
    "DealEntry",
    "DealKind",
    "Decision",
    "Execution",
    "Fill",
    "FleetKill",
    "FleetLimits",
    "FleetLink",
    "FleetUnreachable",
    "HaltEvent",
    "HealthReport",
    "HealthStatus",
    "Held",
    "IllegalStateTransition",
    "Job",
    "JournalEntry",
    "JournalView",
    "KillState",
    "NettingEffect",
    "OperatorAction",
    "OrderEvent",
    "OrderEventKind",
    "OrderIntent",
    "OrderState",
    "OrderType",
    "PluginError",
    "PluginSettings",
    "Position",
    "Readings",
    "Reason",
    "ReconciliationReport",
    "Rejected",
    "Runtime",
    "SQLiteStore",
    "Score",
    "Severity",
    "Side",
    "Signal",
    "SortedWindow",
    "StartupError",
    "Store",
    "StoreUnwritable",
    "SymbolSpec",
    "Targets",
    "TokenEntry",
    "TradeOutcome",
    "TradeguardError",
    "WriteBehindPlugin",
    "__version__",
    "action_for",
    "backoff",
    "canonical",
    "chain_hash",
    "holder",
    "hookimpl",
    "iso",
    "kill_switch_record",
    "missing_from_chain",
    "on_scrape",
    "percentile",
    "read_status",
    "rolling_atr",
    "score_bucket",
    "seed",
    "server_midnight",
    "session_of",
    "shown_offset",
    "true_ranges",
    "validated_for_live",
    "verify_secret",
    "write_anchor",
]
