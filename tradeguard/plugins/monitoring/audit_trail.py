"""Audit trail (AUD): an append-only, hash-chained record of everything that matters.

Each record's hash is SHA-256 over the previous record's hash and the record's canonical JSON
(keys sorted, no spaces, its seq, kind and time included), or an HMAC-SHA256 with ``hmac_key`` when
one is configured (in ``.secrets.toml``): then nobody without the key can rebuild a chain they
edited. Recorded: every decision with its signal and reasons, every order event (request,
retcode), every fill, every halt requested, every kill-switch event (latch, reset, refused reset:
who, via which surface, how authenticated, the state before and after; those an operator command
recorded beside a running process included), each start with the plugins loaded and a digest of
the settings, and a change of either since the last start (also alerted).

Records are chained in memory in order and written behind in batches (a flush each second, at
shutdown, and every 256 records), so auditing adds no commit to the decision path. After each
write the chain's head is named in an anchor file beside the store, so a cut tail shows.
:func:`tradeguard.store.audit.verify` walks the chain and names the first record that was edited,
deleted or reordered, and the journal entries the chain lacks.
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
    GENESIS,
    AlertChannel,
    ConfiguredPlugin,
    Decision,
    Fill,
    HaltEvent,
    Job,
    OperatorAction,
    OrderEvent,
    PluginSettings,
    Runtime,
    Severity,
    Signal,
    StoreUnwritable,
    canonical,
    chain_hash,
    hookimpl,
    missing_from_chain,
    write_anchor,
)

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
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime
        self._key = self.cfg.hmac_key.get_secret_value().encode()
        store = self.db = runtime.sqlite_store()  # the chain is a table of the journal
        rows = store.query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        if rows:
            self._seq, self._last = int(rows[0][0]), rows[0][1]
        self._chained = int(store.kv_get("audit", "kill_switch_events") or 0)  # the last event chained
        self._recovered = getattr(runtime, "role", "trading") != "trading"  # a trading start checks, once
        settings = json.dumps(runtime.settings.redacted(), sort_keys=True, default=str)
        start = {
            "environment": runtime.settings.env,
            "role": getattr(runtime, "role", "trading"),
            "settings_sha256": hashlib.sha256(settings.encode()).hexdigest(),
            "plugins": [
                {"name": r.name, "distribution": r.distribution, "version": r.version, "status": r.status}
                for r in runtime.plugins
            ],
        }
        self.append("start", start)
        if start["role"] == "trading":
            self._compare_with_last_start(start)
        self._chain_kill_events()

    def _compare_with_last_start(self, start: dict[str, Any]) -> None:
        """A change of settings or of the plugins loaded since the last trading start: chained and alerted."""
        last = None
        for (text,) in self.db.query("SELECT record FROM audit WHERE kind = 'start' ORDER BY seq DESC"):
            record = json.loads(text)
            record = record.get("data", record)  # chains from before the record's data had a key of its own
            if record.get("role", "trading") == "trading":
                last = record
                break
        if last is None:
            return
        changes: dict[str, Any] = {}
        if last.get("settings_sha256") != start["settings_sha256"]:
            changes["settings_sha256"] = {"before": last.get("settings_sha256"), "after": start["settings_sha256"]}
        before = {p["name"] for p in last.get("plugins", []) if p.get("status") == "loaded"}
        after = {p["name"] for p in start["plugins"] if p.get("status") == "loaded"}
        if before != after:
            changes["plugins"] = {"enabled": sorted(after - before), "disabled": sorted(before - after)}
        if not changes:
            return
        self.append("configuration_changed", changes)
        what = "; ".join(
            f"plugins enabled {c['enabled']}, disabled {c['disabled']}"
            if k == "plugins"
            else f"settings digest {str(c['before'])[:12]} -> {str(c['after'])[:12]}"
            for k, c in changes.items()
        )
        self.rt.alert(
            channel=AlertChannel.SYSTEM,
            severity=Severity.WARNING,
            module="audit_trail",
            error_code="configuration_changed",
            message=f"since the last start: {what}",
        )

    def _chain_kill_events(self) -> None:
        """Chain the kill-switch events recorded since the last one chained: this process's, and those an
        operator command recorded beside it (every latch, reset and refused reset, with who and how)."""
        for event in self.rt.store.kill_events_after(self._chained):
            self._chained = event["event_id"]  # first: a batch flush inside append must not chain it again
            self.append("kill_switch", event)

    @hookimpl
    def periodic_jobs(self, runtime: Runtime) -> list[Job]:
        return [
            Job(
                name="audit.flush",
                every=timedelta(seconds=self.cfg.flush_seconds),
                run=lambda rt: self._flush(),
                wall_clock=True,
            )
        ]

    def _flush(self) -> None:
        """The scheduled flush: a store that takes no writes is reported by the runtime, not once a second here."""
        with contextlib.suppress(StoreUnwritable):
            if not self._recovered:
                self._chain_recovered()
            self._chain_kill_events()
            self.flush()

    def _chain_recovered(self) -> None:
        """Once, after start-up and alignment: name the journal entries the chain lacks (a crash lost the last
        second of records, alignment rebuilt decisions) in one ``recovered`` record, so the gap is on the record."""
        self.flush()
        store = self.db
        rows = store.query("SELECT kind, record FROM audit ORDER BY seq")
        missing = missing_from_chain(store, (r[0] for r in rows), (r[1] for r in rows))
        self._recovered = True
        if missing:
            self.append("recovered", {"entries": missing})
            log.warning("journal entries without audit records chained as recovered", extra={"count": len(missing)})

    @hookimpl
    def tradeguard_shutdown(self, runtime: Runtime) -> None:
        self._chain_kill_events()
        self.append("stop", {})
        self.flush()

    def append(self, kind: str, payload: dict[str, Any]) -> None:
        """Chain one record now; it reaches the store with the next flush."""
        self._seq += 1
        stamp = self.rt.clock.now().isoformat()  # one reading: the record and its row say the same time
        record = canonical({"seq": self._seq, "kind": kind, "time": stamp, "data": payload})
        digest = chain_hash(self._last, record, self._key)
        self._pending.append((self._seq, stamp, kind, record, self._last, digest))
        self._last = digest
        if len(self._pending) >= BATCH:
            with contextlib.suppress(StoreUnwritable):  # a batch's worth: written now (or kept, see _flush)
                self.flush()

    def flush(self) -> None:
        """Write the pending records; if the store cannot take them they stay pending, in order, for the next."""
        pending = self._pending
        if pending:
            store = self.db
            with store.tx() as db:
                db.executemany(
                    "INSERT INTO audit (seq, time, kind, record, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)", pending
                )
                db.execute(
                    "INSERT INTO kv (namespace, key, value) VALUES ('audit', 'kill_switch_events', ?) "
                    "ON CONFLICT(namespace, key) DO UPDATE SET value = excluded.value",
                    (str(self._chained),),
                )
            head_seq, head_hash = pending[-1][0], pending[-1][5]
            del pending[:]
            if store.path != ":memory:":  # the head, named beside the store: a cut tail shows (store/audit.py)
                write_anchor(store.path, head_seq, head_hash, self._key)

    # ------------------------------------------------------------------ what is recorded --------

    @hookimpl
    def on_decision(self, decision: Decision, signal: Signal, runtime: Runtime) -> None:
        order = decision.order.model_dump(mode="json") if decision.order else None
        self.append(
            "decision",
            {
                "signal": signal.model_dump(mode="json"),
                "order": order,
                "decision": decision.model_dump(mode="json", exclude={"order"}),
            },
        )

    @hookimpl
    def on_order_event(self, event: OrderEvent, runtime: Runtime) -> None:
        self.append("order", event.model_dump(mode="json"))

    @hookimpl
    def on_fill(self, fill: Fill, runtime: Runtime) -> None:
        self.append("fill", fill.model_dump(mode="json"))

    @hookimpl
    def on_operator_action(self, action: OperatorAction, runtime: Runtime) -> None:
        self.append("operator_action", action.model_dump(mode="json"))

    @hookimpl
    def on_halt(self, event: HaltEvent, runtime: Runtime) -> None:
        self.append("halt", event.model_dump(mode="json"))
