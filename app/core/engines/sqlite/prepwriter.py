"""How a SQLite prep plan writes its statements: a table's and an index's own stored CREATE
text, and ADD COLUMN rendered from the reference's column (app/core/ddl.py)."""
from __future__ import annotations

from app.core.ddl import add_column_sql
from app.core.diff import add_column_obstacles
from app.core.sql import ascii_lower


class SQLitePrepWriter:
    def table_sql(self, table, terminated) -> str:
        return terminated(table.sql)

    def table_indexes(self, table) -> list[str]:
        return [index.name for index in table.indexes if not index.is_automatic]

    def column_sql(self, table, name: str) -> tuple[str | None, list[str]]:
        column = table.column(name)
        obstacles = add_column_obstacles(table, column) + _foreign_key_obstacles(table, column)
        return (None, obstacles) if obstacles else (add_column_sql(table, column), [])

    def constraint_sql(self, table, name: str) -> tuple[str | None, list[str]]:
        return None, ["SQLite adds a constraint only by rebuilding its table"]

    def sequence_sql(self, reference, name: str) -> str | None:
        return None  # SQLite has no sequences of its own (sqlite_sequence is AUTOINCREMENT's)

    def index_sql(self, table, name: str, terminated) -> tuple[str, str]:
        index = next(i for i in table.indexes if ascii_lower(i.name) == ascii_lower(name))
        return index.name, terminated(index.sql)

    def parents(self, table) -> set[str]:
        return {ascii_lower(fk.table) for fk in table.foreign_keys}


def _foreign_key_obstacles(table, column) -> list[str]:
    name = ascii_lower(column.name)
    composite = [fk for fk in table.foreign_keys
                 if len(fk.columns) > 1 and name in map(ascii_lower, fk.columns)]
    return ["it is part of a multi-column FOREIGN KEY"] if composite else []
