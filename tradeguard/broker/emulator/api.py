"""The preamble every MetaTrader5 call shares: one lock (the API is not thread-safe), the latency
fault, and the IPC check that makes calls before ``initialize`` or after ``shutdown`` fail."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tradeguard.broker import constants

NO_IPC = (constants.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
OK = (constants.RES_S_OK, "Success")

F = TypeVar("F", bound=Callable[..., Any])


def api(failed: Any = None) -> Callable[[F], F]:
    """Run the method under the terminal lock, after the latency fault; without an IPC link (before
    ``initialize``, after ``shutdown``) return ``failed`` (None or False) with ``last_error`` set."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                if self.latency_s:
                    time.sleep(self.latency_s)
                if not self.initialized:
                    self._last_error = NO_IPC
                    return failed
                self._last_error = OK
                return method(self, *args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap
