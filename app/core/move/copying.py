"""The copy: every accepted row into the target in one transaction, by COPY, checked before COMMIT.

Tables are written parents first, one COPY each. The target's foreign keys are set aside inside
the transaction and added back once every row is in: the server then checks every row against
them at once (one join per key, as pg_restore does, instead of one lookup per row), and a
violation, like any failure, rolls everything back, the keys' drop included. Rejected rows go to the quarantine as the same scan meets them. Before
COMMIT, inside the transaction: deferred constraints are checked, each table's count and content
fingerprint are read back and compared with the source's, and the source's SHA-256 is taken
again; any difference raises, and the transaction rolls back. So the target holds every
accepted row, exactly, or nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from app.core.errors import MoveFailed
from app.core.move.fingerprints import Fingerprint
from app.core.move.preflight import Preflight, TablePreflight, row_key


@dataclass
class TableMoved:
    name: str
    source_rows: int
    moved: int
    quarantined: int
    reasons: dict  # reason -> rows
    source_fingerprint: str
    target_fingerprint: str = ""
    target_rows: int | None = None
    sequences: dict = field(default_factory=dict)  # column -> value it was set to

    @property
    def reconciled(self) -> bool:
        return self.moved + self.quarantined == self.source_rows and self.target_rows == self.moved

    def to_dict(self) -> dict:
        return {"name": self.name, "source_rows": self.source_rows, "moved": self.moved,
                "quarantined": self.quarantined, "reasons": self.reasons, "target_rows": self.target_rows,
                "source_fingerprint": self.source_fingerprint, "target_fingerprint": self.target_fingerprint,
                "fingerprints_match": self.source_fingerprint == self.target_fingerprint,
                "reconciled": self.reconciled, "sequences": self.sequences}


def copy_all(reader, loader, preflight: Preflight, quarantine, say, source_sha256: str) -> list[TableMoved]:
    """Write every table, then check everything before the caller's COMMIT (MoveFailed otherwise)."""
    moved = []
    keys = loader.set_foreign_keys_aside([table.name for table in preflight.tables])
    for table in preflight.tables:
        say(f"Copying {table.name}: {table.rows - len(table.rejected):,} of {table.rows:,} rows")
        moved.append(_copy_table(reader, loader, table, quarantine))
    say(f"Checking every row against the target's {len(keys)} foreign keys (added back in bulk)")
    loader.add_foreign_keys_back(keys)
    for table, result in zip(preflight.tables, moved):
        result.sequences = loader.advance_sequences(table.target)
    loader.check_deferred_constraints()
    say("Verifying inside the transaction: counts, content fingerprints, constraints, the source's bytes")
    for table, result in zip(preflight.tables, moved):
        result.target_rows, result.target_fingerprint = _target_fingerprint(loader, table)
    _refuse_differences(moved, loader, preflight, reader, source_sha256)
    return moved


def _copy_table(reader, loader, table: TablePreflight, quarantine) -> TableMoved:
    fingerprint = Fingerprint([table.conversions[column] for column in table.columns])
    written = loader.copy(table.name, table.columns, _accepted_rows(reader, table, fingerprint, quarantine))
    reasons = {reason: group.count for reason, group in table.groups.items()}
    return TableMoved(table.name, table.rows, written, len(table.rejected), reasons, fingerprint.value)


def _accepted_rows(reader, table: TablePreflight, fingerprint: Fingerprint, quarantine):
    """The converted rows to write; rejected rows go to the quarantine as the scan meets them."""
    source = table.source
    converters = [(table.conversions[column].convert, source.columns.index(column)) for column in table.columns]
    for place, raw in enumerate(reader.rows(source, source.columns)):
        if place in table.rejected:
            if quarantine is not None:
                reason, detail = table.rejected[place]
                row = dict(zip(source.columns, raw))
                quarantine.add(table.name, reason, detail, row_key(source, row, place), row)
            continue
        values = tuple([convert(raw[position]) for convert, position in converters])
        fingerprint.add(values)
        yield values


def _target_fingerprint(loader, table: TablePreflight) -> tuple[int, str]:
    conversions = [table.conversions[column] for column in table.columns]
    json_columns = frozenset(column for column in table.columns if table.conversions[column].family == "json")
    fingerprint = Fingerprint(conversions)
    for values in loader.rows(table.name, table.columns, json_columns):
        fingerprint.add(values)
    return fingerprint.rows, fingerprint.value


def _refuse_differences(moved, loader, preflight, reader, source_sha256: str) -> None:
    problems = [f"{m.name}: {m.target_rows} rows in the target, {m.moved} written" for m in moved
                if m.target_rows != m.moved]
    problems += [f"{m.name}: content fingerprint {m.target_fingerprint} in the target, {m.source_fingerprint} "
                 "in the source" for m in moved if m.target_fingerprint != m.source_fingerprint]
    problems += [f"{m.name}: {m.moved} moved + {m.quarantined} quarantined is not the source's {m.source_rows}"
                 for m in moved if m.moved + m.quarantined != m.source_rows]
    unvalidated = loader.unvalidated_constraints([t.name for t in preflight.tables])
    problems += [f"constraint {name} is NOT VALID" for name in unvalidated]
    if reader.sha256() != source_sha256:
        problems.append("the source file changed during the move (is the application still running?)")
    if problems:
        raise MoveFailed("The move was rolled back, the target is as empty as it was: " + "; ".join(problems)
                         + ". Stop whatever writes to the source and move again.", problems=problems)
