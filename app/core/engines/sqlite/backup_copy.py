"""A SQLite target's consistent snapshot for a backup, and the quick_check of a copy.

Rollback-journal mode: a byte copy of the file while our read transaction holds the SHARED
lock (no writer can commit meanwhile). WAL mode: SQLite's backup API from a pinned read
snapshot (writers go on). Either way the copies are private files, hashed and checked
before the backup catalogue publishes them.
"""
from __future__ import annotations

import errno
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Callable

from app.core.engines.base import SnapshotTaken
from app.core.engines.sqlite.copies import backup_api_copy
from app.core.engines.sqlite.files import classify_sqlite_error, open_readonly
from app.core.engines.sqlite.integrity import quick_check
from app.core.engines.sqlite.introspection import inspect_database
from app.core.engines.sqlite.transactions import read_transaction
from app.core.errors import BackupError, CutoverError, UsageError, source_damaged
from app.core.fsutil import Progress, copy_and_hash

LOCKED_COPY = "locked_copy"
BACKUP_API = "backup_api"
METHODS = (LOCKED_COPY, BACKUP_API)
STEP_BYTES = 8 * 1024 * 1024  # backup API step: progress granularity, not a consistency risk
SQLITE_VERSION = sqlite3.sqlite_version


def choose_method(journal_mode: str, requested: str | None) -> str:
    if requested is None:
        return BACKUP_API if journal_mode == "wal" else LOCKED_COPY
    if requested not in METHODS:
        raise UsageError(f"Unknown backup method {requested!r}; use one of {', '.join(METHODS)}.")
    if requested == LOCKED_COPY and journal_mode == "wal":
        raise UsageError(
            "A locked byte copy is not consistent in WAL mode (pages live in the -wal file); "
            "use the backup API."
        )
    return requested


def run_quick_check(connection: sqlite3.Connection) -> str:
    """'ok', or SQLite's first problems; a page too damaged to read is also an answer."""
    try:
        return quick_check(connection, stopped_is_answer=False)
    except sqlite3.DatabaseError as exc:
        return f"quick_check stopped: {exc}"


def quick_check_file(path: Path) -> str:
    """quick_check of one of our own files (a backup copy, a restore's replacement).

    Read through SQLite's page cache, not memory-mapped: a mapping made it a few percent
    faster but made the process's memory grow with the file (1.1 GB resident for a 1 GB
    backup); reads through the cache keep it flat whatever the size."""
    with closing(open_readonly(path)) as connection:
        return run_quick_check(connection)


def take_snapshot(source: Path, copies, method: str | None, busy_timeout: float,
                  progress: Progress | None, log: Callable[[str], None],
                  complete: Callable[[list[Path]], None], fan_out) -> SnapshotTaken:
    """Write the snapshot into every partial copy; `complete(paths)` is told as soon as
    copies are whole, so their (slow) quick_check can start while the rest goes on."""
    # Opened before the lock and closed only after it is released: closing any descriptor
    # of a file drops every POSIX lock this process holds on it (SQLite's included).
    source_fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with closing(open_readonly(source, busy_timeout=busy_timeout, never_immutable=True)) as connection:
            with read_transaction(connection, path=source, busy_timeout=busy_timeout):
                journal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
                method = choose_method(journal_mode, method)
                log(f"Source is in {journal_mode} mode: snapshot by {method.replace('_', ' ')}.")
                if method == LOCKED_COPY:
                    size, sha256 = _locked_copy(source, source_fd, copies, progress)
                    complete([copy.temporary for copy in copies.copies])
                    return SnapshotTaken(size, sha256, method, journal_mode)
                snapshot_bytes = _backup_api_copy(connection, source, copies, progress)
            # The source is released: hashing and fanning out do not hold writers back.
            complete([copies.first.temporary])
            size, sha256 = fan_out(copies, snapshot_bytes, progress)
            complete([copy.temporary for copy in copies.copies[1:]])
            return SnapshotTaken(size, sha256, method, journal_mode, hashed_from_copy=True)
    finally:
        os.close(source_fd)


def _locked_copy(source: Path, source_fd: int, copies, progress):
    """Byte copy while our read transaction holds the SHARED lock: the file cannot change.

    Nothing else happens under the lock (the integrity check runs on the copies later),
    so a writer waits only as long as the copy takes.
    """
    if os.stat(source).st_ino != os.fstat(source_fd).st_ino:
        raise BackupError(f"{source} was replaced as the backup started; run it again.")
    return copy_and_hash(
        source_fd, [copy.fd for copy in copies.copies], progress=progress,
        total=os.fstat(source_fd).st_size, on_write_error=copies.write_error,
    )


def _backup_api_copy(connection, source: Path, copies, progress) -> int:
    """Copy the pinned snapshot into the first partial file with SQLite's backup API."""
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    destination = copies.first
    report = None
    if progress:
        def report(status, remaining, total):
            progress((total - remaining) * page_size, 2 * total * page_size)
    try:
        # Private until published, and we fsync it ourselves once it is complete.
        backup_api_copy(connection, destination.temporary, step_pages=max(STEP_BYTES // page_size, 1),
                        progress=report, private=True)
    except sqlite3.Error as exc:
        raise _backup_api_error(exc, source, copies) from exc
    return os.fstat(destination.fd).st_size


def _backup_api_error(exc: sqlite3.Error, source: Path, copies) -> CutoverError:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY")):
        code = errno.ENOSPC if name.startswith("SQLITE_FULL") else errno.EIO
        return copies.write_error(copies.first.fd, OSError(code, str(exc)))
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return source_failed(source, f"SQLite stopped reading it: {exc}")
    return classify_sqlite_error(exc, source)


INVESTIGATE = "Investigate the source (sqlite3's .recover may save what is left)."


def source_failed(source: Path, problem: str) -> BackupError:
    return source_damaged(str(source), problem, INVESTIGATE)


# --- what the backup catalogue asks of a SQLite copy ----------------------------------


def size_with_wal(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def source_record(path: Path) -> tuple[str, str]:
    return str(Path(os.path.abspath(path))), os.path.realpath(path)


def is_source_of(path: Path, source: str, source_realpath: str | None) -> bool:
    """Compared by path and by real path, never by file name. A manifest written before the
    real path was recorded is judged by its source path (resolved now)."""
    here = {os.path.abspath(path), os.path.realpath(path)}
    recorded = {source, source_realpath or os.path.realpath(source)}
    return bool(here & recorded)


def backup_facts(source: Path, taken: SnapshotTaken, copy_path: Path) -> dict:
    """Described from the copy itself: what the source held at the snapshot's moment."""
    try:
        snapshot = inspect_database(copy_path, deep=False)
    except CutoverError as exc:
        raise source_failed(source, exc.message) from None
    return {
        "schema_fingerprint": snapshot.schema.fingerprint(),
        "row_counts": snapshot.row_counts(),
        "sqlite_version": SQLITE_VERSION,
        "journal_mode": taken.journal_mode,
        "page_size": snapshot.facts.page_size,
        "page_count": snapshot.facts.page_count,
    }
