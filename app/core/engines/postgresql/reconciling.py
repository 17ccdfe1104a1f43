"""Reconciling a plan statement with a PostgreSQL database: run it, skip it, or stop.

A plan may have run partly before, by hand or by an earlier attempt. A CREATE whose object is
there already, with the very definition the plan asks for, is skipped ("already exists,
skipping (expected)"); one whose object is there with another definition is a conflict: Cutover
never replaces an existing object. A DROP whose object is gone is skipped.

"The very definition" is decided by the server, not by comparing texts: inside a savepoint, the
statement runs once more in a private probe schema put first on the search path (an index or a
column is built on an empty copy of its table there), the server prints both objects, and the
savepoint is rolled back. So `serial`, `int4` and `integer`, or `CHECK (a>0)` and
`CHECK ((a > 0))`, compare as the server stores them. A statement that names its object with a
schema cannot be moved to the probe; it is compared by existence alone and said so.
"""
from __future__ import annotations

import re
import psycopg
from psycopg import sql as pg_sql

from app.core.engines.base import Decision
from app.core.engines.postgresql.shapes import PgShape, statement_shape

RUN = Decision("run")
PROBE_SCHEMA = "cutover_probe"

_KIND_NAMES = {"r": "table", "p": "table", "i": "index", "I": "index", "v": "view",
               "m": "materialized view", "S": "sequence", "f": "foreign table", "c": "type"}


# --------------------------------------------------------------------------- decisions


def decide(connection: psycopg.Connection, sql: str) -> Decision:
    """Run, skip or conflict for `sql` on the database `connection` is open on (in a transaction or not)."""
    shape = statement_shape(sql)
    if shape.name is None:
        return RUN
    if shape.action == "create":
        return _decide_create(connection, sql, shape)
    if shape.action == "drop":
        return RUN if shape.if_exists or _existing_kind(connection, shape) else Decision(
            "skip", f"{shape.kind.capitalize()} already dropped, skipping (expected)")
    if shape.action in ("add_column", "drop_column", "add_constraint"):
        return _decide_table_part(connection, sql, shape)
    return RUN


def _written_name(schema: str | None, name: str) -> str:
    quoted = pg_sql.Identifier(name).as_string(None)
    return f"{pg_sql.Identifier(schema).as_string(None)}.{quoted}" if schema else quoted


def _existing_kind(connection, shape: PgShape) -> str | None:
    """The kind of the object the statement names ("table", "index", ...), or None if there is none."""
    written = _written_name(shape.schema, shape.name)
    if shape.kind == "type":
        found = connection.execute("SELECT to_regtype(%s) IS NOT NULL", (written,)).fetchone()[0]
        return "type" if found else None
    row = connection.execute("SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)",
                             (written,)).fetchone()
    return _KIND_NAMES.get(row[0], "relation") if row else None


def _decide_create(connection, sql: str, shape: PgShape) -> Decision:
    existing = _existing_kind(connection, shape)
    if existing is None:
        return RUN
    if existing != shape.kind:
        return Decision("conflict", f"a {existing} named {shape.name} already exists; the plan creates a "
                                    f"{shape.kind} with that name")
    if shape.schema is not None or (shape.kind == "index" and shape.table_schema is not None):
        return Decision("conflict", f"{shape.kind} {shape.name} already exists; its definition cannot be "
                                    "compared with the plan's because the plan names its schema. Write the "
                                    "name without its schema, or IF NOT EXISTS if any definition will do")
    planned, ours = _probe(connection, sql, shape)
    return _verdict(shape, f"{shape.kind} {shape.name}", ours, planned)


def _decide_table_part(connection, sql: str, shape: PgShape) -> Decision:
    table = _written_name(shape.table_schema, shape.table)
    if connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
        return RUN  # PostgreSQL's own error names the missing table
    existing = _part_definition(connection, table, shape)
    if shape.action == "drop_column":
        return RUN if existing is not None or shape.if_exists else Decision(
            "skip", "Column already dropped, skipping (expected)")
    if existing is None:
        return RUN
    if shape.table_schema is not None:
        return Decision("conflict", f"{shape.kind} {shape.table}.{shape.name} already exists; its definition "
                                    "cannot be compared with the plan's because the plan names the table's "
                                    "schema. Write the table's name without its schema")
    planned, ours = _probe(connection, sql, shape)
    return _verdict(shape, f"{shape.kind} {shape.table}.{shape.name}", ours, planned)


def _verdict(shape: PgShape, what: str, ours: str, planned: str) -> Decision:
    if ours == planned:
        return Decision("skip", f"{shape.kind.capitalize()} already exists, skipping (expected)")
    return Decision("conflict", f"{what} already exists with a different definition (PostgreSQL would "
                                "keep the existing one)", existing=ours, planned=planned)


# --------------------------------------------------------------------------- the probe


class _ProbeFailed(Exception):
    pass


def _probe(connection, sql: str, shape: PgShape) -> tuple[str, str]:
    """(planned, existing) definitions as the server prints them; nothing of the probe remains."""
    try:
        with connection.transaction():  # a savepoint inside a migration, else its own transaction
            planned, ours = _in_probe(connection, sql, shape)
            raise psycopg.Rollback()
    except psycopg.Error as exc:
        said = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"(the plan's statement fails when tried beside it: {said})", _existing_text(connection, shape)
    return planned, ours  # set inside the block; psycopg.Rollback only left it, rolled back


def _in_probe(connection, sql: str, shape: PgShape) -> tuple[str, str]:
    ours = _existing_text(connection, shape)  # first: the probe's objects would shadow it
    probe = pg_sql.Identifier(PROBE_SCHEMA)
    connection.execute(pg_sql.SQL("CREATE SCHEMA {}").format(probe))
    connection.execute("SELECT set_config('search_path', %s || ', ' || current_setting('search_path'), true)",
                       (PROBE_SCHEMA,))
    if shape.kind in ("index", "column", "constraint"):
        table = pg_sql.Identifier(shape.table)
        # With the table's keys, so that a foreign key to the table itself finds them.
        including = pg_sql.SQL(" INCLUDING INDEXES" if shape.kind == "column" else "")
        connection.execute(pg_sql.SQL("CREATE TABLE {}.{} (LIKE {}{})").format(
            probe, table, pg_sql.SQL(_written_name(shape.table_schema, shape.table)), including))
        if shape.kind == "column":
            connection.execute(pg_sql.SQL("ALTER TABLE {}.{} DROP COLUMN {}").format(
                probe, table, pg_sql.Identifier(shape.name)))
    connection.execute(sql)
    return _definition(connection, shape, PROBE_SCHEMA), ours


def _existing_text(connection, shape: PgShape) -> str:
    schema = shape.table_schema if shape.kind in ("index", "column", "constraint") else shape.schema
    if schema is None:
        table_or_name = shape.table if shape.kind in ("index", "column", "constraint") else shape.name
        schema = _schema_of(connection, table_or_name, shape.kind)
    return _definition(connection, shape, schema)


def _schema_of(connection, name: str, kind: str) -> str:
    """The schema the search path finds `name` in (asked before the probe schema exists)."""
    if kind == "type":
        query = "SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = to_regtype(%s)"
    else:
        query = "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)"
    row = connection.execute(query, (_written_name(None, name),)).fetchone()
    return row[0] if row else "public"


def _part_definition(connection, table: str, shape: PgShape) -> str | None:
    if shape.kind == "column":
        row = connection.execute(_COLUMN, (table, shape.name)).fetchone()
        if row is None:
            return None
        return _column_text(connection, table, shape.name, row)
    row = connection.execute(_CONSTRAINT, (table, shape.name)).fetchone()
    return row[0] if row else None


def _definition(connection, shape: PgShape, schema: str) -> str:
    if shape.kind in ("column", "constraint"):
        table = _written_name(schema, shape.table)
        return _part_definition(connection, table, shape) or "(missing)"
    if shape.kind == "index":
        return _index_text(connection, schema, shape.name)
    if shape.kind == "type":
        labels = connection.execute(_ENUM, (_written_name(schema, shape.name),)).fetchall()
        return "ENUM (" + ", ".join(repr(label) for (label,) in labels) + ")"
    written = _written_name(schema, shape.name)
    if shape.kind in ("view", "materialized view"):
        return _spaced(connection.execute("SELECT pg_get_viewdef(to_regclass(%s))", (written,)).fetchone()[0])
    if shape.kind == "sequence":
        return repr(connection.execute(_SEQUENCE, (written,)).fetchone())
    return _table_text(connection, written)


def _spaced(text: str | None) -> str:
    return " ".join((text or "").split())


def _table_text(connection, table: str) -> str:
    columns = [_column_text(connection, table, row[0], row)
               for row in connection.execute(_COLUMNS, (table,)).fetchall()]
    constraints = [f"CONSTRAINT {name} {definition}"
                   for name, definition in connection.execute(_CONSTRAINTS, (table,)).fetchall()]
    return "(" + ", ".join(columns + constraints) + ")"


def _column_text(connection, table: str, name: str, row) -> str:
    _, type_name, not_null, default, identity, generated = row
    text = f"{_written_name(None, name)} {type_name}"
    if generated:
        text += f" GENERATED ALWAYS AS ({default}) STORED"
    elif default is not None:
        text += f" DEFAULT {_unprobed(default)}"
    if identity:
        text += " GENERATED " + ("ALWAYS" if identity == "a" else "BY DEFAULT") + " AS IDENTITY"
    if not_null:
        text += " NOT NULL"
    for (definition,) in connection.execute(_COLUMN_CONSTRAINTS, (table, name)).fetchall():
        text += f" {definition}"
    return text


_PROBE_PREFIX = re.compile(rf'\b{PROBE_SCHEMA}\.')


def _unprobed(text: str) -> str:
    """A serial column's default names its own sequence; in the probe that sequence is the probe's."""
    return _PROBE_PREFIX.sub("", text)


def _index_text(connection, schema: str, name: str) -> str:
    row = connection.execute(
        "SELECT pg_get_indexdef(c.oid), i.indisunique FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (schema, name)).fetchone()
    if row is None:
        return "(missing)"
    # "CREATE [UNIQUE] INDEX name ON [ONLY] table USING ...": the name and table are where it stands.
    return _INDEX_HEAD.sub(r"\1 USING ", row[0], count=1)


_QUALIFIED = r'(?:"(?:[^"]|"")*"|[^\s."]+)(?:\.(?:"(?:[^"]|"")*"|[^\s."]+))?'
_INDEX_HEAD = re.compile(rf'^(CREATE (?:UNIQUE )?INDEX) {_QUALIFIED} ON (?:ONLY )?{_QUALIFIED} USING ')

_COLUMN_SELECT = """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), nullif(a.attidentity, ''), nullif(a.attgenerated, '')
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped"""
_COLUMNS = _COLUMN_SELECT + " ORDER BY a.attnum"
_COLUMN = _COLUMN_SELECT + " AND a.attname = %s"
_CONSTRAINTS = """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = to_regclass(%s) ORDER BY conname"""
_CONSTRAINT = """SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s"""
_COLUMN_CONSTRAINTS = """SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
WHERE c.conrelid = to_regclass(%s) AND a.attname = %s AND cardinality(c.conkey) = 1
ORDER BY 1"""
_ENUM = "SELECT enumlabel FROM pg_enum WHERE enumtypid = to_regtype(%s) ORDER BY enumsortorder"
_SEQUENCE = """SELECT format_type(seqtypid, NULL), seqstart, seqincrement, seqmin, seqmax, seqcache, seqcycle
FROM pg_sequence WHERE seqrelid = to_regclass(%s)"""
