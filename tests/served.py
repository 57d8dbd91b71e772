"""The emulator served as its own process (``tradeguard emulator serve``), for tests of the real topology.

The trading side reaches it through the unmodified mt5linux client, as it would a terminal under
Wine; the test drives the market through an RPyC classic connection of its own (``admin``): the
served module's ``terminal`` (``replay_step``, ``admin_*``), as a person at the terminal would.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    port: int
    process: subprocess.Popen[bytes]
    conn: Any

    @property
    def terminal(self) -> Any:
        """The served emulator's terminal object (its MetaTrader5 API and its replay/admin controls)."""
        return self.conn.modules["tradeguard.broker.emulator"].terminal

    def our_deals(self, magic: int) -> list[Any]:
        """Every deal the broker holds for ``magic`` or on a position one of them opened, by value."""
        from rpyc.utils.classic import obtain

        deals = obtain(self.terminal.history_deals_get(0, 2**40))
        ours = {int(d.position_id) for d in deals if int(d.magic) == magic}
        return [d for d in deals if int(d.magic) == magic or int(d.position_id) in ours]


@contextmanager
def served_emulator(workdir: Path, settings: str = "", ticks_per_second: float = 0.0) -> Iterator[Served]:
    """Serve the emulator (``settings``: the text of its settings file) until the block ends."""
    import rpyc

    port = free_port()
    cfg = workdir / f"emulator-{port}.toml"
    cfg.write_text(settings + '\n[default.logging]\nlevel = "WARNING"\n')
    cmd = [
        sys.executable,
        "-m",
        "tradeguard",
        "emulator",
        "serve",
        "--port",
        str(port),
        "--settings",
        str(cfg),
        "--ticks-per-second",
        str(ticks_per_second),
    ]
    log = (workdir / f"emulator-{port}.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=log)
    conn = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    why = (workdir / f"emulator-{port}.log").read_text()
                    raise RuntimeError(f"the emulator did not start: {why}") from None
                time.sleep(0.1)
        conn = rpyc.classic.connect("127.0.0.1", port)
        yield Served(port, proc, conn)
    finally:
        if conn is not None:
            conn.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()
