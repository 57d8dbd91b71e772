"""A base for plugins with a settings table, so each plugin states its model once.

Subclasses set ``settings_model``; the base declares it through ``tradeguard_settings`` and keeps
the validated table (named after the plugin's registered name) in ``self.cfg`` from start-up on.
A subclass with its own ``tradeguard_startup`` calls ``super().tradeguard_startup(runtime)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tradeguard.core.schema import PluginSettings
from tradeguard.hookspecs import hookimpl


class ConfiguredPlugin:
    settings_model: ClassVar[type[PluginSettings]]

    def __init__(self) -> None:
        self.cfg: Any = self.settings_model()

    @hookimpl
    def tradeguard_settings(self) -> type[PluginSettings]:
        return self.settings_model

    @hookimpl
    def tradeguard_startup(self, runtime: Any) -> None:
        self.cfg = runtime.settings_for(self)
