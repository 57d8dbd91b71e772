"""Serve the emulator as its own long-lived process over RPyC "classic", as mt5linux's server does.

The unmodified ``mt5linux`` client connects, runs ``import MetaTrader5 as mt5`` on the server and
evaluates each call there; here ``MetaTrader5`` is this emulator, so the client (and tradeguard's
adapter with ``broker.module = "mt5linux"``) trades on it as on a Windows terminal under Wine. The
terminal's state lives in this process, so it survives the death of the trading process.

Binds to loopback only unless ``allow_remote`` is given explicitly: the classic protocol executes
whatever code the peer sends, so it must never face a network.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import signal
import sys
import threading
import time
from typing import Any

log = logging.getLogger("tradeguard.emulator.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ticker(terminal: Any, ticks_per_second: float, stop: threading.Event) -> None:
    """Advance the replay at a steady pace, as a live market would, until the data ends."""
    period = 1.0 / ticks_per_second
    while not stop.wait(period):
        if terminal.paused:
            continue
        if not terminal.replay_step(1):
            log.info("replay finished; the market stays closed")
            return


def make_server(
    host: str = "127.0.0.1", port: int = 18812, *, allow_remote: bool = False, config: dict[str, Any] | None = None
) -> Any:
    """Build (not start) the RPyC server, with the module-level terminal initialised from ``config``."""
    if not is_loopback(host) and not allow_remote:
        raise ValueError(
            f"refusing to serve on {host}: the RPyC classic protocol runs any code a peer sends; "
            "bind to 127.0.0.1, or pass allow_remote explicitly"
        )
    from rpyc.core.service import SlaveService
    from rpyc.utils.server import ThreadedServer

    import tradeguard.broker.emulator as emulator

    if not emulator.initialize(reset=True, config=config or {}):
        raise RuntimeError(f"emulator failed to start: {emulator.last_error()}")
    sys.modules["MetaTrader5"] = emulator  # what `import MetaTrader5 as mt5` finds on this server

    class EmulatorService(SlaveService):
        def __init__(self) -> None:
            super().__init__()
            self.namespace["datetime"] = datetime  # mt5linux sends dates as repr(datetime)

    return ThreadedServer(
        EmulatorService, hostname=host, port=port, reuse_addr=True, protocol_config={"sync_request_timeout": 120}
    )


def serve(
    host: str = "127.0.0.1",
    port: int = 18812,
    *,
    allow_remote: bool = False,
    config: dict[str, Any] | None = None,
    ticks_per_second: float = 0.0,
) -> None:
    """Run until interrupted. ``ticks_per_second`` > 0 advances the replay on its own."""
    import tradeguard.broker.emulator as emulator

    server = make_server(host, port, allow_remote=allow_remote, config=config)
    stop = threading.Event()
    if ticks_per_second > 0:
        threading.Thread(target=_ticker, args=(emulator.terminal, ticks_per_second, stop), daemon=True).start()
    log.info("emulator serving", extra={"host": host, "port": port, "state": emulator.admin_state()})
    started = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: server.close())  # a clean stop, exit status 0
    try:
        server.start()
    finally:
        stop.set()
        log.info("emulator stopped", extra={"uptime_s": round(time.monotonic() - started, 1)})
