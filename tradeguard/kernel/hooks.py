"""Calls hook implementations one at a time, in pluggy's order, so the kernel knows who answered.

pluggy's own ``pm.hook.x(...)`` returns results without saying which plugin produced them and
aborts every implementation on the first exception. For gates, vetoes and observers tradeguard
needs both the name (for the decision record and ``plugin_error:<name>``) and per-plugin
isolation, so it walks the implementations itself. The call plan is built once per registration
change: the hot path is a loop over a tuple, as in pluggy's ``_multicall``.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable, Sequence
from typing import Any

import pluggy

from tradeguard import hookspecs

log = logging.getLogger("tradeguard.hooks")

#: The implementation's positional arguments, picked from the hook's keyword arguments.
Picker = Callable[[dict[str, Any]], tuple[Any, ...]]
#: (plugin name, function, argument picker) in call order.
Plan = tuple[tuple[str, Callable[..., Any], Picker], ...]
ErrorSink = Callable[[str, str, BaseException], None]


def picker(argnames: Sequence[str]) -> Picker:
    """A function from the hook's keyword arguments to the implementation's arguments, in its order
    (``itemgetter`` for two or more: a third of what a comprehension per call costs)."""
    if len(argnames) >= 2:
        return operator.itemgetter(*argnames)
    if len(argnames) == 1:
        name = argnames[0]
        return lambda kwargs: (kwargs[name],)
    return lambda kwargs: ()


class HookStats:
    """Calls, total and slowest seconds of one plugin's implementation of one hook."""

    __slots__ = ("calls", "max", "total")

    def __init__(self) -> None:
        self.calls = 0
        self.total = 0.0
        self.max = 0.0


class HookRunner:
    def __init__(self, pm: pluggy.PluginManager, on_error: ErrorSink) -> None:
        self.pm = pm
        self._on_error = on_error
        self.plans: dict[str, Plan] = {}
        #: ``(plugin, hook)`` -> stats while profiling is on (``profile()``); None costs nothing.
        self.stats: dict[tuple[str, str], HookStats] | None = None
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the call plans; call after registering or unregistering a plugin."""
        self.plans = {
            name: tuple(
                (impl.plugin_name, self._timed(impl.plugin_name, name, impl.function), picker(impl.argnames))
                for impl in reversed(getattr(self.pm.hook, name).get_hookimpls())
            )
            for name in hookspecs.HOOK_NAMES
        }

    def profile(self) -> dict[tuple[str, str], HookStats]:
        """Time every implementation from now on (the profiler plugin's switch); returns the live stats."""
        if self.stats is None:
            self.stats = {}
            self.refresh()
        return self.stats

    def _timed(self, plugin: str, hook: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if self.stats is None:
            return fn
        stats = self.stats.setdefault((plugin, hook), HookStats())
        clock = time.perf_counter

        def timed(*args: Any) -> Any:
            start = clock()
            try:
                return fn(*args)
            finally:
                spent = clock() - start
                stats.calls += 1
                stats.total += spent
                if spent > stats.max:
                    stats.max = spent

        return timed

    def plugin_failed(self, hook: str, plugin: str, exc: BaseException) -> None:
        self._on_error(plugin, hook, exc)

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call an observer hook on every implementation; a raising one is isolated and reported."""
        for plugin, fn, pick in self.plans[hook]:
            try:
                fn(*pick(kwargs))
            except Exception as exc:
                self._on_error(plugin, hook, exc)

    def collect(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation; return ``(plugin, result)`` for each non-None result.

        A raising implementation is reported and contributes ``(plugin, exception)``: callers that
        must fail closed check for ``BaseException`` results.
        """
        out: list[tuple[str, Any]] = []
        for plugin, fn, pick in self.plans[hook]:
            try:
                res = fn(*pick(kwargs))
            except Exception as exc:
                self._on_error(plugin, hook, exc)
                out.append((plugin, exc))
                continue
            if res is not None:
                out.append((plugin, res))
        return out

    def first(self, hook: str, **kwargs: Any) -> tuple[str, Any]:
        """Firstresult: the first non-None ``(plugin, result)``; ``('', None)`` if all abstain.

        A raising implementation stops the chain and is returned as ``(plugin, exception)``.
        """
        for plugin, fn, pick in self.plans[hook]:
            try:
                res = fn(*pick(kwargs))
            except Exception as exc:
                self._on_error(plugin, hook, exc)
                return plugin, exc
            if res is not None:
                return plugin, res
        return "", None
