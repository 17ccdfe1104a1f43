"""Rows written since a moment (a migration): do they keep what the migration established?

In the real incident the migration backfilled every `root_id`, and the application then kept
writing rows with NULL `root_id`. At the start of the watch we record, per table, the highest
key (SQLite's rowid; on PostgreSQL an integer primary key or a timestamp the database fills)
and the columns that hold no NULL at all; each tick looks at the newer rows only (a key
range, so it stays cheap on a large table) and reports every such column that a new row left
NULL. The engine says how rows are told apart (engines/*/watching.py).
"""
from __future__ import annotations

from contextlib import closing
from pathlib import Path

from app.core.checks import CheckResult
from app.core.engines import engine_for
from app.core.errors import TargetUnavailable

NAME = "new_rows_keep_columns_filled"


def capture_baseline(path: Path, *, busy_timeout: float = 1.0) -> dict:
    """{table: {"max_rowid": N, "filled": [columns with no NULL]}} as the database is now; on an
    engine whose rows are told apart by a column, "key" names it and "max_rowid" is its highest value."""
    engine = engine_for(path)
    try:
        with closing(engine.open_readonly(busy_timeout=busy_timeout)) as conn, engine.read_transaction(conn):
            baseline = {}
            for table, key, nullable in engine.watched_tables(conn):
                if key is None:
                    baseline[table] = {"key": None, "max_rowid": None, "filled": []}
                    continue
                _, highest, nulls = engine.rows_after(conn, table, key, None, nullable)
                baseline[table] = {**({} if key == "rowid" else {"key": key}), "max_rowid": highest,
                                   "filled": [c for c, n in nulls.items() if n == 0]}
            return baseline
    except engine.Error as exc:
        raise engine.unavailable(exc) from None


def new_rows_check(path: Path, baseline: dict, *, busy_timeout: float = 1.0) -> CheckResult:
    """Fails when a row added since the baseline is NULL where every older row was filled."""
    engine = engine_for(path)
    try:
        with closing(engine.open_readonly(busy_timeout=busy_timeout)) as conn, engine.read_transaction(conn):
            findings, new_rows = _findings(engine, conn, baseline)
    except engine.Error as exc:
        return CheckResult(NAME, False, f"could not read the database: {exc}")
    except TargetUnavailable as error:
        return CheckResult(NAME, False, f"could not read the database: {error.message}")
    unwatched = sorted(table for table, facts in baseline.items() if facts.get("key", "rowid") is None)
    evidence = ((f"not watched (no integer primary key or self-filled timestamp tells new rows apart): "
                 f"{', '.join(unwatched)}",) if unwatched else ())
    if findings:
        return CheckResult(NAME, False, f"{len(findings)} column(s) filled before are NULL in new rows",
                           tuple(findings) + evidence)
    return CheckResult(NAME, True, f"{new_rows} new row(s) since the start; none leaves a filled column NULL",
                       evidence)


def _findings(engine, conn, baseline: dict) -> tuple[list[str], int]:
    findings, new_rows = [], 0
    now = {table: nullable for table, _, nullable in engine.watched_tables(conn)}
    for table, facts in baseline.items():
        key = facts.get("key", "rowid")
        if table not in now or key is None:
            continue
        columns = [c for c in facts["filled"] if c in set(now[table])]
        count, _, nulls = engine.rows_after(conn, table, key, facts["max_rowid"], columns)
        new_rows += count
        for column, missing in nulls.items():
            if missing:
                findings.append(f"{table}.{column}: {missing} of {count} new row(s) are NULL")
    return findings, new_rows
