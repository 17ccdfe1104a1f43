"""Moving an application's data from a SQLite file into a PostgreSQL database, without losing a row.

`preflight` reads both sides and judges every row (writes nothing). `move` refuses what blocks
it whatever the rows hold (a schema mismatch, a target not empty) before it writes anything; then,
in one transaction on the target, it judges each row as it reads it and writes it at once when it
can move, so every value is read and converted once. A row rejected with no quarantine to take it
stops the writing; the rest is still judged, and the move is refused with every reject counted,
by rolling back: the target is left as it was. It verifies before COMMIT and again after, and reports. The source is read through its engine's `move_source` (read-only),
the target written through its engine's `move_target`, the quarantine is the SQLite engine's
`new_quarantine`: nothing here knows a driver.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

from app.core.engines import engine_for
from app.core.errors import MoveFailed, MoveRefused, NotSupported, UsageError, said_by
from app.core.move.copying import copy_all
from app.core.move.preflight import Preflight, plan_move, run_preflight
from app.core.move.report import MoveReport
from app.core.move.stamps import VERSION_TABLE, version_stamp
from app.core.move.verify import verify_moved

__all__ = ["Preflight", "MoveReport", "preflight", "move", "sides", "verify_moved"]


def sides(source, target) -> dict:
    """What each side holds, read cheaply (no row is judged): source tables and their rows, target tables."""
    mover = _target_side(target)
    with _source_side(source) as reader:
        tables = {table.name: table.rows for table in reader.tables()}
    described = mover.describe()
    return {"source_tables": tables, "target_tables": sorted(described),
            "target_not_empty": sorted(name for name, table in described.items()
                                       if table.has_rows and name != VERSION_TABLE)}


def preflight(source, target, *, drop=()) -> Preflight:
    """Every row judged against the target's schema; nothing is written anywhere."""
    mover = _target_side(target)
    with _source_side(source) as reader:
        return _planned(reader, mover, source, target, drop, judge=run_preflight)


def _planned(reader, mover, source, target, drop, *, judge=plan_move) -> Preflight:
    """`judge` = plan_move: the tables and what blocks the move, no row read; run_preflight: every row judged."""
    described = mover.describe()
    return judge(reader, described, source=source.label, target=target.label, drop=drop,
                 version_stamp=version_stamp(reader, mover, described))


def move(source, target, *, quarantine=None, drop=(), say=lambda line: None) -> MoveReport:
    """Judge and copy in one transaction, verify; MoveRefused (a blocking problem, or rejects without a
    quarantine) and MoveFailed leave the target as it was (rolled back)."""
    started = time.monotonic()
    mover = _target_side(target)
    quarantine_target = engine_for(quarantine) if quarantine is not None else None
    if quarantine_target is not None:
        quarantine_target.check_new_quarantine()
    with _source_side(source) as reader:
        stamp, source_sha256 = source.stamp(), reader.sha256()
        checked = _planned(reader, mover, source, target, drop)
        _refuse_blocking_problems(checked)
        rejects = quarantine_target.new_quarantine() if quarantine_target is not None else None
        try:
            with mover.load() as loader:
                say("Transaction open on the target: each row is judged as it is read and written when it "
                    "can move; nobody sees a row before COMMIT, and a refusal rolls everything back")
                moved = copy_all(reader, loader, checked, rejects, say, source_sha256)
                if rejects is not None:
                    rejects.seal()  # every rejected row durable before the target commits
        except BaseException as exc:
            if rejects is not None:
                rejects.discard()
            if isinstance(exc, mover.Error):
                raise _refused_by_the_server(exc, target) from exc
            raise
        if rejects is not None:
            _publish_quarantine(rejects)
        report = MoveReport(source.label, target.label, moved, 0.0, checked.conversions(),
                            str(quarantine) if quarantine is not None else None, source_sha256)
        report.checks = _checks_after_commit(report, mover, source.unchanged_since(stamp), source_sha256)
    report.seconds = time.monotonic() - started
    return report


def _publish_quarantine(rejects) -> None:
    """After the COMMIT nothing is rolled back: a quarantine that cannot take its name keeps its
    sealed file, and the operator is told where it is."""
    try:
        rejects.publish()
    except OSError as exc:
        raise MoveFailed(
            f"The move committed: the target holds every accepted row. The quarantine could not be named "
            f"{rejects.path} ({exc.strerror or exc}); its {rejects.rows} rejected rows are complete in "
            f"{rejects.partial}: rename that file.", quarantine=str(rejects.partial)) from exc


def _refused_by_the_server(exc: Exception, target) -> MoveFailed:
    said = said_by(exc)
    return MoveFailed(
        f"{target.label} refused the move: {said}. The transaction rolled back: the target is as empty as it "
        "was and nothing was quarantined. Preflight judges types, NULLs, keys and uniqueness, not CHECK "
        "constraints or triggers: fix the rows it names in the source (or the target's schema) and move again.",
        server_error=said)


@contextmanager
def _source_side(source):
    """The source's reader; a read that fails on the way (a damaged page) as the engine explains it."""
    try:
        reader = source.move_source()
    except NotSupported as exc:
        raise UsageError(f"The source must be a SQLite database: {exc.message}") from None
    with reader:
        try:
            yield reader
        except source.Error as exc:
            raise source.unavailable(exc) from exc


def _target_side(target):
    try:
        return target.move_target()
    except NotSupported as exc:
        raise UsageError(f"The target must be a PostgreSQL database: {exc.message}") from None


def _refuse_blocking_problems(checked: Preflight) -> None:
    problems = checked.blocking_problems()
    if problems:
        raise MoveRefused("Nothing was written: " + "; ".join(problems) + ".", problems=problems)


def _checks_after_commit(report: MoveReport, mover, unchanged: bool, source_sha256: str) -> list:
    """Read again after COMMIT. The source's bytes were hashed again just before COMMIT (copying.py);
    since then its stamp (size, times, identity) says whether anything touched it."""
    counts = mover.row_counts([table.name for table in report.tables])
    off = [f"{t.name}: {counts[t.name]} in the target, {t.moved} moved" for t in report.tables if counts[t.name] != t.moved]
    ledger = [f"{t.name}: {t.moved} + {t.quarantined} != {t.source_rows}" for t in report.tables
              if t.moved + t.quarantined != t.source_rows]
    prints = [t.name for t in report.tables if t.source_fingerprint != t.target_fingerprint]
    unvalidated = mover.unvalidated_constraints([table.name for table in report.tables])
    return [
        ("moved + quarantined = source rows", not ledger, "; ".join(ledger) or f"{len(report.tables)} tables reconcile"),
        ("target rows after COMMIT", not off, "; ".join(off) or f"{report.moved:,} rows, as moved"),
        ("content fingerprints", not prints, ", ".join(prints) or "every table's rows equal the source's after conversion"),
        ("target constraints", not unvalidated, ", ".join(f"{name} is NOT VALID" for name in unvalidated) or
         "every row checked against the foreign keys added back and the deferred constraints before COMMIT; "
         "none NOT VALID"),
        ("source byte-identical", unchanged, f"SHA-256 {source_sha256[:16]}... before the move and at COMMIT, "
                                             "untouched since"),
    ]
