"""Small helpers the tests share: waiting for something a thread or process does, and a real small disk."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .conftest import require


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> None:
    """Poll ``check`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real disk of ``size`` (tmpfs) mounted at ``where`` for the block: one that fills up (ENOSPC)."""
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
