"""A state database made before the dashboard's schema had revisions (create_all, then the
in-place upgrades of ADDED_COLUMNS and REPLACED_INDEXES) is brought to the baseline, keeping
every row, and then stamped with it: from there on only revisions run.

Frozen with the baseline: what the earlier versions did at start, once more, on the migration's
own connection and transaction."""
from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from app.core.sql import quote_identifier
from app.state_migrations.baseline import baseline_metadata

# (table, column, definition, filled with the adopting workspace): columns added to existing
# tables by earlier versions. Old rows about environments are the workspace's that adopts them,
# the only one that can have written them unless the database was already shared.
ADDED_COLUMNS = (
    ("monitor_window", "end_reason", "TEXT NOT NULL DEFAULT ''", False),
    ("job", "workspace", "VARCHAR(1024) NOT NULL DEFAULT ''", True),
    ("run", "workspace", "VARCHAR(1024) NOT NULL DEFAULT ''", True),
    ("monitor_window", "workspace", "VARCHAR(1024) NOT NULL DEFAULT ''", True),
)
# The per-environment unique indexes the per-workspace ones replaced.
REPLACED_INDEXES = ("one_active_job_per_environment", "one_open_run_per_environment")


# Every earlier version made these two: a database that has them is the dashboard's, not another
# application's that happens to have a "job" or a "run" table (which is never altered here).
EARLIEST_TABLES = {"operator", "audit_entry"}


def is_legacy(connection: Connection) -> bool:
    """Called when the version table is missing: made by a Cutover before revisions?"""
    return EARLIEST_TABLES <= set(inspect(connection).get_table_names())


def adopt_legacy_database(connection: Connection, workspace: str) -> list[str]:
    """Complete an earlier version's tables to the baseline; returns what changed."""
    metadata = baseline_metadata()
    existing = set(inspect(connection).get_table_names())
    created = [name for name in metadata.tables if name not in existing]
    metadata.create_all(connection, tables=[metadata.tables[name] for name in created])
    changed = created + [f"{table}.{column}" for table, column, definition, fill in ADDED_COLUMNS
                         if _add_column(connection, table, column, definition, workspace if fill else None)]
    return changed + _replace_indexes(connection, metadata)


def _add_column(connection: Connection, table: str, column: str, definition: str, value: str | None) -> bool:
    if column in {info["name"] for info in inspect(connection).get_columns(table)}:
        return False
    connection.exec_driver_sql(
        f"ALTER TABLE {quote_identifier(table)} ADD COLUMN {quote_identifier(column)} {definition}")
    if value is not None:
        connection.execute(text(f"UPDATE {quote_identifier(table)} SET {quote_identifier(column)} = :value"),
                           {"value": value})
    return True


def _replace_indexes(connection: Connection, metadata) -> list[str]:
    """Every baseline index exists (the new one first, so a uniqueness rule never lapses), then
    the indexes it replaced are dropped."""
    changed = []
    for table in metadata.sorted_tables:
        present = {index["name"] for index in inspect(connection).get_indexes(table.name)}
        for index in sorted(table.indexes, key=lambda index: index.name):
            if index.name not in present:
                index.create(connection)
                changed.append(index.name)
        for old in REPLACED_INDEXES:
            if old in present:
                connection.exec_driver_sql(f"DROP INDEX {quote_identifier(old)}")
                changed.append(old)
    return changed
