"""The copy: every accepted row into the target in one transaction, by COPY, checked before COMMIT.

Tables are written parents first, one COPY each, and each row is judged (preflight.RowJudges) as
the COPY's scan reads it: read and converted once, it is written when it can move. A table that
refers to itself is judged whole first (a row's parent in the same table may be rejected after
the row was read) and read again to be written. The target's foreign keys are set aside inside
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
from app.core.move.conversions import READ_AS_TEXT
from app.core.move.fingerprints import Fingerprint
from app.core.move.preflight import Preflight, RowJudges, TablePreflight, rejects_refused, row_key


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
    """Judge and write every table, then check everything before the caller's COMMIT (MoveFailed
    otherwise). Rows rejected without a quarantine: MoveRefused once every row is judged."""
    keys = loader.set_foreign_keys_aside([table.name for table in preflight.tables])
    judges, moved = RowJudges(preflight), []
    for table in preflight.tables:
        if preflight.rejected_rows and quarantine is None:
            judges.judge_all(reader, table)  # the move is refused: the rest is only counted
        else:
            say(f"Copying {table.name}: {table.source.rows:,} rows, each judged as it is read")
            moved.append(_copy_table(reader, loader, table, judges, quarantine))
    if preflight.rejected_rows and quarantine is None:
        raise rejects_refused(preflight)
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


def _copy_table(reader, loader, table: TablePreflight, judges: RowJudges, quarantine) -> TableMoved:
    fingerprint = Fingerprint([table.conversions[column] for column in table.columns])
    if judges.verdicts_as_read(table):
        rows = _judged_rows(judges.batches(reader, table), table, fingerprint, quarantine)
    else:
        judges.judge_all(reader, table)
        refused = quarantine is None and table.rejected
        rows = () if refused else _accepted_rows(reader, table, fingerprint, quarantine)
    written = loader.copy(table.name, table.columns, rows)
    reasons = {reason: group.count for reason, group in table.groups.items()}
    return TableMoved(table.name, table.rows, written, len(table.rejected), reasons, fingerprint.value)


def _judged_rows(batches, table: TablePreflight, fingerprint: Fingerprint, quarantine):
    """One pass: each row judged and converted once, written when accepted, quarantined when not.
    With no quarantine the first reject ends the writing; the scan still runs to its end, counting."""
    rejected = 0
    for first, raws, verdicts in batches:
        if len(table.rejected) != rejected:  # this batch has rejects
            rejected = len(table.rejected)
            if quarantine is not None:
                for place, raw, values in zip(range(first, first + len(raws)), raws, verdicts):
                    if values is None:
                        _quarantine(quarantine, table, place, raw)
            verdicts = [values for values in verdicts if values is not None]
        if rejected and quarantine is None:
            continue
        fingerprint.add_all(verdicts)
        yield from verdicts


def _accepted_rows(reader, table: TablePreflight, fingerprint: Fingerprint, quarantine):
    """A second pass, for a table whose verdicts were final only at the end of its judging: the
    converted rows to write; rejected rows go to the quarantine as the scan meets them."""
    source = table.source
    converters = [(table.conversions[column].convert, source.columns.index(column)) for column in table.columns]
    for place, raw in enumerate(reader.rows(source, source.columns)):
        if place in table.rejected:
            if quarantine is not None:
                _quarantine(quarantine, table, place, raw)
            continue
        values = tuple([convert(raw[position]) for convert, position in converters])
        fingerprint.add(values)
        yield values


def _quarantine(quarantine, table: TablePreflight, place: int, raw: tuple) -> None:
    reason, detail = table.rejected[place]
    row = dict(zip(table.source.columns, raw))
    quarantine.add(table.name, reason, detail, row_key(table.source, row, place), row)


def _target_fingerprint(loader, table: TablePreflight) -> tuple[int, str]:
    conversions = [table.conversions[column] for column in table.columns]
    as_text = frozenset(column for column in table.columns if table.conversions[column].family in READ_AS_TEXT)
    fingerprint = Fingerprint(conversions)
    for batch in loader.batches(table.name, table.columns, as_text):
        fingerprint.add_all(batch)
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
