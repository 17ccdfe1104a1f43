"""Reading a SQLite file's rows for a move to another engine: read-only, streamed, one file.

The file is opened as every inspection opens it (`files.open_readonly`: `mode=ro`, nothing
created), rows come out in the table's own order (rowid, or the primary key of a WITHOUT ROWID
table) a batch at a time, so memory does not grow with the table, and the same scan twice
yields the same rows in the same order: a row is named by its place in that scan.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.core.engines.sqlite import files, introspection
from app.core.fsutil import sha256_of_file
from app.core.sql import quote_identifier

BATCH_ROWS = 5_000


@dataclass(frozen=True)
class SourceTable:
    name: str
    columns: tuple[str, ...]  # stored columns, in declaration order (generated ones left out)
    types: tuple[str, ...]  # declared types, "" when none
    key: tuple[str, ...]  # the primary key's columns; () for a rowid table without one
    rows: int
    # (column,) when the key is the rowid itself (INTEGER PRIMARY KEY): distinct integers by construction
    rowid_alias: tuple[str, ...] | None = None


class SQLiteMoveSource:
    """A read-only view of one SQLite file's tables and rows."""

    def __init__(self, path, *, busy_timeout: float = 1.0):
        self.path = Path(path)
        self._connection = files.open_readonly(self.path, busy_timeout=busy_timeout)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def tables(self) -> list[SourceTable]:
        schema = introspection.read_schema(self._connection, count_rows=True)
        return [_source_table(table) for table in schema.tables if not table.unreadable]

    def rows(self, table: SourceTable, columns) -> Iterator[tuple]:
        """Every row's values for `columns`, in the table's stored order."""
        for batch in self.batches(table, columns):
            yield from batch

    def batches(self, table: SourceTable, columns) -> Iterator[list[tuple]]:
        """`rows`, a list of up to BATCH_ROWS at a time."""
        order = ", ".join(map(quote_identifier, table.key)) if table.key else "_rowid_"
        listed = ", ".join(map(quote_identifier, columns)) or "NULL"
        cursor = self._connection.execute(f"SELECT {listed} FROM {quote_identifier(table.name)} ORDER BY {order}")
        while batch := cursor.fetchmany(BATCH_ROWS):
            yield batch

    def sha256(self) -> str:
        """SHA-256 of the file and of its -wal when there is one: the source's bytes."""
        digests = [sha256_of_file(self.path)[1]]
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.exists():
            digests.append(sha256_of_file(wal)[1])
        return "+".join(digests)


def _source_table(table) -> SourceTable:
    stored = [column for column in table.columns if column.hidden not in ("hidden", "virtual", "stored")]
    key = tuple(column.name for column in sorted(table.columns, key=lambda c: c.pk) if column.pk)
    alias = key if len(key) == 1 and not table.without_rowid and next(
        c for c in table.columns if c.name == key[0]).type.upper() == "INTEGER" else None
    return SourceTable(table.name, tuple(c.name for c in stored), tuple(c.type for c in stored), key,
                       table.row_count or 0, alias)

