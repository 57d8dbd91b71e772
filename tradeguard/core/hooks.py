"""Calls hook implementations one at a time, in pluggy's order, so the kernel knows who answered.

pluggy's own ``pm.hook.x(...)`` returns results without saying which plugin produced them and
aborts every implementation on the first exception. For gates, vetoes and observers tradeguard
needs both the name (for the decision record and ``plugin_error:<name>``) and per-plugin
isolation, so it walks the implementations itself. The call plan is built once per registration
change: the hot path is a loop over a tuple, as in pluggy's ``_multicall``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pluggy

from tradeguard import hookspecs

log = logging.getLogger("tradeguard.hooks")

#: (plugin name, function, argument names) in call order.
Plan = tuple[tuple[str, Callable[..., Any], tuple[str, ...]], ...]
ErrorSink = Callable[[str, str, BaseException], None]


class HookRunner:
    def __init__(self, pm: pluggy.PluginManager, on_error: ErrorSink) -> None:
        self.pm = pm
        self._on_error = on_error
        self.plans: dict[str, Plan] = {}
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the call plans; call after registering or unregistering a plugin."""
        self.plans = {
            name: tuple(
                (impl.plugin_name, impl.function, tuple(impl.argnames))
                for impl in reversed(getattr(self.pm.hook, name).get_hookimpls())
            )
            for name in hookspecs.HOOK_NAMES
        }

    def plugin_failed(self, hook: str, plugin: str, exc: BaseException) -> None:
        self._on_error(plugin, hook, exc)

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call an observer hook on every implementation; a raising one is isolated and reported."""
        for plugin, fn, argnames in self.plans[hook]:
            try:
                fn(*[kwargs[a] for a in argnames])
            except Exception as exc:
                self._on_error(plugin, hook, exc)

    def collect(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation; return ``(plugin, result)`` for each non-None result.

        A raising implementation is reported and contributes ``(plugin, exception)``: callers that
        must fail closed check for ``BaseException`` results.
        """
        out: list[tuple[str, Any]] = []
        for plugin, fn, argnames in self.plans[hook]:
            try:
                res = fn(*[kwargs[a] for a in argnames])
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
        for plugin, fn, argnames in self.plans[hook]:
            try:
                res = fn(*[kwargs[a] for a in argnames])
            except Exception as exc:
                self._on_error(plugin, hook, exc)
                return plugin, exc
            if res is not None:
                return plugin, res
        return "", None
