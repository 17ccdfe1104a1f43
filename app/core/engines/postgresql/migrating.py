"""What a migration reads inside its PostgreSQL transaction: the schema, what it must not lose,
foreign keys the server does not enforce, and where the commit lands.

Everything here runs on the migration's own connection, in its transaction, and leaves its
settings (search path, timeouts) exactly as they were: a plan's statements resolve names on
the search path their author expected.
"""
from __future__ import annotations

import psycopg
from psycopg.pq import TransactionStatus

from app.core.engines.postgresql.catalog import Catalog, read_catalog, read_catalog_in_transaction
from app.core.losses import SchemaObject
from app.core.violations import SAMPLE_LIMIT, Violations

EVERY_ROW = 2**62


def in_transaction(connection: psycopg.Connection) -> bool:
    return connection.info.transaction_status != TransactionStatus.IDLE


def read_catalog_here(connection: psycopg.Connection, schemas, *, exact: bool = False,
                      count_rows: bool = True) -> Catalog:
    """The catalog as `connection` sees it now, inside its transaction when one is open."""
    counts = ({"exact_count_below_rows": EVERY_ROW, "exact_count_below_pages": EVERY_ROW} if exact else
              {} if count_rows else {"exact_count_below_rows": 0, "exact_count_below_pages": 0})
    if not in_transaction(connection):
        return read_catalog(connection, schemas=schemas, **counts)
    saved = connection.execute("SELECT current_setting('search_path'), current_setting('lock_timeout')").fetchone()
    try:
        return read_catalog_in_transaction(
            connection, schemas=tuple(schemas), exact_count_below_rows=counts.get("exact_count_below_rows", 100_000),
            exact_count_below_pages=counts.get("exact_count_below_pages", 1_000), lock_timeout_ms=_ms(saved[1]))
    finally:
        connection.execute("SELECT set_config('search_path', %s, true), set_config('lock_timeout', %s, true)",
                           saved)


def _ms(setting: str) -> int:
    """lock_timeout as the server printed it ("5s", "250ms", "0") in milliseconds."""
    units = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
    for unit in sorted(units, key=len, reverse=True):
        if setting.endswith(unit):
            return int(float(setting[:-len(unit)]) * units[unit])
    return int(setting or 0)


# --------------------------------------------------------------------------- losses


def schema_objects(connection, schemas) -> list[SchemaObject]:
    """Every index, trigger, view and materialized view in `schemas`, with what identifies it."""
    objects = []
    for schema, kind, name, table, definition in connection.execute(_OBJECTS, {"schemas": list(schemas)}).fetchall():
        shown, owner = _shown(schema, name, schemas), _shown(schema, table, schemas)
        if kind == "index":
            identity = (owner, _without_index_name(definition))
        elif kind == "trigger":
            identity = (owner, name.lower(), " ".join(definition.split()))
        else:
            identity = (shown.lower(),)
        objects.append(SchemaObject(kind, shown, owner, definition, identity))
    return objects


def object_names(connection, schemas) -> set[tuple[str, str]]:
    return {(kind, _shown(schema, name, schemas).lower())
            for schema, kind, name in connection.execute(_NAMES, {"schemas": list(schemas)}).fetchall()}


def _shown(schema: str, name: str, schemas) -> str:
    return name if schema == tuple(schemas)[0] else f"{schema}.{name}"


def _without_index_name(definition: str) -> str:
    head, _, rest = definition.partition(" ON ")
    return head.rsplit(" ", 1)[0] + " ON " + rest


_OBJECTS = """
SELECT n.nspname, 'index', ic.relname, tc.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace WHERE n.nspname = ANY(%s)
UNION ALL
SELECT n.nspname, 'trigger', t.tgname, c.relname, pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%s) AND NOT t.tgisinternal
UNION ALL
SELECT n.nspname, 'view', c.relname, c.relname, pg_get_viewdef(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%s) AND c.relkind IN ('v', 'm')
ORDER BY 2, 1, 3"""
_OBJECTS = _OBJECTS.replace("%s", "%(schemas)s")

_NAMES = """
SELECT n.nspname, CASE c.relkind WHEN 'i' THEN 'index' WHEN 'I' THEN 'index' WHEN 'v' THEN 'view'
                                 WHEN 'm' THEN 'view' ELSE 'table' END, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'i', 'I', 'f')
UNION ALL
SELECT n.nspname, 'trigger', t.tgname
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND NOT t.tgisinternal"""


# --------------------------------------------------------------------------- foreign keys


def foreign_key_violations(connection, schemas) -> Violations:
    """Rows breaking a foreign key the server does not enforce on existing rows: one added
    NOT VALID. A validated foreign key holds for every row (the server checked it), so only
    these are read; each costs a scan of its table."""
    groups, total, samples = {}, 0, set()
    for schema, table, name, parent, columns, check in connection.execute(_UNVALIDATED, {"schemas": list(schemas)}):
        rows = connection.execute(check).fetchall()
        key = (_shown(schema, table, schemas), parent, tuple(columns))
        count = len(rows)
        if count:
            groups[key] = (count, sum(hash(row) for row in rows) & 0xFFFFFFFF, 0)
            total += count
            samples.update((key[0], repr(row[0]), parent, tuple(columns)) for row in rows[:SAMPLE_LIMIT])
    return Violations(total, groups, frozenset(samples) if total <= SAMPLE_LIMIT else None)


# For each NOT VALID foreign key, a query listing its orphans (child key values without parent).
_UNVALIDATED = """
SELECT n.nspname, c.relname, con.conname, pc.relname,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) k JOIN pg_attribute a
             ON a.attrelid = con.conrelid AND a.attnum = k),
       format('SELECT (%%s) FROM %%I.%%I child WHERE %%s AND NOT EXISTS (SELECT 1 FROM %%I.%%I parent WHERE %%s)',
              (SELECT string_agg(format('child.%%I', a.attname), ', ') FROM unnest(con.conkey) k
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k),
              n.nspname, c.relname,
              (SELECT string_agg(format('child.%%I IS NOT NULL', a.attname), ' AND ') FROM unnest(con.conkey) k
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k),
              pn.nspname, pc.relname,
              (SELECT string_agg(format('parent.%%I = child.%%I', pa.attname, ca.attname), ' AND ')
                 FROM unnest(con.conkey, con.confkey) AS k(child_key, parent_key)
                 JOIN pg_attribute ca ON ca.attrelid = con.conrelid AND ca.attnum = k.child_key
                 JOIN pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = k.parent_key))
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class pc ON pc.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE con.contype = 'f' AND NOT con.convalidated AND n.nspname = ANY(%(schemas)s)
ORDER BY 1, 2, 3"""


# --------------------------------------------------------------------------- the commit


def commit_point(connection) -> dict:
    at, position = connection.execute(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
        "pg_current_wal_lsn()::text").fetchone()
    return {"at": at, "wal_lsn": position}
