"""How a daily-loss latch ends is a setting: an operator's reset (the default) or the next server day (issue 24,
item 5); a drawdown latch stays for the operator either way."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tradeguard import AccountSnapshot, KillState
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.store.sqlite import Store
from tradeguard.testing import T0, make_runtime


def snapshot(hours: float) -> AccountSnapshot:
    return AccountSnapshot(
        time=T0 + timedelta(hours=hours), balance=9_500, equity=9_500, day_start_equity=9_500, peak_equity=10_000
    )


@pytest.mark.parametrize(
    ("ends", "trigger", "lifted"),
    [
        ("next_server_day", "daily_loss_limit", True),
        ("operator", "daily_loss_limit", False),
        ("next_server_day", "max_drawdown", False),
    ],
)
def test_a_daily_loss_latch_ends_as_configured(tmp_path: Path, ends: str, trigger: str, lifted: bool) -> None:
    switch = KillSwitch()
    rt = make_runtime(
        ("kill_switch", switch),
        store=Store(tmp_path / "k.db"),
        settings={"kill_switch": {"daily_loss_latch_ends": ends}},
    )
    rt.request_halt(trigger, "5% lost", source="risk_guard", state=KillState.REDUCE_ONLY)
    switch.on_account_snapshot(snapshot(hours=1), rt)  # the same server day (T0 is 10:00)
    assert switch.state is KillState.REDUCE_ONLY
    switch.on_account_snapshot(snapshot(hours=14.5), rt)  # 00:30 the next server day
    assert (switch.state is KillState.ACTIVE) is lifted
    assert (rt.store.kill_state()[0] == "ACTIVE") is lifted
    if lifted:
        (event,) = [e for e in rt.store.kill_events_after(0) if e["to_state"] == "ACTIVE"]
        assert (event["operator"], event["via"], event["auth"]) == ("next_server_day", "schedule", "setting")
