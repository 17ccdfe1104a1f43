"""What a check may do on a SQLite connection, enforced by SQLite's authorizer.

An operator's assertion may only read; a smoke test may only write rows (cascades and
triggers included) inside a transaction that is always rolled back.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

# What a read needs: the statement itself, reading columns, calling functions, WITH RECURSIVE.
READ_ACTIONS = frozenset({
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    getattr(sqlite3, "SQLITE_RECURSIVE", 33),
})
# What a smoke test may add: row writes (cascades and triggers included), nothing else:
# no transaction control (a COMMIT would keep the writes), no DDL, PRAGMA or ATTACH.
WRITE_ACTIONS = READ_ACTIONS | {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}


def read_only_authorizer(action, *_args) -> int:
    return sqlite3.SQLITE_OK if action in READ_ACTIONS else sqlite3.SQLITE_DENY


def row_write_authorizer(action, *_args) -> int:
    return sqlite3.SQLITE_OK if action in WRITE_ACTIONS else sqlite3.SQLITE_DENY


@contextmanager
def reads_only(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Only reads run inside (set inside a read transaction: BEGIN and ROLLBACK are not reads)."""
    connection.set_authorizer(read_only_authorizer)
    try:
        yield connection
    finally:
        connection.set_authorizer(None)


@contextmanager
def rolled_back_row_writes(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE, only row writes allowed inside, and ROLLBACK whatever happens.

    Foreign keys are enforced (with their cascades), as the application has them; the
    pragma is set before BEGIN, where it takes effect."""
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.set_authorizer(row_write_authorizer)
        yield connection
    finally:
        connection.set_authorizer(None)
        if connection.in_transaction:
            connection.execute("ROLLBACK")


def changes(connection: sqlite3.Connection) -> int:
    """Rows changed so far on this connection, by cascades and triggers too."""
    return connection.total_changes


def is_interrupt(exc: Exception) -> bool:
    """Was the statement stopped by a time limit (rather than failing on its own)?"""
    return isinstance(exc, sqlite3.OperationalError) and "interrupt" in str(exc)
