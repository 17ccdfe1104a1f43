"""Statements rendered from schema facts: the one place that writes DDL back from a Schema,
for the prep plan (what to add) and for reconciliation (what an ADD COLUMN would create)."""
from __future__ import annotations

from app.core.schema import DEFERRED, Column, ForeignKey, Table
from app.core.sql import ascii_lower, column_clauses, create_table_items, is_table_constraint, quote_identifier


def add_column_sql(table: Table, column: Column) -> str:
    """ALTER TABLE ... ADD COLUMN ... recreating `column` of the reference `table` exactly."""
    parts = [f"ALTER TABLE {quote_identifier(table.name)} "
             f"ADD COLUMN {quote_identifier(column.name)}"]
    if column.type:
        parts.append(column.type)
    if column.hidden == "virtual" and column.generated:
        parts.append(f"GENERATED ALWAYS AS ({column.generated}) VIRTUAL")
    if column.not_null:
        parts.append("NOT NULL")
        if column.not_null_conflict:
            parts.append(f"ON CONFLICT {column.not_null_conflict}")
    if column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    if column.collation:
        parts.append(f"COLLATE {column.collation}")
    parts.extend(_column_checks(table, column))
    parts.extend(_references(fk) for fk in table.foreign_keys
                 if len(fk.columns) == 1 and ascii_lower(fk.columns[0]) == ascii_lower(column.name))
    return " ".join(parts) + ";"


def _column_checks(table: Table, column: Column) -> tuple[str, ...]:
    for item in create_table_items(table.sql):
        if not is_table_constraint(item):
            clauses = column_clauses(item)
            if ascii_lower(clauses.name) == ascii_lower(column.name):
                return clauses.checks
    return ()


def _references(fk: ForeignKey) -> str:
    text = f"REFERENCES {quote_identifier(fk.table)}"
    if fk.to and fk.to[0] is not None:
        text += "(" + ", ".join(quote_identifier(name) for name in fk.to) + ")"
    for action, value in (("ON DELETE", fk.on_delete), ("ON UPDATE", fk.on_update)):
        if value.upper() != "NO ACTION":
            text += f" {action} {value.upper()}"
    if fk.deferred:
        text += f" {DEFERRED}"
    return text
