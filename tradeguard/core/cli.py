"""The ``tradeguard`` command (also ``python -m tradeguard``).

Exit codes: 0 success; 1 the settings or start-up were refused (the message says which key or
plugin); 2 the command line itself was wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import tradeguard
from tradeguard.core.runtime import Runtime
from tradeguard.errors import TradeguardError

app = typer.Typer(
    help="tradeguard: the control plane between trading strategies and a MetaTrader 5 account.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect and check the settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")
emulator_app = typer.Typer(help="The built-in MetaTrader 5 emulator.", no_args_is_help=True)
app.add_typer(emulator_app, name="emulator")
console = Console()
err_console = Console(stderr=True)

SettingsOpt = Annotated[
    Path | None,
    typer.Option("--settings", help="settings file (default: $TRADEGUARD_SETTINGS_FILE or ./settings.toml)"),
]
EnvOpt = Annotated[str | None, typer.Option("--env", help="default, paper or live (default: $TRADEGUARD_ENV)")]


def _fail(exc: TradeguardError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
    return typer.Exit(1)


def _build(settings: Path | None, env: str | None, **kw: object) -> Runtime:
    try:
        return Runtime.build(settings, env, **kw)  # type: ignore[arg-type]
    except TradeguardError as exc:
        raise _fail(exc) from exc


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
    rt = _build(settings, env)
    table = Table(title=f"plugins (environment {rt.settings.env})")
    for col in ("name", "distribution", "version", "status", "hooks"):
        table.add_column(col)
    for rec in rt.plugins:
        status = rec.status + (" (required)" if rec.required else "")
        if rec.error:
            status += f"\n{rec.error}"
        colour = {"loaded": "green", "disabled": "yellow", "failed": "red"}[rec.status]
        table.add_row(rec.name, rec.distribution, rec.version, f"[{colour}]{status}[/]", ", ".join(rec.hooks))
    console.print(table)


@config_app.command("check")
def config_check(
    settings: SettingsOpt = None,
    env: EnvOpt = None,
    show: Annotated[bool, typer.Option("--show", help="print the validated settings (secrets redacted)")] = False,
) -> None:
    """Validate every setting for an environment; exit 1 naming each bad key."""
    rt = _build(settings, env)
    if show:
        console.print_json(json.dumps(rt.settings.redacted()))
    loaded = sum(r.status == "loaded" for r in rt.plugins)
    source = rt.settings.source or "built-in defaults"
    console.print(f"settings OK: environment {rt.settings.env}, file {source}, {loaded} plugins loaded")


@app.command("demo")
def demo_cmd(settings: SettingsOpt = None, env: EnvOpt = None) -> None:
    """Push a few signals (real EURUSD prices) through every loaded plugin and show each decision."""
    from tradeguard.core.demo import demo_overrides, run_demo

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


@app.command("replay")
def replay_cmd(
    data: Annotated[Path | None, typer.Option(help="bars or ticks file (default: the shipped EURUSD sample)")] = None,
    symbol: Annotated[str | None, typer.Option(help="the symbol the data belongs to")] = None,
    start: Annotated[str | None, typer.Option("--from", help="trade from this UTC time; earlier bars warm up")] = None,
    end: Annotated[str | None, typer.Option("--to", help="stop after this UTC date/time")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the emulator's fault injection")] = None,
    faults: Annotated[str | None, typer.Option(help="fault profile: none, flaky, hostile")] = None,
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    """Replay market data through the whole control plane on the emulator; a summary at the end."""
    from datetime import UTC, datetime

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tradeguard.core.clock import ReplayClock
    from tradeguard.core.replay import replay

    emulator: dict[str, object] = {}
    if data is not None:
        emulator["data"] = str(data)
    if symbol:
        emulator["symbol"] = symbol
    fault_cfg: dict[str, object] | str | None = faults
    if seed is not None:
        from tradeguard.broker.emulator.faults import PROFILES

        base = PROFILES.get(faults or "none")
        if base is None:
            err_console.print(f"[bold red]error:[/] --faults {faults!r}: known profiles {', '.join(PROFILES)}")
            raise typer.Exit(2)
        fault_cfg = {**base.model_dump(), "seed": seed}
    if fault_cfg is not None:
        emulator["faults"] = fault_cfg

    def epoch(text: str | None) -> int | None:
        return None if text is None else int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())

    overrides: dict[str, dict[str, object]] = {"logging": {"level": "WARNING"}}
    if emulator:
        overrides["broker"] = {"module": "emulator", "emulator": emulator}
    rt = _build(settings, env, overrides=overrides, clock=ReplayClock(datetime(1970, 1, 2, tzinfo=UTC)))
    with Progress(TextColumn("[bold]replay"), BarColumn(), TextColumn("{task.completed} bars"),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console,
                  transient=False) as bar:  # fmt: skip
        task = bar.add_task("replay", total=len(rt.broker.mt5.feed.bars), status="")

        def show(s: object) -> None:
            bar.update(task, completed=s.bars,  # type: ignore[attr-defined]
                       status=f"equity {rt.broker.account().equity:,.2f}  approved {s.approved}")  # type: ignore[attr-defined]

        try:
            summary = replay(rt, start=epoch(start), end=epoch(end), progress=show)
        except TradeguardError as exc:
            raise _fail(exc) from exc
        bar.update(task, completed=summary.bars)
    table = Table(title=f"replay {summary.first_bar[:16]} -> {summary.last_bar[:16]}", show_header=False)
    for label, value in (
        ("bars", f"{summary.bars:,}"), ("signals", f"{summary.signals:,} ({summary.approved:,} approved)"),
        ("fills (deals)", f"{summary.fills:,}"),
        ("balance", f"{summary.start_balance:,.2f} -> {summary.final_balance:,.2f}"),
        ("final equity", f"{summary.final_equity:,.2f}"), ("max drawdown", f"{summary.max_drawdown_pct:.2f}%"),
        ("rejections", ", ".join(f"{k} {v}" for k, v in summary.rejections.most_common(6)) or "none"),
        ("kill switch", summary.kill_switch),
        ("journal", str(getattr(rt.store, "path", "memory"))),
    ):  # fmt: skip
        table.add_row(label, value)
    console.print(table)


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
    app()
