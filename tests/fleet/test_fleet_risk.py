"""The fleet_risk plugin in one process, against a real PostgreSQL: what it publishes, its veto, the fleet's
warning once per limit and day, the fleet latching at a loss limit, failing closed, and refusing to start
without its plugin or beside a live twin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tradeguard.errors import StartupError
from tradeguard.fleet.database import AccountFigures, FleetDB
from tradeguard.kernel.plugins import candidates
from tradeguard.kernel.runtime import Runtime
from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime, signal

from ..helpers import Alerts

PLUGINS = ("kill_switch", "risk_guard", "execution_engine", "position_sizing", "target_stop_engine", "fleet_risk")


def account(
    tmp_path: Path,
    url: str,
    name: str,
    alerts: Alerts | None = None,
    triggers: dict[str, Any] | None = None,
    **limits: float,
) -> Runtime:
    plugins = [(n, candidates()[n].load()()) for n in PLUGINS]
    if alerts is not None:
        plugins.append(("alerts", alerts))
    settings = {
        "fleet": {"url": url, "account": name, "fail_closed_seconds": 0.2},
        "fleet_risk": limits,
        "risk_guard": {"daily_loss_limit_pct": 0.0, "max_drawdown_pct": 0.0},
        "position_sizing": {"method": "fixed", "fixed_lots": 0.1},
        "triggers": triggers or {},
    }
    return make_runtime(*plugins, store=Store(tmp_path / f"{name}.db"), settings=settings)


def other_account(url: str, name: str, equity: float, day_start: float) -> FleetDB:
    db = FleetDB(url, "main")
    db.claim(name, AccountFigures(777, "Other", "USD", 1.0, equity, equity, day_start), 1, "elsewhere", 0.0)
    db.publish_account(name, AccountFigures(777, "Other", "USD", 1.0, equity, equity, day_start), "ACTIVE", "")
    return db


def test_an_account_publishes_its_fill_and_releases_its_reservation(tmp_path: Path, fleet_url: str) -> None:
    rt = account(tmp_path, fleet_url, "alpha", max_lots_per_symbol=0.15)
    try:
        first = rt.decide(signal(price=1.0717, stop_loss=1.0697))
        assert first.approved, first.reasons
        totals = FleetDB(fleet_url, "main").totals(reserved=True)
        assert totals.lots_by_symbol == {"EURUSD": pytest.approx(0.1)}  # the position, once: no reservation left
        assert totals.reservations == 0 and totals.accounts[0]["positions"] == 1
        assert totals.accounts[0]["exposure"] == {"EURUSD": pytest.approx(0.1)}
        second = rt.decide(signal(price=1.0717, stop_loss=1.0697))
        assert not second.approved and second.reasons[0].code == "fleet_lots_symbol"
        assert "0.1 + 0.1 lots of EURUSD across the fleet > 0.15" in second.reasons[0].message
    finally:
        rt.stop()
    assert FleetDB(fleet_url, "main").totals().accounts[0]["stopped"]


def test_a_warning_once_for_the_fleet_then_the_fleet_latches_at_its_loss_limit(tmp_path: Path, fleet_url: str) -> None:
    alerts_a, alerts_b = Alerts(), Alerts()
    a = account(tmp_path, fleet_url, "alpha", alerts_a, daily_loss=1000.0)
    b = account(tmp_path, fleet_url, "beta", alerts_b, daily_loss=1000.0)
    try:
        other = other_account(fleet_url, "gamma", equity=9_150.0, day_start=10_000.0)  # 850 of 1000 lost
        for rt in (a, b, a, b):
            rt.pm.get_plugin("fleet_risk").sync()
        warnings = alerts_a.codes().count("fleet_limit_warning") + alerts_b.codes().count("fleet_limit_warning")
        assert warnings == 1  # one for the fleet, not one per process or per pass
        other.publish_account("gamma", AccountFigures(777, "Other", "USD", 1.0, 8_900, 8_900, 10_000), "ACTIVE", "")
        a.pm.get_plugin("fleet_risk").sync()  # 1100 lost: the fleet latches REDUCE_ONLY (triggers.fleet_limit)
        assert "fleet_limit" in alerts_a.codes()
        kill = FleetDB(fleet_url, "main").kill_state()
        assert (kill.state, kill.trigger, kill.operator) == ("REDUCE_ONLY", "fleet_limit", "alpha")
        for rt in (a, b):
            _wait(lambda rt=rt: rt.pm.get_plugin("fleet_risk").link.kill.latched)  # the listener heard it
            refused = rt.decide(signal(price=1.0717, stop_loss=1.0697))
            assert refused.reasons[0].code == "fleet_kill"
            rt.pm.get_plugin("fleet_risk").sync()
            assert rt.store.kill_state()[:2] == ("REDUCE_ONLY", "fleet_limit")  # written into its own switch
            events = rt.store.kill_events_after(0)
            assert events[-1]["via"] == "fleet:automatic" and events[-1]["operator"] == "alpha"
    finally:
        a.stop()
        b.stop()


def test_without_the_database_openings_are_refused_exits_work_then_resume(tmp_path: Path) -> None:
    """The server itself goes away (a throwaway one of its own), not just a URL: the listener notices, the link goes
    out, exits still work, and once the server is back the account re-publishes and openings resume."""
    from tradeguard.fleet.cluster import ThrowawayCluster

    from .conftest import fresh_database

    alerts = Alerts()
    with ThrowawayCluster() as cluster:
        url = fresh_database(cluster)
        rt = account(tmp_path, url, "alpha", alerts)
        plugin = rt.pm.get_plugin("fleet_risk")
        try:
            opened = rt.decide(signal(price=1.0717, stop_loss=1.0697))
            assert opened.approved, opened.reasons
            cluster.stop("immediate")
            refused = rt.decide(signal(price=1.0717, stop_loss=1.0697))
            assert refused.reasons[0].code == "fleet_unreachable"
            _wait(lambda: plugin.link.out_for() > 0.2)
            plugin.sync()
            assert alerts.codes().count("fleet_unreachable") == 1
            closed = rt.execution.flatten_all()  # exits need no fleet
            assert len(closed) == 1 and rt.broker.positions() == []
            cluster.start()
            _wait(lambda: plugin.link._server_up.is_set(), 10)  # the listener reached it again
            plugin.sync()  # re-published: openings resume
            assert not plugin.link.out and "fleet_reachable" in alerts.codes()
            assert rt.decide(signal(price=1.0717, stop_loss=1.0697)).approved
            assert FleetDB(url, "main").totals(reserved=True).reservations == 0  # nothing held from before
        finally:
            rt.stop()


def test_a_fleet_needs_its_plugin(fleet_url: str) -> None:
    with pytest.raises(StartupError, match="fleet_risk plugin is not loaded"):
        make_runtime(settings={"fleet": {"url": fleet_url}})


def test_a_second_process_on_a_live_account_is_refused(tmp_path: Path, fleet_url: str) -> None:
    FleetDB(fleet_url, "main").migrate()
    twin = FleetDB(fleet_url, "main")
    twin.join("USD", {})
    twin.claim("alpha", AccountFigures(5000001, "Tradeguard-Emulator", "USD", 1.0, 1e4, 1e4, 1e4), 1, "other", 0.0)
    with pytest.raises(StartupError, match="fleet account 'alpha' is published by pid 1 on other"):
        account(tmp_path, fleet_url, "alpha")


def _wait(predicate: Any, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_fleet_reset_brings_back_the_accounts_own_latch(tmp_path: Path, fleet_url: str) -> None:
    rt = account(tmp_path, fleet_url, "alpha")
    plugin = rt.pm.get_plugin("fleet_risk")
    try:
        rt.store.set_kill_state("REDUCE_ONLY", "reconciliation_inconsistent", "3 positions apart", via="automatic")
        db = FleetDB(fleet_url, "main")
        db.kill("HALTED", "fleet_kill", "news", operator="ops", via="cli")
        _wait(lambda: plugin.link.kill.latched)
        plugin.sync()
        assert rt.store.kill_state()[:2] == ("HALTED", "fleet_kill")
        db.reset("calm", operator="ops", via="cli", auth="operator secret")
        _wait(lambda: not plugin.link.kill.latched)
        plugin.sync()
        assert rt.store.kill_state()[:2] == ("REDUCE_ONLY", "reconciliation_inconsistent")  # its own stays
    finally:
        rt.stop()


def test_a_process_starting_without_the_database_keeps_the_fleets_latch(tmp_path: Path) -> None:
    """Out of reach from the start, the fleet's state was never read: nothing is adopted, above all no reset."""
    store = Store(tmp_path / "alpha.db")
    store.set_kill_state("HALTED", "fleet_kill", "fleet main HALTED (fleet_kill): news", via="fleet:cli")
    store.close()
    rt = account(tmp_path, "postgresql://desk@127.0.0.1:1/fleet", "alpha")
    plugin = rt.pm.get_plugin("fleet_risk")
    try:
        plugin.sync()
        assert plugin.link.out and rt.store.kill_state()[:2] == ("HALTED", "fleet_kill")
        refused = rt.decide(signal(price=1.0717, stop_loss=1.0697))
        assert not refused.approved
    finally:
        rt.stop()


def test_an_older_read_of_the_fleets_switch_never_undoes_a_newer(fleet_url: str) -> None:
    from tradeguard.fleet.database import FleetKill
    from tradeguard.fleet.link import FleetLink
    from tradeguard.fleet.settings import FleetSettings

    link = FleetLink(FleetSettings(url=fleet_url), "alpha", {})  # type: ignore[arg-type]
    link._adopt(FleetKill("HALTED", "fleet_kill", 6))
    link._adopt(FleetKill("ACTIVE", "", 5))  # a heartbeat's read that finished late
    assert link.kill.event == 6 and link.kill.latched


def test_a_fleet_limit_row_that_flattens_closes_what_each_account_holds(tmp_path: Path, fleet_url: str) -> None:
    flattens = {"fleet_limit": {"state": "REDUCE_ONLY", "flatten": True}}
    rt = account(tmp_path, fleet_url, "alpha", triggers=flattens, daily_loss=1000.0)
    plugin = rt.pm.get_plugin("fleet_risk")
    try:
        assert rt.decide(signal(price=1.0717, stop_loss=1.0697)).approved
        assert len(rt.broker.positions()) == 1
        other_account(fleet_url, "gamma", equity=8_800.0, day_start=10_000.0)  # the fleet lost 1,200 today
        plugin.sync()  # the fleet latches REDUCE_ONLY (fleet_limit) ...
        _wait(lambda: plugin.link.kill.latched)
        plugin.sync()  # ... and this account adopts it: its row flattens
        rt.broker.forget_reads()
        assert rt.store.kill_state()[:2] == ("REDUCE_ONLY", "fleet_limit") and rt.broker.positions() == []
    finally:
        rt.stop()
