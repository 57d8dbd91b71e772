"""The report without a replay behind it: an empty store, and the decision table's selection."""

from __future__ import annotations

from pathlib import Path

from tradeguard.report import write_report
from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime


def test_an_empty_store_gives_a_page_without_charts(tmp_path: Path) -> None:
    store = Store(tmp_path / "empty.db")
    rt = make_runtime(store=store, start=False)
    page = write_report(store, rt.settings, tmp_path / "out").read_text()
    assert "<img" not in page
    for sentence in (
        "No account snapshots were recorded.",
        "No bars were recorded.",
        "No signal was rejected.",
        "No signal was scored.",
        "No closed trade was followed yet.",
        "No signal has been labelled yet.",
    ):
        assert sentence in page
    assert (tmp_path / "out" / "decisions.csv").read_text().strip() == "time"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["decisions.csv", "index.html"]


def test_the_decision_table_keeps_every_approval_and_fills_up_with_the_latest_rejections() -> None:
    from tradeguard.report.data import TABLE_ROWS
    from tradeguard.report.render import _table_rows

    few = [{"n": i, "approved": "yes" if i % 10 == 0 else "no"} for i in range(1000)]  # 100 approved
    kept = _table_rows(few)
    assert len(kept) == TABLE_ROWS and sum(r["approved"] == "yes" for r in kept) == 100
    assert [r["n"] for r in kept] == sorted(r["n"] for r in kept) and kept[-1]["n"] == 999
    many = [{"n": i, "approved": "yes" if i % 2 else "no"} for i in range(2 * TABLE_ROWS + 50)]
    kept = _table_rows(many)  # approvals alone fill the table: no rejection, the latest approvals
    assert len(kept) == TABLE_ROWS and all(r["approved"] == "yes" for r in kept) and kept[-1]["n"] == len(many) - 1
