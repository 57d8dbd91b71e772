"""What every command shares: the consoles, the two options every command takes, and how a refusal is shown."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tradeguard.errors import TradeguardError
from tradeguard.kernel.runtime import Runtime

console = Console()
err_console = Console(stderr=True)

SettingsOpt = Annotated[
    Path | None,
    typer.Option("--settings", help="settings file (default: $TRADEGUARD_SETTINGS_FILE or ./settings.toml)"),
]
EnvOpt = Annotated[str | None, typer.Option("--env", help="default, paper or live (default: $TRADEGUARD_ENV)")]


def fail(exc: TradeguardError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)  # the message's brackets are text
    return typer.Exit(1)


def build(settings: Path | None, env: str | None, **kw: object) -> Runtime:
    try:
        return Runtime.build(settings, env, **kw)  # type: ignore[arg-type]
    except TradeguardError as exc:
        raise fail(exc) from exc


def operator_secret() -> str:
    """The operator secret: TRADEGUARD_OPERATOR_SECRET, or asked for on a terminal (never a command-line argument,
    which the shell's history and the process list would keep)."""
    secret = os.environ.get("TRADEGUARD_OPERATOR_SECRET")
    if secret:
        return secret
    if not sys.stdin.isatty():
        raise fail(
            TradeguardError(
                "no operator secret: set TRADEGUARD_OPERATOR_SECRET, or run from a terminal to be asked for it"
            )
        )
    return str(typer.prompt("operator secret", hide_input=True))


def secret_hash(rt: Runtime) -> str:
    """The operator secret's hash (kill_switch.operator_secret_hash) a reset is checked against; said before
    anyone is asked for the secret when there is none."""
    stored = rt.settings.kill_switch.operator_secret_hash.get_secret_value() if "kill_switch" in rt.settings else ""
    if not stored:
        raise fail(
            TradeguardError(
                "no operator secret is configured (kill_switch.operator_secret_hash): make one with "
                "`tradeguard hash-secret` and put it in .secrets.toml"
            )
        )
    return str(stored)
