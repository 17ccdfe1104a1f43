"""A PostgreSQL database as the target of a move: what its tables demand, and loading them.

`describe` reads the catalog (read-only) into what a move needs: each table's columns and
types, its unique keys, its foreign keys and whether it holds any row. `load` is the one write:
one migration transaction (advisory lock, bounded lock waits, rolled back when the client
vanishes) in which rows arrive by COPY, foreign keys stay enforced (no
session_replication_role), sequences are set past the highest value moved, and every check
runs before COMMIT, so a failure or a kill -9 anywhere leaves the tables as empty as they were.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from app.core.engines.postgresql import transactions
from app.core.engines.postgresql.catalog import _unreadable as unreadable
from app.core.engines.postgresql.catalog import read_catalog
from app.core.engines.postgresql.connections import connect
from app.core.engines.postgresql.location import PostgresLocation

_PLAIN_NAME = re.compile(r'^(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")+")$')
READ_BACK_ROWS = 5_000


@dataclass(frozen=True)
class TargetColumn:
    name: str
    type: str  # format_type's spelling
    not_null: bool
    fills_itself: bool  # a default, an identity or a generated value: the source may omit it
    generated: bool  # GENERATED ALWAYS AS (...) STORED: never written
    sequenced: bool  # identity, or a default drawn from a sequence


@dataclass(frozen=True)
class TargetForeignKey:
    name: str
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    deferrable: bool


@dataclass(frozen=True)
class TargetTable:
    name: str
    columns: tuple[TargetColumn, ...]
    primary_key: tuple[str, ...]
    unique_keys: tuple[tuple[str, tuple[str, ...]], ...]  # (constraint or index name, columns)
    foreign_keys: tuple[TargetForeignKey, ...]
    has_rows: bool
    # Unique indexes on plain columns over the rows where some columns are NULL (or not):
    # (index name, columns, ((column, must be NULL?), ...)), e.g. UNIQUE (email) WHERE deleted_at IS NULL.
    partial_unique_keys: tuple[tuple[str, tuple[str, ...], tuple[tuple[str, bool], ...]], ...] = ()
    # What only the server can judge (CHECK and exclusion constraints, unique indexes on expressions
    # or with another predicate): (name, definition), checked as rows are written.
    server_checks: tuple[tuple[str, str], ...] = ()

    def column(self, name: str) -> TargetColumn | None:
        return next((column for column in self.columns if column.name == name), None)


def describe(location: PostgresLocation) -> dict[str, TargetTable]:
    """Every table of the target's default schema, by name."""
    with closing(connect(location)) as connection:
        try:
            catalog = read_catalog(connection, schemas=location.schemas[:1])
            return {table.name: _target_table(connection, table) for table in catalog.tables
                    if table.kind == "table"}
        except psycopg.Error as exc:
            raise unreadable(location, exc) from exc


def _target_table(connection, table) -> TargetTable:
    columns = tuple(TargetColumn(
        c.name, c.type, c.not_null, c.default is not None or bool(c.identity) or bool(c.generated),
        bool(c.generated), bool(c.identity) or "nextval(" in (c.default or "")) for c in table.columns)
    constraints = table.constraints
    primary = next((c.columns for c in constraints if c.kind == "primary_key"), ())
    unique = [(c.name, c.columns) for c in constraints if c.kind in ("primary_key", "unique")]
    named = {c.name for c in constraints}
    partial, server_checks = [], [(c.name, c.definition) for c in constraints if c.kind in ("check", "exclusion")]
    for index in (index for index in table.indexes if index.unique and index.name not in named):
        names = _plain_names(index.columns)
        conditions = _null_conditions(index.where) if index.where is not None else ()
        if names is None or conditions is None:
            server_checks.append((index.name, index.definition))
        elif index.where is None:
            unique.append((index.name, names))
        else:
            partial.append((index.name, names, conditions))
    foreign = tuple(TargetForeignKey(c.name, c.columns, c.references, c.referenced_columns, c.deferrable)
                    for c in constraints if c.kind == "foreign_key")
    has_rows = connection.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table.name))).fetchone()[0]
    return TargetTable(table.name, columns, tuple(primary), tuple(unique), foreign, has_rows, tuple(partial),
                       tuple(server_checks))


_NULL_TEST = re.compile(r'^\(*\s*(?P<name>[a-z_][a-z0-9_$]*|"(?:[^"]|"")+")\s+IS\s+(?P<not>NOT\s+)?NULL\s*\)*$', re.I)


def _null_conditions(predicate: str) -> tuple[tuple[str, bool], ...] | None:
    """A partial index's predicate as ((column, must be NULL?), ...) when it is only IS [NOT] NULL
    tests joined by AND (the soft-delete shape); None for anything else."""
    conditions = []
    for part in re.split(r"\s+AND\s+", predicate.strip(), flags=re.I):
        match = _NULL_TEST.match(part.strip())
        if match is None:
            return None
        name = match.group("name")
        name = name[1:-1].replace('""', '"') if name.startswith('"') else name
        conditions.append((name, match.group("not") is None))
    return tuple(conditions)


def _plain_names(printed) -> tuple[str, ...] | None:
    """The columns of an index on plain columns (None when a key is an expression)."""
    if not all(_PLAIN_NAME.match(name) for name in printed):
        return None
    return tuple(name[1:-1].replace('""', '"') if name.startswith('"') else name for name in printed)


class Loader:
    """What a move does inside its one transaction on the target."""

    def __init__(self, connection: psycopg.Connection):
        self.connection = connection

    def copy(self, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> int:
        """COPY `rows` into `table`; the number written."""
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
        written = 0
        # A writer thread sends to the server while this one converts the next rows.
        with self.connection.cursor() as cursor, cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
            for row in rows:
                copy.write_row(row)
                written += 1
        return written

    def set_foreign_keys_aside(self, tables: Iterable[str]) -> list[tuple[str, str, str]]:
        """Drop the foreign keys touching `tables`, inside this transaction, to be added back by
        `add_foreign_keys_back` once every row is in; (table, name, definition) of each.

        Checked row by row, a key costs one lookup per row (a trigger's query); added back, the server
        checks every row at once with one join, before COMMIT, as pg_restore does. The rows are
        checked either way, and a failure rolls the drop back with everything else."""
        found = self.connection.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND (conrelid::regclass::text = ANY(%s) OR confrelid::regclass::text = ANY(%s)) "
            "ORDER BY conrelid::regclass::text, conname", (list(tables), list(tables))).fetchall()
        try:
            with self.connection.transaction():  # a savepoint: a refusal leaves every key in place
                for table, name, _ in found:
                    self.connection.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                        sql.SQL(table), sql.Identifier(name)))
        except pg_errors.InsufficientPrivilege:
            return []  # not the tables' owner: the keys stay, and check each row as it is written
        return found

    def add_foreign_keys_back(self, keys: list[tuple[str, str, str]]) -> None:
        """Add back what set_foreign_keys_aside dropped: the server checks every row now."""
        for table, name, definition in keys:
            self.connection.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.SQL(table), sql.Identifier(name), sql.SQL(definition)))

    def advance_sequences(self, table: TargetTable) -> dict[str, int]:
        """Each sequenced column's sequence set to the highest value moved; {column: value}."""
        advanced = {}
        for column in (c for c in table.columns if c.sequenced):
            highest = self.connection.execute(
                sql.SQL("SELECT setval(pg_get_serial_sequence(%s, %s), max({})) FROM {} HAVING max({}) IS NOT NULL")
                .format(sql.Identifier(column.name), sql.Identifier(table.name), sql.Identifier(column.name)),
                (sql.Identifier(table.name).as_string(self.connection), column.name)).fetchone()
            if highest is not None:
                advanced[column.name] = highest[0]
        return advanced

    def count(self, table: str) -> int:
        return self.connection.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]

    def batches(self, table: str, columns: tuple[str, ...], as_text: frozenset[str]) -> Iterator[list[tuple]]:
        """Every row of `table` as the server holds it, streamed a batch at a time (the columns in
        `as_text` read as the text the server prints for them)."""
        listed = sql.SQL(", ").join(
            sql.SQL("{}::text").format(sql.Identifier(c)) if c in as_text else sql.Identifier(c)
            for c in columns)
        with self.connection.cursor(name=f"cutover_move_{abs(hash(table))}") as cursor:
            cursor.execute(sql.SQL("SELECT {} FROM {}").format(listed, sql.Identifier(table)))
            while batch := cursor.fetchmany(READ_BACK_ROWS):
                yield batch

    def check_deferred_constraints(self) -> None:
        """Check now what was deferred to COMMIT: a violation raises here, and rolls back."""
        self.connection.execute("SET CONSTRAINTS ALL IMMEDIATE")

    def unvalidated_constraints(self, tables: Iterable[str]) -> list[str]:
        return [name for (name,) in self.connection.execute(
            "SELECT conrelid::regclass || '.' || conname FROM pg_constraint "
            "WHERE NOT convalidated AND conrelid::regclass::text = ANY(%s)", (list(tables),))]


@contextmanager
def load(location: PostgresLocation) -> Iterator[Loader]:
    """One migration transaction for the whole move: COMMIT at the end, ROLLBACK on any error."""
    with closing(connect(location)) as connection:
        with transactions.migration_transaction(
                connection, location, lock_timeout=location.lock_timeout,
                statement_timeout=location.statement_timeout):
            # Naive timestamps were taken as UTC when converted; timestamps and dates are written and
            # read back as ISO text; DEFERRABLE keys wait for COMMIT.
            connection.execute("SET LOCAL TimeZone = 'UTC'")
            connection.execute("SET LOCAL DateStyle = 'ISO, YMD'")
            connection.execute("SET CONSTRAINTS ALL DEFERRED")
            yield Loader(connection)


def row_counts(location: PostgresLocation, tables: Iterable[str]) -> dict[str, int]:
    """Exact row counts of `tables` now (after a move: what the target holds)."""
    with closing(connect(location)) as connection:
        return {name: connection.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name)))
                .fetchone()[0] for name in tables}


class PostgresMoveTarget:
    """The interface a move uses on its target (see app/core/move)."""

    Error = psycopg.Error

    def __init__(self, location: PostgresLocation):
        self.location = location

    def describe(self) -> dict[str, TargetTable]:
        return describe(self.location)

    def load(self):
        return load(self.location)

    def row_counts(self, tables: Iterable[str]) -> dict[str, int]:
        return row_counts(self.location, tables)

    def version_rows(self, table: str, column: str) -> list[str]:
        """The revisions an Alembic version table of the target names (its stamp)."""
        with closing(connect(self.location)) as connection:
            return [str(value) for (value,) in connection.execute(sql.SQL("SELECT {} FROM {} ORDER BY 1").format(
                sql.Identifier(column), sql.Identifier(table)))]

    def unvalidated_constraints(self, tables: Iterable[str]) -> list[str]:
        with closing(connect(self.location)) as connection:
            return Loader(connection).unvalidated_constraints(tables)
