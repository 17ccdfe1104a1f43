"""New rows in a SQLite file: every table's rows are ordered by rowid, so "newer than the
baseline" is a rowid range, cheap on a large table."""
from __future__ import annotations

from app.core.sql import quote_identifier


def watched_tables(conn) -> list[tuple[str, str, list[str]]]:
    """(table, key, nullable columns) of every table whose new rows can be told apart."""
    rows = conn.execute("SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' "
                        "AND name NOT LIKE 'sqlite_%' AND NOT wr ORDER BY name")
    return [(table, "rowid", _nullable_columns(conn, table)) for (table,) in rows.fetchall()]


def _nullable_columns(conn, table: str) -> list[str]:
    rows = conn.execute("SELECT name, \"notnull\", pk FROM pragma_table_info(?)", (table,))
    return [name for name, not_null, pk in rows if not not_null and not pk]


def rows_after(conn, table: str, key: str, after, columns: list[str]) -> tuple[int, object, dict[str, int]]:
    """(rows with `key` above `after` (all rows when None), the highest key, NULLs per column)."""
    sums = "".join(f", SUM({quote_identifier(c)} IS NULL)" for c in columns)
    row = conn.execute(f"SELECT COUNT(*), COALESCE(MAX(rowid), 0){sums} FROM {quote_identifier(table)} "
                       "WHERE rowid > ?", (after or 0,)).fetchone()
    return row[0], row[1], {column: int(count or 0) for column, count in zip(columns, row[2:])}
