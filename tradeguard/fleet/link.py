"""This process's place in a fleet: what the trading thread publishes and reserves, and a listener thread that
hears the fleet's kill switch.

Three threads, one connection each, one owner each:

* the trading thread never touches a connection: it hands each call to the **writer** thread and waits at most
  :attr:`FleetLink.deadline` for its answer. A call that fails or does not answer in time takes the link *out*:
  from then on every call fails at once (openings are refused, ``fleet_unreachable``), so the loop never waits
  on a dead or frozen server, until the listener has reached the server again and the account's whole state
  is published (:meth:`FleetLink.rejoin`). A writer stuck on a frozen server is abandoned for a new one;
* the **listener** thread LISTENs on the fleet's channel and re-reads the fleet's kill switch on every
  notification, and every ``heartbeat_seconds`` without one (the polling fallback): the veto reads
  :attr:`FleetLink.kill` at once, without a round trip. It also renews the leases of the reservations this
  process holds (:attr:`FleetLink.held`), so a trading thread busy for a while keeps what it reserved.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as NoAnswer
from typing import Any

from tradeguard.fleet.database import AccountFigures, Ask, BookRow, FleetDB, FleetKill, FleetUnreachable, Refusal
from tradeguard.fleet.schema import CHANNEL
from tradeguard.fleet.settings import FleetSettings

log = logging.getLogger("tradeguard.fleet")


class FleetLink:
    """One account's link to its fleet, driven from the trading thread."""

    def __init__(self, cfg: FleetSettings, account: str, limits: dict[str, Any]) -> None:
        self.cfg, self.account, self.local_limits = cfg, account, limits
        #: the fleet's limits, as the database holds them (read at each join)
        self.limits: dict[str, Any] = dict(limits)
        #: the longest the trading thread waits for one call
        self.deadline = max(cfg.statement_timeout_ms / 1000, cfg.connect_timeout_seconds) + 1.0
        self._writer, self.db = self._new_writer()
        self._pending: Future[Any] | None = None  # a call that did not answer in time
        self._listen_db = FleetDB.of(self.cfg)
        #: the fleet's kill switch as last heard (replaced whole, only by a newer event: no lock needed)
        self.kill = FleetKill()
        #: the reservations this process holds, which the listener renews (replaced whole by the trading thread)
        self.held: frozenset[int] = frozenset()
        #: monotonic time the link went out (None: in); cleared by a complete re-publication
        self.out_since: float | None = time.monotonic()
        self.joined = False
        self.why_out = "not joined yet"
        self._server_up = threading.Event()
        self._stopping = threading.Event()
        self._listener: threading.Thread | None = None

    def _new_writer(self) -> tuple[ThreadPoolExecutor, FleetDB]:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="tradeguard-fleet-writer"), FleetDB.of(self.cfg)

    # -- state ------------------------------------------------------------------------------------

    @property
    def out(self) -> bool:
        return self.out_since is not None

    def out_for(self) -> float:
        return 0.0 if self.out_since is None else time.monotonic() - self.out_since

    def listening(self) -> bool:
        return self._listener is not None and self._listener.is_alive()

    def _went_out(self, why: str) -> None:
        if self.out_since is None:
            self.out_since = time.monotonic()
            log.error("fleet database unreachable", extra={"error": why})
        self.why_out = why

    def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the writer thread; its answer, or :class:`FleetUnreachable` after :attr:`deadline`."""
        if self._pending is not None:
            if not self._pending.done():
                raise FleetUnreachable(f"fleet database unreachable: {self.why_out}")
            self._pending = None
        future = self._writer.submit(fn, *args, **kwargs)
        try:
            return future.result(timeout=self.deadline)
        except NoAnswer:
            self._pending = future
            raise FleetUnreachable(f"fleet database unreachable: no answer in {self.deadline:g} s") from None

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One call of the trading thread (``fn`` is a method of :attr:`db`); while out, fail without trying."""
        if self.out:
            raise FleetUnreachable(f"fleet database unreachable: {self.why_out}")
        try:
            return self._run(fn, *args, **kwargs)
        except FleetUnreachable as exc:
            self._went_out(str(exc))
            raise

    # -- joining --------------------------------------------------------------------------------------

    def start(self) -> None:
        self._listener = threading.Thread(target=self._listen, name="tradeguard-fleet-listener", daemon=True)
        self._listener.start()

    def rejoin(self, figures: AccountFigures, book: list[BookRow], kill_state: str, kill_trigger: str) -> None:
        """(Re-)publish everything this account is, after start or an outage; the link is in again only when it
        all went through. The first time, the schema is migrated, the fleet's limits read and the account's row
        claimed. Raises while the server is still out of reach (the listener says when it is back)."""
        if self._listener is not None and not self._server_up.is_set():
            raise FleetUnreachable(f"fleet database unreachable: {self.why_out}")
        if self._pending is not None and not self._pending.done():  # a writer stuck on a frozen server
            self._writer.shutdown(wait=False)
            self._writer, self.db = self._new_writer()
            self._pending = None
        try:
            self.kill = self._run(self._publish_all, figures, book, kill_state, kill_trigger)
        except FleetUnreachable as exc:
            self._went_out(str(exc))
            raise
        if self.joined and self.out_since is not None:
            log.warning("fleet database reachable: state re-published", extra={"out_seconds": round(self.out_for(), 2)})
        self.joined, self.out_since = True, None

    def _publish_all(
        self, figures: AccountFigures, book: list[BookRow], kill_state: str, kill_trigger: str
    ) -> FleetKill:
        """On the writer thread: what :meth:`rejoin` sends, in order."""
        db = self.db
        if not self.joined:
            db.migrate()
            self.limits = db.join(self.cfg.currency, self.local_limits)
            db.claim(self.account, figures, os.getpid(), socket.gethostname(), 3 * self.cfg.heartbeat_seconds)
        else:
            self.limits = db.limits()
        db.publish_account(self.account, figures, kill_state, kill_trigger)
        db.publish_book(self.account, book, release_all=True)  # the book shows what every earlier order became
        self.held = frozenset()
        return db.kill_state()

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(timeout=3 * self.cfg.heartbeat_seconds + self.cfg.connect_timeout_seconds)
        if not self.out:
            with contextlib.suppress(FleetUnreachable):  # else the lease ends what it reserved
                self._run(self.db.stop, self.account)
        self._writer.submit(self.db.close)
        self._writer.shutdown(wait=False)

    # -- the trading thread's calls ---------------------------------------------------------------

    def reserve(self, ask: Ask) -> int | Refusal:
        if self.out:
            return Refusal(
                "fleet_unreachable",
                f"fleet_unreachable: the fleet database has been out of reach for {self.out_for():.1f} s "
                f"({self.why_out}); openings wait until this account's state is published again",
            )
        try:
            answer: int | Refusal = self.call(self.db.reserve, self.account, ask, self.cfg.lease_seconds)
        except FleetUnreachable as exc:
            return Refusal("fleet_unreachable", f"fleet_unreachable: no reservation could be made ({exc})")
        return answer

    def heartbeat(self) -> FleetKill:
        kill: FleetKill = self.call(self.db.heartbeat, self.account)
        self._adopt(kill)
        return kill

    # -- the listener thread ----------------------------------------------------------------------

    def _adopt(self, kill: FleetKill) -> None:
        """Take a newer kill-switch event as the fleet's state (event ids only grow: an older read is ignored)."""
        if kill.event > self.kill.event:
            self.kill = kill

    def _listen(self) -> None:
        pause, acked = 0.1, 0
        while not self._stopping.is_set():
            db = self._listen_db
            try:
                conn = db.connect()
                conn.execute(f"LISTEN {CHANNEL}")
                self._server_up.set()
                pause = 0.1
                while not self._stopping.is_set():
                    kill = db.kill_state()
                    self._adopt(kill)
                    if kill.event > acked:  # (a heartbeat may have adopted it first: the ack is still owed)
                        db.saw_kill(self.account, kill.event)
                        acked = kill.event
                    db.renew(self.account, sorted(self.held), self.cfg.lease_seconds)
                    # a notification that came during the reads above waits in psycopg's backlog: none is lost
                    for _ in conn.notifies(timeout=self.cfg.heartbeat_seconds, stop_after=1):
                        break
            except Exception as exc:  # reachable or not, the listener must outlive it: log, back off, retry
                self._server_up.clear()
                db.close()
                level = logging.DEBUG if isinstance(exc, FleetUnreachable) else logging.ERROR
                log.log(level, "fleet listener lost its connection", extra={"error": str(exc)}, exc_info=level > 10)
                self._stopping.wait(pause)
                pause = min(1.0, pause * 2)
        self._listen_db.close()
