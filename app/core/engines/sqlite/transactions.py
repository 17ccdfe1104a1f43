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
from contextlib import closing, contextmanager
from pathlib import Path

from app.core.engines.sqlite.files import check_file, classify_sqlite_error, sqlite_uri
from app.core.engines.sqlite.stamps import file_identity
from app.core.errors import TargetChanged


class TargetConnection(sqlite3.Connection):
    """A connection that remembers which file it opened (device and inode).

    SQLite keeps writing to the file it opened, whatever the path names later: if the target
    is renamed over (a deploy script, a restore by hand) while a migration runs, its COMMIT
    would land in the old, nameless file and the path would name an unmigrated database.
    immediate_transaction therefore checks, once the write lock is held and again just
    before COMMIT, that the path still names this very file."""

    path: Path | None = None
    identity: tuple[int, int] | None = None


def open_for_writing(path, *, busy_timeout: float) -> sqlite3.Connection:
    """A read-write connection to an existing SQLite file, ready for immediate_transaction.

    `mode=rw` means a wrong path fails instead of creating an empty database, and
    check_file rejects what is not a complete SQLite file before SQLite sees it.
    """
    path = Path(path)
    check_file(path)
    uri = sqlite_uri(path, "rw")
    before = file_identity(path)
    connection = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None,
                                 factory=TargetConnection)
    connection.path, connection.identity = path, before
    if file_identity(path) != before:  # replaced while it was being opened: which one is open?
        connection.close()
        raise _replaced(path)
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
        _refuse_if_replaced(connection)
        yield connection
        _refuse_if_replaced(connection)
        connection.execute("COMMIT")
    except BaseException as exc:
        _rollback_keeping(connection, exc)
        raise


def _refuse_if_replaced(connection: sqlite3.Connection) -> None:
    """The path must still name the file this connection writes to (see TargetConnection)."""
    path, identity = getattr(connection, "path", None), getattr(connection, "identity", None)
    if path is not None and identity is not None and file_identity(path) != identity:
        raise _replaced(path)


def _replaced(path: Path) -> TargetChanged:
    return TargetChanged(
        f"{path} was replaced by another file (renamed over, or deleted) while it was open for writing: "
        "nothing was written to the file that has its name now, and the change was rolled back. Find out "
        "what replaced it: a backup or rehearsal taken before no longer describes the file there.", path=str(path))


def _rollback_keeping(connection: sqlite3.Connection, original: BaseException) -> None:
    """Roll back if a transaction is still open, never replacing `original` with our error.

    Then read once. After an I/O error (SQLITE_FULL above all, SQLITE_IOERR) SQLite ends the
    transaction without undoing it: its pager is left in an error state, the changed pages
    stay in the file and the journal stays hot until some connection next reads it. Until
    then the file is *not* what it was (a copy taken now, or a read-only inspection, would
    see the half-applied pages or fail). The read makes SQLite play the journal back now, so
    "rolled back" is true on disk when the caller says it."""
    try:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        connection.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.Error as rollback_error:
        # The journal (or WAL) still undoes the transaction when the connection closes or
        # the next connection opens the file; the caller's error is the one that matters.
        original.add_note(f"ROLLBACK also failed: {rollback_error}")


@contextmanager
def read_transaction(connection: sqlite3.Connection, *, path=None,
                     busy_timeout: float | None = None) -> Iterator[sqlite3.Connection]:
    """BEGIN, a first read, ... ROLLBACK: one consistent view for everything read inside.

    The first read is what takes SQLite's SHARED lock (rollback-journal modes: no writer can
    commit until we finish) or pins the WAL snapshot; a bare BEGIN takes nothing. Read-only
    work never commits, so it always ends with ROLLBACK, only if a transaction is open.
    With `path`, failing to take the view (locked, damaged) raises TargetUnavailable.
    """
    try:
        connection.execute("BEGIN")
        connection.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.Error as exc:
        _end_read(connection)
        if path is None:
            raise
        raise classify_sqlite_error(exc, path, busy_timeout=busy_timeout) from None
    try:
        yield connection
    finally:
        _end_read(connection)


def _end_read(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        connection.execute("ROLLBACK")


def settle_hot_journal(path, *, busy_timeout: float) -> bool:
    """Play back a journal left by a writer that died mid-transaction (kill -9, power loss),
    so the file on disk is the last committed state. SQLite does this on the next read by a
    read-write connection; a read-only one cannot. Returns whether there was a journal."""
    path = Path(path)
    if not Path(f"{path}-journal").exists():
        return False
    with closing(open_for_writing(path, busy_timeout=busy_timeout)) as connection:
        connection.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    return True
