"""SQLiteEngine: a target that is one SQLite file (and its -wal, -shm and -journal)."""
from __future__ import annotations

import shutil
import sqlite3
import tempfile
from contextlib import contextmanager
from pathlib import Path

from app.core import losses
from app.core.diff import diff_schemas
from app.core.engines.base import Dialect, Engine, QueryProblem
from app.core.engines.sqlite import (
    backup_copy,
    copies,
    files,
    guards,
    integrity,
    introspection,
    movesource,
    quarantine,
    scratch,
    stamps,
    swap,
    transactions,
)
from app.core.engines.sqlite import dialect as rules
from app.core.engines.sqlite import watching
from app.core.engines.sqlite.prepwriter import SQLitePrepWriter
from app.core.fsutil import file_identity
from app.core.processes import processes_holding
from app.core.sql import quote_identifier


class SQLiteDialect(Dialect):
    def statement_is_complete(self, text: str) -> bool:
        return rules.statement_is_complete(text)

    def read_only_query_problem(self, sql: str) -> QueryProblem | None:
        return rules.read_only_query_problem(sql)

    def split_statements(self, text: str) -> list[tuple[str, int]]:
        return rules.split_statements(text)

    def forbidden_reason(self, sql: str) -> str | None:
        return rules.forbidden_reason(sql)

    def needs_own_transaction(self, sql: str) -> str | None:
        return None  # what cannot run in a transaction is refused outright (VACUUM)

    def no_transaction_phase_problem(self) -> str | None:
        return rules.NO_TRANSACTION_PHASE_PROBLEM

    def transaction_problems(self, statements) -> list[tuple[int, str]]:
        return []

    def quote_identifier(self, name: str) -> str:
        return quote_identifier(name)

    def prep_writer(self):
        return SQLitePrepWriter()

    def created_index(self, sql: str) -> str | None:
        return rules.created_index(sql)


class SQLiteEngine(Engine):
    name = "sqlite"
    title = "SQLite"
    investigate_damage = backup_copy.INVESTIGATE
    copy_check_name = "quick_check"
    Error = sqlite3.Error
    DatabaseError = sqlite3.DatabaseError
    dialect = SQLiteDialect()

    def __init__(self, location):
        super().__init__(location if isinstance(location, Path) else Path(location))

    @property
    def path(self) -> Path:
        return self.location

    def sqlalchemy_address(self) -> tuple[str, dict[str, str]]:
        return f"sqlite:///{self.path.absolute()}", {}

    @property
    def label(self) -> str:
        return str(self.path)

    @property
    def backup_name(self) -> str:
        return self.path.name

    def identity(self) -> tuple:
        # One file is one device and inode, whatever the path: a hard link, a symbolic link, `..`.
        return (self.name, *file_identity(self.path))

    def snapshot(self, *, deep: bool = True, busy_timeout: float = 1.0):
        return introspection.inspect_database(self.path, deep=deep, busy_timeout=busy_timeout)

    def read_schema(self, connection, *, count_rows: bool = True):
        return introspection.read_schema(connection, count_rows=count_rows)

    def compare(self, reference_schema, schema, *, left_label: str, right_label: str) -> list:
        return diff_schemas(reference_schema, schema, left_label=left_label, right_label=right_label)

    def schema_text_sha256(self, connection) -> str:
        return introspection.schema_text_sha256(connection)

    def schema_rows(self, connection) -> list:
        return introspection.schema_rows(connection)

    def stamp(self) -> list:
        return stamps.file_stamp(self.path)

    def unchanged_since(self, stamp: list) -> bool:
        return stamps.same_file_state(self.path, stamp)

    def may_hold_same_bytes(self, stamp: list) -> bool:
        return stamps.may_hold_same_bytes(self.path, stamp)

    def open_readonly(self, *, busy_timeout: float = 1.0):
        return files.open_readonly(self.path, busy_timeout=busy_timeout)

    def read_consistently(self, read, *, busy_timeout: float = 1.0):
        return files.read_consistently(self.path, read, busy_timeout=busy_timeout)

    def read_transaction(self, connection):
        return transactions.read_transaction(connection)

    def open_for_writing(self, *, busy_timeout: float):
        return transactions.open_for_writing(self.path, busy_timeout=busy_timeout)

    def write_transaction(self, connection):
        return transactions.immediate_transaction(connection)

    def settle(self, *, busy_timeout: float) -> bool:
        return transactions.settle_hot_journal(self.path, busy_timeout=busy_timeout)

    def quick_check(self, connection, *, stopped_is_answer: bool = True) -> str:
        return integrity.quick_check(connection, stopped_is_answer=stopped_is_answer)

    def integrity_problems(self, connection, limit: int) -> list[str]:
        return integrity.integrity_problems(connection, limit)

    def foreign_key_violations(self, connection):
        return integrity.foreign_key_violations(connection)

    def time_limit(self, connection, seconds: float | None):
        return integrity.time_limit_on(connection, seconds)

    def reads_only(self, connection):
        return guards.reads_only(connection)

    def rolled_back_row_writes(self, connection):
        return guards.rolled_back_row_writes(connection)

    def changes(self, connection) -> int:
        return guards.changes(connection)

    def is_interrupt(self, exc: Exception) -> bool:
        return guards.is_interrupt(exc)

    def schema_scratch(self):
        return scratch.empty_database()

    def scratch_copy(self, destination, *, busy_timeout: float) -> None:
        copies.snapshot_database(self.path, destination, busy_timeout=busy_timeout)

    def transaction_opened_line(self) -> str:
        return "Write lock taken (BEGIN IMMEDIATE): nobody sees a change before COMMIT"

    @contextmanager
    def empty_database(self, *, workdir=None):
        folder = Path(tempfile.mkdtemp(prefix="cutover-scratch-", dir=workdir))
        try:
            yield SQLiteEngine(folder / self.backup_name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextmanager
    def rehearsal_copy(self, *, workdir, busy_timeout: float, say):
        folder = Path(tempfile.mkdtemp(prefix="cutover-rehearsal-", dir=workdir))
        try:
            copy = folder / self.backup_name
            self.scratch_copy(copy, busy_timeout=busy_timeout)
            yield SQLiteEngine(copy)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def move_source(self, *, busy_timeout: float = 1.0):
        return movesource.SQLiteMoveSource(self.path, busy_timeout=busy_timeout)

    def check_new_quarantine(self) -> None:
        quarantine.refuse_existing(self.path)

    def new_quarantine(self):
        return quarantine.Quarantine(self.path)

    def watched_tables(self, connection) -> list:
        return watching.watched_tables(connection)

    def rows_after(self, connection, table: str, key: str, after, columns: list[str]):
        return watching.rows_after(connection, table, key, after, columns)

    def schema_objects(self, connection) -> list:
        return losses.schema_objects(connection)

    def object_names(self, connection) -> set[tuple[str, str]]:
        return losses.object_names(connection)

    def backup_snapshot(self, copies, *, method, busy_timeout, progress, log, complete, fan_out):
        return backup_copy.take_snapshot(self.path, copies, method, busy_timeout, progress, log,
                                         complete, fan_out)

    @classmethod
    def holds_target_bytes(cls, method: str) -> bool:
        return method == backup_copy.LOCKED_COPY

    def check_backup_source(self) -> None:
        files.check_file(self.path)

    def backup_size(self) -> int:
        return backup_copy.size_with_wal(self.path)

    def source_record(self) -> tuple[str, str | None]:
        return backup_copy.source_record(self.path)

    def is_source_of(self, source: str, source_realpath: str | None) -> bool:
        return backup_copy.is_source_of(self.path, source, source_realpath)

    def backup_facts(self, taken, copy_path) -> dict:
        return backup_copy.backup_facts(self.path, taken, Path(copy_path))

    def check_backup_copy(self, path) -> str:
        return backup_copy.quick_check_file(Path(path))

    def read_backup_copy(self, path):
        return introspection.inspect_database(Path(path), deep=False)

    def quick_check_copy(self) -> str:
        return backup_copy.quick_check_file(self.path)

    side_files = swap.SIDE_FILES
    safety_side_files = swap.SAFETY_SIDE_FILES

    def set_journal_mode(self, mode: str) -> str:
        return swap.set_journal_mode(self.path, mode)

    def fold_side_files(self, *, busy_timeout: float) -> str | None:
        return swap.fold_side_files(self.path, busy_timeout)

    def holders(self) -> list:
        return processes_holding(self.path)

    def error_reason(self, exc: Exception) -> str:
        return files.sqlite_error_reason(exc)

    def unavailable(self, exc: Exception, *, busy_timeout: float | None = None):
        return files.classify_sqlite_error(exc, self.path, busy_timeout=busy_timeout)
