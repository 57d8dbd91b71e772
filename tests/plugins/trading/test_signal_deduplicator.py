"""Deduplication by id and by content, within the window, across a restart."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tradeguard.plugins.trading.signal_deduplicator import SignalDeduplicator
from tradeguard.store.sqlite import Store
from tradeguard.testing import T0, make_runtime, signal


def dedup(db: Path, **cfg: float) -> tuple:
    d = SignalDeduplicator()
    return make_runtime(("signal_deduplicator", d), store=Store(db), settings={"signal_deduplicator": cfg}), d


def test_same_id_or_content_is_a_duplicate_within_the_window(tmp_path: Path) -> None:
    rt, d = dedup(tmp_path / "d.db", ttl_seconds=3600)
    first = signal()
    assert d.validate_signal(first, rt) == []
    (again,) = d.validate_signal(signal(signal_id="other-id"), rt)  # same content, new id
    assert again.code == "duplicate_signal" and "same content" in again.message
    (same_id,) = d.validate_signal(signal(signal_id=first.signal_id, bar_time=T0), rt)
    assert "same id" in same_id.message
    assert d.validate_signal(signal(side="sell"), rt) == []
    rt.clock.advance(timedelta(seconds=3601))
    assert d.validate_signal(signal(), rt) == []  # the window has passed


def test_memory_survives_a_restart(tmp_path: Path) -> None:
    rt, d = dedup(tmp_path / "d.db")
    d.validate_signal(signal(), rt)
    rt.stop()  # shutdown flushes the memory
    rt2, d2 = dedup(tmp_path / "d.db")
    assert [r.code for r in d2.validate_signal(signal(), rt2)] == ["duplicate_signal"]
