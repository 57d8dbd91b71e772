"""Kill switch (KSW): a latch that only tightens until an operator resets it.

States and what each still allows:

* ``ACTIVE`` - everything the other checks allow;
* ``REDUCE_ONLY`` - only orders that reduce exposure (closes) and SL/TP changes;
* ``HALTED`` - no new orders; closes only if ``allow_closes_when_halted``.

Every transition goes through :meth:`KillSwitch.transition`, which logs it and publishes
``tradeguard_kill_switch_active``. It vetoes ``tryfirst`` on ``evaluate_risk``, so no other
plugin's opinion matters while it is latched.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field

from tradeguard import ConfiguredPlugin, HaltEvent, KillState, OrderIntent, PluginSettings, Rejected, hookimpl

log = logging.getLogger("tradeguard.kill_switch")
_RANK = {KillState.ACTIVE: 0, KillState.REDUCE_ONLY: 1, KillState.HALTED: 2}


class KillSwitchSettings(PluginSettings):
    allow_closes_when_halted: bool = Field(default=True, description="let exposure-reducing orders through HALTED")


class KillSwitch(ConfiguredPlugin):
    settings_model = KillSwitchSettings

    def __init__(self) -> None:
        super().__init__()
        self.state = KillState.ACTIVE
        self.trigger = ""
        self._gauge: Any = None
        self._store: Any = None

    @hookimpl
    def tradeguard_startup(self, runtime: Any) -> None:
        super().tradeguard_startup(runtime)
        self._store = runtime.store
        latched = self._store.kill_state()
        if latched is not None:  # the latch survives restarts
            self.state, self.trigger = KillState(latched[0]), latched[1]
            if self.state is not KillState.ACTIVE:
                log.critical("kill switch restored latched", extra={"state": self.state.value, "trigger": self.trigger})
        self._gauge = runtime.metrics.kill_switch_active
        self._gauge.set(0 if self.state is KillState.ACTIVE else 1)

    def transition(self, state: KillState, trigger: str, message: str) -> bool:
        """Latch to ``state`` if it is tighter than the current one; return whether anything changed."""
        if _RANK[state] <= _RANK[self.state]:
            log.info("kill switch already at least as tight", extra={"state": self.state.value, "asked": state.value})
            return False
        previous, self.state, self.trigger = self.state, state, trigger
        if self._store is not None:
            self._store.set_kill_state(state.value, trigger, message)
        if self._gauge is not None:
            self._gauge.set(1)
        log.critical(
            "kill switch latched",
            extra={"from": previous.value, "to": state.value, "trigger": trigger, "detail": message},
        )
        return True

    @hookimpl
    def on_halt(self, event: HaltEvent, runtime: Any) -> None:
        self.transition(event.state, event.trigger, event.message)

    @hookimpl(tryfirst=True)
    def evaluate_risk(self, order: OrderIntent, runtime: Any) -> Rejected | None:
        state = self.state
        if state is KillState.ACTIVE:
            return None
        if state is KillState.REDUCE_ONLY:
            if order.reduces_exposure:
                return None
            return Rejected(
                reason="kill_switch_reduce_only",
                message=f"kill_switch_reduce_only: latched by {self.trigger}; opening orders refused",
            )
        if order.reduces_exposure and self.cfg.allow_closes_when_halted:
            return None
        return Rejected(reason="kill_switch_halted", message=f"kill_switch_halted: latched by {self.trigger}")
