"""A report on a store nothing has happened in yet: a page that says so, not a crash or empty charts."""

from __future__ import annotations

from pathlib import Path

from tradeguard.core.store import Store
from tradeguard.report import write_report
from tradeguard.testing import make_runtime


def test_an_empty_store_gives_a_page_without_charts(tmp_path: Path) -> None:
    store = Store(tmp_path / "empty.db")
    rt = make_runtime(store=store, start=False)
    page = write_report(store, rt.settings, tmp_path / "out").read_text()
    assert "<img" not in page
    for sentence in ("No account snapshots were recorded.", "No bars were recorded.", "No signal was rejected.",
                     "No signal was scored.", "No closed trade was followed yet.", "No signal has been labelled yet."):
        assert sentence in page
    assert (tmp_path / "out" / "decisions.csv").read_text().strip() == "time"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["decisions.csv", "index.html"]
