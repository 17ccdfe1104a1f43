"""New rows in a PostgreSQL table: told apart by a single-column integer primary key (rows get
ever larger keys from their sequence or identity), else by a timestamp column the database
fills itself (DEFAULT now() / CURRENT_TIMESTAMP / clock_timestamp()). A table with neither
is not watched, and says so. Each tick reads only the rows above the baseline's key
(an index range on the primary key)."""
from __future__ import annotations

from psycopg import sql

_KEYS = """
SELECT n.nspname, c.relname,
       (SELECT a.attname FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
        WHERE k.conrelid = c.oid AND k.contype = 'p' AND cardinality(k.conkey) = 1
          AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)),
       (SELECT a.attname FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype)
          AND pg_get_expr(d.adbin, d.adrelid) ~* '(now\\(\\)|current_timestamp|clock_timestamp\\(\\)|statement_timestamp\\(\\)|transaction_timestamp\\(\\))'
        ORDER BY a.attnum LIMIT 1),
       ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
             AND NOT a.attisdropped AND NOT a.attnotnull ORDER BY a.attnum)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s) AND NOT c.relispartition
ORDER BY 1, 2"""


def watched_tables(connection, schemas) -> list[tuple[str, str | None, list[str]]]:
    """(table, key or None when new rows cannot be told apart, nullable columns)."""
    schemas = list(schemas)
    found = []
    for schema, table, primary_key, timestamp, nullable in connection.execute(_KEYS, (schemas,)).fetchall():
        shown = table if schema == schemas[0] else f"{schema}.{table}"
        found.append((shown, primary_key or timestamp, list(nullable)))
    return found


def rows_after(connection, table: str, key: str, after, columns: list[str]) -> tuple[int, object, dict[str, int]]:
    """(rows with `key` above `after` (all rows when None), the highest key, NULLs per column).

    An integer key stays an integer (the primary key's index serves the range); a timestamp
    travels as ISO text, so that a baseline is plain JSON."""
    name = sql.Identifier(*table.split(".", 1))
    column = sql.Identifier(key)
    sums = sql.SQL("").join(sql.SQL(", count(*) FILTER (WHERE {} IS NULL)").format(sql.Identifier(c)) for c in columns)
    where = sql.SQL("")
    if after is not None:
        where = sql.SQL(" WHERE {} > %s" + ("" if isinstance(after, int) else "::timestamptz")).format(column)
    query = sql.SQL("SELECT count(*), max({}){} FROM {}{}").format(column, sums, name, where)
    row = connection.execute(query, () if after is None else (after,)).fetchone()
    highest = row[1] if row[1] is not None else after
    if hasattr(highest, "isoformat"):
        highest = highest.isoformat()
    return row[0], highest, dict(zip(columns, row[2:]))
