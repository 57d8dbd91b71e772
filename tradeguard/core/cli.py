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
