"""The statements a PostgreSQL prep plan writes, rendered from the reference's catalog.

Prep only adds: a table the target lacks (its columns and constraints, as the server printed
them), a column (ADD COLUMN with its type, default, NOT NULL and its own constraints), an
index (pg_get_indexdef's own statement). A serial column (an integer whose default takes the
next value of the sequence it owns) is written `serial` / `bigserial`, so the statement
brings its sequence along; any other default naming a sequence the target lacks fails when
prep tries the statement, and is listed as not added.
"""
from __future__ import annotations

import re

from app.core.engines.postgresql.catalog import PgColumn, PgTable, sql_identifier

_SERIAL = {"integer": "serial", "bigint": "bigserial", "smallint": "smallserial"}
_OWN_SEQUENCE = re.compile(r"^nextval\('(?:[^']|'')+'::regclass\)$")


def _name(text: str) -> str:
    """A catalog name ("orders", "billing.invoices") as SQL, quoted only where it must be."""
    return ".".join(sql_identifier(part) for part in text.split(".", 1))


def column_definition(column: PgColumn) -> str:
    if column.default and _OWN_SEQUENCE.match(column.default) and column.type in _SERIAL:
        return f"{_name(column.name)} {_SERIAL[column.type]}" + (" NOT NULL" if column.not_null else "")
    parts = [_name(column.name), column.type]
    if column.collation:
        parts.append(f"COLLATE {column.collation}")
    if column.generated:
        parts.append(f"GENERATED ALWAYS AS ({column.generated}) STORED")
    elif column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    if column.identity:
        parts.append(f"GENERATED {column.identity.upper()} AS IDENTITY")
    if column.not_null:
        parts.append("NOT NULL")
    return " ".join(parts)


def create_table_sql(table: PgTable) -> str:
    items = [column_definition(column) for column in table.columns]
    items += [f"CONSTRAINT {_name(c.name)} {c.definition}" for c in table.constraints]
    unlogged = "UNLOGGED " if table.persistence == "unlogged" else ""
    return f"CREATE {unlogged}TABLE {_name(table.name)} (\n    " + ",\n    ".join(items) + "\n);"


def add_column_sql(table: PgTable, column: PgColumn) -> str:
    """The column alone: its constraints are differences of their own (add_constraint_sql)."""
    return f"ALTER TABLE {_name(table.name)} ADD COLUMN {column_definition(column)};"


def add_constraint_sql(table: PgTable, name: str) -> str:
    constraint = table.constraint(name)
    return f"ALTER TABLE {_name(table.name)} ADD CONSTRAINT {_name(constraint.name)} {constraint.definition};"


def create_index_sql(index) -> str:
    return index.definition.rstrip(";") + ";"


def parents(table: PgTable) -> set[str]:
    return {c.references for c in table.constraints if c.kind == "foreign_key" and c.references}


class PgPrepWriter:
    """How a PostgreSQL prep plan writes its statements (the functions above)."""

    def table_sql(self, table: PgTable, terminated) -> str:
        return create_table_sql(table)

    def table_indexes(self, table: PgTable) -> list[str]:
        return [index.name for index in table.indexes]

    def column_sql(self, table: PgTable, name: str) -> tuple[str | None, list[str]]:
        return add_column_sql(table, table.column(name)), []

    def constraint_sql(self, table: PgTable, name: str) -> tuple[str | None, list[str]]:
        return add_constraint_sql(table, name), []

    def index_sql(self, table: PgTable, name: str, terminated) -> tuple[str, str]:
        index = table.index(name)
        return index.name, create_index_sql(index)

    def sequence_sql(self, reference, name: str) -> str | None:
        """CREATE SEQUENCE for a sequence of its own; None for a serial column's (its column brings it)."""
        sequence = next(s for s in reference.sequences if s.name == name)
        if sequence.owned_by and _brought_by_serial(reference, sequence.owned_by):
            return None
        cycle = " CYCLE" if sequence.cycle else ""
        return (f"CREATE SEQUENCE {_name(sequence.name)} AS {sequence.type} INCREMENT BY {sequence.increment} "
                f"MINVALUE {sequence.minimum} MAXVALUE {sequence.maximum} START WITH {sequence.start} "
                f"CACHE {sequence.cache}{cycle};")

    def parents(self, table: PgTable) -> set[str]:
        return {name.lower() for name in parents(table)}


def _brought_by_serial(reference, owner: str) -> bool:
    table_name, _, column_name = owner.rpartition(".")
    table = reference.table(table_name)
    column = table.column(column_name) if table else None
    return bool(column and column.default and _OWN_SEQUENCE.match(column.default) and column.type in _SERIAL)
