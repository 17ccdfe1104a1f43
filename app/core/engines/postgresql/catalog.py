"""A PostgreSQL database's schema and facts, read from its system catalogs.

Everything here is immutable plain data, like app/core/schema.py for SQLite: tuples, not
lists; `to_dict()` gives JSON-ready data. Names are qualified by their schema ("app.orders")
except in the default schema (the first one read, normally "public"), and expressions are
printed by the server itself (format_type, pg_get_expr, pg_get_constraintdef, ...) with the
search path set to that schema, so both sides of a comparison print alike.

`Catalog.canonical()` is the schema without anything that is data or identity (row counts,
sequence positions, OIDs, sizes): a database and its pg_dump / pg_restore copy give the same
canonical form, hence the same `fingerprint()`.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from app.core.engines.postgresql.connections import connect
from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import TargetUnavailable, UsageError, said_by
from app.core.schema import Plain, plain

DEFAULT_SCHEMAS = ("public",)
EXACT_COUNT_BELOW_ROWS = 100_000  # tables estimated below this are counted with count(*)
EXACT_COUNT_BELOW_PAGES = 1_000  # never-analyzed tables this small (8 MB) are counted too
LOCK_TIMEOUT_MS = 5_000


_SPACING = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")|\s+""")


def normalise_definition(text: str | None) -> str | None:
    """One space wherever the server printed any run of whitespace (pretty-printed views
    and triggers wrap lines), quoted strings and names kept exactly as they are."""
    if text is None:
        return None
    return _SPACING.sub(lambda match: match.group(1) or " ", text).strip()


# --- value objects ---------------------------------------------------------------------


@dataclass(frozen=True)
class PgColumn(Plain):
    name: str
    type: str  # format_type: "character varying(80)", "numeric(10,2)", "app.status"
    not_null: bool
    default: str | None  # pg_get_expr of the default; None for none (and for generated columns)
    identity: str | None = None  # "always", "by default" or None
    generated: str | None = None  # expression of a STORED generated column
    collation: str | None = None  # only when not the type's default collation

    def comparable(self) -> dict:
        return {
            "type": self.type,
            "not_null": self.not_null,
            "default": normalise_definition(self.default),
            "identity": self.identity,
            "generated": normalise_definition(self.generated),
            "collation": self.collation,
        }


@dataclass(frozen=True)
class PgConstraint(Plain):
    name: str
    kind: str  # "primary_key", "unique", "check", "foreign_key", "exclusion"
    definition: str  # pg_get_constraintdef: "CHECK ((price > (0)::numeric))", "FOREIGN KEY ..."
    columns: tuple[str, ...] = ()
    references: str | None = None  # a foreign key's parent table
    referenced_columns: tuple[str, ...] = ()
    on_update: str | None = None  # foreign keys: NO ACTION, RESTRICT, CASCADE, SET NULL, SET DEFAULT
    on_delete: str | None = None
    match: str | None = None  # foreign keys: SIMPLE, FULL, PARTIAL
    deferrable: bool = False
    initially_deferred: bool = False
    validated: bool = True  # False for NOT VALID: existing rows were never checked

    def comparable(self) -> dict:
        # The definition already spells out every fact above, NOT VALID and DEFERRABLE included.
        return {"kind": self.kind, "definition": normalise_definition(self.definition)}


@dataclass(frozen=True)
class PgIndex(Plain):
    name: str
    table: str
    method: str  # btree, hash, gin, gist, brin, ...
    unique: bool
    columns: tuple[str, ...]  # key columns and expressions, as pg_get_indexdef prints each
    include: tuple[str, ...]  # INCLUDE (...) columns
    where: str | None  # predicate of a partial index
    definition: str  # pg_get_indexdef: the whole CREATE INDEX statement
    valid: bool = True  # False after a failed CREATE INDEX CONCURRENTLY

    def comparable(self) -> dict:
        # The statement names the index itself; the name is the key it is compared under.
        statement = _INDEX_NAME.sub(r"\1", self.definition, count=1)
        return {"table": self.table, "definition": normalise_definition(statement), "valid": self.valid}


_INDEX_NAME = re.compile(r'^(CREATE (?:UNIQUE )?INDEX )(?:"(?:[^"]|"")*"|\S+) ')


@dataclass(frozen=True)
class PgTable(Plain):
    name: str
    schema: str
    kind: str  # "table" or "partitioned"
    persistence: str  # "permanent" or "unlogged"
    columns: tuple[PgColumn, ...]
    constraints: tuple[PgConstraint, ...]
    indexes: tuple[PgIndex, ...]
    row_count: int | None = None  # None when unknown (never analyzed and too big to count)
    row_count_exact: bool = False  # False: the planner's estimate (pg_class.reltuples)

    def column(self, name: str) -> PgColumn | None:
        return _named(self.columns, name)

    def constraint(self, name: str) -> PgConstraint | None:
        return _named(self.constraints, name)

    def index(self, name: str) -> PgIndex | None:
        return _named(self.indexes, name)

    def comparable(self) -> dict:
        return {"kind": self.kind, "persistence": self.persistence}


@dataclass(frozen=True)
class PgSequence(Plain):
    name: str
    type: str  # smallint, integer, bigint
    start: int
    increment: int
    minimum: int
    maximum: int
    cache: int
    cycle: bool
    owned_by: str | None  # "table.column" for a serial column's sequence

    def comparable(self) -> dict:
        facts = self.to_dict()
        del facts["name"]
        return facts


@dataclass(frozen=True)
class PgView(Plain):
    name: str
    definition: str  # pg_get_viewdef: the SELECT
    materialized: bool = False
    indexes: tuple[PgIndex, ...] = ()  # a materialized view's indexes

    def comparable(self) -> dict:
        return {"definition": normalise_definition(self.definition),
                "indexes": {index.name: index.comparable() for index in self.indexes}}


@dataclass(frozen=True)
class PgTrigger(Plain):
    name: str
    table: str
    definition: str  # pg_get_triggerdef: the CREATE TRIGGER statement
    enabled: str  # "origin" (the default), "disabled", "replica", "always"

    def comparable(self) -> dict:
        return {"definition": normalise_definition(self.definition), "enabled": self.enabled}


@dataclass(frozen=True)
class PgEnum(Plain):
    name: str
    labels: tuple[str, ...]  # in sort order

    def comparable(self) -> tuple[str, ...]:
        return self.labels


@dataclass(frozen=True)
class PgExtension(Plain):
    name: str
    version: str
    schema: str

    def comparable(self) -> dict:
        return {"version": self.version, "schema": self.schema}


@dataclass(frozen=True)
class PgFacts(Plain):
    database: str
    server_version: str  # "15.14 (Debian 15.14-1.pgdg120+1)"
    server_version_num: int  # 150014
    size_bytes: int  # pg_database_size
    connections: int  # sessions on this database, this one included


@dataclass(frozen=True)
class Catalog:
    schemas: tuple[str, ...]
    tables: tuple[PgTable, ...]
    sequences: tuple[PgSequence, ...]
    views: tuple[PgView, ...]
    materialized_views: tuple[PgView, ...]
    triggers: tuple[PgTrigger, ...]
    enums: tuple[PgEnum, ...]
    extensions: tuple[PgExtension, ...]
    facts: PgFacts

    def table(self, name: str) -> PgTable | None:
        return _named(self.tables, name)

    def row_counts(self) -> dict[str, int | None]:
        return {table.name: table.row_count for table in self.tables}

    def unreadable_tables(self) -> list[dict]:
        """Tables the server cannot read: none; a table this user may not read fails the whole read."""
        return []

    def invalid_indexes(self) -> list[PgIndex]:
        """Indexes the server does not use (left INVALID by a failed CREATE INDEX CONCURRENTLY)."""
        return [index for table in self.tables for index in table.indexes if not index.valid]

    def unvalidated_constraints(self) -> list[PgConstraint]:
        """Constraints added NOT VALID: the rows that were there were never checked."""
        return [c for table in self.tables for c in table.constraints if not c.validated]

    def canonical(self) -> dict:
        """The schema as plain data without data, sizes or OIDs: what `fingerprint()` hashes."""
        return plain({
            "tables": {table.name: _canonical_table(table) for table in self.tables},
            "sequences": {s.name: s.comparable() for s in self.sequences},
            "views": {v.name: v.comparable() for v in self.views},
            "materialized_views": {v.name: v.comparable() for v in self.materialized_views},
            "triggers": {f"{t.table}.{t.name}": t.comparable() for t in self.triggers},
            "enums": {e.name: e.comparable() for e in self.enums},
            "extensions": {e.name: e.comparable() for e in self.extensions},
        })

    def fingerprint(self) -> str:
        """SHA-256 of the canonical schema (column order included): equal for a dump-and-restore copy."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict:
        return {
            "schemas": list(self.schemas),
            **{name: [item.to_dict() for item in getattr(self, name)] for name in _KINDS},
            "facts": self.facts.to_dict(),
            "fingerprint": self.fingerprint(),
        }


_KINDS = ("tables", "sequences", "views", "materialized_views", "triggers", "enums", "extensions")


def _canonical_table(table: PgTable) -> dict:
    return {
        **table.comparable(),
        # In order: the fingerprint covers column order, as SQLite's does.
        "columns": [{"name": column.name, **column.comparable()} for column in table.columns],
        "constraints": {c.name: c.comparable() for c in table.constraints},
        "indexes": {i.name: i.comparable() for i in table.indexes},
    }


def _named(objects, name: str):
    return next((item for item in objects if item.name == name), None)


_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_$]*")


def sql_identifier(name: str) -> str:
    """A name as the server prints it: bare when lower case and plain, else double-quoted."""
    if _PLAIN_IDENTIFIER.fullmatch(name):
        return name
    return '"' + name.replace('"', '""') + '"'


# --- reading ---------------------------------------------------------------------------


def inspect_catalog(location: PostgresLocation, *, schemas=DEFAULT_SCHEMAS, **options) -> Catalog:
    """Connect to `location` and read its catalog; see read_catalog."""
    with connect(location) as connection:
        try:
            return read_catalog(connection, schemas=schemas, **options)
        except psycopg.Error as exc:
            raise _unreadable(location, exc) from exc


def _unreadable(location: PostgresLocation, exc: psycopg.Error) -> TargetUnavailable:
    said = said_by(exc)
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        reason, fix = "locked", ("Another session holds a lock on a table (a migration or a "
                                 "VACUUM FULL?): try again once it has finished.")
    else:
        reason, fix = "unreadable", ("Check that this user may read every table in the schemas "
                                     "Cutover inspects (GRANT USAGE on the schema, SELECT on its tables).")
    return TargetUnavailable(f"Cannot read the schema of {location.label}: {said}. {fix}",
                             path=location.label, reason=reason)


def read_catalog(connection: psycopg.Connection, *, schemas=DEFAULT_SCHEMAS,
                 exact_count_below_rows: int = EXACT_COUNT_BELOW_ROWS,
                 exact_count_below_pages: int = EXACT_COUNT_BELOW_PAGES,
                 lock_timeout_ms: int = LOCK_TIMEOUT_MS) -> Catalog:
    """Everything in one REPEATABLE READ READ ONLY transaction, so all of it (row counts
    included) describes one moment; `connection` must be in autocommit mode.

    Sizes and counts take a table's lightest lock, which waits behind a migration's ACCESS
    EXCLUSIVE one: after `lock_timeout_ms` the read gives up (LockNotAvailable) rather than
    hang, and rather than queue ahead of everyone else waiting for that table."""
    schemas = tuple(schemas)
    if not schemas:
        raise UsageError("Name at least one PostgreSQL schema to read (schemas = [\"public\"]).")
    if not connection.autocommit:
        raise UsageError("read_catalog needs an autocommit connection: it opens its own transaction.")
    connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        return read_catalog_in_transaction(
            connection, schemas=schemas, exact_count_below_rows=exact_count_below_rows,
            exact_count_below_pages=exact_count_below_pages, lock_timeout_ms=lock_timeout_ms)
    finally:
        connection.execute("ROLLBACK")


def read_catalog_in_transaction(connection: psycopg.Connection, *, schemas, exact_count_below_rows: int,
                                exact_count_below_pages: int, lock_timeout_ms: int) -> Catalog:
    """read_catalog inside the caller's open REPEATABLE READ transaction (a backup reads the
    catalog in the very snapshot pg_dump is given); its settings last until that transaction ends."""
    # Names in the default schema print bare, everything else qualified.
    connection.execute("SELECT set_config('search_path', %s, true), set_config('lock_timeout', %s, true)",
                       [sql_identifier(schemas[0]), f"{lock_timeout_ms}ms"])
    return _Reader(connection, tuple(schemas), exact_count_below_rows, exact_count_below_pages).catalog()


# A relation or type that belongs to an extension is the extension's: CREATE EXTENSION makes it.
_NOT_EXTENSION_MEMBER = """NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass
    AND d.objid = {oid} AND d.deptype = 'e')"""

_RELATIONS = """
SELECT c.oid, n.nspname, c.relname, c.relkind, c.relpersistence, c.reltuples,
       pg_relation_size(c.oid) / current_setting('block_size')::int AS pages,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true) END AS definition
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname = ANY(%s)
  AND """ + _NOT_EXTENSION_MEMBER.format(catalog="pg_class", oid="c.oid") + """
ORDER BY n.nspname, c.relname"""

_COLUMNS = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
       a.attidentity,
       CASE WHEN a.attgenerated = 's' THEN pg_get_expr(d.adbin, d.adrelid) END,
       CASE WHEN a.attcollation <> t.typcollation THEN
            CASE WHEN cn.nspname = 'pg_catalog' THEN quote_ident(co.collname)
                 ELSE quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END END
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum"""

_ATTRIBUTE_NAMES = """ARRAY(SELECT a.attname FROM unnest({keys}) WITH ORDINALITY k(num, pos)
    JOIN pg_attribute a ON a.attrelid = {relation} AND a.attnum = k.num ORDER BY k.pos)"""

_CONSTRAINTS = """
SELECT con.conrelid, con.conname, con.contype, pg_get_constraintdef(con.oid),
       """ + _ATTRIBUTE_NAMES.format(keys="con.conkey", relation="con.conrelid") + """,
       rn.nspname, rc.relname,
       """ + _ATTRIBUTE_NAMES.format(keys="con.confkey", relation="con.confrelid") + """,
       con.confupdtype, con.confdeltype, con.confmatchtype,
       con.condeferrable, con.condeferred, con.convalidated
FROM pg_constraint con
LEFT JOIN pg_class rc ON rc.oid = con.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.conrelid = ANY(%s::oid[]) AND con.contype IN ('p', 'u', 'c', 'f', 'x')
ORDER BY con.conrelid, con.conname"""

# Indexes that back a PRIMARY KEY, UNIQUE or EXCLUDE constraint are the constraint's.
_INDEXES = """
SELECT i.indrelid, ic.relname, am.amname, i.indisunique,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
             FROM generate_series(1, i.indnkeyatts) k ORDER BY k),
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
             FROM generate_series(i.indnkeyatts + 1, i.indnatts) k ORDER BY k),
       pg_get_expr(i.indpred, i.indrelid, true), pg_get_indexdef(i.indexrelid), i.indisvalid
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am am ON am.oid = ic.relam
WHERE i.indrelid = ANY(%s::oid[]) AND NOT EXISTS (
    SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid
    AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x'))
ORDER BY i.indrelid, ic.relname"""

_TRIGGERS = """
SELECT t.tgrelid, t.tgname, pg_get_triggerdef(t.oid, true), t.tgenabled
FROM pg_trigger t
WHERE t.tgrelid = ANY(%s::oid[]) AND NOT t.tgisinternal
"""

# Identity columns' sequences (deptype 'i') are part of their column, not sequences of their own.
_SEQUENCES = """
SELECT n.nspname, c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
       s.seqmin, s.seqmax, s.seqcache, s.seqcycle, owner.nspname, owner.relname, owner.attname
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
    SELECT tn.nspname, tc.relname, a.attname FROM pg_depend d
    JOIN pg_class tc ON tc.oid = d.refobjid
    JOIN pg_namespace tn ON tn.oid = tc.relnamespace
    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
      AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a' LIMIT 1
) owner ON true
WHERE n.nspname = ANY(%s) AND NOT EXISTS (
    SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
    AND d.deptype = 'i')
  AND """ + _NOT_EXTENSION_MEMBER.format(catalog="pg_class", oid="c.oid") + """
ORDER BY n.nspname, c.relname"""

_ENUMS = """
SELECT n.nspname, t.typname,
       ARRAY(SELECT e.enumlabel FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype = 'e' AND n.nspname = ANY(%s)
  AND """ + _NOT_EXTENSION_MEMBER.format(catalog="pg_type", oid="t.oid") + """
ORDER BY n.nspname, t.typname"""

_EXTENSIONS = """
SELECT e.extname, e.extversion, n.nspname
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
ORDER BY e.extname"""

_FACTS = """
SELECT current_database(), current_setting('server_version'),
       current_setting('server_version_num')::int, pg_database_size(current_database()),
       (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())"""

_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_MATCHES = {"s": "SIMPLE", "f": "FULL", "p": "PARTIAL"}
_CONSTRAINT_KINDS = {"p": "primary_key", "u": "unique", "c": "check", "f": "foreign_key", "x": "exclusion"}
_IDENTITY = {"a": "always", "d": "by default"}
_TRIGGER_ENABLED = {"O": "origin", "D": "disabled", "R": "replica", "A": "always"}


@dataclass
class _Relation:
    """One row of _RELATIONS, before its parts are attached."""

    oid: int
    schema: str
    bare_name: str
    name: str  # qualified when outside the default schema
    kind: str  # pg_class.relkind
    persistence: str
    reltuples: float
    pages: int
    definition: str | None


class _Reader:
    def __init__(self, connection, schemas, exact_count_below_rows, exact_count_below_pages):
        self.connection = connection
        self.schemas = schemas
        self.default_schema = schemas[0]
        self.exact_count_below_rows = exact_count_below_rows
        self.exact_count_below_pages = exact_count_below_pages

    def rows(self, query: str, *parameters) -> list[tuple]:
        return self.connection.execute(query, parameters).fetchall()

    def qualified(self, schema: str, name: str) -> str:
        return name if schema == self.default_schema else f"{schema}.{name}"

    def catalog(self) -> Catalog:
        relations = self.relations()
        oids = list(relations)
        columns = _grouped(self.rows(_COLUMNS, oids), _column)
        constraints = _grouped(self.rows(_CONSTRAINTS, oids), self.constraint)
        indexes = _grouped(self.rows(_INDEXES, oids), lambda row: self.index(relations, row))
        parts = (columns, constraints, indexes)
        return Catalog(
            schemas=self.schemas,
            tables=tuple(self.table(oid, r, *parts) for oid, r in relations.items() if r.kind in "rp"),
            sequences=tuple(self.sequence(row) for row in self.rows(_SEQUENCES, list(self.schemas))),
            views=tuple(PgView(r.name, r.definition) for r in relations.values() if r.kind == "v"),
            materialized_views=tuple(PgView(r.name, r.definition, True, indexes.get(oid, ()))
                                     for oid, r in relations.items() if r.kind == "m"),
            triggers=tuple(sorted((self.trigger(relations, row) for row in self.rows(_TRIGGERS, oids)),
                                  key=lambda trigger: (trigger.table, trigger.name))),
            enums=tuple(PgEnum(self.qualified(schema, name), tuple(labels))
                        for schema, name, labels in self.rows(_ENUMS, list(self.schemas))),
            extensions=tuple(PgExtension(*row) for row in self.rows(_EXTENSIONS)),
            facts=PgFacts(*self.rows(_FACTS)[0]),
        )

    def relations(self) -> dict[int, _Relation]:
        return {
            oid: _Relation(oid, schema, name, self.qualified(schema, name), kind, persistence, reltuples,
                           pages, definition)
            for oid, schema, name, kind, persistence, reltuples, pages, definition
            in self.rows(_RELATIONS, list(self.schemas))
        }

    def table(self, oid, relation: _Relation, columns, constraints, indexes) -> PgTable:
        row_count, exact = self.row_count(relation)
        return PgTable(
            name=relation.name,
            schema=relation.schema,
            kind="partitioned" if relation.kind == "p" else "table",
            persistence="unlogged" if relation.persistence == "u" else "permanent",
            columns=columns.get(oid, ()),
            constraints=constraints.get(oid, ()),
            indexes=indexes.get(oid, ()),
            row_count=row_count,
            row_count_exact=exact,
        )

    def row_count(self, relation: _Relation) -> tuple[int | None, bool]:
        """count(*) where that is cheap, else the planner's estimate (never analyzed: unknown).

        A partitioned table holds no rows itself: count(*) on it reads every partition,
        so it is counted like a big table (its estimate is -1 before ANALYZE)."""
        estimate = relation.reltuples
        if relation.kind == "r" and 0 <= estimate < self.exact_count_below_rows:
            return self.count(relation), True
        if estimate >= 0:
            return int(estimate), False
        if relation.kind == "r" and relation.pages < self.exact_count_below_pages:
            return self.count(relation), True
        return None, False

    def count(self, relation: _Relation) -> int:
        table = sql.Identifier(relation.schema, relation.bare_name)
        return self.connection.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()[0]

    def constraint(self, row) -> PgConstraint:
        (_, name, kind, definition, columns, parent_schema, parent, parent_columns,
         on_update, on_delete, match, deferrable, deferred, validated) = row
        foreign = kind == "f"
        return PgConstraint(
            name=name, kind=_CONSTRAINT_KINDS[kind], definition=definition,
            columns=tuple(columns),
            references=self.qualified(parent_schema, parent) if foreign else None,
            referenced_columns=tuple(parent_columns) if foreign else (),
            on_update=_ACTIONS[on_update] if foreign else None,
            on_delete=_ACTIONS[on_delete] if foreign else None,
            match=_MATCHES[match] if foreign else None,
            deferrable=deferrable, initially_deferred=deferred, validated=validated,
        )

    def index(self, relations, row) -> PgIndex:
        relid, name, method, unique, keys, include, where, definition, valid = row
        return PgIndex(name, relations[relid].name, method, unique, tuple(keys), tuple(include),
                       where, self.unqualified_index_target(definition), valid)

    def unqualified_index_target(self, definition: str) -> str:
        """pg_get_indexdef always qualifies the table ("ON public.orders"); like every other
        name here, a table in the default schema is left bare."""
        prefix = re.escape(sql_identifier(self.default_schema) + ".")
        return re.sub(rf" ON (ONLY )?{prefix}", r" ON \1", definition, count=1)

    def trigger(self, relations, row) -> PgTrigger:
        relid, name, definition, enabled = row
        return PgTrigger(name, relations[relid].name, definition, _TRIGGER_ENABLED[enabled])

    def sequence(self, row) -> PgSequence:
        schema, name, type_, start, increment, minimum, maximum, cache, cycle, *owner = row
        owner_schema, owner_table, owner_column = owner
        owned_by = (f"{self.qualified(owner_schema, owner_table)}.{owner_column}"
                    if owner_table else None)
        return PgSequence(self.qualified(schema, name), type_, start, increment, minimum, maximum,
                          cache, cycle, owned_by)


def _column(row) -> PgColumn:
    _, name, type_, not_null, default, identity, generated, collation = row
    return PgColumn(name, type_, not_null, default, _IDENTITY.get(identity), generated, collation)


def _grouped(rows, build) -> dict[int, tuple]:
    """Rows whose first value is a relation's OID, built and grouped by it (order kept)."""
    grouped: dict[int, list] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(build(row))
    return {oid: tuple(items) for oid, items in grouped.items()}
