"""Signal deduplicator (DED): the same signal twice is one signal.

A signal is a duplicate when its id, or its content fingerprint (strategy, symbol, side,
timeframe, bar time), was seen within ``ttl_seconds`` of runtime-clock time. The memory survives
restarts: it is written behind to the store (every ``flush_seconds`` and at shutdown) and read back
at start-up, expired entries dropped, so a restart cannot replay the last signals into new orders.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field

from tradeguard import PluginSettings, Reason, Runtime, Signal, WriteBehindPlugin, hookimpl

NAMESPACE = "signal_dedup"


class DedupSettings(PluginSettings):
    ttl_seconds: float = Field(default=86_400.0, gt=0, description="how long a signal is remembered")
    flush_seconds: float = Field(default=5.0, gt=0, description="how often the memory is written to the store")


class SignalDeduplicator(WriteBehindPlugin):
    namespace = NAMESPACE
    settings_model = DedupSettings
    stage = 5

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, datetime] = {}  # signal id or fingerprint -> expiry

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime
        now = runtime.clock.now()
        stored = runtime.store.kv_get(NAMESPACE, "seen")
        self.seen = {k: e for k, v in (stored or {}).items() if (e := datetime.fromisoformat(v)) > now}

    def save(self) -> None:
        now = self.rt.clock.now()
        self.seen = {k: e for k, e in self.seen.items() if e > now}
        self.rt.store.kv_put(NAMESPACE, "seen", {k: e.isoformat() for k, e in self.seen.items()})

    @hookimpl
    def validate_signal(self, signal: Signal, runtime: Runtime) -> list[Reason]:
        now = runtime.clock.now()
        fingerprint = signal.fingerprint
        for key, what in ((signal.signal_id, "id"), (fingerprint, "content")):
            expiry = self.seen.get(key)
            if expiry is not None and expiry > now:
                seen_at = expiry - timedelta(seconds=self.cfg.ttl_seconds)
                return [
                    Reason.trusted(
                        code="duplicate_signal",
                        plugin="",
                        message=f"duplicate_signal: same {what} as a signal at {seen_at.isoformat()} "
                        f"(window {self.cfg.ttl_seconds:.0f} s)",
                    )
                ]
        expiry = now + timedelta(seconds=self.cfg.ttl_seconds)
        self.seen[signal.signal_id] = expiry
        self.seen[fingerprint] = expiry
        self.dirty = True
        return []
