"""Operator commands against the store, from a separate process, as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tradeguard.kernel.operator_secret import hash_secret
from tradeguard.store.sqlite import Store

from ..helpers import tradeguard as tg

SECRET = "open sesame"


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[default.runtime]\ndata_dir = "{tmp_path / "var"}"\n[default.logging]\nlevel = "ERROR"\n')
    (tmp_path / ".secrets.toml").write_text(f'[default.kill_switch]\noperator_secret_hash = "{hash_secret(SECRET)}"\n')
    return settings


def test_kill_then_reset_with_the_secret_audited(deployment: Path) -> None:
    killed = tg(deployment, "kill", "--reason", "desk says stop", "--operator", "carol")
    assert killed.returncode == 0 and "latched HALTED by carol" in killed.stdout
    status = tg(deployment, "status")
    assert status.returncode == 0 and "HALTED since" in status.stdout and "desk says stop" in status.stdout
    latch = json.loads(tg(deployment, "status", "--json").stdout)["kill_switch"]
    assert latch["state"] == "HALTED" and latch["trigger"] == "manual" and "desk says stop" in latch["message"]
    wrong = tg(deployment, "reset", "--operator", "dave", "--reason", "all clear", secret="guess")
    assert wrong.returncode == 1 and "wrong operator secret" in wrong.stderr
    assert SECRET not in wrong.stderr + wrong.stdout
    ok = tg(deployment, "reset", "--operator", "dave", "--reason", "all clear", secret=SECRET)
    assert ok.returncode == 0, ok.stderr
    store = Store(deployment.parent / "var" / "tradeguard.db")
    assert store.kill_state()[0] == "ACTIVE"
    events = [tuple(r) for r in store.query("SELECT to_state, trigger, operator FROM kill_switch_events")]
    assert events == [("HALTED", "manual", "carol"), ("HALTED", "reset_refused", "dave"), ("ACTIVE", "reset", "dave")]
    assert "ACTIVE" in tg(deployment, "status").stdout


def test_reset_without_a_configured_secret_is_refused(tmp_path: Path) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text(f'[default.runtime]\ndata_dir = "{tmp_path}"\n')
    tg(settings, "kill", "--reason", "x")
    res = tg(settings, "reset", "--operator", "a", "--reason", "b", secret="anything")
    assert res.returncode == 1 and "no operator secret is configured" in res.stderr


def test_status_shows_the_positions_the_journal_leaves_open_and_the_last_health(deployment: Path) -> None:
    store = Store(deployment.parent / "var" / "tradeguard.db")
    deals = [  # (deal, position, side, entry, volume, time): hedging open and close, a netting reversal, a part close
        (1, 10, "buy", "in", 0.5, "2017-04-20T07:00:00+00:00"),
        (2, 10, "sell", "out", 0.5, "2017-04-20T09:00:00+00:00"),
        (3, 20, "sell", "in", 0.3, "2017-04-21T07:00:00+00:00"),
        (4, 20, "buy", "inout", 0.5, "2017-04-21T08:00:00+00:00"),
        (5, 30, "buy", "in", 1.0, "2017-04-22T07:00:00+00:00"),
        (6, 30, "sell", "out", 0.4, "2017-04-22T08:00:00+00:00"),
    ]
    with store.tx() as db:
        db.executemany(
            "INSERT INTO fills (deal_ticket, order_ticket, position_id, client_id, symbol, side, entry, volume, price, "
            "commission, swap, profit, magic, comment, time) VALUES (?, 0, ?, '', 'EURUSD', ?, ?, ?, 1.07, 0, 0, 0, 1, "
            "'', ?)",
            deals,
        )
    store.kv_put(
        "health",
        "last",
        {
            "time": "2017-04-22T08:00:00Z",
            "status": "DEGRADED",
            "connected": True,
            "trade_allowed": True,
            "ping_ms": 3.0,
            "checks": {"connection": "ok", "EURUSD.ticks": "last quote 900 s old > 120 s"},
        },
    )
    store.close()
    out = tg(deployment, "status").stdout
    assert "#20 EURUSD buy 0.2 lots, opened 2017-04-21T07:00:00" in out
    assert "#30 EURUSD buy 0.6 lots, opened 2017-04-22T07:00:00" in out
    assert "#10" not in out
    assert "DEGRADED since 2017-04-22T08:00:00 (EURUSD.ticks: last quote 900 s old > 120 s)" in out
    record = json.loads(tg(deployment, "status", "--json").stdout)  # the same reading, for a desk's monitoring
    assert record["open_positions"] == [
        {"position_id": 20, "symbol": "EURUSD", "side": "buy", "volume": 0.2, "opened": "2017-04-21T07:00:00+00:00"},
        {"position_id": 30, "symbol": "EURUSD", "side": "buy", "volume": 0.6, "opened": "2017-04-22T07:00:00+00:00"},
    ]
    assert record["health"]["status"] == "DEGRADED" and record["fills"]["deals"] == 6
    assert record["kill_switch"] == {"state": "ACTIVE", "trigger": None, "message": None, "since": None}
    assert record["process"] is None and record["account"] is None  # nothing has traded from this journal


def test_reset_without_a_terminal_or_the_variable_is_refused_without_prompting(deployment: Path) -> None:
    tg(deployment, "kill", "--reason", "desk says stop")
    res = tg(deployment, "reset", "--operator", "dave", "--reason", "all clear")  # stdin is not a terminal
    assert res.returncode == 1 and "set TRADEGUARD_OPERATOR_SECRET" in " ".join(res.stderr.split())
    assert "GetPassWarning" not in res.stderr
    assert Store(deployment.parent / "var" / "tradeguard.db").kill_state()[0] == "HALTED"


def test_report_into_an_unwritable_folder_names_it(deployment: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    Store(deployment.parent / "var" / "tradeguard.db").close()  # a journal to report on
    res = tg(deployment, "report", "--out", str(blocker / "report"))
    assert res.returncode == 1 and "cannot write the report there" in " ".join(res.stderr.split())


def hash_secret_on_a_terminal(answer: bytes) -> tuple[int, int, str]:
    """``tradeguard hash-secret`` on a terminal of its own, as an operator's shell, answering each prompt:
    (prompts answered, exit code, what the terminal showed)."""
    import pty
    import selectors
    import time

    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-m", "tradeguard", "hash-secret"])
    out, answered, deadline = b"", 0, time.monotonic() + 60
    waiting = selectors.DefaultSelector()  # epoll: a descriptor past 1024 (a long test session) is fine
    waiting.register(fd, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if not waiting.select(1):
            continue
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the child has exited and closed its terminal
            break
        if not chunk:
            break
        out += chunk
        if out.endswith(b": ") and out.count(b": ") > answered:  # a prompt: the secret, then its confirmation
            os.write(fd, answer + b"\n")
            answered += 1
    _, status = os.waitpid(pid, 0)
    return answered, os.waitstatus_to_exitcode(status), out.decode()


def test_hash_secret_asks_twice_on_a_terminal_and_prints_a_hash_that_verifies() -> None:
    from tradeguard.kernel.operator_secret import verify_secret

    answered, code, text = hash_secret_on_a_terminal(b"correct horse")
    assert (answered, code) == (2, 0), text
    assert "correct horse" not in text  # never echoed
    stored = text.split('operator_secret_hash = "')[1].split('"')[0]
    assert verify_secret("correct horse", stored) and not verify_secret("wrong horse", stored)


def test_hash_secret_refuses_a_short_secret() -> None:
    answered, code, text = hash_secret_on_a_terminal(b"short")
    assert (answered, code) == (1, 1) and "at least 8 characters" in text and "scrypt$" not in text  # asked once


def test_hash_secret_refuses_without_a_terminal() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "tradeguard", "hash-secret"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert res.returncode == 1 and "run it from a terminal" in res.stderr


def test_reading_commands_refuse_a_journal_that_is_not_there_and_create_none(tmp_path: Path) -> None:
    """A mistyped data_dir must not read as a quiet, ACTIVE account."""
    settings = tmp_path / "s.toml"
    settings.write_text(f'[default.runtime]\ndata_dir = "{tmp_path / "typo"}"\n')
    for command in (("status",), ("report",), ("audit", "verify")):
        res = tg(settings, *command)
        assert res.returncode == 1 and "no journal at" in res.stderr and "typo" in res.stderr, command
    assert not (tmp_path / "typo").exists()


def test_a_reset_from_the_cli_waits_for_an_inconsistent_reconciliation(deployment: Path) -> None:
    """The command judges the trigger's condition on what the trading process last stored, as it would itself."""
    store = Store(deployment.parent / "var" / "tradeguard.db")
    store.set_kill_state("HALTED", "reconciliation_inconsistent", "3 inconsistencies", via="automatic")
    store.kv_put(
        "reconciliation",
        "last",
        {
            "time": "2026-12-05T10:00:00Z",
            "cause": "schedule",
            "consistent": False,
            "missing": [7],
            "unknown": [],
            "volume_drift": {},
            "sltp_mismatch": [],
            "unprotected": [],
            "foreign": [],
            "details": {},
        },
    )
    store.close()
    refused = tg(deployment, "reset", "--operator", "dave", "--reason", "looks fine", secret=SECRET)
    assert refused.returncode == 1 and "still holds" in refused.stderr
    forced = tg(deployment, "reset", "--operator", "dave", "--reason", "checked by hand", "--force", secret=SECRET)
    assert forced.returncode == 0, forced.stderr


def test_reset_says_what_is_missing_and_when_there_is_nothing_to_reset(tmp_path: Path) -> None:
    bare = tmp_path / "bare.toml"
    bare.write_text(f'[default.runtime]\ndata_dir = "{tmp_path / "var"}"\n')
    res = tg(bare, "reset", "--operator", "ops", "--reason", "calm", secret="whatever1")
    assert res.returncode == 1 and "tradeguard hash-secret" in " ".join(res.stderr.split())
    configured = tmp_path / "configured.toml"
    configured.write_text(
        f'[default.runtime]\ndata_dir = "{tmp_path / "var"}"\n'
        f'[default.kill_switch]\noperator_secret_hash = "{hash_secret("whatever1")}"\n'
    )
    res = tg(configured, "reset", "--operator", "ops", "--reason", "calm", secret="whatever1")
    assert res.returncode == 0 and "already ACTIVE: nothing to reset" in res.stdout
    events = Store(tmp_path / "var" / "tradeguard.db").kill_events_after(0)
    assert events == []  # no ACTIVE -> ACTIVE recorded
