"""This process's place in a fleet: what the trading thread publishes and reserves, and a listener thread that
hears the fleet's kill switch.

Two connections, one owner each. The trading thread's (:attr:`FleetLink.db`) publishes and reserves; it never
waits on a dead server longer than one statement: once a call fails, the link is *out* and every call fails at
once (openings are refused, ``fleet_unreachable``) until the listener's own connection reaches the server again
and the trading thread has re-published everything (:meth:`FleetLink.rejoin`). The listener thread LISTENs on
the fleet's channel and re-reads the fleet's kill switch on every notification, and every ``heartbeat_seconds``
without one (the polling fallback): the veto reads :attr:`FleetLink.kill` at once, without a round trip.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from tradeguard.fleet.database import AccountFigures, Ask, BookRow, FleetDB, FleetKill, FleetUnreachable, Refusal
from tradeguard.fleet.schema import CHANNEL
from tradeguard.fleet.settings import FleetSettings

log = logging.getLogger("tradeguard.fleet")


class FleetLink:
    """One account's link to its fleet. Everything but the listener runs on the trading thread."""

    def __init__(self, cfg: FleetSettings, account: str, limits: dict[str, Any]) -> None:
        self.cfg, self.account, self.limits = cfg, account, limits
        url = cfg.url.get_secret_value()
        self.db = FleetDB(
            url, cfg.name, connect_timeout=cfg.connect_timeout_seconds, statement_timeout_ms=cfg.statement_timeout_ms
        )
        self._listen_db = FleetDB(
            url, cfg.name, connect_timeout=cfg.connect_timeout_seconds, statement_timeout_ms=cfg.statement_timeout_ms
        )
        #: the fleet's kill switch as last heard (the listener replaces it whole: one reference, no lock needed)
        self.kill = FleetKill()
        #: monotonic time the link went out (None: in); cleared by a complete re-publication
        self.out_since: float | None = time.monotonic()
        self.joined = False
        self.why_out = "not joined yet"
        self._server_up = threading.Event()
        self._stopping = threading.Event()
        self._listener: threading.Thread | None = None

    # -- state ------------------------------------------------------------------------------------

    @property
    def out(self) -> bool:
        return self.out_since is not None

    def out_for(self) -> float:
        return 0.0 if self.out_since is None else time.monotonic() - self.out_since

    def _went_out(self, exc: FleetUnreachable) -> None:
        if self.out_since is None:
            self.out_since = time.monotonic()
            log.error("fleet database unreachable", extra={"error": str(exc)})
        self.why_out = str(exc)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one statement group on the trading thread's connection; while out, fail without trying."""
        if self.out:
            raise FleetUnreachable(f"fleet database unreachable: {self.why_out}")
        try:
            return fn(*args, **kwargs)
        except FleetUnreachable as exc:
            self._went_out(exc)
            raise

    # -- joining --------------------------------------------------------------------------------------

    def start(self) -> None:
        self._listener = threading.Thread(target=self._listen, name="tradeguard-fleet-listener", daemon=True)
        self._listener.start()

    def rejoin(self, figures: AccountFigures, book: list[BookRow], kill_state: str, kill_trigger: str) -> list[str]:
        """(Re-)publish everything this account is, after start or an outage; the link is in again only when it
        all went through. The first time, the schema is migrated, the fleet's limits made this process's (the
        changes are returned) and the account's row claimed. Raises while the server is still out of reach."""
        if not self._server_up.is_set() and self.joined:
            raise FleetUnreachable(f"fleet database unreachable: {self.why_out}")
        changes: list[str] = []
        try:
            if not self.joined:
                self.db.migrate()
                changes = self.db.ensure_fleet(self.cfg.currency, self.limits, self.account)
                stale = 3 * self.cfg.heartbeat_seconds
                self.db.claim(self.account, figures, os.getpid(), socket.gethostname(), stale)
            self.db.publish_account(self.account, figures, kill_state, kill_trigger)
            self.db.publish_book(self.account, book)
            self.kill = self.db.kill_state()
        except FleetUnreachable as exc:
            self._went_out(exc)
            raise
        if self.joined and self.out_since is not None:
            log.warning("fleet database reachable: state re-published", extra={"out_seconds": round(self.out_for(), 2)})
        self.joined, self.out_since = True, None
        return changes

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(timeout=3 * self.cfg.heartbeat_seconds + self.cfg.connect_timeout_seconds)
        if not self.out:
            with contextlib.suppress(FleetUnreachable):  # else the lease ends what it reserved
                self.db.stop(self.account)
        self.db.close()

    # -- the trading thread's calls ---------------------------------------------------------------

    def reserve(self, ask: Ask) -> int | Refusal:
        if self.out:
            return Refusal(
                "fleet_unreachable",
                f"fleet_unreachable: the fleet database has been out of reach for {self.out_for():.1f} s "
                f"({self.why_out}); openings wait until this account's state is published again",
            )
        try:
            return self.call(self.db.reserve, self.account, ask, self.cfg.lease_seconds)  # type: ignore[no-any-return]
        except FleetUnreachable as exc:
            return Refusal("fleet_unreachable", f"fleet_unreachable: no reservation could be made ({exc})")

    def heartbeat(self) -> FleetKill:
        kill: FleetKill = self.call(self.db.heartbeat, self.account, self.cfg.lease_seconds)
        self._adopt(kill)
        return kill

    # -- the listener thread ----------------------------------------------------------------------

    def _adopt(self, kill: FleetKill) -> None:
        """Take a newer kill-switch event as the fleet's state (from the listener or a heartbeat)."""
        if kill.event != self.kill.event:
            self.kill = kill

    def _listen(self) -> None:
        db = self._listen_db
        pause, acked = 0.1, 0
        while not self._stopping.is_set():
            try:
                conn = db.connect()
                conn.execute(f"LISTEN {CHANNEL}")
                self._server_up.set()
                pause = 0.1
                while not self._stopping.is_set():
                    kill = db.kill_state()
                    self._adopt(kill)
                    if kill.event != acked:  # (a heartbeat may have adopted it first: the ack is still owed)
                        db.saw_kill(self.account, kill.event)
                        acked = kill.event
                    # a notification that came during the reads above waits in psycopg's backlog: none is lost
                    for _ in conn.notifies(timeout=self.cfg.heartbeat_seconds, stop_after=1):
                        break
            except (FleetUnreachable, psycopg.Error) as exc:
                self._server_up.clear()
                db.close()
                log.debug("fleet listener lost its connection", extra={"error": str(exc)})
                self._stopping.wait(pause)
                pause = min(1.0, pause * 2)
        db.close()
