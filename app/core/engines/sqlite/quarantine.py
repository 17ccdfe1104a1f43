"""The quarantine of a move: a new SQLite file holding every row the target could not take.

It is written under a hidden partial name, made durable there (`seal`) before the target's
COMMIT, and given its final name only once the move has committed (`publish`, which never
replaces a file): an existing file is refused before anything starts, a move that fails leaves no
quarantine that looks complete, and a move killed between its COMMIT and `publish` leaves every
rejected row in the sealed partial file beside the wanted name (`.NAME.partial-PID-...`).
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from app.core.errors import QuarantineExists
from app.core.fsutil import fsync_directory, fsync_file, partial_path, publish, remove_if_present

_SCHEMA = """
CREATE TABLE rejected_rows (
    id INTEGER PRIMARY KEY,
    source_table TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    row_key TEXT NOT NULL,     -- JSON: the row's primary key (or its place in the table)
    row_values TEXT NOT NULL   -- JSON: every column of the source row, blobs as hex
);
CREATE INDEX rejected_rows_by_table ON rejected_rows (source_table, reason);
"""


def refuse_existing(path) -> None:
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise QuarantineExists(
            f"The quarantine file {path} already exists: a move writes its rejected rows to a new file only, "
            "so an earlier quarantine is never mixed with this one. Name a new file (or move that one away).",
            path=str(path))
    if not path.parent.is_dir():
        raise QuarantineExists(f"The quarantine file's folder {path.parent} does not exist: create it or "
                               "name a file in an existing folder.", path=str(path))


class Quarantine:
    """Rows written to a partial file; `publish()` after the move committed, `discard()` otherwise."""

    def __init__(self, path):
        self.path = Path(path)
        refuse_existing(self.path)
        self._partial = partial_path(self.path)
        self._connection = sqlite3.connect(self._partial, isolation_level=None)
        self._connection.executescript(_SCHEMA)
        self._connection.execute("BEGIN")
        self.rows = 0

    def add(self, table: str, reason: str, detail: str, key: dict, values: dict) -> None:
        self._connection.execute(
            "INSERT INTO rejected_rows (source_table, reason, detail, row_key, row_values) VALUES (?, ?, ?, ?, ?)",
            (table, reason, detail, _json(key), _json(values)))
        self.rows += 1

    @property
    def partial(self) -> Path:
        return self._partial

    def seal(self) -> None:
        """Commit and fsync the rows under the partial name: called before the target commits."""
        self._connection.execute("COMMIT")
        self._connection.close()
        fsync_file(self._partial)
        fsync_directory(self.path.parent)

    def publish(self) -> None:
        """The sealed file under its final name (FileExistsError if something took that name since)."""
        publish(self._partial, self.path)
        fsync_directory(self.path.parent)

    def discard(self) -> None:
        self._connection.close()
        for suffix in ("", "-journal", "-wal"):
            remove_if_present(Path(str(self._partial) + suffix))


def _json(value) -> str:
    return json.dumps(value, default=lambda v: bytes(v).hex() if isinstance(v, (bytes, memoryview)) else str(v),
                      ensure_ascii=False, sort_keys=False)


def read_quarantine(path) -> list[dict]:
    """Every row of a quarantine file (tests and reports read it back)."""
    with sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT source_table, reason, detail, row_key, row_values FROM rejected_rows ORDER BY id").fetchall()
    connection.close()
    return [{"table": t, "reason": r, "detail": d, "key": json.loads(k), "values": json.loads(v)}
            for t, r, d, k, v in rows]
