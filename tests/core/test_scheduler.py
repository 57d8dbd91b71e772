"""Periodic jobs run on the runtime clock; a failing job is isolated; a late job runs once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tradeguard import Job, hookimpl
from tradeguard.kernel.clock import ReplayClock
from tradeguard.testing import T0, make_runtime


def test_jobs_run_on_the_replay_clock_and_failures_are_isolated() -> None:
    ran: list[str] = []

    class Jobs:
        @hookimpl
        def periodic_jobs(self, runtime: Any) -> list[Job]:
            def boom(rt: Any) -> None:
                raise ValueError("no terminal")

            return [
                Job(
                    name="capture", every=timedelta(minutes=1), run=lambda rt: ran.append("capture"), run_at_start=True
                ),
                Job(name="reconcile", every=timedelta(minutes=5), run=lambda rt: ran.append("reconcile")),
                Job(name="broken", every=timedelta(minutes=1), run=boom),
            ]

    clock = ReplayClock(T0)
    rt = make_runtime(("jobs", Jobs()), clock=clock)

    def run() -> list[str]:  # the plugin's jobs (the kernel's own store jobs run beside them)
        return [name for name in rt.scheduler.run_due(rt) if not name.startswith(("store.", "operator."))]

    assert rt.scheduler.jobs == ["store.flush", "store.watch", "operator.requests", "capture", "reconcile", "broken"]
    assert run() == ["capture"]
    clock.advance(timedelta(seconds=59))
    assert run() == []
    clock.advance(timedelta(seconds=1))
    assert run() == ["capture", "broken"]
    clock.advance(timedelta(hours=1))  # a long gap: each job runs once, not sixty times
    assert run() == ["capture", "reconcile", "broken"]
    assert run() == []
    errors = rt.metrics.registry.get_sample_value(
        "tradeguard_plugin_errors_total", {"plugin": "jobs", "hook": "job:broken"}
    )
    assert errors == 2 and ran.count("capture") == 3


def test_replay_clock_refuses_to_go_back_or_naive_times() -> None:
    import pytest

    clock = ReplayClock(T0)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="naive datetime"):
        clock.set(T0.replace(tzinfo=None))
