"""A throwaway PostgreSQL cluster on 127.0.0.1: for the fleet's tests, its benchmark, and trying the fleet on one
machine (``tradeguard fleet sandbox``).

It runs Debian's (or any) PostgreSQL server binaries, ``initdb`` and ``pg_ctl``, in a temporary directory with
trust authentication on loopback only. PostgreSQL refuses to run as root, so under root the cluster belongs to
the ``postgres`` user the Debian package creates. Nothing here is for a production database: that one is the
operator's, named by ``fleet.url``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tradeguard.errors import TradeguardError

#: where Debian's packages put the server binaries (they are not on PATH)
_DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"


def server_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (the newest Debian version first), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob(_DEBIAN_BINARIES), key=lambda p: int(Path(p).parent.name), reverse=True)
    return next((Path(v) for v in versions if (Path(v) / "initdb").exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayCluster:
    """``initdb`` + ``pg_ctl`` in a temporary directory; ``url`` reaches its ``postgres`` database."""

    def __init__(self, root: Path | None = None) -> None:
        binaries = server_binaries()
        if binaries is None:
            raise TradeguardError("no PostgreSQL server binaries (initdb, pg_ctl): install Debian's postgresql package")
        self.bin = binaries
        self.root = Path(tempfile.mkdtemp(prefix="tradeguard-pg-", dir=root))
        self.data = self.root / "data"
        self.port = _free_port()
        self._user: pwd.struct_passwd | None = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        user = self._user
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            cwd=self.root,
        )
        if done.returncode != 0:
            raise TradeguardError(f"{tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> ThrowawayCluster:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        options += " -c track_functions=pl"  # the benchmark reads the reservation's server-side time
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"), "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash: no checkpoint, clients cut off)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop("immediate")
        self.start()

    def destroy(self) -> None:
        with contextlib.suppress(TradeguardError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayCluster:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.destroy()
