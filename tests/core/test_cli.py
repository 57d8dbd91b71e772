"""The `tradeguard` command, run as a user runs it: a real subprocess, real exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import tradeguard

from ..conftest import REPO


def tg(
    *args: str, cwd: Path | None = None, timeout: float = 60, **environment: str
) -> subprocess.CompletedProcess[str]:
    """``tradeguard ARGS``; ``environment``: more variables (COLUMNS=250 unless given: rich wraps at 80)."""
    env = {**os.environ, "COLUMNS": "250", **environment}
    return subprocess.run(
        [sys.executable, "-m", "tradeguard", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env
    )


def test_version() -> None:
    r = tg("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"tradeguard {tradeguard.__version__}"


def test_config_check_accepts_the_shipped_settings_in_every_environment(tmp_path: Path) -> None:
    for env in ("default", "paper"):
        r = tg("config", "check", "--settings", str(REPO / "settings.toml"), "--env", env)
        assert r.returncode == 0, r.stderr
        assert f"settings OK: environment {env}" in r.stdout
    # live asks for the operator secret's hash, which no file in the repository holds
    r = tg("config", "check", "--settings", str(REPO / "settings.toml"), "--env", "live")
    assert r.returncode == 1 and "kill_switch.operator_secret_hash" in r.stderr and "not set: live" in r.stderr
    shutil.copy(REPO / "settings.toml", tmp_path / "settings.toml")
    from tradeguard.kernel.operator_secret import hash_secret

    (tmp_path / ".secrets.toml").write_text(f'[live.kill_switch]\noperator_secret_hash = "{hash_secret("s3cret-x")}"\n')
    r = tg("config", "check", "--settings", str(tmp_path / "settings.toml"), "--env", "live")
    import importlib.util

    if importlib.util.find_spec("MetaTrader5") is None:  # Linux: live's terminal package cannot be here
        assert r.returncode == 1 and "package MetaTrader5 not installed" in r.stderr, r.stderr
    else:
        assert r.returncode == 0 and "settings OK: environment live" in r.stdout, r.stderr


def test_an_operator_without_the_secrets_file_can_still_kill_a_live_journal(tmp_path: Path) -> None:
    """What live demands of a trading process does not hold up `kill`: an operator who cannot read
    .secrets.toml must still be able to halt the account."""
    settings = tmp_path / "settings.toml"
    shutil.copy(REPO / "settings.toml", settings)
    with settings.open("a") as fh:
        fh.write(f'\n[live.runtime]\ndata_dir = "{tmp_path / "var"}"\n')
    for command in (("plugins",), ("kill", "--reason", "desk halt")):
        r = tg(*command, "--settings", str(settings), "--env", "live")
        assert r.returncode == 0, (command, r.stderr[-1500:])
    r = tg("status", "--settings", str(settings), "--env", "live")
    assert r.returncode == 0 and "HALTED" in r.stdout and "desk halt" in r.stdout
    r = tg("config", "check", "--settings", str(settings), "--env", "live")
    assert r.returncode == 1 and "kill_switch.operator_secret_hash" in r.stderr


def test_config_check_names_the_bad_key_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[default.risk_guard]\nmax_open_positions = -2\n")
    r = tg("config", "check", "--settings", str(bad))
    assert r.returncode == 1
    assert "risk_guard.max_open_positions = -2" in r.stderr


def test_config_show_redacts_secrets(tmp_path: Path) -> None:
    r = tg("config", "check", "--show", "--settings", str(REPO / "settings.toml"))
    assert r.returncode == 0 and '"max_open_positions": 5' in r.stdout


def test_plugins_lists_built_ins_with_status() -> None:
    r = tg("plugins", "--settings", str(REPO / "settings.toml"))
    assert r.returncode == 0, r.stderr
    for name in ("kill_switch", "risk_guard", "position_sizing", "target_stop_engine"):
        assert name in r.stdout
    assert "(required)" in r.stdout


def test_unknown_command_is_a_usage_error() -> None:
    assert tg("frobnicate").returncode == 2


def test_demo_pushes_signals_through_every_plugin() -> None:
    r = tg("demo", "--settings", str(REPO / "settings.toml"))
    assert r.returncode == 0, r.stderr
    assert "6 signals, 2 approved, 4 rejected" in r.stdout
    for code in ("confidence_below_minimum", "stop_wrong_side", "stop_not_placeable", "kill_switch_halted"):
        assert code in r.stdout


def test_replay_refuses_bad_input_in_one_line_naming_it_and_writes_no_journal(tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text("time,open,high,low,close\n2017-01-02 00:00,1.0,1.1,0.9,1.05\n2017-01-02 01:00,1.0,nan,0.9,1\n")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"ti\xff\xfe\x00\x01me,open")
    wide = tmp_path / "wide.csv"
    wide.write_text("time,open,high,low,close\n2017-01-02 00:00,1.0,1.1,0.9,1.05\n2017-01-02 01:00,1.0,1.1,0.9,1,7\n")
    settings = tmp_path / "s.toml"
    settings.write_text(f'[default.runtime]\ndata_dir = "{tmp_path / "var"}"\n')
    cases = [  # (arguments, exit code, what stderr names)
        (("--data", str(broken)), 1, "broken.csv, row 3, column 'high': not a finite number"),
        (("--data", str(tmp_path / "missing.csv")), 1, "missing.csv: no such file"),
        (("--data", str(binary)), 1, "binary.csv: binary content (NUL bytes): not a CSV or MT5 export"),
        (("--data", str(wide)), 1, "wide.csv, row 3: 6 fields, the header names 5"),
        (("--data", f"EURUSD={tmp_path}"), 1, "a directory, not a data file"),
        (("--symbol", "XXXYYY"), 1, "broker.emulator.symbol = 'XXXYYY'"),
        (("--faults", "weird"), 2, "'weird': known profiles none, flaky, hostile"),
        (("--from", "notadate"), 2, "'notadate' is not an ISO date"),
        (("--from", "2018-01-01", "--to", "2017-01-01"), 2, "2018-01-01 is after --to 2017-01-01"),
        (("--from", "2030-01-01"), 2, "--from: after the data's last bar (2018-02-07T15:00)"),
        (("--to", "2010-01-01"), 2, "--to: before the data's first bar (2017-04-19T09:00)"),
    ]
    for args, code, named in cases:
        r = tg("replay", *args, "--settings", str(settings))
        err = " ".join(r.stderr.split())  # rich wraps long messages
        assert (r.returncode, named in err, "Traceback" in err) == (code, True, False), (args, r.stderr[-1500:])
        assert "initialize refused" not in err and "last_error" not in err  # the data problem leads
    # nothing ran: no journal is left that `status` would read as an account that ran and is ACTIVE
    assert not (tmp_path / "var" / "tradeguard.db").exists()
    status = tg("status", "--settings", str(settings))
    assert status.returncode == 1 and "no journal at" in status.stderr


def test_replay_starts_from_an_empty_journal_and_replaces_only_an_earlier_replays(tmp_path: Path) -> None:
    from tradeguard.store.journal_lock import KEY, NAMESPACE, JournalLock
    from tradeguard.store.sqlite import Store

    settings = tmp_path / "s.toml"
    settings.write_text(f'[default.runtime]\ndata_dir = "{tmp_path / "var"}"\n[default.logging]\nlevel = "ERROR"\n')
    db = tmp_path / "var" / "tradeguard.db"

    def journal(module: str) -> Store:
        store = Store(db)
        store.set_kill_state("HALTED", "manual", "desk says stop", operator="ops")
        store.kv_put(
            NAMESPACE,
            KEY,
            {
                "pid": 1,
                "host": "h",
                "started": "2026-01-01",
                "stopped": "2026-01-01",
                "env": "live",
                "broker_module": module,
            },
        )
        return store

    def replay(*args: str) -> subprocess.CompletedProcess[str]:
        return tg("replay", "--to", "2017-04-21", *args, "--settings", str(settings))

    account = journal("mt5linux")  # an account's journal: refused, with or without --fresh
    r = replay()
    assert r.returncode == 1 and "already holds a journal (1 kill-switch latch)" in " ".join(r.stderr.split())
    r = replay("--fresh")
    assert r.returncode == 1 and "was not written by a replay (broker module mt5linux)" in " ".join(r.stderr.split())
    assert account.kill_state()[2] == "desk says stop"
    account.close()
    db.unlink()
    earlier = journal("emulator")
    held = JournalLock(earlier, "default", "emulator")
    held.acquire()  # a process trading from it
    r = replay("--fresh")
    assert r.returncode == 1 and "in use by another tradeguard process" in " ".join(r.stderr.split())
    held.release()
    earlier.close()
    r = replay("--fresh")
    assert r.returncode == 0, r.stderr
    assert Store(db).kill_state() is None  # the earlier replay's latch went with its journal


def test_replay_json_prints_one_object_a_pipeline_can_read(tmp_path: Path) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text(f'[default.runtime]\ndata_dir = "{tmp_path / "var"}"\n[default.logging]\nlevel = "ERROR"\n')
    r = tg("replay", "--to", "2017-04-25", "--json", "--settings", str(settings))
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert len(lines) == 1  # no progress bar, no table
    summary = json.loads(lines[0])
    assert summary["bars"] > 80 and summary["signals"] >= summary["approved"] > 0 and summary["fills"] > 0
    assert summary["kill_switch"]["state"] == "REDUCE_ONLY"  # the French election gap, 2017-04-23
    assert summary["kill_switch"]["trigger"] == "daily_loss_limit"
    assert summary["audit"] == {"intact": True, "records": summary["audit"]["records"], "reason": None}
    assert sum(summary["rejections"].values()) == summary["signals"] - summary["approved"]
    assert summary["last_bar"] < "2017-04-26" and summary["interrupted"] is False


def test_a_replay_with_faults_ends_with_what_was_injected_and_how_each_was_handled(tmp_path: Path) -> None:
    env = {
        "TRADEGUARD_RISK_GUARD__DAILY_LOSS_LIMIT_PCT": "0",  # keep trading: every fault kind gets its chance
        "TRADEGUARD_RISK_GUARD__MAX_DRAWDOWN_PCT": "0",
    }
    res = tg("replay", "--faults", "hostile", "--json", cwd=tmp_path, timeout=300, **env)
    assert res.returncode == 0, res.stderr[-2000:]
    faults = json.loads(res.stdout)["faults"]
    handled = faults["handled"]
    assert {"reject", "requote", "timeout_executed"} <= set(faults["injected"])
    assert handled["re-sent (requote, price changed, too many requests)"] > 0
    assert handled["resolved by a lookup at the broker (found: filled)"] > 0
    assert handled["refused by the broker (journaled rejected)"] == sum(faults["refused_by"].values()) > 0
    assert faults["refused_by"]["REJECT"] > 0
    table = tg("replay", "--faults", "hostile", "--fresh", cwd=tmp_path, timeout=300, **env)  # for people
    assert table.returncode == 0 and "faults injected, and how they were handled" in table.stdout


def test_plugins_and_status_stay_readable_at_80_columns(tmp_path: Path) -> None:
    """Wrapped or folded, never cut: no "accuracy_metri…" on a narrow terminal."""
    replayed = tg("replay", "--to", "2017-05-01", cwd=tmp_path, timeout=300, COLUMNS="80")
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    for command in (["plugins"], ["status"]):
        res = tg(*command, cwd=tmp_path, timeout=120, COLUMNS="80")
        assert res.returncode == 0, res.stderr[-2000:]
        lines = res.stdout.splitlines()
        assert "…" not in res.stdout and max(len(line) for line in lines) <= 80, command
        if command == ["plugins"]:
            assert "accuracy_metrics" in res.stdout and "signal_validation_gate" in res.stdout


def test_config_check_says_when_the_broker_module_cannot_be_imported_and_connect_reaches_the_terminal(
    tmp_path: Path,
) -> None:
    from tradeguard.kernel.operator_secret import hash_secret

    settings = tmp_path / "settings.toml"
    settings.write_text(
        f'[live.broker]\nmodule = "MetaTrader5"\n[live.kill_switch]\noperator_secret_hash = "{hash_secret("x" * 8)}"\n'
    )
    live = tg("config", "check", "--env", "live", "--settings", str(settings))
    err = " ".join(live.stderr.split())
    assert live.returncode == 1 and "broker.module = 'MetaTrader5': package MetaTrader5 not installed" in err
    reached = tg("config", "check", "--connect", "--settings", str(settings))  # default env: the emulator
    assert reached.returncode == 0 and "terminal OK: account 5000001 on Tradeguard-Emulator" in reached.stdout


def test_config_show_redacts_webhook_and_slack_urls(tmp_path: Path) -> None:
    """Anyone holding a Slack incoming-webhook URL can post to the channel: it is a credential."""
    hook = "https://hooks.slack.com/services/T000/B000/very-secret-part"
    settings = tmp_path / "settings.toml"
    settings.write_text(
        "[default.alert_manager]\n"
        f'destinations = {{ desk = {{ kind = "slack", url = "{hook}", min_severity = "ERROR" }} }}\n'
    )
    shown = tg("config", "check", "--show", "--settings", str(settings))
    assert shown.returncode == 0 and "very-secret-part" not in shown.stdout and '"url": "<redacted>"' in shown.stdout
