"""Seeded fault injection: what a real terminal and trade server do to you on a bad day.

Every fault is drawn from one ``random.Random(seed)`` in a fixed order per trade request (and per
bar for stale ticks), so the same seed and the same requests give the same run, byte for byte.
This is the only place in tradeguard that uses random numbers.
"""

from __future__ import annotations

import random
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

Rate = Field(default=0.0, ge=0.0, le=1.0)


class FaultProfile(BaseModel):
    """Probabilities are per trade request unless said otherwise; windows are in server seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    disconnect_rate: float = Rate
    disconnect_seconds: float = Field(default=120.0, gt=0)
    disconnect_none_share: float = Field(default=0.5, ge=0, le=1, description="refusals answered None, not 10031")
    autotrading_off_rate: float = Rate
    autotrading_off_seconds: float = Field(default=600.0, gt=0)
    market_closed_rate: float = Rate
    too_many_requests_rate: float = Rate
    requote_rate: float = Rate
    price_changed_rate: float = Rate
    reject_rate: float = Rate
    timeout_executed_rate: float = Rate
    timeout_lost_rate: float = Rate
    stale_tick_rate: float = Field(default=0.0, ge=0, le=1, description="per bar: its ticks stop being published")
    latency_ms: float = Field(default=0.0, ge=0, description="wall-clock delay added to every API call")
    history_lag_ms: int = Field(default=0, ge=0, description="deals reach the history this long after they happen")


PROFILES: dict[str, FaultProfile] = {
    "none": FaultProfile(),
    "flaky": FaultProfile(
        disconnect_rate=0.01,
        disconnect_seconds=30,
        requote_rate=0.03,
        price_changed_rate=0.03,
        reject_rate=0.01,
        timeout_executed_rate=0.02,
        timeout_lost_rate=0.01,
        too_many_requests_rate=0.01,
        stale_tick_rate=0.01,
    ),
    "hostile": FaultProfile(
        disconnect_rate=0.05,
        disconnect_seconds=60,
        requote_rate=0.1,
        price_changed_rate=0.1,
        reject_rate=0.05,
        timeout_executed_rate=0.08,
        timeout_lost_rate=0.04,
        too_many_requests_rate=0.05,
        market_closed_rate=0.02,
        autotrading_off_rate=0.01,
        autotrading_off_seconds=120,
        stale_tick_rate=0.05,
    ),
}


class Fault(Enum):
    DISCONNECTED = "disconnected"
    AUTOTRADING_OFF = "autotrading_off"
    MARKET_CLOSED = "market_closed"
    TOO_MANY_REQUESTS = "too_many_requests"
    REQUOTE = "requote"
    PRICE_CHANGED = "price_changed"
    REJECT = "reject"
    TIMEOUT_EXECUTED = "timeout_executed"
    TIMEOUT_LOST = "timeout_lost"


class FaultInjector:
    def __init__(self, profile: FaultProfile) -> None:
        self.profile = profile
        self._rng = random.Random(profile.seed)
        self.disconnected_until_ms = 0
        self.autotrading_off_until_ms = 0
        self.injected: dict[str, int] = {}

    def _hit(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def connected(self, now_ms: int) -> bool:
        return now_ms >= self.disconnected_until_ms

    def autotrading(self, now_ms: int) -> bool:
        return now_ms >= self.autotrading_off_until_ms

    def answer_none(self) -> bool:
        """During a disconnect: does this refusal come back as None (client side) or 10031?"""
        return self._hit(self.profile.disconnect_none_share)

    def on_request(self, now_ms: int) -> Fault | None:
        """Draw the fault, if any, for one trade request at server time ``now_ms``."""
        p = self.profile
        if not self.connected(now_ms):
            return self._count(Fault.DISCONNECTED)
        if self._hit(p.disconnect_rate):
            self.disconnected_until_ms = now_ms + int(p.disconnect_seconds * 1000)
            return self._count(Fault.DISCONNECTED)
        if not self.autotrading(now_ms):
            return self._count(Fault.AUTOTRADING_OFF)
        if self._hit(p.autotrading_off_rate):
            self.autotrading_off_until_ms = now_ms + int(p.autotrading_off_seconds * 1000)
            return self._count(Fault.AUTOTRADING_OFF)
        for fault, rate in (
            (Fault.MARKET_CLOSED, p.market_closed_rate),
            (Fault.TOO_MANY_REQUESTS, p.too_many_requests_rate),
            (Fault.REQUOTE, p.requote_rate),
            (Fault.PRICE_CHANGED, p.price_changed_rate),
            (Fault.REJECT, p.reject_rate),
            (Fault.TIMEOUT_EXECUTED, p.timeout_executed_rate),
            (Fault.TIMEOUT_LOST, p.timeout_lost_rate),
        ):
            if self._hit(rate):
                return self._count(fault)
        return None

    def stale_bar(self) -> bool:
        """Drawn once per bar: are this bar's ticks withheld from ``symbol_info_tick``?"""
        return self._hit(self.profile.stale_tick_rate)

    def _count(self, fault: Fault) -> Fault:
        self.injected[fault.value] = self.injected.get(fault.value, 0) + 1
        return fault
