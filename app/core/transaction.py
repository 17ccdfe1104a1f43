"""The one way Cutover writes to a target database: one explicit transaction.

Python's sqlite3 (3.11) does not open a transaction before DDL, so with its default
settings a DDL-only migration runs statement by statement in autocommit, and a failure
half-way leaves a half-migrated database. Every writer here therefore uses a connection
with `isolation_level=None` (the driver never issues BEGIN or COMMIT on its own) and
wraps its work in `immediate_transaction`: BEGIN IMMEDIATE takes the write lock up front,
so a busy database fails at the start instead of half-way through.

The connection keeps SQLite's crash-safe defaults (the file's own journal: a rollback
journal, or WAL if the file is in WAL mode; synchronous=FULL), so a process killed
mid-transaction leaves a journal that the next connection rolls back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.core.database import check_file, sqlite_uri


def open_for_writing(path, *, busy_timeout: float) -> sqlite3.Connection:
    """A read-write connection to an existing SQLite file, ready for immediate_transaction.

    `mode=rw` means a wrong path fails instead of creating an empty database, and
    check_file rejects what is not a complete SQLite file before SQLite sees it.
    """
    path = Path(path)
    check_file(path)
    uri = sqlite_uri(path, "rw")
    connection = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
    # Off, and said out loud: with enforcement on, a plan's DELETE could cascade into other
    # tables and ADD COLUMN ... REFERENCES with a default would be refused. Violations are
    # found instead by foreign_key_check before COMMIT (see migrate.py). The pragma is a
    # silent no-op inside a transaction, so it is set here, before BEGIN.
    connection.execute("PRAGMA foreign_keys = OFF")
    return connection


@contextmanager
def immediate_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT; on any exception ROLLBACK, then re-raise the exception.

    SQLite rolls a transaction back by itself after some errors (SQLITE_FULL, IOERR,
    NOMEM, BUSY, INTERRUPT); a second ROLLBACK would then raise "no transaction is active"
    and hide the real error, so ROLLBACK runs only while `in_transaction` says one is open.
    A failing COMMIT (e.g. a reader kept the lock) is rolled back the same way.
    """
    if connection.isolation_level is not None:
        raise ValueError("immediate_transaction needs a connection with isolation_level=None")
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
        connection.execute("COMMIT")
    except BaseException as exc:
        _rollback_keeping(connection, exc)
        raise


def _rollback_keeping(connection: sqlite3.Connection, original: BaseException) -> None:
    """Roll back if a transaction is still open, never replacing `original` with our error."""
    if not connection.in_transaction:
        return
    try:
        connection.execute("ROLLBACK")
    except sqlite3.Error as rollback_error:
        # The journal (or WAL) still undoes the transaction when the connection closes or
        # the next connection opens the file; the caller's error is the one that matters.
        original.add_note(f"ROLLBACK also failed: {rollback_error}")


@contextmanager
def read_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN, a first read, ... ROLLBACK: one consistent view for everything read inside.

    The first read is what takes SQLite's SHARED lock (rollback-journal modes: no writer can
    commit until we finish) or pins the WAL snapshot; a bare BEGIN takes nothing. Read-only
    work never commits, so it always ends with ROLLBACK, only if a transaction is open.
    """
    connection.execute("BEGIN")
    try:
        connection.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        yield connection
    finally:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
