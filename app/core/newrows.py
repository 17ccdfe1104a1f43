"""Rows written since a moment (a migration): do they keep what the migration established?

In the real incident the migration backfilled every `root_id`, and the application then kept
writing rows with NULL `root_id`. At the start of the watch we record, per table, the highest
rowid and the columns that hold no NULL at all; each tick looks at the newer rows only (a
rowid range, so it stays cheap on a large table) and reports every such column that a new
row left NULL.
"""
from __future__ import annotations

from contextlib import closing
from pathlib import Path

from app.core.checks import CheckResult
from app.core.engines import engine_for
from app.core.errors import TargetUnavailable
from app.core.sql import quote_identifier

NAME = "new_rows_keep_columns_filled"


def _tables(conn) -> list[str]:
    rows = conn.execute("SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' "
                        "AND name NOT LIKE 'sqlite_%' AND NOT wr ORDER BY name")
    return [row[0] for row in rows]


def _nullable_columns(conn, table: str) -> list[str]:
    rows = conn.execute("SELECT name, \"notnull\", pk FROM pragma_table_info(?)", (table,))
    return [name for name, not_null, pk in rows if not not_null and not pk]


def _null_counts(conn, table: str, columns: list[str], after_rowid: int) -> dict[str, int]:
    """One pass over the rows after `after_rowid`: how many NULLs each column has."""
    if not columns:
        return {}
    sums = ", ".join(f"SUM({quote_identifier(c)} IS NULL)" for c in columns)
    row = conn.execute(f"SELECT {sums} FROM {quote_identifier(table)} WHERE rowid > ?", (after_rowid,)).fetchone()
    return {column: int(count or 0) for column, count in zip(columns, row)}


def capture_baseline(path: Path, *, busy_timeout: float = 1.0) -> dict:
    """{table: {"max_rowid": N, "filled": [columns with no NULL]}} as the database is now."""
    engine = engine_for(path)
    try:
        with closing(engine.open_readonly(busy_timeout=busy_timeout)) as conn, engine.read_transaction(conn):
            baseline = {}
            for table in _tables(conn):
                max_rowid = conn.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {quote_identifier(table)}").fetchone()[0]
                nulls = _null_counts(conn, table, _nullable_columns(conn, table), 0)
                baseline[table] = {"max_rowid": max_rowid, "filled": [c for c, n in nulls.items() if n == 0]}
            return baseline
    except engine.Error as exc:
        raise engine.unavailable(exc) from None


def new_rows_check(path: Path, baseline: dict, *, busy_timeout: float = 1.0) -> CheckResult:
    """Fails when a row added since the baseline is NULL where every older row was filled."""
    engine = engine_for(path)
    try:
        with closing(engine.open_readonly(busy_timeout=busy_timeout)) as conn, engine.read_transaction(conn):
            findings, new_rows = _findings(conn, baseline)
    except engine.Error as exc:
        return CheckResult(NAME, False, f"could not read the database: {exc}")
    except TargetUnavailable as error:
        return CheckResult(NAME, False, f"could not read the database: {error.message}")
    if findings:
        return CheckResult(NAME, False, f"{len(findings)} column(s) filled before are NULL in new rows", tuple(findings))
    return CheckResult(NAME, True, f"{new_rows} new row(s) since the start; none leaves a filled column NULL")


def _findings(conn, baseline: dict) -> tuple[list[str], int]:
    findings, new_rows = [], 0
    existing = set(_tables(conn))
    for table, facts in baseline.items():
        if table not in existing:
            continue
        after = facts["max_rowid"]
        count = conn.execute(f"SELECT COUNT(*) FROM {quote_identifier(table)} WHERE rowid > ?", (after,)).fetchone()[0]
        new_rows += count
        if not count:
            continue
        present = set(_nullable_columns(conn, table))
        for column, nulls in _null_counts(conn, table, [c for c in facts["filled"] if c in present], after).items():
            if nulls:
                findings.append(f"{table}.{column}: {nulls} of {count} new row(s) are NULL")
    return findings, new_rows
