"""Whatever a person can do to the audit table is caught and located; what needs the key is stated and held."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tradeguard.execution.execution_engine import ExecutionEngine
from tradeguard.plugins.monitoring.audit_trail import AuditTrail
from tradeguard.plugins.risk.kill_switch import KillSwitch
from tradeguard.plugins.risk.position_sizing import PositionSizing
from tradeguard.store.audit import anchor_path, chain_hash, read_anchor, verify, write_anchor
from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime, signal

KEY = "k3y-from-secrets"
COLUMNS = ("seq", "time", "kind", "record", "prev_hash", "hash")


def chain(db: Path, key: str = "") -> int:
    """A run that trades, halts and stops: its chain's length."""
    rt = make_runtime(
        ("execution_engine", ExecutionEngine()),
        ("kill_switch", KillSwitch()),
        ("position_sizing", PositionSizing()),
        ("audit_trail", AuditTrail()),
        store=Store(db),
        settings={"audit_trail": {"hmac_key": key}},
    )
    rt.decide(signal(price=1.0717, stop_loss=1.0697))
    rt.request_halt("manual", "operator", source="cli")
    rt.stop()
    return int(sqlite3.connect(db).execute("SELECT MAX(seq) FROM audit").fetchone()[0])


def edit(db: Path, sql: str, *args: Any) -> None:
    con = sqlite3.connect(db)
    con.execute(sql, args)
    con.commit()
    con.close()


@pytest.mark.parametrize("key", ["", KEY], ids=["sha256", "hmac"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("column", COLUMNS)
def test_an_edit_of_any_column_of_any_record_is_located(tmp_path: Path, key: str, where: str, column: str) -> None:
    db = tmp_path / "a.db"
    last = chain(db, key)
    seq = {"first": 1, "middle": last // 2, "last": last}[where]
    value = {
        "seq": 10_000,
        "time": "2001-01-01T00:00:00+00:00",
        "kind": "nothing",
        "prev_hash": "1" * 64,
        "hash": "f" * 64,
    }.get(column)
    if column == "record":
        edit(db, "UPDATE audit SET record = replace(record, '\"seq\":', '\"seq\": ') WHERE seq = ?", seq)
    else:
        edit(db, f"UPDATE audit SET {column} = ? WHERE seq = ?", value, seq)
    verdict = verify(Store(db), key.encode())
    assert not verdict.ok
    assert verdict.broken_at in (seq, seq + 1), verdict  # the record, or the next one whose link it broke


@pytest.mark.parametrize("key", ["", KEY], ids=["sha256", "hmac"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_deleted_record_is_located_the_last_through_the_anchor(tmp_path: Path, key: str, where: str) -> None:
    db = tmp_path / "a.db"
    last = chain(db, key)
    seq = {"first": 1, "middle": last // 2, "last": last}[where]
    edit(db, "DELETE FROM audit WHERE seq = ?", seq)
    verdict = verify(Store(db), key.encode())
    assert not verdict.ok
    if where == "last":
        assert f"the chain ends at record {last - 1} but its anchor names record {last}" in verdict.reason
    else:
        assert f"record {seq} is missing" in verdict.reason


@pytest.mark.parametrize("key", ["", KEY], ids=["sha256", "hmac"])
def test_two_records_reordered_are_located(tmp_path: Path, key: str) -> None:
    db = tmp_path / "a.db"
    chain(db, key)
    con = sqlite3.connect(db)
    a, b = (
        con.execute("SELECT time, kind, record, prev_hash, hash FROM audit WHERE seq = ?", (n,)).fetchone()
        for n in (3, 4)
    )
    for seq, row in ((3, b), (4, a)):
        con.execute(
            "UPDATE audit SET time = ?, kind = ?, record = ?, prev_hash = ?, hash = ? WHERE seq = ?", (*row, seq)
        )
    con.commit()
    verdict = verify(Store(db), key.encode())
    assert not verdict.ok and verdict.broken_at == 3 and "does not follow record 2" in verdict.reason


def rebuild(db: Path, key: bytes = b"", drop_kind: str = "", change: tuple[str, str] = ("", "")) -> None:
    """What someone without the key can do: rewrite every hash from an edit onwards, and the anchor to match."""
    con = sqlite3.connect(db)
    rows = con.execute("SELECT seq, time, kind, record FROM audit ORDER BY seq").fetchall()
    con.execute("DELETE FROM audit")
    previous, seq = "0" * 64, 0
    for _, stamp, kind, record in rows:
        if kind == drop_kind:
            drop_kind = ""  # the first one only
            continue
        seq += 1
        data = json.loads(record)
        data["seq"] = seq
        text = (
            json.dumps(data, sort_keys=True, separators=(",", ":")).replace(*change)
            if change[0]
            else (json.dumps(data, sort_keys=True, separators=(",", ":")))
        )
        digest = chain_hash(previous, text, key)
        con.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?)", (seq, stamp, kind, text, previous, digest))
        previous = digest
    con.commit()
    con.close()
    write_anchor(db, seq, previous, key)


def test_a_rebuilt_chain_that_drops_a_fill_is_caught_by_the_journal(tmp_path: Path) -> None:
    """Without the key a chain can be rebuilt whole; the journal's fill then has no record, and that is named."""
    db = tmp_path / "a.db"
    chain(db)
    rebuild(db, drop_kind="fill")
    verdict = verify(Store(db))
    assert not verdict.ok and "have no audit record" in verdict.reason and "fill 2000001" in verdict.reason


def test_without_the_key_a_rebuilt_chain_and_anchor_pass_with_it_they_do_not(tmp_path: Path) -> None:
    """The documented limit: an edit inside a record, re-hashed onwards with the anchor rewritten, passes an
    unkeyed chain. Under hmac_key the attacker lacks the key: the hashes and the anchor's HMAC give it away."""
    db = tmp_path / "a.db"
    chain(db)
    rebuild(db, change=('"operator"', '"nobody"'))
    assert verify(Store(db)).ok  # the stated limit without a key

    keyed = tmp_path / "k.db"
    chain(keyed, KEY)
    rebuild(keyed, change=('"operator"', '"nobody"'))  # no key: SHA-256 hashes where HMACs were
    verdict = verify(Store(keyed), KEY.encode())
    assert not verdict.ok and "record 1 (start) was altered" in verdict.reason

    intact = tmp_path / "i.db"
    last = chain(intact, KEY)
    anchor = read_anchor(intact)
    assert anchor is not None
    write_anchor(intact, last - 1, "0" * 64)  # an anchor moved back (to hide a cut tail), forged without the key
    assert "the audit anchor was edited" in verify(Store(intact), KEY.encode()).reason


def test_the_anchor_is_beside_the_store_and_names_the_head(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    last = chain(db, KEY)
    anchor = read_anchor(db)
    assert anchor is not None and anchor["seq"] == last and anchor_path(db).exists()
    head = sqlite3.connect(db).execute("SELECT hash FROM audit WHERE seq = ?", (last,)).fetchone()[0]
    assert anchor["hash"] == head and len(anchor["mac"]) == 64  # keyed: an HMAC of the head


def test_export_then_verify_the_file_on_its_own(tmp_path: Path) -> None:
    var = tmp_path / "var"
    chain(var / "tradeguard.db")
    settings = tmp_path / "s.toml"
    settings.write_text(f'[default.runtime]\ndata_dir = "{var}"\n[default.logging]\nlevel = "ERROR"\n')

    def tg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tradeguard", *args, "--settings", str(settings)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "300"},
        )

    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"audit.{fmt}"
        done = tg("audit", "export", "--out", str(out), "--format", fmt)
        assert done.returncode == 0 and "the chain is intact" in done.stdout, done.stderr
        checked = tg("audit", "verify", "--file", str(out))
        assert checked.returncode == 0 and "intact" in checked.stdout, checked.stderr
        out.write_text(out.read_text().replace("EURUSD", "GBPUSD", 1))
        assert tg("audit", "verify", "--file", str(out)).returncode == 1
    head = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[0])
    assert head["verdict"]["ok"] and head["exported"] >= 5
