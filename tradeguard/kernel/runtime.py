"""The runtime: the object handed to every hook. It carries services, not business logic.

Services: ``settings``, ``clock``, ``broker``, ``execution``, ``store``, ``metrics``, ``log``,
``scheduler``; and the calls that fire hooks: ``alert(...)``, ``request_halt(...)``,
``notify(...)``, ``decide(signal)``, ``on_bar(bar)``. Plugins talk to each other only through
hooks and these services.

``Runtime.build`` is the start-up sequence: settings (kernel tables first, to know which plugins
to load), discovery and registration, then validation of the whole tree with every plugin's model.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy
from pydantic import BaseModel

from tradeguard.errors import PluginError, StartupError
from tradeguard.kernel import logging as tglog
from tradeguard.kernel import plugins as plugin_loader
from tradeguard.kernel.bars import BarHistory
from tradeguard.kernel.clock import Clock, WallClock
from tradeguard.kernel.hooks import HookRunner, HookStats
from tradeguard.kernel.metrics import Metrics
from tradeguard.kernel.operator_desk import OperatorDesk
from tradeguard.kernel.paper import PaperExecution
from tradeguard.kernel.pipeline import Pipeline
from tradeguard.kernel.scheduler import Scheduler
from tradeguard.kernel.settings import (
    KERNEL_TABLES,
    SECRET_KEY,
    Settings,
    load_raw,
    merge,
    resolve_env,
    resolve_file,
    validate,
)
from tradeguard.kernel.triggers import action_for, ineffective
from tradeguard.models import (
    Alert,
    AlertChannel,
    Bar,
    Decision,
    HaltEvent,
    Job,
    KillState,
    Severity,
    Signal,
)
from tradeguard.ports import Broker, Execution
from tradeguard.store.journal_lock import JournalLock
from tradeguard.store.memory import MemoryStore
from tradeguard.store.sqlite import Store, StoreError, StoreUnwritable
from tradeguard.store.watch import StoreWatch

if TYPE_CHECKING:
    from tradeguard.broker.emulator.terminal import Terminal

#: The staged start (DESIGN §3); a plugin's ``stage`` attribute puts it in one.
STAGES = {
    1: "health and account",
    2: "execution, reconciliation and risk",
    3: "kill switch and alerting",
    4: "signal gate and targets",
    5: "confluence, memory and strategies",
    6: "metrics and audit",
    7: "state alignment",
    8: "start-up checks",
}
_NO_SCOPE: AbstractContextManager[None] = nullcontext()  # no broker connected: nothing to share
DEFAULT_STAGE = 4
#: the services an operator command starts when no trading process owns the journal
OPERATOR_SERVICES = ("kill_switch", "alert_manager", "audit_trail")

_CHANNELS = {c.value: c for c in AlertChannel}
_SEVERITIES = {v.value: v for v in Severity}


def _alert(
    time: datetime,
    channel: Any,
    severity: Any,
    module: Any,
    error_code: Any,
    message: Any,
    symbol: Any,
    context: dict[str, Any],
) -> Alert:
    """Alerts are raised on the trading thread: when every part already has its type (the usual case) the
    model is built without validating again; anything else goes through full validation, which names the field."""
    if type(module) is type(error_code) is type(message) is type(symbol) is str:
        kind, level = _CHANNELS.get(str(channel).upper()), _SEVERITIES.get(str(severity).upper())
        if kind is not None and level is not None:
            return Alert.trusted(
                time=time,
                channel=kind,
                severity=level,
                module=module,
                error_code=error_code,
                message=message,
                symbol=symbol,
                context=context,
            )
    return Alert(
        time=time,
        channel=channel,
        severity=severity,
        module=module,
        error_code=error_code,
        message=message,
        symbol=symbol,
        context=context,
    )


_SEVERITY_LEVEL = {
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.ERROR: logging.ERROR,
    Severity.CRITICAL: logging.CRITICAL,
}


def journal_path(settings: Settings) -> Path:
    """The store file the settings name: ``store.path`` under ``runtime.data_dir`` unless absolute."""
    return Path(settings.runtime.data_dir) / str(settings.store.path)


def open_journal(settings: Settings) -> Store:
    return Store(journal_path(settings), synchronous=settings.store.synchronous)


class Runtime:
    def __init__(
        self,
        *,
        settings: Settings,
        pm: pluggy.PluginManager,
        records: list[plugin_loader.PluginRecord] | None = None,
        clock: Clock | None = None,
        store: Store | MemoryStore | None = None,
        execution: Execution | None = None,
        broker: Broker | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.pm = pm
        self.plugins = records or []
        self.clock: Clock = clock or WallClock()
        self.metrics = metrics or Metrics()
        self.log = logging.getLogger("tradeguard.runtime")
        self.store: Store | MemoryStore = store if store is not None else MemoryStore()
        self._broker = broker
        self.hooks = HookRunner(pm, self._plugin_error)
        self.scheduler = Scheduler(self.clock, self._plugin_error)
        self.pipeline = Pipeline(self, self.hooks)
        self.execution: Execution = execution if execution is not None else PaperExecution(self)
        self.started = False
        #: "trading" for a process that trades, "operator" for an operator command's (see start_operator)
        self.role = "trading"
        self.holds: set[str] = set()
        self.bars = BarHistory()
        #: the signals every strategy emitted on the bar being decided (set by :meth:`on_bar`)
        self.bar_signals: tuple[Signal, ...] = ()
        self.store_watch = StoreWatch(self)
        self.desk = OperatorDesk(self)
        if isinstance(self.store, Store):
            self.store.on_failure = self.store_watch.failed
        path = getattr(self.store, "path", ":memory:")
        self._journal_lock = (
            JournalLock(self.store, settings.env, settings.broker.module) if path != ":memory:" else None
        )

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        settings_file: str | Path | None = None,
        env: str | None = None,
        *,
        discover: bool = True,
        plugins: Iterable[tuple[str, object]] = (),
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        read_files: bool = True,
        trading: bool = True,
        **services: Any,
    ) -> Runtime:
        """Load settings, discover and register plugins, validate every key; nothing is started yet.

        ``plugins`` registers extra ``(name, object)`` pairs directly (embedding, tests);
        ``discover=False`` skips entry points. ``overrides`` are laid over the files and environment
        key by key at every depth (tests, CLI flags: ``--data`` keeps the file's emulator leverage).
        ``read_files=False`` ignores every settings file (built-in defaults, environment variables and
        overrides only). ``trading=False``
        builds for an operator's command, which live's demands on a trading process do not hold up.
        """
        env = resolve_env(env)
        path = resolve_file(settings_file) if read_files else None
        raw = load_raw(path, env)
        merge(raw, overrides or {})  # key by key at every depth: an override keeps the file's other keys
        _register_secrets(raw)
        kernel = validate(
            {k: raw[k] for k in KERNEL_TABLES if k in raw}, KERNEL_TABLES, env=env, source=path, tolerated=raw
        )
        tglog.configure(kernel.logging.level, kernel.logging.file, kernel.logging.format)
        pm = plugin_loader.new_manager()
        records = plugin_loader.load(pm, kernel.plugins, env) if discover else []
        for name, obj in plugins:
            hooks = plugin_loader.register(pm, name, obj)
            records.append(plugin_loader.PluginRecord(name, "(direct)", "", repr(obj), "loaded", hooks=hooks))
        models = {**KERNEL_TABLES, **_plugin_models(pm)}
        # tables of installed plugins this runtime did not load (disabled, failed, or not discovered)
        registered = {name for name, _ in pm.list_name_plugin()}
        not_loaded = [name for name in plugin_loader.candidates() if name not in registered]
        settings = validate(raw, models, env=env, source=path, tolerated=not_loaded, trading=trading)
        if "store" not in services:
            services["store"] = open_journal(settings)
        return cls(settings=settings, pm=pm, records=records, **services)

    # -- services ------------------------------------------------------------------------------

    @property
    def broker(self) -> Broker:
        """The MT5 adapter, connected on first use (commands that never trade never connect)."""
        if self._broker is None:
            from tradeguard.broker.mt5 import MT5Adapter, load_module

            cfg = self.settings.broker
            adapter = MT5Adapter(load_module(cfg), cfg)
            adapter.connect()
            self._broker = adapter
        return self._broker

    @broker.setter
    def broker(self, adapter: Broker) -> None:
        self._broker = adapter

    def emulator(self) -> Terminal | None:
        """The emulator's terminal when it runs in this process behind the broker (a replay steps its market);
        None over any other terminal, a served emulator included."""
        from tradeguard.broker.emulator.terminal import Terminal
        from tradeguard.broker.mt5 import MT5Adapter

        broker = self.broker
        terminal = broker.mt5 if isinstance(broker, MT5Adapter) else None
        return terminal if isinstance(terminal, Terminal) else None

    @property
    def has_broker(self) -> bool:
        """A broker is connected: reading ``broker`` will not connect one."""
        return self._broker is not None

    def sqlite_store(self) -> Store:
        """The SQLite store, for the plugins that keep their records in its tables (the execution journal, the
        audit chain); a runtime that keeps its state in memory cannot run them."""
        if not isinstance(self.store, Store):
            raise StartupError("this plugin needs the SQLite store (settings [store]); this runtime keeps memory")
        return self.store

    def hook_timings(self) -> dict[tuple[str, str], HookStats]:
        """Time every hook implementation from now on (the profiler's switch); the live stats, by plugin and hook."""
        return self.hooks.profile()

    def hold(self, reason: str) -> None:
        """Hold the pipeline: every signal is rejected (``not_aligned``) until :meth:`release`."""
        self.holds.add(reason)

    def release(self, reason: str) -> None:
        self.holds.discard(reason)

    def provide_execution(self, engine: Execution) -> None:
        """The execution plugin installs itself as the execution service (replacing paper execution)."""
        self.execution = engine
        self.log.info("execution service provided", extra={"service": type(engine).__name__})

    def use_clock(self, clock: Clock) -> None:
        """Put the runtime on ``clock`` before it starts (a replay's, a simulated market's): its jobs and
        plugins read time from it from then on."""
        if self.started:
            raise RuntimeError("the runtime clock cannot change once the runtime has started")
        self.clock = clock
        self.scheduler = Scheduler(clock, self._plugin_error)

    def sleep(self, seconds: float) -> None:
        """Pause on the runtime clock: real time in paper/live; nothing in replay (its clock is the data's)."""
        if seconds > 0 and isinstance(self.clock, WallClock):
            time.sleep(seconds)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the plugins stage by stage (DESIGN §3), then schedule their jobs.

        A plugin says its stage with a ``stage`` attribute (third-party default 4, beside the gate).
        Each stage is logged with what it loaded; a plugin that cannot start stops start-up, naming
        its stage. State alignment (7) and the start-up checks (8) run after every service is up.
        A journal file is locked first: a second process on it is refused before it can trade, and so is
        a terminal logged in to another account than the one the journal belongs to.
        """
        lock = self._journal_lock
        if lock is None:
            self._start()
            return
        account = self._broker.account() if self._broker is not None else None
        lock.acquire((account.login, account.server) if account is not None else None)  # before alignment reads
        try:
            self._start()
        except BaseException:
            lock.release()
            raise

    def _start(self) -> None:
        if self.role == "trading" and self.settings.fleet.enabled and self.pm.get_plugin("fleet_risk") is None:
            raise StartupError(
                "fleet.url is set but the fleet_risk plugin is not loaded: the fleet's budget and kill switch would "
                "not hold here (enable fleet_risk, or unset fleet.url)"
            )
        staged: dict[int, list[tuple[str, Any, Any]]] = {}
        for plugin, fn, pick in self.hooks.plans["tradeguard_startup"]:
            stage = getattr(self.pm.get_plugin(plugin), "stage", DEFAULT_STAGE)
            if stage not in STAGES:
                raise StartupError(f"plugin {plugin!r} declares stage {stage!r}; stages are {sorted(STAGES)}")
            staged.setdefault(stage, []).append((plugin, fn, pick))
        loaded = {r.name: f"{r.distribution} {r.version}".strip() for r in self.plugins if r.status == "loaded"}
        for stage in sorted(staged):
            members = staged[stage]
            for plugin, fn, pick in members:
                try:
                    fn(*pick({"runtime": self}))
                except StoreError:
                    raise  # the file is the problem, whichever plugin read it first: it names the file
                except Exception as exc:
                    raise StartupError(
                        f"stage {stage} ({STAGES[stage]}): plugin {plugin!r} failed to start: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
            self.log.info(
                "stage started",
                extra={"stage": stage, "stage_name": STAGES[stage], "started": [p for p, _, _ in members]},
            )
        # a crash loses at most a second of what is written behind (decisions not sent to the broker, bars)
        self.scheduler.add(
            Job(name="store.flush", every=timedelta(seconds=1), run=lambda rt: rt.store.flush_behind(), wall_clock=True)
        )
        self.scheduler.add(
            Job(name="store.watch", every=timedelta(seconds=1), run=lambda rt: rt.store_watch.check(), wall_clock=True)
        )
        if self.role == "trading":  # operator orders another process handed over (kernel/operator_desk.py)
            self.scheduler.add(
                Job(
                    name="operator.requests",
                    every=timedelta(seconds=1),
                    run=lambda rt: rt.desk.serve_requests(),
                    wall_clock=True,
                )
            )
        for plugin, jobs in self.hooks.collect("periodic_jobs", runtime=self):
            if isinstance(jobs, BaseException):
                raise StartupError(f"plugin {plugin!r} failed to declare its jobs: {jobs}") from jobs
            for job in jobs:
                self.scheduler.add(job, plugin)
        if self.role == "trading" and self.settings.fleet.enabled and isinstance(self.execution, PaperExecution):
            raise StartupError(
                "fleet.url is set but orders are paper (no execution engine): the fleet would count none of them"
            )
        self.started = True
        if self.settings.runtime.gc_tuning:
            # Latency: objects built at start-up live as long as the process; moving them out of the
            # collector's view and collecting young garbage less often takes GC pauses off decisions.
            gc.freeze()
            gc.set_threshold(50_000, 50, 100)
        self.log.info("runtime started", extra={"plugins": loaded})
        for warning in ineffective(self.settings):
            self.log.warning("setting never takes effect", extra={"detail": warning})

    def start_operator(self) -> bool:
        """An operator command's runtime (``kill``, ``reset``): the same services a trading process acts through.

        With no trading process on the journal, the command owns it for its few moments: the kill switch,
        the alert manager and the audit trail start (nothing else is registered, nothing connects to a
        broker), so its action is announced, alerted and chained as a trading process would, and the
        alert is delivered before the command exits. With one running, nothing starts: the command records
        its action in the store and that process announces and chains it within a second. Returns whether
        this command owns the journal."""
        lock = self._journal_lock
        if lock is None:
            return False
        try:
            lock.acquire()
        except StartupError:
            return False
        self.role = "operator"
        try:
            for name, _ in list(self.pm.list_name_plugin()):
                if name not in OPERATOR_SERVICES:
                    self.pm.unregister(name=name)
            self.hooks.refresh()
            self._start()
        except BaseException:
            lock.release()
            raise
        return True

    def stop(self) -> None:
        self.hooks.notify("tradeguard_shutdown", runtime=self)
        self.store.flush()
        self.started = False
        if self._journal_lock is not None:
            self._journal_lock.release()
        self.log.info("runtime stopped")

    def settings_for(self, plugin: object) -> Any:
        """The settings table of ``plugin``: the one named after the name it is registered under."""
        name = self.pm.get_name(plugin)
        if name is None:
            raise LookupError(f"{plugin!r} is not a registered plugin")
        return self.settings[name]

    # -- hook points ---------------------------------------------------------------------------

    def decide(self, signal: Signal) -> Decision:
        return self.pipeline.decide(signal)

    def on_bar(self, bar: Bar) -> list[Decision]:
        """A bar closed: record it, tell the observers, collect every strategy's signals, then decide each."""
        self.store.record_bar(bar)
        if self.hooks.plans["on_bar"]:
            self.notify("on_bar", bar=bar)
        signals: list[Signal] = []
        for plugin, produced in self.hooks.collect("generate_signals", bar=bar, runtime=self):
            if isinstance(produced, BaseException):
                continue
            for signal in produced:
                if isinstance(signal, Signal):
                    signals.append(signal)
                else:
                    self._plugin_error(plugin, "generate_signals", TypeError(f"returned {type(signal).__name__}"))
        self.bar_signals = tuple(signals)
        return [self.decide(signal) for signal in signals]

    def run_jobs(self) -> list[str]:
        """Run the due periodic jobs with one view of the broker: the jobs of one pass (account capture,
        reconciliation, health) share each account/positions/quote read, as a decision's plugins do.
        Sending or checking an order ends the shared view, so nothing stale is read after a trade."""
        with self.read_scope():
            return self.scheduler.run_due(self)

    def read_scope(self) -> AbstractContextManager[None]:
        """One view of the broker for the block (a decision, a pass of jobs): every read is made once and
        shared. A broker not connected yet stays so: the scope never connects one."""
        return self._broker.read_scope() if self._broker is not None else _NO_SCOPE

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Fire an observer hook on every plugin; each failure is isolated and reported."""
        self.hooks.notify(hook, runtime=self, **kwargs)

    def alert(
        self,
        *,
        channel: AlertChannel | str,
        severity: Severity | str,
        module: str,
        error_code: str,
        message: str,
        symbol: str = "",
        **context: Any,
    ) -> Alert:
        """Raise an alert: logged here, delivered by the alerting plugin through ``on_alert``."""
        alert = _alert(self.clock.now(), channel, severity, module, error_code, message, symbol, context)
        logging.getLogger("tradeguard.alert").log(
            _SEVERITY_LEVEL[alert.severity],
            message,
            extra={"channel": alert.channel.value, "source": module, "error_code": error_code, "symbol": symbol},
        )
        self.notify("on_alert", alert=alert)
        return alert

    def request_halt(
        self,
        trigger: str,
        message: str,
        *,
        source: str,
        state: KillState = KillState.HALTED,
        flatten: bool = False,
    ) -> HaltEvent | None:
        """Ask for trading to stop: the kill switch latches on ``on_halt``; everyone else may react.

        For a trigger ``[default.triggers]`` names, its row decides the state and the flatten (``state`` and
        ``flatten`` are then ignored); a row whose state is OFF latches nothing, and the alert says so."""
        action = action_for(self.settings, trigger)
        if action is not None:
            if action.state == "OFF":
                self.alert(
                    channel=AlertChannel.RISK,
                    severity=Severity.ERROR,
                    module=source,
                    error_code=trigger,
                    message=f"{message} (nothing latched: triggers.{trigger}.state = OFF)",
                )
                return None
            state, flatten = KillState(action.state), action.flatten
        event = HaltEvent(
            time=self.clock.now(), trigger=trigger, message=message, source=source, state=state, flatten=flatten
        )
        self.notify("on_halt", event=event)
        self.alert(
            channel=AlertChannel.RISK,
            severity=Severity.CRITICAL,
            module=source,
            error_code=trigger,
            message=f"halt requested ({state.value}{', flatten' if flatten else ''}): {message}",
        )
        return event

    def _plugin_error(self, plugin: str, hook: str, exc: BaseException) -> None:
        self.metrics.plugin_errors.labels(plugin, hook).inc()
        if isinstance(exc, StoreUnwritable):  # the store watch holds, latches and alerts: once, not per write
            self.store_watch.plugin_failed(plugin, hook, exc)
            return
        self.log.error(
            "plugin raised", exc_info=(type(exc), exc, exc.__traceback__), extra={"plugin": plugin, "hook": hook}
        )
        if hook != "on_alert":  # an alert channel failing must not alert through itself
            self.alert(
                channel=AlertChannel.SYSTEM,
                severity=Severity.ERROR,
                module=plugin,
                error_code="plugin_error",
                message=f"plugin {plugin} raised {type(exc).__name__} in {hook}: {exc}",
                hook=hook,
            )


def _plugin_models(pm: pluggy.PluginManager) -> dict[str, type[BaseModel]]:
    """Ask each plugin for its settings model; the table is named after the plugin."""
    models: dict[str, type[BaseModel]] = {}
    for impl in pm.hook.tradeguard_settings.get_hookimpls():
        name = impl.plugin_name
        try:
            model = impl.function()
        except Exception as exc:
            raise PluginError(name, f"tradeguard_settings raised {type(exc).__name__}: {exc}") from exc
        if model is None:
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise PluginError(name, f"tradeguard_settings returned {model!r}, not a pydantic model class")
        if name in KERNEL_TABLES:
            raise PluginError(name, f"its settings table would shadow the kernel's [{name}] table")
        models[name] = model
    return models


def _register_secrets(tree: Mapping[str, Any], key: str = "") -> None:
    for k, v in tree.items():
        if isinstance(v, Mapping):
            _register_secrets(v, k)
        elif isinstance(v, str) and SECRET_KEY.search(str(k)):
            tglog.register_secret(v)
