"""Errors tradeguard raises to its users and plugin authors.

Each names *who* (plugin, distribution), *where* (hook, settings key) and *what*; the original
exception is chained, never swallowed.
"""

from __future__ import annotations


class TradeguardError(Exception):
    """Base of every error tradeguard raises on purpose."""


class ConfigError(TradeguardError):
    """A setting is unknown, of the wrong type or out of range; start-up stops.

    ``problems`` holds one line per offending key: ``dotted.key = value: what is allowed``.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid settings:\n  " + "\n  ".join(self.problems))


class PluginError(TradeguardError):
    """A plugin could not be loaded, registered or validated against the hook contract."""

    def __init__(self, plugin: str, message: str, distribution: str | None = None) -> None:
        self.plugin = plugin
        self.distribution = distribution
        where = f"plugin {plugin!r}" + (f" (distribution {distribution})" if distribution else "")
        super().__init__(f"{where}: {message}")


class StartupError(TradeguardError):
    """The runtime refused to start: a required plugin is missing, a stage failed, alignment failed."""


class IllegalStateTransition(TradeguardError):
    """A state machine (order, kill switch) was asked for a transition it does not allow."""
