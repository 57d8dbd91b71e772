"""What each automatic trigger does: one table, ``[default.triggers]`` (issue 24).

A rule's own keys say *when* it fires (``risk_guard.daily_loss_limit_pct``, ``kill_switch.latency_ms``,
``position_reconciler.halt_after_issues``, ...); this table says *what* follows: the state the kill
switch latches (``OFF`` latches nothing, the alert still goes out) and whether every position of ours
is closed too. ``Runtime.request_halt`` reads it for every trigger it names (:data:`TRIGGERS`); a trigger
it does not name (an operator's kill, a third-party plugin's) keeps the state it asked for.

:func:`ineffective` lists the settings that can never take effect together (``flatten_on_halt`` with
triggers that latch ``REDUCE_ONLY``, a flatten on a trigger that is ``OFF``, ...): ``config check``
prints them and the runtime logs them at start.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tradeguard.kernel.schema import PluginSettings

State = Literal["OFF", "REDUCE_ONLY", "HALTED"]


class Action(PluginSettings):
    state: State
    flatten: bool = Field(default=False, description="also close every position of ours (and cancel our orders)")


def _row(state: State, flatten: bool = False) -> Any:
    return Field(default_factory=lambda: Action(state=state, flatten=flatten))


class TriggersSettings(PluginSettings):
    """``[default.triggers]``: one row per automatic trigger, named as the trigger is everywhere (the latch, its
    events, the alert's code). Defaults are the conservative ones. What fires each is beside it."""

    daily_loss_limit: Action = _row("REDUCE_ONLY")  # risk_guard.daily_loss_limit_pct, kill_switch.daily_drawdown_pct
    max_drawdown: Action = _row("REDUCE_ONLY")  # risk_guard.max_drawdown_pct, kill_switch.max_drawdown_pct
    margin_call: Action = _row("REDUCE_ONLY")  # the broker's margin-call level (account_info margin_so_call)
    stop_out: Action = _row("HALTED")  # a stop-out deal
    reconciliation_inconsistent: Action = _row("HALTED")  # position_reconciler, kill_switch.reconciliation_issues
    connection_lost: Action = _row("HALTED")  # mt5_health_monitor, kill_switch.connection_loss_seconds
    latency: Action = _row("HALTED")  # kill_switch.latency_ms
    execution_errors: Action = _row("HALTED")  # kill_switch.error_streak
    plugin_error_storm: Action = _row("HALTED")  # kill_switch.plugin_error_storm
    store_failure: Action = _row("REDUCE_ONLY")  # the journal cannot be written
    fleet_limit: Action = _row("REDUCE_ONLY")  # fleet_risk: a fleet loss limit reached, an exposure limit exceeded


#: the automatic triggers: a ``HaltEvent.trigger`` named here reads its row
TRIGGERS: frozenset[str] = frozenset(TriggersSettings.model_fields)

#: the kill switch's own thresholds and the row each fires
KILL_SWITCH_THRESHOLDS = {
    "daily_drawdown_pct": "daily_loss_limit",
    "max_drawdown_pct": "max_drawdown",
    "connection_loss_seconds": "connection_lost",
    "latency_ms": "latency",
    "error_streak": "execution_errors",
    "reconciliation_issues": "reconciliation_inconsistent",
    "plugin_error_storm": "plugin_error_storm",
}

#: keys that moved, and what to set instead (a settings file naming one gets this in its error)
MOVED: dict[str, str] = {
    "risk_guard.hard_limit_state": "triggers.daily_loss_limit.state and triggers.max_drawdown.state",
    "kill_switch.trigger_state": "the state of each row of [default.triggers]",
    "kill_switch.margin_call_state": "triggers.margin_call.state",
    "kill_switch.stop_out_state": "triggers.stop_out.state",
    "store.failure_state": "triggers.store_failure.state",
    "kill_switch.cancel_pending_on_halt": "kill_switch.cancel_pending_on_latch (REDUCE_ONLY cancels them too)",
    "execution_engine.close_when_halted": "kill_switch.allow_closes_when_halted (one rule for veto and engine)",
}


def action_for(settings: Any, trigger: str) -> Action | None:
    """The table's row for ``trigger``; None for a trigger the table does not name."""
    return getattr(settings.triggers, trigger) if trigger in TRIGGERS else None


def ineffective(settings: Any) -> list[str]:
    """Settings that can never take effect with the rest, one line each naming the keys."""
    table: TriggersSettings = settings.triggers
    rows = {name: getattr(table, name) for name in TriggersSettings.model_fields}
    found = [
        f"triggers.{name}.flatten = true never acts: its state is OFF"
        for name, a in rows.items()
        if a.flatten and a.state == "OFF"
    ]
    ks = settings.kill_switch if "kill_switch" in settings else None
    if ks is not None and ks.flatten_on_halt:
        reduce_only = [name for name, a in rows.items() if a.state == "REDUCE_ONLY" and not a.flatten]
        if reduce_only:
            found.append(
                f"kill_switch.flatten_on_halt = true never acts on {', '.join(reduce_only)} (they latch "
                "REDUCE_ONLY): set triggers.<name>.flatten = true to close positions on them"
            )
    if ks is not None and ks.daily_loss_latch_ends == "next_server_day" and table.daily_loss_limit.state == "OFF":
        found.append(
            "kill_switch.daily_loss_latch_ends = next_server_day never acts: triggers.daily_loss_limit.state is OFF"
        )
    if ks is not None:
        for key, row in KILL_SWITCH_THRESHOLDS.items():
            if getattr(ks, key) and rows[row].state == "OFF":
                found.append(f"kill_switch.{key} = {getattr(ks, key):g} never acts: triggers.{row}.state is OFF")
    halt_flattens = bool(ks is not None and ks.flatten_on_halt)
    flattening = [name for name, a in rows.items() if a.state == "HALTED" and (a.flatten or halt_flattens)]
    if ks is not None and not ks.allow_closes_when_halted and flattening:
        found.append(
            f"kill_switch.allow_closes_when_halted = false refuses the closes that {', '.join(flattening)} "
            "ask for when they latch HALTED with a flatten"
        )
    return found
