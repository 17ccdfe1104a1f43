"""The one way Cutover writes to a PostgreSQL target: one transaction, bounded waits, one migrator.

PostgreSQL has transactional DDL, so a plan runs inside BEGIN ... COMMIT and a failure anywhere
leaves the database exactly as it was. Three rules make that safe next to a live application:
- `lock_timeout` bounds how long any statement queues for a lock. A queued ALTER TABLE blocks
  every reader that arrives after it, so an unbounded wait would stall the application.
- `statement_timeout` (optional) bounds any one statement.
- a transaction-scoped advisory lock means two migrators never run at once; the second one is
  refused at once, naming the first, instead of queueing behind it.
- a migrator that dies mid-statement (kill -9, a lost network) must not leave its transaction
  running: the server only notices a vanished client when it next talks to it, so a long
  statement would keep its locks, and the application blocked, until it ended. The session asks
  the server to check its client every second (client_connection_check_interval, PostgreSQL 14+).
When a lock is not granted in time, the transaction rolls back and the error names the sessions
that held it, as a watcher connection saw them while the statement waited.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pg_errors

from app.core.engines.postgresql import sessions
from app.core.engines.postgresql.connections import connect
from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import Conflict, CutoverError, said_by

# One advisory lock key for "a Cutover migration", the same in every process.
MIGRATION_LOCK_KEY = int.from_bytes(hashlib.sha256(b"cutover migration").digest()[:8], "big", signed=True)
_WATCH_INTERVAL_SECONDS = 0.1
_CLIENT_CHECK_MS = 1000


class LockNotGranted(CutoverError):
    """A statement waited `lock_timeout` for a lock; `holders` are the sessions it waited for."""

    code = "locked"
    http_status = 409

    def __init__(self, message: str, holders: list[sessions.Session]):
        super().__init__(message, holders=[holder.to_dict() for holder in holders])
        self.holders = holders


def _lock_refused(exc: Exception, location: PostgresLocation, lock_timeout: float,
                  holders: list[sessions.Session]) -> LockNotGranted:
    held_by = "; ".join(holder.describe() for holder in holders) or "a session that ended before it could be named"
    return LockNotGranted(
        f"{location.label}: {said_by(exc)}: a lock was not granted within lock_timeout "
        f"({lock_timeout:g} s); it is held by {held_by}. Nothing was changed: the transaction rolled back, "
        "and the application's readers waited no longer than the timeout. Stop that session (or wait for "
        "it to finish) and migrate again.", holders)


@contextmanager
def migration_transaction(connection: psycopg.Connection, location: PostgresLocation, *,
                          lock_timeout: float, statement_timeout: float | None) -> Iterator[psycopg.Connection]:
    """BEGIN; the timeouts; the migrators' advisory lock; COMMIT, or ROLLBACK on any exception."""
    with _BlockerWatcher(location, connection.info.backend_pid) as watcher, connection.transaction():
        _set_local(connection, "lock_timeout", lock_timeout)
        _set_local(connection, "statement_timeout", statement_timeout)
        _end_with_the_client(connection)
        _take_migration_lock(connection, location)
        try:
            yield connection
        except pg_errors.LockNotAvailable as exc:
            raise _lock_refused(exc, location, lock_timeout, watcher.holders) from exc


def _set_local(connection, setting: str, seconds: float | None) -> None:
    milliseconds = 0 if seconds is None else max(1, round(seconds * 1000))  # 0 = no limit
    connection.execute(f"SET LOCAL {setting} = {milliseconds}")


def _end_with_the_client(connection) -> None:
    """Have the server roll back as soon as this client is gone, not when the statement ends."""
    if connection.info.server_version < 140000:
        return  # the setting does not exist yet: the rollback waits for the statement's end
    try:
        with connection.transaction():  # a savepoint: a platform without the check refuses the value
            connection.execute(f"SET LOCAL client_connection_check_interval = {_CLIENT_CHECK_MS}")
    except pg_errors.InvalidParameterValue:
        pass


def _take_migration_lock(connection, location: PostgresLocation) -> None:
    taken = connection.execute("SELECT pg_try_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,)).fetchone()[0]
    if not taken:
        holder = migration_lock_holder(connection)
        raise Conflict(
            f"Another migration is running on {location.label} ({holder}): exactly one runs at a "
            "time. Wait for it to finish, then try again.")


def migration_lock_holder(connection) -> str:
    row = connection.execute(
        """SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename, '')
           FROM pg_locks l JOIN pg_stat_activity a USING (pid)
           WHERE l.locktype = 'advisory' AND l.granted
             AND ((l.classid::bigint << 32) | l.objid::bigint) = %s""",
        # A bigint key shows as its high and low 32 bits; the shift wraps like the key's sign.
        (MIGRATION_LOCK_KEY,),
    ).fetchone()
    if row is None:
        return "its session has just ended"
    pid, application, user = row
    return f"{application or 'a session'} as {user}, pid {pid}"


class _BlockerWatcher:
    """Polls, from a connection of its own, which sessions the migrator is waiting for."""

    def __init__(self, location: PostgresLocation, migrator_pid: int):
        self.holders: list[sessions.Session] = []
        self._stop = threading.Event()
        self._location, self._pid = location, migrator_pid
        self._thread = threading.Thread(target=self._watch, name="cutover-lock-watcher", daemon=True)

    def _watch(self) -> None:
        try:
            with connect(self._location) as watch:
                while not self._stop.wait(_WATCH_INTERVAL_SECONDS):
                    seen = sessions.blocking_sessions(watch, self._pid)
                    if seen:
                        self.holders = seen
        except Exception:  # noqa: BLE001 - the watcher only explains; it never decides anything
            pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(timeout=5)
