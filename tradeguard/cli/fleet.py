"""``tradeguard fleet``: see the fleet, latch it, reset it, and a throwaway database to try it on one machine.

These commands talk to the fleet database only: they need no broker and no trading process. Each account's
process adopts a kill or a reset within a second (LISTEN/NOTIFY), writes it into its own kill switch, alerts it
and chains it in its audit trail; the fleet's own record (``fleet_events``) keeps it too.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from tradeguard.cli.common import EnvOpt, SettingsOpt, build, console, fail, operator_secret, secret_hash
from tradeguard.errors import TradeguardError
from tradeguard.fleet.database import FleetDB, Totals
from tradeguard.kernel.operator_secret import verify_secret
from tradeguard.store.memory import MemoryStore

fleet_app = typer.Typer(help="Many accounts under one budget and one kill switch (PostgreSQL).", no_args_is_help=True)
OperatorOpt = Annotated[str, typer.Option(envvar="TRADEGUARD_OPERATOR", help="who")]


def _fleet(settings: Any, env: str | None) -> tuple[Any, FleetDB]:
    rt = build(settings, env, trading=False, store=MemoryStore(), overrides={"logging": {"level": "WARNING"}})
    cfg = rt.settings.fleet
    if not cfg.enabled:
        raise fail(TradeguardError("no fleet: fleet.url is not set (settings [default.fleet], TRADEGUARD_FLEET__URL)"))
    db = FleetDB.of(cfg)
    try:
        db.migrate()  # a database no account has joined yet has no tables: the answer is "no fleet", not an error
    except TradeguardError as exc:
        raise fail(exc) from exc
    return rt, db


@fleet_app.command("status")
def status_cmd(
    settings: SettingsOpt = None,
    env: EnvOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document (for monitoring)")] = False,
) -> None:
    """Every account (process up, heartbeat age, kill state, equity, day P&L, book) and the fleet against its
    limits; the fleet's record verified."""
    rt, db = _fleet(settings, env)
    try:
        totals = db.totals()
        checked, broken = db.verify_record()
    except TradeguardError as exc:
        raise fail(exc) from exc
    finally:
        db.close()
    stale = 3 * rt.settings.fleet.heartbeat_seconds
    if as_json:
        doc = totals.as_dict()
        for account in doc["accounts"]:
            account["up"] = _up(account, stale)
        doc["record"] = {"events": checked, "intact": not broken, "problem": broken}
        typer.echo(json.dumps(doc, default=str, indent=2))
        return
    _print(rt.settings.fleet.name, totals, stale)
    verdict = "intact" if not broken else f"[bold red]BROKEN: {broken}[/]"
    console.print(f"fleet record: {checked} events, chain {verdict}")


def _up(account: dict[str, Any], stale: float) -> bool:
    age = account["heartbeat_age"]
    return not account["stopped"] and age is not None and age < stale


def _print(name: str, t: Totals, stale: float) -> None:
    colour = {"ACTIVE": "green", "REDUCE_ONLY": "yellow", "HALTED": "red"}[t.kill.state]
    why = f" ({t.kill.trigger} by {t.kill.operator}: {t.kill.message})" if t.kill.latched else ""
    console.print(f"fleet [bold]{name}[/]: kill switch [bold {colour}]{t.kill.state}[/]{why}")
    table = Table(title=f"accounts ({t.currency})")
    columns = ("account", "process", "heartbeat", "kill switch", "equity", "day P&L", "positions", "orders", "lots")
    for column in columns:
        table.add_column(column, overflow="fold")
    for a in t.accounts:
        up = _up(a, stale)
        process = "up" if up else ("stopped" if a["stopped"] else "[red]silent[/]")
        age = "-" if a["heartbeat_age"] is None else f"{a['heartbeat_age']:.1f} s"
        table.add_row(
            a["account"],
            f"{process} (pid {a['pid']} on {a['host']})",
            age,
            a["kill_state"] + (f" ({a['kill_trigger']})" if a["kill_trigger"] else ""),
            f"{a['equity']:,.2f} {a['currency']}",
            f"{a['day_pnl']:+,.2f}",
            str(a["positions"]),
            str(a["orders"]),
            ", ".join(f"{symbol} {lots:g}" for symbol, lots in sorted(a["exposure"].items())) or "-",
        )
    console.print(table)
    limits = Table(title="the fleet against its limits")
    for column in ("limit", "used", "limit value", "use"):
        limits.add_column(column)
    for limit, used, cap in t.uses():
        pct = used / cap * 100
        style = "red" if pct >= 100 else "yellow" if pct >= float(t.limits.get("warn_at_pct", 80)) else "green"
        limits.add_row(limit, f"{used:,.2f}", f"{cap:,.2f}", f"[{style}]{pct:.0f}%[/]")
    console.print(limits)
    console.print(
        f"fleet equity {t.equity:,.2f} {t.currency} (peak {t.peak_equity:,.2f}, drawdown {t.drawdown_pct:.2f}%), "
        f"day P&L {t.day_pnl:+,.2f}; {t.positions} open or pending, {t.reservations} reservations in flight"
    )


@fleet_app.command("kill")
def kill_cmd(
    reason: Annotated[str, typer.Option(help="why: recorded with the latch")],
    operator: OperatorOpt = "cli",
    reduce_only: Annotated[bool, typer.Option("--reduce-only", help="REDUCE_ONLY instead of HALTED")] = False,
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    """Latch every account of the fleet; each running process adopts it within a second, a process started later
    starts latched. Recorded in the fleet's record and in every account's audit trail, alerted by each."""
    _, db = _fleet(settings, env)
    state = "REDUCE_ONLY" if reduce_only else "HALTED"
    try:
        done = db.kill(state, "fleet_kill", reason, operator=operator, via="cli", auth="none")
        current = db.kill_state() if done is None else done
    except TradeguardError as exc:
        raise fail(exc) from exc
    finally:
        db.close()
    if done is None:
        console.print(f"fleet already {current.state} ({current.trigger} by {current.operator}: {current.message})")
        return
    console.print(f"fleet {db.fleet} latched {state} by {operator}: {reason} (event {done.event})")


@fleet_app.command("reset")
def reset_cmd(
    operator: Annotated[str, typer.Option(help="who resets")],
    reason: Annotated[str, typer.Option(help="why it is safe to trade again")],
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    """The fleet back to ACTIVE: the operator secret is prompted (or read from TRADEGUARD_OPERATOR_SECRET) and
    checked against kill_switch.operator_secret_hash. Each account lifts the latch the fleet set (its own
    triggers' latches wait for its own reset). A refused reset is recorded too."""
    rt, db = _fleet(settings, env)
    stored = secret_hash(rt)
    try:
        if not db.kill_state().latched:
            console.print(f"fleet {db.fleet} already ACTIVE: nothing to reset")
            return
        if not verify_secret(operator_secret(), stored):
            db.record(
                "reset_refused", f"reset by {operator} refused: wrong secret ({reason})", operator=operator, via="cli"
            )
            raise TradeguardError("wrong operator secret (the refusal is in the fleet's record)")
        db.reset(reason, operator=operator, via="cli", auth="operator secret")
    except TradeguardError as exc:
        raise fail(exc) from exc
    finally:
        db.close()
    console.print(f"fleet {db.fleet} reset to ACTIVE by {operator}: {reason}")


@fleet_app.command("limits")
def limits_cmd(
    apply: Annotated[
        bool, typer.Option("--apply", help="make this settings file's [fleet_risk] table the fleet's limits")
    ] = False,
    operator: OperatorOpt = "",
    reason: Annotated[str, typer.Option(help="why the limits change")] = "",
    settings: SettingsOpt = None,
    env: EnvOpt = None,
) -> None:
    """The fleet's limits, which the database holds for every account. With --apply, this settings file's
    [fleet_risk] table becomes them: recorded in the fleet's record with who and why; loosening any limit (or
    switching one off) needs the operator secret."""
    rt, db = _fleet(settings, env)
    try:
        current = db.limits()
        if not apply:
            table = Table(title=f"fleet {db.fleet}'s limits")
            table.add_column("limit")
            table.add_column("value")
            for key, value in sorted(current.items()):
                table.add_row(key, f"{value:g}" + ("" if value else " (off)"))
            console.print(table)
            return
        if not operator or not reason:
            raise TradeguardError("--apply needs --operator and --reason: the change is recorded with both")
        wanted = rt.settings.fleet_risk.model_dump()
        looser = [k for k, v in wanted.items() if k != "warn_at_pct" and _looser(current.get(k, 0), v)]
        auth = "none"
        if looser:
            if not verify_secret(operator_secret(), secret_hash(rt)):
                raise TradeguardError(f"loosening {', '.join(looser)} needs the operator secret")
            auth = "operator secret"
        changes = db.set_limits(wanted, operator=operator, via="cli", auth=auth, reason=reason)
    except TradeguardError as exc:
        raise fail(exc) from exc
    finally:
        db.close()
    console.print(f"fleet {db.fleet}: {'; '.join(changes) if changes else 'no change'}")


def _looser(old: float, new: float) -> bool:
    """A limit raised, or switched off (0 = off)."""
    return bool(old) and (not new or new > old)


@fleet_app.command("sandbox")
def sandbox_cmd() -> None:
    """A throwaway PostgreSQL on 127.0.0.1 to try the fleet on one machine (Debian's postgresql package); it and its
    data go when you stop it (Ctrl-C)."""
    from tradeguard.fleet.cluster import ThrowawayCluster

    try:
        cluster = ThrowawayCluster().start()
    except TradeguardError as exc:
        raise fail(exc) from exc
    console.print(f"fleet database ready: export TRADEGUARD_FLEET__URL={cluster.url}\n(Ctrl-C stops it)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.destroy()
