"""systemd's notify protocol (``sd_notify``), for ``tradeguard run`` as a ``Type=notify`` service.

``READY=1`` once the runtime has started and aligned with the broker; ``WATCHDOG=1`` from the trading loop
itself, every half ``WatchdogSec``: a loop stuck in a job stops the pings and systemd restarts the service,
while a busy thread elsewhere (the alert manager's, the fleet listener's) cannot keep a dead loop looking alive;
``STOPPING=1`` when it stops. Without ``$NOTIFY_SOCKET`` (not under systemd) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("tradeguard.service")


class ServiceManager:
    """The datagrams to ``$NOTIFY_SOCKET``; a failed send is logged, never raised (the service keeps trading)."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        where = environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + where[1:] if where.startswith("@") else where  # "@name": the abstract namespace
        usec, pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
        ours = not pid or (pid.isdigit() and int(pid) == os.getpid())
        #: seconds between watchdog pings (half of WatchdogSec, as sd_watchdog_enabled advises); None: no watchdog
        self.watchdog_every = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and ours else None
        self._pinged = 0.0

    def notify(self, *assignments: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(assignments).encode(), self.address)
        except OSError as exc:
            log.warning("systemd notification not sent", extra={"error": str(exc), "what": assignments[0]})

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def watchdog(self) -> None:
        """A ping, at most every :attr:`watchdog_every`: call it from the loop whose liveness it vouches for."""
        if self.watchdog_every is None:
            return
        now = time.monotonic()
        if now - self._pinged >= self.watchdog_every:
            self._pinged = now
            self.notify("WATCHDOG=1")

    def stopping(self, status: str) -> None:
        self.notify("STOPPING=1", f"STATUS={status}")
