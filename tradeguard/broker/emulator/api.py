"""The preamble every MetaTrader5 call shares: one lock (the API is not thread-safe), the latency
fault, and the IPC check that makes calls before ``initialize`` or after ``shutdown`` fail."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def api(failed: Any = None) -> Callable[[F], F]:
    """Run the method under the terminal lock; without an IPC link return ``failed`` (None or False)."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                if not self._enter():
                    return failed
                return method(self, *args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap
