"""The ``tradeguard`` command (also ``python -m tradeguard``).

Exit codes: 0 success; 1 the settings or start-up were refused (the message says which key or
plugin); 2 the command line itself was wrong; 130 a replay was interrupted (it still stopped cleanly).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

import tradeguard
from tradeguard.cli.common import EnvOpt, SettingsOpt, console, err_console, operator_secret, secret_hash
from tradeguard.cli.common import build as _build
from tradeguard.cli.common import fail as _fail
from tradeguard.cli.fleet import fleet_app
from tradeguard.errors import TradeguardError
from tradeguard.kernel.runtime import Runtime
from tradeguard.kernel.triggers import ineffective
from tradeguard.store.sqlite import Store

app = typer.Typer(
    help="tradeguard: the control plane between trading strategies and a MetaTrader 5 account.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect and check the settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")
emulator_app = typer.Typer(help="The built-in MetaTrader 5 emulator.", no_args_is_help=True)
app.add_typer(emulator_app, name="emulator")
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
token_app = typer.Typer(help="Tokens of the control API and web console.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(fleet_app, name="fleet")


def _version(value: bool) -> None:
    if value:
        console.print(f"tradeguard {tradeguard.__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """tradeguard: every signal through one gate, every order through one engine."""


@app.command("plugins")
def plugins_cmd(settings: SettingsOpt = None, env: EnvOpt = None) -> None:
    """List every installed plugin: distribution, version, status and the hooks it implements."""
    rt = _build(settings, env, trading=False)
    table = Table(title=f"plugins (environment {rt.settings.env})")
    width = max((len(rec.name) for rec in rt.plugins), default=4)
    table.add_column("plugin (from)", no_wrap=True, min_width=width)  # a name is never cut
    table.add_column("status", overflow="fold")  # at 80 columns a long error folds onto the next line, never "…"
    table.add_column("hooks", no_wrap=True)
    for rec in rt.plugins:
        status = rec.status + (" (required)" if rec.required else "")
        if rec.error:
            status += f"\n{rec.error}"
        colour = {"loaded": "green", "disabled": "yellow", "failed": "red"}[rec.status]
        origin = f"{rec.distribution} {rec.version}".strip()
        table.add_row(f"{rec.name}\n[dim]{origin}[/]", f"[{colour}]{status}[/]", "\n".join(rec.hooks))
    console.print(table)


@config_app.command("check")
def config_check(
    settings: SettingsOpt = None,
    env: EnvOpt = None,
    show: Annotated[bool, typer.Option("--show", help="print the validated settings (secrets redacted)")] = False,
    connect: Annotated[
        bool, typer.Option("--connect", help="also reach the terminal (and the fleet database) and say who answers")
    ] = False,
) -> None:
    """Validate every setting for an environment, and that the broker module can be imported there; exit 1 naming
    each bad key or what is missing."""
    from tradeguard.broker.mt5 import module_problem

    rt = _build(settings, env)
    if show:
        console.print_json(json.dumps(rt.settings.redacted()))
    problem = module_problem(rt.settings.broker)
    if problem and rt.settings.env == "live":  # `run` would fail on it after every setting passed
        raise _fail(TradeguardError(problem))
    loaded = sum(r.status == "loaded" for r in rt.plugins)
    source = rt.settings.source or "built-in defaults"
    console.print(f"settings OK: environment {rt.settings.env}, file {source}, {loaded} plugins loaded")
    for warning in ineffective(rt.settings):
        console.print(f"[yellow]warning[/]: {warning}", highlight=False)
    if problem:  # (validating live's settings on a machine that will not run them is fine)
        console.print(f"[yellow]warning[/]: {escape(problem)}", highlight=False)
    if connect:
        _try_connections(rt)


def _try_connections(rt: Runtime) -> None:
    """Reach the terminal the settings name (and the fleet database when there is one); say who answered."""
    try:
        account = rt.broker.account()
        terminal = rt.broker.terminal()
    except TradeguardError as exc:
        raise _fail(exc) from exc
    trading = "trading allowed" if terminal.trade_allowed else "[red]trading NOT allowed in the terminal[/]"
    console.print(
        f"terminal OK: account {account.login} on {account.server}, {account.currency} "
        f"{account.equity:,.2f} equity, {trading}, server clock {rt.broker.zone.name}"
    )
    fleet = rt.settings.fleet
    if fleet.enabled:
        from tradeguard.fleet.database import FleetDB

        db = FleetDB.of(fleet)
        try:  # a check only reads: it never creates the fleet's schema
            version = db.one("SELECT to_regclass('tradeguard_fleet_schema') IS NOT NULL", ())[0]
        except TradeguardError as exc:
            raise _fail(exc) from exc
        finally:
            db.close()
        console.print(f"fleet database OK: fleet {fleet.name!r}, {'schema there' if version else 'no schema yet'}")


@app.command("demo")
def demo_cmd(settings: SettingsOpt = None, env: EnvOpt = None) -> None:
    """Push a few signals (real EURUSD prices) through every loaded plugin and show each decision."""
    from tradeguard.cli.demo import demo_overrides, run_demo

    rt = _build(settings, env, overrides=demo_overrides())
    try:
        rows = run_demo(rt)
    except TradeguardError as exc:
        raise _fail(exc) from exc
    table = Table(title="decisions")
    for col in ("#", "signal", "outcome", "stage", "reasons / order"):
        table.add_column(col)
    for i, (label, d) in enumerate(rows, 1):
        outcome = "[green]approved[/]" if d.approved else "[red]rejected[/]"
        detail = (
            f"{d.client_id}: {d.order.side.value} {d.volume:g} {d.order.symbol} sl {d.targets.stop_loss:.5f} "
            f"tp {d.targets.take_profit:.5f}"
            if d.approved and d.order and d.targets and d.targets.take_profit
            else "; ".join(f"{r.message} [{r.plugin or 'kernel'}]" for r in d.reasons)
        )
        table.add_row(str(i), label, outcome, d.stage, detail)
    console.print(table)
    approved = sum(d.approved for _, d in rows)
    loaded = [r.name for r in rt.plugins if r.status == "loaded"]
    console.print(
        f"{len(rows)} signals, {approved} approved, {len(rows) - approved} rejected; "
        f"plugins: {', '.join(loaded)}; open positions: {len(rt.execution.get_positions_snapshot())}"
    )


def replay_overrides(
    data: list[str] | None,
    symbol: str | None,
    faults: str | None,
    seed: int | None,
    allow_renamed_data: bool = False,
    data_timezone: str | None = None,
) -> dict[str, dict[str, Any]]:
    """What ``replay``'s flags lay over the settings (key by key: the file's other emulator keys stay).

    A replay serves its metrics on a free port (it must never fail on a busy one), and journals with
    synchronous=NORMAL: surviving a power cut buys a simulation nothing, and FULL costs an fsync per commit.
    When the flags name the symbols (SYMBOL=FILE, a folder, or --symbol), the runtime follows them; a single
    FILE alone is the settings' ``broker.emulator.symbol``'s, which the runtime follows when unset."""
    from tradeguard.broker.emulator.faults import PROFILES

    emulator: dict[str, Any] = {}
    if data:
        emulator["data"] = data_table(data, symbol)
    if symbol:
        emulator["symbol"] = symbol
    if allow_renamed_data:
        emulator["allow_renamed_data"] = True
    if data_timezone:
        emulator["data_timezone"] = data_timezone
    if faults is not None and faults not in PROFILES:
        raise typer.BadParameter(f"{faults!r}: known profiles {', '.join(PROFILES)}", param_hint="--faults")
    fault_cfg: dict[str, Any] | str | None = faults
    if seed is not None:
        fault_cfg = {**PROFILES[faults or "none"].model_dump(), "seed": seed}
    if fault_cfg is not None:
        emulator["faults"] = fault_cfg
    overrides: dict[str, dict[str, Any]] = {
        "logging": {"level": "WARNING"},
        "metrics_server": {"port": 0},
        "store": {"synchronous": "NORMAL"},
        "fleet": {"url": ""},  # a replay is a what-if on its own simulated account: it never joins a live fleet
    }
    if emulator:
        overrides["broker"] = {"module": "emulator", "emulator": emulator}
    table = emulator.get("data")
    if isinstance(table, dict) or (table is not None and symbol):  # the flags name the symbols: follow them
        overrides["runtime"] = {"symbols": list(table) if isinstance(table, dict) else [symbol]}
    return overrides


def data_table(values: list[str], symbol: str | None) -> str | dict[str, str]:
    """``--data``: one FILE (of ``--symbol``), a DIR of ``SYMBOL_*.csv|parquet`` files, or SYMBOL=FILE, repeated."""
    from tradeguard.broker.emulator.config import datasets_in

    pairs = [v for v in values if "=" in v]
    if pairs and len(pairs) != len(values):
        raise typer.BadParameter("give either SYMBOL=FILE pairs or one FILE or DIR, not both", param_hint="--data")
    if pairs:
        if symbol:
            raise typer.BadParameter("SYMBOL=FILE names the symbols: leave --symbol out", param_hint="--symbol")
        table: dict[str, str] = {}
        for pair in pairs:
            name, _, file = pair.partition("=")
            name = name.strip().upper()
            if not name or not file or name in table:
                raise typer.BadParameter(f"{pair!r}: give SYMBOL=FILE, each symbol once", param_hint="--data")
            table[name] = file
        return table
    if len(values) > 1:
        raise typer.BadParameter("one FILE or DIR, or SYMBOL=FILE pairs", param_hint="--data")
    path = Path(values[0])
    if path.is_dir():
        if symbol:
            raise typer.BadParameter(
                "a folder's file names name the symbols: leave --symbol out", param_hint="--symbol"
            )
        try:
            return datasets_in(path)
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--data") from None
    return str(path)


@app.command("replay")
def replay_cmd(
    data: Annotated[
        list[str] | None,
        typer.Option(
            metavar="FILE|DIR|SYMBOL=FILE",
            help="bars or ticks: one FILE (of --symbol), a DIR of SYMBOL_*.csv|parquet files, or SYMBOL=FILE "
            "(repeat for several symbols on one market clock); default: the shipped EURUSD sample",
        ),
    ] = None,
    symbol: Annotated[str | None, typer.Option(help="the symbol a single data FILE belongs to")] = None,
    allow_renamed_data: Annotated[
        bool, typer.Option("--allow-renamed-data", help="replay a file named for one symbol as another's")
    ] = False,
    data_timezone: Annotated[
        str | None,
        typer.Option(
            metavar="ZONE",
            help="the zone the data's times are in: a terminal export's server zone (new_york_close, +02:00, "
            "Europe/Athens); default UTC",
        ),
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="trade from this UTC time; earlier bars warm up")] = None,
    end: Annotated[str | None, typer.Option("--to", help="stop after this UTC date/time")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the emulator's fault injection")] = None,
    faults: Annotated[str | None, typer.Option(help="fault profile: none, flaky, hostile")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="replace the journal of an earlier replay")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="no progress bar; the summary as one JSON object")] = False,
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    """Replay market data through the whole control plane on the emulator, from an empty journal; a summary
    at the end. A journal that holds anything is refused (it may be an account's); --fresh replaces one that
    an earlier replay wrote."""
    from datetime import UTC, datetime

    from tradeguard.kernel.clock import ReplayClock

    overrides = replay_overrides(data, symbol, faults, seed, allow_renamed_data, data_timezone)

    def epoch(text: str | None, option: str) -> int | None:
        if text is None:
            return None
        try:
            return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())
        except ValueError:
            raise typer.BadParameter(
                f"{text!r} is not an ISO date or date-time (2017-06-01, 2017-06-01T09:00)", param_hint=option
            ) from None

    first, last = epoch(start, "--from"), epoch(end, "--to")
    if first is not None and last is not None and first > last:
        raise typer.BadParameter(f"{start} is after --to {end}", param_hint="--from")

    def build() -> Runtime:
        return _build(settings, env, overrides=overrides, clock=ReplayClock(datetime(1970, 1, 2, tzinfo=UTC)))

    rt = _emptied(build(), fresh, build)
    _closing(rt, lambda: _replay_and_summarise(rt, first, last, as_json))


def _replay_and_summarise(rt: Runtime, first: int | None, last: int | None, as_json: bool = False) -> None:
    """The replay with its progress bar, then the summary table (``as_json``: no bar, the summary as one JSON
    object on standard output, for a pipeline to read); exit 130 when it was interrupted."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tradeguard.replay.loop import ReplaySummary, fault_handling, replay

    try:
        terminal = rt.emulator()  # connects: the data file is read here
    except TradeguardError as exc:
        raise _fail(exc) from exc
    if terminal is None:
        raise _fail(TradeguardError("replay needs the in-process emulator (broker.module = 'emulator')"))
    times = terminal.market.bar_times()
    total = sum(len(feed.bars) for feed in terminal.market.feeds.values())
    if total:  # a window the data does not reach trades nothing: a mistyped date, said so
        begins, ends = (rt.broker.to_utc(int(t)) for t in (times[0], times[-1]))
        if first is not None and first > ends.timestamp():
            raise typer.BadParameter(f"after the data's last bar ({ends:%Y-%m-%dT%H:%M})", param_hint="--from")
        if last is not None and last < begins.timestamp():
            raise typer.BadParameter(f"before the data's first bar ({begins:%Y-%m-%dT%H:%M})", param_hint="--to")
    with Progress(
        TextColumn("[bold]replay"),
        BarColumn(),
        TextColumn("{task.completed} bars"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=as_json,
    ) as bar:
        task = bar.add_task("replay", total=total, status="")

        def show(s: ReplaySummary) -> None:
            bar.update(
                task,
                completed=s.bars,
                status=f"equity {rt.broker.account().equity:,.2f}  approved {s.approved}",
            )

        try:
            summary = replay(rt, start=first, end=last, progress=show, stop=_stop_on_signals())
        except TradeguardError as exc:
            raise _fail(exc) from exc
        bar.update(task, completed=summary.bars)
    if as_json:
        _print_json_summary(rt, summary)
        if summary.interrupted:
            raise typer.Exit(130)
        return
    cut = " (interrupted)" if summary.interrupted else ""
    table = Table(title=f"replay {summary.first_bar[:16]} -> {summary.last_bar[:16]}{cut}", show_header=False)
    for label, value in (
        ("bars", f"{summary.bars:,}"),
        ("signals", f"{summary.signals:,} ({summary.approved:,} approved)"),
        ("fills (deals)", f"{summary.fills:,}"),
        ("balance", f"{summary.start_balance:,.2f} -> {summary.final_balance:,.2f}"),
        ("final equity", f"{summary.final_equity:,.2f}"),
        ("max drawdown", f"{summary.max_drawdown_pct:.2f}%"),
        ("rejections", ", ".join(f"{k} {v}" for k, v in summary.rejections.most_common(6)) or "none"),
        ("kill switch", summary.kill_switch),
        ("audit chain", _audit_line(rt)),
        ("slowest hooks", _profile_line(rt)),
        ("journal", str(getattr(rt.store, "path", "memory"))),
    ):
        table.add_row(label, value)
    console.print(table)
    if len(summary.symbols) > 1:
        console.print(_book_table(summary.symbols))
    faults = fault_handling(rt)
    if faults:
        console.print(_faults_table(faults))
    if summary.interrupted:
        raise typer.Exit(130)


def _faults_table(faults: dict[str, Any]) -> Table:
    """What the emulator injected and how each kind of fault was handled."""
    table = Table(title="faults injected, and how they were handled", show_header=False)
    injected = ", ".join(f"{k} {v}" for k, v in faults["injected"].items())
    table.add_row("injected", injected)
    for label, n in faults["handled"].items():
        table.add_row(label, f"{n:,}")
    if faults["refused_by"]:
        table.add_row("refused, by answer", ", ".join(f"{k} {v}" for k, v in faults["refused_by"].items()))
    if faults["held_by"]:
        table.add_row("held, by reason", ", ".join(f"{k} {v}" for k, v in faults["held_by"].items()))
    return table


def _book_table(symbols: dict[str, Any]) -> Table:
    """The replay symbol by symbol, and the book's totals."""
    counts, money = ("bars", "signals", "approved", "fills", "trades"), ("swap", "net")
    table = Table(title="the book, symbol by symbol")
    table.add_column("symbol")
    for column in ("bars", "signals", "approved", "deals", "trades closed", "swap", "net"):
        table.add_column(column, justify="right", overflow="fold")  # a figure is folded, never cut

    def row(parts: list[Any]) -> list[str]:
        return [f"{sum(getattr(p, k) for p in parts):,}" for k in counts] + [
            f"{sum(getattr(p, k) for p in parts):,.2f}" for k in money
        ]

    for name, part in symbols.items():
        table.add_row(name, *row([part]))
    table.add_row("book", *row(list(symbols.values())), style="bold")
    return table


def _print_json_summary(rt: Runtime, summary: Any) -> None:
    import dataclasses

    from tradeguard.kernel.status import kill_switch_record
    from tradeguard.replay.loop import fault_handling

    record = dataclasses.asdict(summary)
    record["rejections"] = dict(summary.rejections.most_common())
    record["faults"] = fault_handling(rt)
    record["symbols"] = {name: dataclasses.asdict(part) for name, part in summary.symbols.items()}
    record["kill_switch"] = kill_switch_record(rt.store.kill_state())
    verdict = _audit_verdict(rt)
    if verdict is not None:
        record["audit"] = {"intact": verdict.ok, "records": verdict.records, "reason": verdict.reason or None}
    record["journal"] = str(getattr(rt.store, "path", "memory"))
    sys.stdout.write(json.dumps(record) + "\n")


def _stop_on_signals() -> Any:
    """An event SIGINT and SIGTERM set, so that a long command ends between two steps, cleanly; a second
    signal while it winds down aborts at once."""
    import signal
    import threading

    stop = threading.Event()

    def handler(*_: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return stop


FRESH_RUN = "over the in-process emulator: replace an earlier replay's or run's journal"
REPLAY_EMPTY = "a replay starts from an empty one"
# the in-process emulator dies with its process: the next start is a new account at the data's first bar
EMULATOR_EMPTY = (
    "the in-process emulator opens a new simulated account, its market back at the data's first bar, "
    "at every start, so a run over it starts from an empty journal"
)


def _closing(rt: Runtime, work: Callable[[], None]) -> None:
    """Do ``work`` over ``rt``'s journal, then close it: a clean stop leaves one self-contained file, no write-ahead
    log beside it; a refusal before anything was recorded (bad data, no terminal) leaves no file at all."""
    from tradeguard.store.journal_lock import discard_if_empty

    done = False
    try:
        work()
        done = True
    finally:
        if done:
            rt.sqlite_store().close()
        else:
            discard_if_empty(rt.sqlite_store())


def _emptied(rt: Runtime, fresh: bool, build: Callable[[], Runtime], why: str = REPLAY_EMPTY) -> Runtime:
    """``rt`` over an empty journal: as built when it is empty; rebuilt over a new file when ``fresh`` and
    the old one is an earlier simulation's (the emulator's: never an account's, never one a running process
    holds). ``why`` says, in the refusal, why this command needs an empty journal."""
    from tradeguard.store.journal_lock import replace_simulation_journal

    store = rt.store
    if not isinstance(store, Store):
        return rt
    try:
        if not replace_simulation_journal(store, fresh, why):
            return rt
    except TradeguardError as exc:
        raise _fail(exc) from exc
    return build()


def _profile_line(rt: Runtime) -> str:
    profiler = rt.pm.get_plugin("profiler")
    if profiler is None or not hasattr(profiler, "table"):
        return "not measured (profiler not loaded)"
    return ", ".join(f"{r['plugin']}.{r['hook']} {r['total_s']:.2f} s" for r in profiler.table()[:3])


def _audit_verdict(rt: Runtime) -> Any:
    """The audit chain's verdict (``core.audit.Verdict``), or None when the audit trail is not recording."""
    from tradeguard.store.audit import verify

    if "audit_trail" not in rt.settings or not isinstance(rt.store, Store):
        return None
    return verify(rt.store, rt.settings.audit_trail.hmac_key.get_secret_value().encode())


def _audit_line(rt: Runtime) -> str:
    from tradeguard.store.audit import read_anchor

    verdict = _audit_verdict(rt)
    if verdict is None:
        return "not recorded (audit_trail not loaded)"
    anchor = read_anchor(rt.store.path) if isinstance(rt.store, Store) else None
    head = f"; anchor: record {anchor['seq']:,}, {anchor['hash'][:12]}" if anchor and anchor["seq"] > 0 else ""
    return f"intact, {verdict.records:,} records{head}" if verdict.ok else f"BROKEN: {verdict.reason}"


@app.command("run")
def run_cmd(
    settings: SettingsOpt = None,
    env: EnvOpt = None,
    fresh: Annotated[bool, typer.Option("--fresh", help=FRESH_RUN)] = False,
) -> None:
    """The long-running process against the configured broker; SIGINT/SIGTERM stop it cleanly (exit 0).

    Over the in-process emulator (broker.module = "emulator") every start is a new simulated account, so the
    journal must be empty: an earlier run's or replay's is refused, and --fresh replaces it. Over a terminal
    or a served emulator the journal is the account's and the run resumes it."""
    from tradeguard.replay.loop import run_live

    rt = _build(settings, env)
    if rt.settings.broker.module == "emulator":
        rt = _emptied(rt, fresh, lambda: _build(settings, env), EMULATOR_EMPTY)
    elif fresh:
        raise typer.BadParameter(
            "replaces only the in-process emulator's journals (broker.module = "
            f"'emulator'; this is {rt.settings.broker.module!r})",
            param_hint="--fresh",
        )
    stop = _stop_on_signals()
    ran: list[Any] = []

    def run() -> None:
        ran.extend((run_live(rt, stop), rt.store.kill_state()))

    try:
        _closing(rt, run)
    except TradeguardError as exc:
        raise _fail(exc) from exc
    bars, latch = ran
    state = "ACTIVE" if latch is None else latch[0]
    why = "" if stop.is_set() else " (the emulator's market data ended)"
    journal = getattr(rt.store, "path", "")
    console.print(f"stopped cleanly after {bars} bars{why}; kill switch {state}; journal {journal}")


def _store_of(settings: Path | None, env: str | None, *, existing: bool = False) -> tuple[Runtime, Any]:
    """The configured store, without connecting to any broker: these commands work beside a running process.

    ``existing``: the commands that only read refuse a journal that is not there, rather than create an
    empty one and show it (a mistyped data_dir would otherwise read as a quiet, ACTIVE account).
    """
    if not existing:
        rt = _build(settings, env, trading=False)
        return rt, rt.store
    from tradeguard.kernel.runtime import journal_path, open_journal
    from tradeguard.store.memory import MemoryStore

    rt = _build(settings, env, store=MemoryStore(), trading=False)
    path = journal_path(rt.settings)
    if not path.is_file():
        raise _fail(
            TradeguardError(f"no journal at {path}: nothing has run with these settings (runtime.data_dir, store.path)")
        )
    rt.store = open_journal(rt.settings)
    return rt, rt.store


def _operator(settings: Path | None, env: str | None) -> tuple[Runtime, bool]:
    """The runtime an operator command acts through, and whether it owns the journal (no trading process runs):
    see :meth:`Runtime.start_operator`. Either way its action is announced, alerted and chained once."""
    rt = _build(settings, env, trading=False, overrides={"logging": {"level": "WARNING"}})  # the command's own say
    try:
        return rt, rt.start_operator()
    except TradeguardError as exc:
        raise _fail(exc) from exc


def _handed_over(owner: bool) -> str:
    return "" if owner else " (a trading process runs: it adopts, alerts and audits this within a second)"


@app.command("kill")
def kill_cmd(
    reason: Annotated[str, typer.Option(help="why: recorded with the latch")],
    operator: Annotated[str, typer.Option(envvar="TRADEGUARD_OPERATOR", help="who")] = "cli",
    reduce_only: Annotated[bool, typer.Option("--reduce-only", help="REDUCE_ONLY instead of HALTED")] = False,
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    """Latch the kill switch; a running process picks it up within a second. Alerted (CRITICAL) and audited."""
    from tradeguard.models import KillState

    rt, owner = _operator(settings, env)
    state = KillState.REDUCE_ONLY if reduce_only else KillState.HALTED
    try:
        kill_switch = rt.pm.get_plugin("kill_switch")
        current = rt.store.kill_state()
        if current is not None and current[0] == "HALTED":
            console.print(f"kill switch already HALTED since {current[3]} ({current[1]})")
            return
        if current is not None and current[0] == state.value:
            console.print(f"kill switch already {state.value} since {current[3]} ({current[1]})")
            return
        if owner and kill_switch is not None:
            kill_switch.transition(state, "manual", reason, operator=operator, via="cli")
        else:
            rt.store.set_kill_state(state.value, "manual", reason, operator=operator, via="cli", auth="none")
    finally:
        if owner:
            rt.stop()
    console.print(f"kill switch latched {state.value} by {operator}: {reason}{_handed_over(owner)}")


@app.command("reset")
def reset_cmd(
    operator: Annotated[str, typer.Option(help="who resets")],
    reason: Annotated[str, typer.Option(help="why it is safe to trade again")],
    force: Annotated[bool, typer.Option("--force", help="reset although the trigger still holds")] = False,
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    """Back to ACTIVE. The operator secret is prompted (or read from TRADEGUARD_OPERATOR_SECRET); a refused
    reset is recorded, alerted and audited too."""
    probe = _build(settings, env, trading=False)
    if "kill_switch" not in probe.settings or probe.pm.get_plugin("kill_switch") is None:
        raise _fail(TradeguardError("the kill_switch plugin is not loaded"))
    secret_hash(probe)  # says so before asking for the secret when there is none
    latched = probe.store.kill_state()
    if latched is None or latched[0] == "ACTIVE":
        console.print("kill switch already ACTIVE: nothing to reset")
        return
    secret = operator_secret()
    probe.sqlite_store().close()
    rt, owner = _operator(settings, env)
    kill_switch: Any = rt.pm.get_plugin("kill_switch")  # loaded: it is a required plugin
    try:
        if not owner:  # the running process announces what this records
            kill_switch.attach(rt, announces=False)
        kill_switch.reset(operator, secret, reason, force=force, via="cli")
    except TradeguardError as exc:
        raise _fail(exc) from exc
    finally:
        if owner:
            rt.stop()
    console.print(f"kill switch reset to ACTIVE by {operator}: {reason}{_handed_over(owner)}")


def _operator_order(
    action: str, args: dict[str, Any], operator: str, reason: str, settings: Path | None, env: str | None
) -> None:
    """Carry out an operator order through the trading process: the running one (handed over through the
    store, served within a second), or, with none running, one started for the moment (aligned first)."""
    import time

    rt = _build(settings, env)
    lock = rt._journal_lock
    running = False
    if lock is not None:
        try:
            lock.refuse_if_held()
        except TradeguardError:
            running = True
    if running:
        journal = rt.sqlite_store()
        request = journal.add_request(action, args, operator, "cli", "none", reason)
        deadline = time.monotonic() + 15
        status, result = "pending", ""
        while status == "pending" and time.monotonic() < deadline:
            time.sleep(0.1)
            status, result = journal.request_outcome(request)
        if status == "pending" and journal.withdraw_request(request):
            raise _fail(
                TradeguardError(
                    f"the trading process has not taken {action} within 15 s: withdrawn, "
                    "nothing was sent; look at `tradeguard status` before ordering again"
                )
            )
        while status in ("pending", "running") and time.monotonic() < deadline + 60:  # taken: its outcome comes
            time.sleep(0.1)
            status, result = journal.request_outcome(request)
        if status != "done":
            raise _fail(TradeguardError(f"{action}: {result}"))
        console.print(f"{action} by {operator} (carried out by the trading process): {escape(result)}")
        return
    if rt.settings.broker.module == "emulator":
        raise _fail(
            TradeguardError(
                "broker.module = 'emulator': the in-process emulator's account exists only "
                "inside a replay or run; nothing to act on"
            )
        )
    rt.hold("operator")
    try:
        rt.start()
        done = rt.desk.execute(action, args, operator=operator, via="cli", auth="none", reason=reason)
    except TradeguardError as exc:
        raise _fail(exc) from exc
    finally:
        if rt.started:
            rt.stop()
    if not done.ok:
        raise _fail(TradeguardError(f"{action}: {done.result}"))
    console.print(f"{action} by {operator}: {escape(done.result)}")


@app.command("flatten")
def flatten_cmd(
    reason: Annotated[str, typer.Option(help="why: recorded with the order")],
    operator: Annotated[str, typer.Option(envvar="TRADEGUARD_OPERATOR", help="who")] = "cli",
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    """Exit everything: cancel our working orders and close our positions (the kill switch is not touched;
    `kill --reduce-only` stops entries). Carried out by the trading process; alerted and audited."""
    _operator_order("flatten", {}, operator, reason, settings, env)


@app.command("close")
def close_cmd(
    ticket: Annotated[int, typer.Argument(help="the position's ticket")],
    reason: Annotated[str, typer.Option(help="why: recorded with the order")],
    volume: Annotated[float | None, typer.Option(help="lots to close (default: all)")] = None,
    operator: Annotated[str, typer.Option(envvar="TRADEGUARD_OPERATOR", help="who")] = "cli",
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    """Close (part of) one of our positions. Carried out by the trading process; alerted and audited."""
    _operator_order("close", {"ticket": ticket, "volume": volume}, operator, reason, settings, env)


@app.command("stops")
def stops_cmd(
    ticket: Annotated[int, typer.Argument(help="the position's ticket")],
    reason: Annotated[str, typer.Option(help="why: recorded with the order")],
    stop_loss: Annotated[float | None, typer.Option("--sl", help="new stop loss (none: removed)")] = None,
    take_profit: Annotated[float | None, typer.Option("--tp", help="new take profit (none: removed)")] = None,
    operator: Annotated[str, typer.Option(envvar="TRADEGUARD_OPERATOR", help="who")] = "cli",
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    """Change one position's stop loss and take profit. Carried out by the trading process; alerted and audited."""
    _operator_order(
        "modify",
        {"ticket": ticket, "stop_loss": stop_loss, "take_profit": take_profit},
        operator,
        reason,
        settings,
        env,
    )


@token_app.command("create")
def token_create_cmd(
    name: Annotated[str, typer.Argument(help="who or what holds it: a person, a dashboard, a bot")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="read (status, decisions) or control (the actions too)")
    ] = None,
) -> None:
    """Make a control-API token: printed once, here, with the settings lines that hold only its hash (for
    .secrets.toml). The token itself is stored nowhere; lose it and make another."""
    import re

    from tradeguard.kernel.tokens import new_token

    scopes = sorted(set(scope or ["read"]) | ({"read"} if "control" in (scope or []) else set()))
    if not set(scopes) <= {"read", "control"}:
        raise typer.BadParameter(f"{', '.join(scopes)}: the scopes are read and control", param_hint="--scope")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name):
        raise typer.BadParameter("letters, digits, - and _ (it names the caller in the audit trail)", param_hint="NAME")
    token, digest = new_token()
    err_console.print(f"token for {name} (shown once; give it to its holder, keep it out of files):")
    typer.echo(token)
    err_console.print("and in .secrets.toml:")
    typer.echo(f'[default.control_api.tokens.{name}]\nhash = "{digest}"\nscopes = {json.dumps(scopes)}')


@app.command("hash-secret")
def hash_secret_cmd() -> None:
    """Ask for a new operator secret twice and print its scrypt hash, for kill_switch.operator_secret_hash
    in .secrets.toml (the secret itself is stored nowhere and never passes the command line)."""
    from tradeguard.kernel.operator_secret import hash_secret

    if not sys.stdin.isatty():
        raise _fail(TradeguardError("hash-secret asks for the secret: run it from a terminal"))
    secret = typer.prompt("new operator secret", hide_input=True)
    if len(secret) < 8:  # said at once, not after typing it twice
        raise _fail(TradeguardError("the operator secret needs at least 8 characters"))
    if typer.prompt("the same again", hide_input=True) != secret:
        raise _fail(TradeguardError("the two entries differ: nothing was hashed"))
    typer.echo(f'[default.kill_switch]\noperator_secret_hash = "{hash_secret(secret)}"')  # unwrapped: it is pasted


@app.command("report")
def report_cmd(
    out: Annotated[
        Path | None, typer.Option(help="folder for index.html and its charts (default: <data_dir>/report)")
    ] = None,
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    """Write an HTML report with PNG charts and the decision table, from the store (safe while running)."""
    from tradeguard.report import write_report

    rt, store = _store_of(settings, env, existing=True)  # an SQLite journal that is there
    folder = out if out is not None else Path(rt.settings.runtime.data_dir) / "report"
    try:
        path = write_report(store, rt.settings, folder)
    except OSError as exc:
        raise _fail(TradeguardError(f"--out {folder}: cannot write the report there ({exc.strerror})")) from exc
    console.print(f"report written: {path.resolve()}")


@app.command("status")
def status_cmd(
    settings: SettingsOpt = None,
    env: EnvOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="the status as one JSON object, for monitoring")] = False,
) -> None:
    """Kill switch, account, orders, open positions, health, reconciliation, decisions and alerts, from the store
    (safe while running). Health and reconciliation are stored when their verdict changes, hence "since"."""
    from tradeguard.kernel.status import read_status
    from tradeguard.store.journal_lock import describe_owner

    _, store = _store_of(settings, env, existing=True)  # an SQLite journal that is there
    s = read_status(store)
    if as_json:
        sys.stdout.write(json.dumps(s) + "\n")
        return
    table = Table(title=f"tradeguard status ({s['journal']})", show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # at 80 columns a long path or message folds, never "…"
    k = s["kill_switch"]
    table.add_row(
        "kill switch",
        k["state"] if k["since"] is None else f"{k['state']} since {k['since'][:19]} ({k['trigger']}: {k['message']})",
    )
    if s["process"]:
        table.add_row("trading process", describe_owner(s["process"]["state"], s["process"]))
    if a := s["account"]:
        table.add_row(
            "account",
            f"balance {a['balance']:,.2f}  equity {a['equity']:,.2f}  drawdown "
            f"{a['drawdown_pct']:.2f}%  today {a['daily_drawdown_pct']:.2f}%  "
            f"at {a['time'][:19]}",
        )
    table.add_row("orders", ", ".join(f"{state} {n}" for state, n in s["orders"].items()) or "none")
    table.add_row("fills", f"{s['fills']['deals']} deals, realised {s['fills']['realised']:,.2f}")
    if recon := s["reconciliation"]:
        table.add_row(
            "reconciliation",
            f"{'consistent' if recon['consistent'] else 'INCONSISTENT'} since {recon['time'][:19]} ({recon['cause']})",
        )
    held = [
        f"#{p['position_id']} {p['symbol']} {p['side']} {p['volume']:g} lots, opened {p['opened'][:19]}"
        for p in s["open_positions"]
    ]
    table.add_row("open positions", "\n".join(held) if held else "none")
    if health := s["health"]:
        findings = "; ".join(f"{k}: {v}" for k, v in health["checks"].items() if v != "ok")
        table.add_row("health", f"{health['status']} since {health['time'][:19]}{f' ({findings})' if findings else ''}")
    table.add_row("decisions", f"{s['decisions']['approved']} approved, {s['decisions']['rejected']} rejected")
    table.add_row("alerts outstanding", str(s["alerts_outstanding"]))
    anchor = s["audit_anchor"]
    table.add_row(
        "audit anchor",
        f"record {anchor['seq']:,}, {anchor['hash'][:16]}{' (HMAC)' if anchor['mac'] else ''}"
        if anchor
        else "none yet",
    )
    console.print(table)
    if s["slowest_hooks"]:
        console.print(
            _rows_table(
                "slowest plugin hooks (profiler)",
                s["slowest_hooks"],
                {
                    "plugin": "{}",
                    "hook": "{}",
                    "calls": "{:,}",
                    "total_s": "{:.3f}",
                    "mean_us": "{:.1f}",
                    "max_us": "{:.0f}",
                },
            )
        )
    if s["insights"]:
        console.print(
            _rows_table(
                "insights memory (closed trades by setup)",
                s["insights"],
                {
                    "strategy": "{}",
                    "symbol": "{}",
                    "side": "{}",
                    "session": "{}",
                    "bucket": "{}",
                    "count": "{:,}",
                    "win_rate": "{:.0%}",
                    "avg_r": "{:+.2f}",
                    "expectancy": "{:+,.2f}",
                    "streak": "{:+d}",
                },
            )
        )
    if s["accuracy"]:
        console.print(
            _rows_table(
                "signal accuracy (what followed each signal)",
                s["accuracy"],
                {
                    "strategy": "{}",
                    "taken": "{}",
                    "n": "{:,}",
                    "win": "{:,}",
                    "loss": "{:,}",
                    "expired": "{:,}",
                    "hit_rate": "{:.0%}",
                    "avg_r": "{:+.2f}",
                },
            )
        )


def _rows_table(title: str, rows: list[dict[str, Any]], columns: dict[str, str]) -> Table:
    """A table of ``rows`` (dicts): column key -> format; text columns left, numbers right.

    Headers come from the keys: ``total_s`` -> "total s", ``mean_us`` -> "mean µs".
    """
    table = Table(title=title)
    for n, (col, fmt) in enumerate(columns.items()):
        header = col.replace("_us", " µs").replace("_", " ")
        text = fmt == "{}"
        # the first column names the row: never cut nor folded; other text folds at 80 columns, never "…"
        table.add_column(header, justify="left" if text else "right", no_wrap=n == 0, overflow="fold")
    for row in rows:
        table.add_row(*(fmt.format(row[col]) for col, fmt in columns.items()))
    return table


VERIFY_HELP = """Walk the audit chain; exit 1 naming the first record edited, deleted or reordered, or what the
journal holds that the chain lacks.

Detected without a key: an edit of any column of any record (its seq, kind and time are bound to its hash),
a record deleted (the first, one in the middle, or the last: the anchor file beside the store names the
head), two records reordered, and a journal fill, decision of a sent order, order event or kill-switch
event with no record. Detected only with audit_trail.hmac_key: a chain rewritten from an edit onwards
with its anchor rewritten to match (without a key SHA-256 can be recomputed by anyone; with it, neither
the hashes nor the anchor's HMAC can). --file checks an export of `audit export` on its own."""


@audit_app.command("verify", help=VERIFY_HELP)
def audit_verify_cmd(
    file: Annotated[Path | None, typer.Option("--file", help="an export of `audit export` to check")] = None,
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    from tradeguard.store.audit import verify, verify_export

    if file is not None:
        rt = _build(settings, env, trading=False, store=_memory())
        key = rt.settings.audit_trail.hmac_key.get_secret_value().encode() if "audit_trail" in rt.settings else b""
        try:
            verdict = verify_export(file.read_text(), key)
        except OSError as exc:
            raise _fail(TradeguardError(f"{file}: {exc.strerror or exc}")) from exc
    else:
        rt, store = _store_of(settings, env, existing=True)
        key = rt.settings.audit_trail.hmac_key.get_secret_value().encode() if "audit_trail" in rt.settings else b""
        verdict = verify(store, key)
    if not verdict.ok:
        err_console.print(
            f"[bold red]audit chain broken[/] after {verdict.records} good records: {escape(verdict.reason)}",
            highlight=False,
        )
        raise typer.Exit(1)
    console.print(f"audit chain intact: {verdict.records} records")


@audit_app.command("export")
def audit_export_cmd(
    out: Annotated[Path, typer.Option("--out", help="the file to write")],
    start: Annotated[str | None, typer.Option("--from", help="first record's time, ISO (UTC), inclusive")] = None,
    end: Annotated[str | None, typer.Option("--to", help="last record's time, ISO (UTC), inclusive")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    """The audit records for a compliance officer, with their hashes and the chain's verdict first
    (check the file on its own with `audit verify --file`)."""
    from tradeguard.store.audit import export

    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter(f"{fmt!r}: jsonl or csv", param_hint="--format")
    rt, store = _store_of(settings, env, existing=True)
    key = rt.settings.audit_trail.hmac_key.get_secret_value().encode() if "audit_trail" in rt.settings else b""
    try:
        with out.open("w", newline="") as f:
            verdict = export(store, f, key, start=start, end=end, fmt=fmt)
    except OSError as exc:
        raise _fail(TradeguardError(f"{out}: {exc.strerror or exc}")) from exc
    state = "intact" if verdict.ok else f"BROKEN: {verdict.reason}"
    console.print(f"exported to {out}; the chain is {escape(state)}", highlight=False)


def _memory() -> Any:
    from tradeguard.store.memory import MemoryStore

    return MemoryStore()


@emulator_app.command("serve")
def emulator_serve(
    host: Annotated[str, typer.Option(help="address to bind; loopback only unless --allow-remote")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (mt5linux's default is 18812)")] = 18812,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="bind a non-loopback address (RPyC classic runs any code sent)")
    ] = False,
    ticks_per_second: Annotated[float, typer.Option(help="advance the replay by itself; 0 = paused")] = 0.0,
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    """Serve the emulator over RPyC classic so mt5linux clients trade on it; its state outlives them."""
    from tradeguard.broker.emulator.server import serve

    rt = _build(settings, env)
    config = rt.settings.broker.emulator.model_dump(exclude_defaults=True)
    try:
        serve(host, port, allow_remote=allow_remote, config=config, ticks_per_second=ticks_per_second)
    except (ValueError, RuntimeError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def main() -> None:
    """The command, with every refusal that reaches this far (a damaged store, above all) as one line, exit 1."""
    try:
        app()
    except TradeguardError as exc:
        _fail(exc)
        sys.exit(1)
