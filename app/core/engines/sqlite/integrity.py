"""SQLite's integrity checks: quick_check, integrity_check and foreign_key_check, each once.

quick_check and foreign_key_check read the whole file; in rollback-journal mode they hold
a read lock for their whole pass. Callers choose when to pay for them.
"""
from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager

from app.core.engines.base import TimedOut
from app.core.engines.sqlite.files import sqlite_error_reason
from app.core.violations import Violations

QUICK_CHECK_MESSAGES = 10
FOREIGN_KEY_SAMPLES = 10
# Up to this many foreign-key violations are compared row by row; above it (a very dirty
# database) per-relationship counts and checksums are compared instead, in SQLite's C code.
EXACT_VIOLATION_LIMIT = 100_000
PROGRESS_STEPS = 1000  # SQLite virtual-machine steps between two looks at the clock


def quick_check(connection: sqlite3.Connection, *, stopped_is_answer: bool = True) -> str:
    """'ok', or SQLite's first problems.

    Badly damaged pages make quick_check fail instead of report; with `stopped_is_answer`
    that is its answer ("quick_check stopped: ..."), otherwise the error is raised."""
    try:
        rows = connection.execute(f"PRAGMA main.quick_check({QUICK_CHECK_MESSAGES})").fetchall()
    except sqlite3.DatabaseError as exc:
        if not stopped_is_answer or sqlite_error_reason(exc) != "corrupt":
            raise
        return f"quick_check stopped: {exc}"
    return "\n".join(str(row[0]) for row in rows)


def integrity_problems(connection: sqlite3.Connection, limit: int) -> list[str]:
    """The full PRAGMA integrity_check (quick_check skips index/content cross-checks): ['ok'] or problems."""
    return [row[0] for row in connection.execute(f"PRAGMA integrity_check({limit})")]


def foreign_key_summary(connection: sqlite3.Connection) -> tuple[int | None, tuple[dict, ...]]:
    """How many foreign-key violations, and the first few; (None, ()) when SQLite cannot check."""
    try:
        # Counted inside SQLite: iterating millions of orphans in Python costs more than the check.
        count = connection.execute("SELECT COUNT(*) FROM pragma_foreign_key_check").fetchone()[0]
        if not count:
            return 0, ()
        rows = connection.execute(
            f'SELECT "table", rowid, parent, fkid FROM pragma_foreign_key_check LIMIT {FOREIGN_KEY_SAMPLES}'
        )
        samples = tuple({"table": t, "rowid": rowid, "parent": parent, "fkid": fkid} for t, rowid, parent, fkid in rows)
        return count, samples
    except sqlite3.OperationalError as exc:
        # "foreign key mismatch": a declared parent key is not unique, so the check
        # cannot run at all. Report "not checked" rather than fail the inspection.
        if "foreign key mismatch" not in str(exc):
            raise
        return None, ()


@contextmanager
def time_limit_on(connection: sqlite3.Connection, seconds: float | None):
    """Interrupt whatever `connection` runs once `seconds` have passed (TimedOut)."""
    if seconds is None:
        yield
        return
    deadline = time.monotonic() + seconds
    expired = []

    def progress() -> int:
        if time.monotonic() > deadline:
            expired.append(True)
            return 1
        return 0

    connection.set_progress_handler(progress, PROGRESS_STEPS)
    try:
        yield
    except sqlite3.OperationalError as exc:
        if expired and "interrupt" in str(exc):
            raise TimedOut() from None
        raise
    finally:
        connection.set_progress_handler(None, 0)


_P1, _P2 = 4294967291, 2147483629  # primes: checksums stay far below 2**63 in SQLite's sum()


def foreign_key_violations(connection: sqlite3.Connection) -> Violations:
    try:
        exact = _exact_violations(connection)
        return exact if exact is not None else _aggregated_violations(connection)
    except sqlite3.OperationalError as exc:
        # "foreign key mismatch": a parent key is not unique, so SQLite cannot check at all.
        if "foreign key mismatch" not in str(exc):
            raise
        return Violations(0, {}, frozenset(), unavailable=str(exc))


def _exact_violations(connection) -> Violations | None:
    columns_of = _ForeignKeyColumns(connection)
    rows = set()
    cursor = connection.execute("PRAGMA main.foreign_key_check")
    for table, rowid, parent, fkid in cursor:
        rows.add((table, rowid, parent, columns_of(table, fkid)))
        if len(rows) > EXACT_VIOLATION_LIMIT:
            cursor.close()
            return None
    groups: dict = {}
    for table, rowid, parent, columns in rows:
        count, one, two = groups.get((table, parent, columns), (0, 0, 0))
        if rowid is not None:  # WITHOUT ROWID tables report none; SQLite's sum() skips NULL
            one, two = one + _c_mod(rowid, _P1), two + _c_mod(rowid, _P2) ** 2 % _P2
        groups[(table, parent, columns)] = (count + 1, one, two)
    return Violations(len(rows), groups, frozenset(rows))


def _c_mod(value: int, modulus: int) -> int:
    """SQLite's % (C semantics: the sign follows the dividend), for matching checksums."""
    return value % modulus if value >= 0 else -((-value) % modulus)


def _aggregated_violations(connection) -> Violations:
    """Count and checksum the violations of each foreign key, table by table, in SQL.

    One pass per table, no GROUP BY: FILTER clauses split the aggregates by fkid, so
    SQLite never sorts the (possibly millions of) violating rows.
    """
    columns_of = _ForeignKeyColumns(connection)
    groups: dict = {}
    for table in _tables_with_foreign_keys(connection):
        fkids = sorted(columns_of.of_table(table))
        terms = ", ".join(
            f'count(*) FILTER (WHERE fkid = {i}), '
            f'sum("rowid" % {_P1}) FILTER (WHERE fkid = {i}), '
            f'sum(("rowid" % {_P2}) * ("rowid" % {_P2}) % {_P2}) FILTER (WHERE fkid = {i})'
            for i in fkids
        )
        row = connection.execute(
            f"SELECT {terms} FROM pragma_foreign_key_check(?, 'main')", (table,)).fetchone()
        for position, fkid in enumerate(fkids):
            count, one, two = row[3 * position : 3 * position + 3]
            if count:
                key = (table, _parent(connection, table, fkid), columns_of(table, fkid))
                old = groups.get(key, (0, 0, 0))
                groups[key] = (old[0] + count, old[1] + (one or 0), old[2] + (two or 0))
    return Violations(sum(group[0] for group in groups.values()), groups, None)


def _tables_with_foreign_keys(connection) -> list[str]:
    return [name for (name,) in connection.execute(
        "SELECT name FROM main.sqlite_schema WHERE type = 'table' AND EXISTS "
        "(SELECT 1 FROM pragma_foreign_key_list(name, 'main'))")]


def _parent(connection, table: str, fkid: int) -> str:
    return connection.execute(
        "SELECT \"table\" FROM pragma_foreign_key_list(?, 'main') WHERE id = ?", (table, fkid)
    ).fetchone()[0]


class _ForeignKeyColumns:
    """fkid -> child column names, per table, read once."""

    def __init__(self, connection):
        self.connection, self.cache = connection, {}

    def __call__(self, table: str, fkid: int) -> tuple[str, ...]:
        return self.of_table(table).get(fkid, ())

    def of_table(self, table: str) -> dict[int, tuple[str, ...]]:
        if table not in self.cache:
            listing: dict[int, list[str]] = {}
            for fk_id, source in self.connection.execute(
                "SELECT id, \"from\" FROM pragma_foreign_key_list(?, 'main') ORDER BY id, seq",
                (table,),
            ):
                listing.setdefault(fk_id, []).append(source)
            self.cache[table] = {key: tuple(value) for key, value in listing.items()}
        return self.cache[table]
