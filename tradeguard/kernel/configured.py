"""A base for plugins with a settings table, so each plugin states its model once.

Subclasses set ``settings_model``; the base declares it through ``tradeguard_settings`` and keeps
the validated table (named after the plugin's registered name) in ``self.cfg`` from start-up on.
A subclass with its own ``tradeguard_startup`` calls ``super().tradeguard_startup(runtime)``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from tradeguard.hookspecs import hookimpl
from tradeguard.kernel.schema import PluginSettings
from tradeguard.models import Job


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


class WriteBehindPlugin(ConfiguredPlugin):
    """A configured plugin whose memory is written behind to the store.

    Subclasses set ``namespace``, keep ``flush_seconds`` in their settings, set ``self.dirty``
    when their memory changes, and implement :meth:`save`. The base saves every
    ``flush_seconds`` of wall-clock time (see ``Job.wall_clock``) and at shutdown, only when dirty.
    """

    namespace: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.dirty = False

    @hookimpl
    def periodic_jobs(self, runtime: Any) -> list[Job]:
        every = timedelta(seconds=self.cfg.flush_seconds)
        return [Job(name=f"{self.namespace}.flush", every=every, run=lambda rt: self.flush(), wall_clock=True)]

    @hookimpl
    def tradeguard_shutdown(self, runtime: Any) -> None:
        self.flush()

    def flush(self) -> None:
        if self.dirty:
            self.save()
            self.dirty = False

    def save(self) -> None:
        """Write the memory to the store."""
        raise NotImplementedError
