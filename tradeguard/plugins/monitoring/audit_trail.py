"""Audit trail (AUD): an append-only, hash-chained record of everything that matters.

Each record's hash is SHA-256 over the previous record's hash and the record's canonical JSON
(keys sorted, no spaces), or an HMAC-SHA256 with ``hmac_key`` when one is configured (in
``.secrets.toml``): then nobody without the key can rebuild a chain they edited. Recorded: every
decision with its signal and reasons, every order event (request, retcode), every fill, every halt
and kill-switch reset, each start with the plugins loaded and a digest of the settings (a change
of settings shows as a new digest).

Records are chained in memory in order and written behind in batches (a flush each second, at
shutdown, and every 256 records), so auditing adds no commit to the decision path.
:func:`verify` walks the chain and names the first record that was edited, deleted or reordered.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from datetime import timedelta
from typing import Any

from pydantic import Field, SecretStr

from tradeguard import (
    Alert,
    ConfiguredPlugin,
    Decision,
    Fill,
    HaltEvent,
    Job,
    OrderEvent,
    PluginSettings,
    Signal,
    hookimpl,
)
from tradeguard.core.audit import GENESIS, canonical, chain_hash
from tradeguard.core.store import StoreUnwritable

log = logging.getLogger("tradeguard.audit")
BATCH = 256


class AuditSettings(PluginSettings):
    hmac_key: SecretStr = Field(default=SecretStr(""), description="chain with HMAC-SHA256 under this key (secrets)")
    flush_seconds: float = Field(default=1.0, gt=0, description="how often pending records are written")


class AuditTrail(ConfiguredPlugin):
    settings_model = AuditSettings
    stage = 6

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[tuple[int, str, str, str, str, str]] = []
        self._last = GENESIS
        self._seq = 0

    @hookimpl
    def tradeguard_startup(self, runtime: Any) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime
        self._key = self.cfg.hmac_key.get_secret_value().encode()
        rows = runtime.store.query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        if rows:
            self._seq, self._last = int(rows[0][0]), rows[0][1]
        settings = json.dumps(runtime.settings.redacted(), sort_keys=True, default=str)
        self.append("start", {
            "environment": runtime.settings.env,
            "settings_sha256": hashlib.sha256(settings.encode()).hexdigest(),
            "plugins": [{"name": r.name, "distribution": r.distribution, "version": r.version, "status": r.status}
                        for r in runtime.plugins],
        })  # fmt: skip

    @hookimpl
    def periodic_jobs(self, runtime: Any) -> list[Job]:
        return [Job(name="audit.flush", every=timedelta(seconds=self.cfg.flush_seconds), run=lambda rt: self._flush(),
                    wall_clock=True)]

    def _flush(self) -> None:
        """The scheduled flush: a store that takes no writes is reported by the runtime, not once a second here."""
        with contextlib.suppress(StoreUnwritable):
            self.flush()

    @hookimpl
    def tradeguard_shutdown(self, runtime: Any) -> None:
        self.append("stop", {})
        self.flush()

    def append(self, kind: str, payload: dict[str, Any]) -> None:
        """Chain one record now; it reaches the store with the next flush."""
        self._seq += 1
        stamp = self.rt.clock.now().isoformat()  # one reading: the record and its row say the same time
        record = canonical({"seq": self._seq, "kind": kind, "time": stamp, **payload})
        digest = chain_hash(self._last, record, self._key)
        self._pending.append((self._seq, stamp, kind, record, self._last, digest))
        self._last = digest
        if len(self._pending) >= BATCH:
            self._flush()

    def flush(self) -> None:
        """Write the pending records; if the store cannot take them they stay pending, in order, for the next."""
        pending = self._pending
        if pending:
            with self.rt.store.tx() as db:
                db.executemany("INSERT INTO audit (seq, time, kind, record, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
                               pending)  # fmt: skip
            del pending[:]

    # ------------------------------------------------------------------ what is recorded --------

    @hookimpl
    def on_decision(self, decision: Decision, signal: Signal, runtime: Any) -> None:
        order = decision.order.model_dump(mode="json") if decision.order else None
        self.append("decision", {"signal": signal.model_dump(mode="json"), "order": order,
                                 "decision": decision.model_dump(mode="json", exclude={"order"})})  # fmt: skip

    @hookimpl
    def on_order_event(self, event: OrderEvent, runtime: Any) -> None:
        self.append("order", event.model_dump(mode="json"))

    @hookimpl
    def on_fill(self, fill: Fill, runtime: Any) -> None:
        self.append("fill", fill.model_dump(mode="json"))

    @hookimpl
    def on_halt(self, event: HaltEvent, runtime: Any) -> None:
        self.append("halt", event.model_dump(mode="json"))

    @hookimpl
    def on_alert(self, alert: Alert, runtime: Any) -> None:
        if alert.module == "kill_switch" and alert.error_code in ("reset", "reset_refused"):
            self.append(alert.error_code, {"message": alert.message})
