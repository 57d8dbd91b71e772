"""Account snapshots exported to files beside the store, for tools that read JSON lines or Parquet.

Files are named after their first snapshot's time and hold at most ``export_rows_per_file`` snapshots.
JSON lines are appended one by one. A Parquet file cannot be appended to, so its rows wait in memory and
are written once, as a whole file, when there are ``export_rows_per_file`` of them or when ``flush`` is
called (the account tracker does it every ``export_flush_seconds`` and at shutdown): no file is ever read
back and rewritten, so a snapshot costs the same whatever was exported before it. A crash loses at most
the Parquet rows since the last flush; every snapshot is in the store's ``account_snapshots`` table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from tradeguard import AccountSnapshot


class SnapshotExport:
    def __init__(self, folder: Path, fmt: Literal["jsonl", "parquet"], rows_per_file: int) -> None:
        self.folder, self.fmt, self.rows_per_file = folder, fmt, rows_per_file
        self._jsonl: Path | None = None  # the JSON-lines file being appended to
        self._rows = 0  # its rows
        self._waiting: list[tuple[AccountSnapshot, dict[str, Any]]] = []  # Parquet rows not written yet

    def add(self, snap: AccountSnapshot) -> None:
        row = json.loads(snap.model_dump_json())
        if self.fmt == "parquet":
            self._waiting.append((snap, row))
            if len(self._waiting) >= self.rows_per_file:
                self.flush()
            return
        if self._jsonl is None or self._rows >= self.rows_per_file:
            self._jsonl, self._rows = self._new_file(snap), 0
        with self._jsonl.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        self._rows += 1

    def flush(self) -> None:
        """Write the waiting Parquet rows as one file."""
        if not self._waiting:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self._new_file(self._waiting[0][0])
        pq.write_table(pa.Table.from_pylist([row for _, row in self._waiting]), path)
        self._waiting = []

    def _new_file(self, first: AccountSnapshot) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        stem, n = f"account-{first.time:%Y%m%dT%H%M%S}", 1
        path = self.folder / f"{stem}.{self.fmt}"
        while path.exists():  # two files starting in the same second
            n += 1
            path = self.folder / f"{stem}-{n}.{self.fmt}"
        return path
