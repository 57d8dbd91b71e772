"""Staged start: plugins start in stage order, whatever their registration order; a failure names its stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tradeguard import StartupError, hookimpl
from tradeguard.testing import make_runtime

started: list[str] = []


def staged(name: str, stage: int | None, fail: bool = False) -> object:
    def tradeguard_startup(self: object, runtime: Any) -> None:
        if fail:
            raise RuntimeError("no database")
        started.append(name)

    attrs: dict[str, Any] = {"tradeguard_startup": hookimpl(tradeguard_startup)}
    if stage is not None:
        attrs["stage"] = stage
    return type(name, (), attrs)()


def test_plugins_start_in_stage_order_and_each_stage_is_logged(tmp_path: Path) -> None:
    started.clear()
    log = tmp_path / "tg.jsonl"
    order = (("checks", 8), ("gate", None), ("align", 7), ("account", 1), ("kill", 3), ("engine", 2))
    plugins = [(name, staged(name, stage)) for name, stage in order]
    make_runtime(*plugins, settings={"logging": {"file": str(log), "level": "INFO"}})
    assert started == ["account", "engine", "kill", "gate", "align", "checks"]
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    stages = [(r["stage"], r["stage_name"]) for r in lines if r["msg"] == "stage started"]
    assert stages == [
        (1, "health and account"),
        (2, "execution, reconciliation and risk"),
        (3, "kill switch and alerting"),
        (4, "signal gate and targets"),
        (7, "state alignment"),
        (8, "start-up checks"),
    ]


def test_a_failing_stage_stops_startup_naming_stage_and_plugin() -> None:
    started.clear()
    with pytest.raises(StartupError, match=r"stage 2 \(execution, reconciliation and risk\): plugin 'engine' failed"):
        make_runtime(
            ("account", staged("account", 1)), ("engine", staged("engine", 2, fail=True)), ("gate", staged("gate", 4))
        )
    assert started == ["account"]  # nothing after the failed stage started


def test_an_unknown_stage_is_refused() -> None:
    with pytest.raises(StartupError, match="declares stage 12"):
        make_runtime(("odd", staged("odd", 12)))
