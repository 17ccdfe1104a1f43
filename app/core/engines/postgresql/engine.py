"""PostgresqlEngine: a target that is one PostgreSQL database, reached by URL.

Implemented: naming the target, reading it (schema, facts, row counts, who is connected),
its stamps, verified backups and all-or-nothing restores, plans (reconciled on a copy of the
schema), rehearsals on a copy of the data, and migrations in one transaction with bounded
lock waits and one migrator at a time. What is not implemented yet (verification, the
monitoring window, the checklist) refuses in one message (`NotSupported`) before anything
touches the database, so a PostgreSQL environment is never half-handled.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from app.core.engines.base import Engine, TimedOut
from app.core.engines.postgresql import (
    backups, clones, connections, loading, migrating, reconciling, restore, scratch, sessions, transactions, verifying, watching,
)
from app.core.engines.postgresql.compare import diff_catalogs
from app.core.engines.postgresql.dialect import PostgresDialect
from app.core.engines.postgresql.inspection import take_snapshot
from app.core.engines.postgresql.location import PostgresLocation
from app.core.engines.postgresql.stamps import stamp_of
from app.core.errors import ConfigError, NotSupported, TargetUnavailable, UsageError, said_by


class PostgresqlEngine(Engine):
    name = "postgresql"
    title = "PostgreSQL"
    Error = psycopg.Error
    DatabaseError = psycopg.DatabaseError
    dialect = PostgresDialect()
    supports = frozenset({"backup", "restore", "plan", "prep", "rehearse", "migrate", "verify", "monitor", "checklist"})
    clones_live_schema = True
    target_is_file = False
    copy_check_name = "pg_restore --list"
    investigate_damage = "Investigate the source: the server's log, and amcheck if it is installed."
    slow_deep_checks = False  # a snapshot is the catalog and counts: nothing to run apart
    receives_moves = True

    def __init__(self, location):
        if not isinstance(location, PostgresLocation):
            location = PostgresLocation(str(location))
        super().__init__(location)

    @classmethod
    def location_from(cls, settings: dict) -> PostgresLocation:
        return PostgresLocation(**settings)

    def __repr__(self) -> str:
        return f"PostgresqlEngine({self.location.label!r})"

    def not_yet(self, what: str) -> NotSupported:
        return NotSupported(
            f"{what} is not available for PostgreSQL environments yet ({self.label}): nothing was "
            "changed. Use PostgreSQL's own tools (pg_dump, psql) for this step meanwhile.",
            environment_url=self.label)

    # --- naming -------------------------------------------------------------------------

    @property
    def label(self) -> str:
        return self.location.label

    @property
    def backup_name(self) -> str:
        return self.location.database

    def identity(self) -> tuple:
        return self.location.identity()

    def sqlalchemy_address(self) -> tuple[str, dict[str, str]]:
        return self.location.sqlalchemy_address()

    # --- describing ---------------------------------------------------------------------

    def snapshot(self, *, deep: bool = True, busy_timeout: float = 1.0):
        return take_snapshot(self.location, deep=deep, busy_timeout=busy_timeout)

    def read_schema(self, connection, *, count_rows: bool = True):
        return migrating.read_catalog_here(connection, self.location.schemas, count_rows=count_rows)

    def read_schema_exactly(self, connection):
        return migrating.read_catalog_here(connection, self.location.schemas, exact=True)

    def compare(self, reference_schema, schema, *, left_label: str, right_label: str) -> list:
        return diff_catalogs(reference_schema, schema, left_label=left_label, right_label=right_label)

    def schema_text_sha256(self, connection) -> str:
        return self.read_schema(connection, count_rows=False).fingerprint()

    def schema_rows(self, connection) -> list:
        raise self.not_yet("Rebuilding a schema statement by statement")  # schema_clone copies it whole

    # --- plans --------------------------------------------------------------------------

    def decide(self, connection, sql: str):
        return reconciling.decide(connection, sql)

    def move_target(self):
        return loading.PostgresMoveTarget(self.location)

    def watched_tables(self, connection) -> list:
        return watching.watched_tables(connection, self.location.schemas)

    def rows_after(self, connection, table: str, key: str, after, columns: list[str]):
        return watching.rows_after(connection, table, key, after, columns)

    def schema_objects(self, connection) -> list:
        return migrating.schema_objects(connection, self.location.schemas)

    def object_names(self, connection) -> set[tuple[str, str]]:
        return migrating.object_names(connection, self.location.schemas)

    @contextmanager
    def schema_clone(self, *, busy_timeout: float):
        try:
            with clones.schema_copy(self.location) as copy:
                with connections.connect(copy) as connection:
                    yield connection, []
        except psycopg.Error as exc:
            raise self.unavailable(exc, busy_timeout=busy_timeout) from exc

    @contextmanager
    def empty_database(self, *, workdir=None):
        with scratch.scratch_database(self.location) as name:
            yield PostgresqlEngine(self.location.on_database(name))

    @contextmanager
    def rehearsal_copy(self, *, workdir, busy_timeout: float, say):
        with clones.data_copy(self.location, workdir=workdir, say=say) as copy:
            yield PostgresqlEngine(copy)

    def transaction_opened_line(self) -> str:
        statement = (f"statement_timeout {self.location.statement_timeout:g} s"
                     if self.location.statement_timeout else "no statement_timeout")
        return (f"Transaction open (lock_timeout {self.location.lock_timeout:g} s, {statement}, the migrators' "
                "advisory lock held): nobody sees a change before COMMIT")

    def commit_point(self, connection) -> dict:
        return migrating.commit_point(connection)

    @contextmanager
    def outside_transaction(self, connection):
        connection.execute(f"SET lock_timeout = {max(1, round(self.location.lock_timeout * 1000))}")
        yield connection  # autocommit: each statement commits on its own

    # --- has it changed? ----------------------------------------------------------------

    def stamp(self) -> list:
        return stamp_of(self.location)

    def unchanged_since(self, stamp: list) -> bool:
        return stamp_of(self.location) == stamp

    def may_hold_same_bytes(self, stamp: list) -> bool:
        return False  # no cheaper proof than the stamp: a changed stamp means changed

    # --- connections and transactions ---------------------------------------------------

    def open_readonly(self, *, busy_timeout: float = 1.0):
        connection = connections.connect(self.location)
        try:
            connection.execute("SET default_transaction_read_only = on")
            connection.execute(f"SET lock_timeout = {max(1, round(busy_timeout * 1000))}")
        except BaseException:
            connection.close()
            raise
        return connection

    def read_consistently(self, read, *, busy_timeout: float = 1.0):
        try:
            with closing(self.open_readonly(busy_timeout=busy_timeout)) as connection:
                with self.read_transaction(connection):
                    return read(connection)
        except psycopg.Error as exc:
            raise self.unavailable(exc, busy_timeout=busy_timeout) from exc

    @contextmanager
    def read_transaction(self, connection) -> Iterator:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield connection
        finally:
            connection.execute("ROLLBACK")

    def open_for_writing(self, *, busy_timeout: float):
        return connections.connect(self.location)

    def write_transaction(self, connection):
        return transactions.migration_transaction(
            connection, self.location, lock_timeout=self.location.lock_timeout,
            statement_timeout=self.location.statement_timeout)

    def settle(self, *, busy_timeout: float) -> bool:
        return False  # PostgreSQL recovers an interrupted transaction itself

    # --- checks -------------------------------------------------------------------------

    def quick_check(self, connection, *, stopped_is_answer: bool = True) -> str:
        raise self.not_yet("The whole-database integrity check")

    def integrity_in_transaction(self, connection) -> None:
        return None  # the server checks every constraint as each statement runs; amcheck is verify's

    def integrity_problems(self, connection, limit: int) -> list[str]:
        return verifying.integrity_problems(connection, self.location.schemas, limit)

    def integrity_scope(self, connection) -> str:
        return verifying.integrity_scope(connection, self.location.schemas)

    def foreign_key_violations(self, connection):
        return migrating.foreign_key_violations(connection, self.location.schemas)

    @contextmanager
    def time_limit(self, connection, seconds: float | None):
        if seconds is None:
            yield
            return
        connection.execute(f"SET statement_timeout = {max(1, round(seconds * 1000))}")
        try:
            yield
        except pg_errors.QueryCanceled:
            raise TimedOut() from None
        finally:
            # In a failed transaction the ROLLBACK that follows undoes the SET itself.
            if not connection.closed and connection.info.transaction_status != TransactionStatus.INERROR:
                connection.execute("RESET statement_timeout")

    def reads_only(self, connection):
        return verifying.read_only_here(connection)

    def rolled_back_row_writes(self, connection):
        return verifying.rolled_back(connection)

    def changes(self, connection) -> None:
        return None  # a statement's rowcount is exact on PostgreSQL

    def is_interrupt(self, exc: Exception) -> bool:
        return isinstance(exc, pg_errors.QueryCanceled)

    # --- copies -------------------------------------------------------------------------

    @contextmanager
    def schema_scratch(self):
        with scratch.scratch_database(self.location) as name:
            with connections.connect(self.location.on_database(name)) as connection:
                yield connection

    def scratch_copy(self, destination, *, busy_timeout: float) -> None:
        raise self.not_yet("A file copy")  # a PostgreSQL copy is a database: rehearsal_copy

    def backup_snapshot(self, copies, *, method, busy_timeout, progress, log, complete, fan_out):
        if method not in (None, backups.PG_DUMP):
            raise UsageError(f"PostgreSQL backups are taken by {backups.PG_DUMP}, not {method!r}.")
        return backups.take_dump(self.location, copies, progress=progress, log=log, complete=complete,
                                 fan_out=fan_out)

    def check_backup_source(self) -> None:
        try:
            with connections.connect(self.location) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error as exc:
            raise self.unavailable(exc) from exc

    def backup_size(self) -> int:
        with connections.connect(self.location) as connection:
            return connection.execute("SELECT pg_database_size(current_database())").fetchone()[0]

    def source_record(self) -> tuple[str, str | None]:
        return self.label, None

    def is_source_of(self, source: str, source_realpath: str | None) -> bool:
        try:
            return PostgresLocation(source).identity() == self.identity()
        except ConfigError:
            return False  # not a PostgreSQL URL: another engine's backup

    def backup_facts(self, taken, copy_path) -> dict:
        return dict(taken.described)

    def check_backup_copy(self, path) -> str:
        return backups.check_archive(self.location, path)

    def read_backup_copy(self, path):
        return backups.restored(self.location, path)

    def quick_check_copy(self) -> str:
        raise self.not_yet("Verifying a backup")

    # --- a restored copy ----------------------------------------------------------------

    side_files = ()
    safety_side_files = ()

    def replace_with_backup(self, copy_path, manifest, *, say) -> None:
        restore.replace_with(self.location, Path(copy_path), manifest.schema_fingerprint,
                             dict(manifest.row_counts), say)

    def set_journal_mode(self, mode: str) -> str:
        raise self.not_yet("Restore")

    def fold_side_files(self, *, busy_timeout: float) -> str | None:
        raise self.not_yet("Restore")

    def holders(self) -> list:
        try:
            with connections.connect(self.location) as connection:
                return [session.as_process() for session in sessions.other_sessions(connection)]
        except psycopg.Error as exc:
            raise self.unavailable(exc) from exc

    # --- errors -------------------------------------------------------------------------

    def error_reason(self, exc: Exception) -> str:
        if isinstance(exc, (pg_errors.LockNotAvailable, transactions.LockNotGranted)):
            return "locked"
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return "unreadable"
        if isinstance(exc, psycopg.OperationalError):
            return "unreachable"
        return "error"

    def unavailable(self, exc: Exception, *, busy_timeout: float | None = None) -> TargetUnavailable:
        if isinstance(exc, TargetUnavailable):
            return exc
        said = said_by(exc)
        return TargetUnavailable(f"{self.label} could not be read: {said}.", path=self.label,
                                 reason=self.error_reason(exc))
