"""Foreign-key violations as two readings of one target can be compared: before and after.

Engine-neutral: an engine reads them (engines/sqlite/integrity.py); the migration and the
checks compare them here, so only violations that were not there before stop anything.
"""
from __future__ import annotations

from dataclasses import dataclass

SAMPLE_LIMIT = 10


@dataclass(frozen=True)
class Violations:
    """A foreign-key check's answer, in a form two answers can be compared in.

    A violation is keyed by its child columns, not by SQLite's fkid, because ADD COLUMN
    ... REFERENCES renumbers the fkids of the other foreign keys of that table.
    """

    total: int
    # (table, parent, child columns) -> (count, rowid checksum 1, rowid checksum 2)
    groups: dict
    rows: frozenset | None  # {(table, rowid, parent, columns)}, None above the limit
    unavailable: str | None = None  # why the check could not run ("foreign key mismatch")

    def samples(self, rows=None) -> list[str]:
        chosen = sorted(rows if rows is not None else self.rows or (), key=repr)[:SAMPLE_LIMIT]
        return [f"{table} rowid {rowid} → {parent} ({', '.join(columns)})"
                for table, rowid, parent, columns in chosen]


def new_violations(before: Violations, after: Violations) -> tuple[int, list[str]]:
    """How many violations `after` has that `before` did not, and examples."""
    if after.unavailable or before.unavailable:
        return 0, []
    if before.rows is not None and after.rows is not None:
        added = after.rows - before.rows
        return len(added), after.samples(added)
    new, samples = 0, []
    for key, (count, one, two) in after.groups.items():
        old = before.groups.get(key, (0, 0, 0))
        if count > old[0] or (count == old[0] and (one, two) != old[1:]):
            new += max(count - old[0], 1)
            samples.append(f"{relationship(key)}: {old[0]:,} before, {count:,} after")
        elif count < old[0] and count:
            # Fewer than before, so some were fixed; whether others appeared cannot be proved
            # from checksums. Refusing is the safe answer (only when too many to list).
            new += 1
            samples.append(f"{relationship(key)}: changed and too many to compare row by row "
                           f"({old[0]:,} before, {count:,} after)")
    return new, samples[:SAMPLE_LIMIT]


def relationship(key: tuple) -> str:
    table, parent, columns = key
    return f"{table} → {parent} ({', '.join(columns)})"
