"""Alembic's version table in a move: a stamp of the schema, not the application's data.

A target whose schema was made by the application's own revisions (or by Cutover's Alembic plan)
holds one row in `alembic_version` while every other table is empty, and a source kept by Alembic
has its own. That table is neither copied nor counted as rows in the target: the move instead
requires both stamps to name the same revisions, so the rows go into the schema they were written
for. A source without the table (not kept by Alembic) is compared column by column only.
"""
from __future__ import annotations

from dataclasses import dataclass

VERSION_TABLE = "alembic_version"  # Alembic's default name
VERSION_COLUMN = "version_num"


@dataclass(frozen=True)
class VersionStamp:
    table: str
    source: tuple[str, ...] | None  # None: the source has no version table
    target: tuple[str, ...]

    def problem(self) -> str | None:
        if self.source is None or sorted(self.source) == sorted(self.target):
            return None
        return (f"the source is at Alembic revision {_named(self.source)} and the target at {_named(self.target)}: "
                "bring the target to the source's revision first (cutover migrate TARGET --to REV --yes), so the "
                "rows go into the schema they were written for")

    def to_dict(self) -> dict:
        return {"table": self.table, "source": list(self.source) if self.source is not None else None,
                "target": list(self.target)}


def _named(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) if revisions else "none (an empty version table)"


def version_stamp(reader, mover, target_tables: dict, table: str = VERSION_TABLE) -> VersionStamp | None:
    """Both sides' stamps when the target has a version table, else None (it is then an ordinary table)."""
    if table not in target_tables:
        return None
    source_table = next((t for t in reader.tables() if t.name == table), None)
    source = None
    if source_table is not None and VERSION_COLUMN in source_table.columns:
        source = tuple(str(row[0]) for row in reader.rows(source_table, (VERSION_COLUMN,)))
    return VersionStamp(table, source, tuple(mover.version_rows(table, VERSION_COLUMN)))
