"""THE contract between the tradeguard kernel and every plugin, built-in or third-party.

Hooks are listed in lifecycle order. Every hook is called with keyword arguments; an
implementation may accept any subset of them (pluggy matches by name). The kernel calls the
pipeline hooks itself, one implementation at a time, so that it can say *which* plugin decided:

* **gate** hooks (``validate_signal``, ``score_signal``) collect from every implementation;
* **firstresult** hooks (``compute_targets``, ``size_position``, ``evaluate_risk``) stop at the
  first implementation that returns something other than ``None``; ``tryfirst``/``trylast``
  order the chain (the kill switch is ``tryfirst`` on ``evaluate_risk``);
* **observer** hooks (``on_*``) are told about something that happened; their result is ignored.

If an implementation raises inside a gate or firstresult hook the signal **fails closed**: it is
rejected with the reason ``plugin_error:<plugin>``, the error is counted and alerted. If it raises
inside an observer hook it is **isolated**: logged, counted and alerted, and the other observers
still run. Hook wrappers (``wrapper=True``/``hookwrapper=True``) are refused on pipeline and
observer hooks, because they would hide which plugin decided.

Version note: contract version 1 (tradeguard 0.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pydantic import BaseModel

    from tradeguard.models import (
        AccountSnapshot,
        Alert,
        Bar,
        Decision,
        Fill,
        HaltEvent,
        HealthReport,
        Job,
        OperatorAction,
        OrderEvent,
        OrderIntent,
        ReconciliationReport,
        Rejected,
        Score,
        Signal,
        Targets,
    )
    from tradeguard.models import Reason as _Reason
    from tradeguard.ports import Runtime

PROJECT = "tradeguard"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Hooks the kernel calls one implementation at a time (see the module docstring).
GATE_HOOKS = ("validate_signal", "score_signal")
FIRSTRESULT_HOOKS = ("compute_targets", "size_position", "evaluate_risk")
OBSERVER_HOOKS = (
    "on_bar",
    "on_decision",
    "on_order_event",
    "on_fill",
    "on_account_snapshot",
    "on_health",
    "on_reconciliation",
    "on_halt",
    "on_alert",
)


# ---------------------------------------------------------------- lifecycle -----------------


@hookspec
def tradeguard_settings() -> type[BaseModel] | None:
    """Declare this plugin's settings: a pydantic model class, validated at start-up.

    Called once, before anything else. The model's fields are the keys of the plugin's own
    table, named after the plugin (``[default.risk_guard]``); their defaults are the plugin's
    defaults. Make the model ``extra="forbid"`` (``tradeguard.PluginSettings`` does): an unknown
    key, a wrong type or an out-of-range value then stops start-up with the dotted key name.
    Return ``None`` when the plugin has no settings. Raising stops start-up.
    """


@hookspec
def tradeguard_startup(runtime: Runtime) -> None:
    """The runtime started this plugin's stage; take services from ``runtime`` here.

    Raising fails the stage and therefore start-up (a plugin that cannot start must not trade).
    """


@hookspec
def periodic_jobs(runtime: Runtime) -> list[Job] | None:
    """Return ``Job(name, every, run)`` entries for the scheduler; called once after start-up.

    Jobs run on the runtime clock (replay or wall clock). A job that raises is isolated.
    """


@hookspec
def tradeguard_shutdown(runtime: Runtime) -> None:
    """The process is stopping (signal, end of replay): flush, close, release. Isolated."""


# ---------------------------------------------------------------- signals -------------------


@hookspec
def generate_signals(bar: Bar, runtime: Runtime) -> list[Signal] | None:
    """A bar closed for ``bar.symbol``/``bar.timeframe``: return the strategy's signals (or None).

    Results from every strategy are concatenated. Raising is isolated (the other strategies run).
    All of a bar's signals are collected before the first is decided, and they are visible to
    scorers as ``runtime.bar_signals`` (so a scorer can see which strategies agree).
    """


@hookspec
def on_bar(bar: Bar, runtime: Runtime) -> None:
    """A bar closed, before the strategies speak. Isolated.

    Added to DESIGN §3's list for analytics that follow price after a signal (accuracy labels).
    """


# ---------------------------------------------------------------- the decision pipeline -----


@hookspec
def validate_signal(signal: Signal, runtime: Runtime) -> list[_Reason | str] | None:
    """Gate: return every reason this signal must not trade (empty list or None = fine).

    Reasons from **all** implementations are collected; the signal is rejected when any
    reason is returned. A ``str`` is taken as a reason code. Raising rejects with
    ``plugin_error:<plugin>`` (fail closed).
    """


@hookspec
def score_signal(signal: Signal, runtime: Runtime) -> Score | None:
    """Gate: return a confluence ``Score`` in [0, 1] (or None to abstain).

    Scores from all implementations are combined as a weighted mean (``pipeline.score_weights``);
    a combined score below ``pipeline.min_score`` rejects with ``score_below_minimum``.
    Raising rejects with ``plugin_error:<plugin>``.
    """


@hookspec(firstresult=True)
def compute_targets(signal: Signal, runtime: Runtime) -> Targets | Rejected | None:
    """Firstresult: return ``Targets(stop_loss, take_profit)``, or ``Rejected`` if no valid stop exists.

    ``None`` passes to the next implementation; if all return ``None`` the signal's own
    stop/take-profit are used, and a signal without a stop is rejected with ``no_targets``.
    Raising rejects with ``plugin_error:<plugin>``.
    """


@hookspec(firstresult=True)
def size_position(signal: Signal, targets: Targets, runtime: Runtime) -> float | Rejected | None:
    """Firstresult: return the volume in lots, or ``Rejected`` (e.g. the minimum lot exceeds the budget).

    ``None`` passes to the next implementation; if all return ``None`` the signal is rejected
    with ``no_size``. A non-positive or non-finite volume is a plugin error (fail closed).
    """


@hookspec(firstresult=True)
def evaluate_risk(order: OrderIntent, runtime: Runtime) -> Rejected | None:
    """Firstresult veto on the complete order (volume and stop known): ``None`` approves.

    The first ``Rejected(reason, plugin)`` stops the chain and the order is not sent. The kill
    switch implements this ``tryfirst``. Raising rejects with ``plugin_error:<plugin>``.
    Also called by the execution engine for operator orders (closes, flatten) so that the kill
    switch sees every order; such orders have ``reduces_exposure`` true.
    """


# ---------------------------------------------------------------- observers -----------------


@hookspec
def on_decision(decision: Decision, signal: Signal, runtime: Runtime) -> None:
    """A signal went through the pipeline (approved or not, every reason). Isolated.

    Added to DESIGN §3's list for the audit trail and analytics: every decision is observable.
    """


@hookspec
def on_order_event(event: OrderEvent, runtime: Runtime) -> None:
    """An order changed state (submitted, accepted, rejected, cancelled, expired, ...). Isolated."""


@hookspec
def on_fill(fill: Fill, runtime: Runtime) -> None:
    """A new broker deal; fired exactly once per deal ticket, also across restarts. Isolated."""


@hookspec
def on_account_snapshot(snapshot: AccountSnapshot, runtime: Runtime) -> None:
    """An account capture with drawdown figures. Isolated."""


@hookspec
def on_health(report: HealthReport, runtime: Runtime) -> None:
    """A health aggregation (OK / DEGRADED / CRITICAL). Isolated."""


@hookspec
def on_reconciliation(report: ReconciliationReport, runtime: Runtime) -> None:
    """A reconciliation between the journal and the terminal finished. Isolated."""


@hookspec
def on_halt(event: HaltEvent, runtime: Runtime) -> None:
    """A halt was requested through ``runtime.request_halt``: the kill switch latches, others react."""


@hookspec
def on_operator_action(action: OperatorAction, runtime: Runtime) -> None:
    """An operator's order was carried out (or refused): flatten, close, stop changes. The audit trail chains it."""


@hookspec
def on_alert(alert: Alert, runtime: Runtime) -> None:
    """``runtime.alert(...)`` raised an alert: the alerting plugin delivers it. Isolated (not re-alerted)."""


def _all_hook_names() -> tuple[str, ...]:
    return tuple(name for name, obj in globals().items() if hasattr(obj, f"{PROJECT}_spec"))


HOOK_NAMES: tuple[str, ...] = _all_hook_names()

__all__ = ["HOOK_NAMES", "PROJECT", "hookimpl", "hookspec"]
