"""Find, select, load and register plugins: built-in and third-party alike, all by entry point.

Every entry point in the group ``tradeguard.plugins`` is a candidate. Selection follows
``[plugins]``: ``enabled`` (if set) is the allow-list, ``disabled`` the block-list, ``required``
must load (and in ``live`` may not be switched off). A candidate that fails to import or to
construct is reported with its distribution and error and left out — unless it is required,
which stops start-up. A plugin whose hooks do not match the contract (misspelt hook or argument,
wrapper on a pipeline hook) always stops start-up: a silently ignored risk check is worse than
no start.

An entry point may name a class (instantiated with no arguments: one instance per process) or
any object pluggy can register (a module, an instance).
"""

from __future__ import annotations

import importlib.metadata as md
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import pluggy
from stevedore import ExtensionManager, NamedExtensionManager

from tradeguard import hookspecs
from tradeguard.errors import ConfigError, PluginError, StartupError
from tradeguard.kernel.settings import PluginsSettings

NAMESPACE = "tradeguard.plugins"
log = logging.getLogger("tradeguard.plugins")

Status = Literal["loaded", "disabled", "failed"]


@dataclass
class PluginRecord:
    """What ``tradeguard plugins`` shows for one entry point."""

    name: str
    distribution: str
    version: str
    target: str
    status: Status
    required: bool = False
    error: str = ""
    hooks: tuple[str, ...] = field(default_factory=tuple)


def candidates() -> dict[str, md.EntryPoint]:
    """Every entry point of the group, by name (a duplicate name across distributions is an error)."""
    found: dict[str, md.EntryPoint] = {}
    for ep in md.entry_points(group=NAMESPACE):
        if ep.name in found and found[ep.name].value != ep.value:
            raise PluginError(ep.name, f"declared twice: {found[ep.name].value} and {ep.value}", _dist(ep)[0])
        found[ep.name] = ep
    return found


def _dist(ep: md.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    return (dist.name, dist.version) if dist is not None else ("?", "?")


def select(names: list[str], cfg: PluginsSettings, env: str) -> tuple[list[str], list[str]]:
    """Split discovered names into (to load, switched off), enforcing the settings' rules."""
    known = set(names)
    problems = [
        f"plugins.{key} = {name!r}: no installed plugin of that name; installed: {', '.join(sorted(known))}"
        for key, listed in (("enabled", cfg.enabled or []), ("disabled", cfg.disabled))
        for name in listed
        if name not in known
    ]
    if problems:
        raise ConfigError(problems)
    off = [n for n in names if n in cfg.disabled or (cfg.enabled is not None and n not in cfg.enabled)]
    for name in cfg.required:
        if name not in known:
            raise StartupError(f"required plugin {name!r} is not installed (plugins.required)")
        if name in off:
            why = f"required plugin {name!r} is switched off by plugins.enabled/disabled"
            if env == "live":
                raise StartupError(f"{why}: required plugins cannot be disabled in the live environment")
            log.warning(why + f"; allowed outside live (environment {env!r})", extra={"plugin": name})
    return [n for n in names if n not in off], off


def _instantiate(obj: Any) -> Any:
    return obj() if isinstance(obj, type) else obj


def new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def register(pm: pluggy.PluginManager, name: str, obj: Any, distribution: str = "") -> tuple[str, ...]:
    """Register one plugin object under ``name``; contract violations raise ``PluginError``."""
    try:
        pm.register(obj, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(name, f"does not match the hook contract: {exc}", distribution) from exc
    callers = pm.get_hookcallers(obj) or []
    guarded = set(hookspecs.GATE_HOOKS + hookspecs.FIRSTRESULT_HOOKS + hookspecs.OBSERVER_HOOKS)
    for hook in callers:
        for impl in hook.get_hookimpls():
            if impl.plugin is obj and (impl.hookwrapper or impl.wrapper) and hook.name in guarded:
                pm.unregister(obj)
                raise PluginError(name, f"wraps {hook.name}: wrappers are not allowed on that hook", distribution)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(obj)
        raise PluginError(name, f"implements a hook the contract does not have: {exc}", distribution) from exc
    return tuple(sorted(h.name for h in callers))


def load(pm: pluggy.PluginManager, cfg: PluginsSettings, env: str) -> list[PluginRecord]:
    """Discover, select, import and register; return one record per entry point found."""
    eps = candidates()
    wanted, off = select(sorted(eps), cfg, env)
    failures: dict[str, BaseException] = {}

    def _failed(_mgr: object, ep: md.EntryPoint, exc: BaseException) -> None:
        failures[ep.name] = exc

    # stevedore memoises a namespace's entry points for the life of the process; discovery must
    # see what is installed now (a plugin pip-installed since the last build), as candidates() does.
    ExtensionManager.ENTRY_POINT_CACHE.pop(NAMESPACE, None)
    mgr: Any = NamedExtensionManager(  # stevedore is untyped
        NAMESPACE, names=wanted, name_order=True, on_load_failure_callback=_failed, propagate_map_exceptions=False
    )
    records: list[PluginRecord] = []
    loaded = {ext.name: ext.plugin for ext in mgr}
    for name in sorted(eps):
        ep = eps[name]
        dist, version = _dist(ep)
        rec = PluginRecord(name, dist, version, ep.value, "disabled", required=name in cfg.required)
        records.append(rec)
        if name in off:
            continue
        try:
            if name in failures:
                raise failures[name]
            obj = _instantiate(loaded[name])
        except Exception as exc:
            rec.status, rec.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error(
                "plugin failed to load",
                extra={"plugin": name, "distribution": dist, "version": version, "error": rec.error},
            )
            if rec.required:
                raise StartupError(f"required plugin {name!r} ({dist} {version}) failed to load: {rec.error}") from exc
            continue
        rec.hooks = register(pm, name, obj, f"{dist} {version}")
        rec.status = "loaded"
        log.debug("plugin loaded", extra={"plugin": name, "distribution": dist, "version": version})
    return records
