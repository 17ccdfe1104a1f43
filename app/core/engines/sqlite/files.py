"""Opening a target database strictly read-only, and saying plainly why it cannot be.

A target is somebody's production data. Before SQLite touches the file we look at it
ourselves (exists? a file? readable? a SQLite header? complete?), because SQLite's own
messages ("unable to open database file", "file is not a database") do not tell an
operator what to do, and because a bad path must never turn into a newly created file.

Nothing here writes: no file is created, no byte and no mtime changes, whatever the input.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar
from urllib.request import pathname2url

from app.core.engines.sqlite.stamps import file_signature
from app.core.errors import TargetUnavailable

SQLITE_MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100
# A read that overlapped a writer (see read_consistently) is retried this many times.
CONSISTENT_READ_ATTEMPTS = 3

T = TypeVar("T")


@dataclass(frozen=True)
class FileHeader:
    """What the 100-byte database header says about the file."""

    page_size: int
    page_count: int | None  # None when the header's count is not marked valid
    wal: bool  # the database is in WAL mode


def open_readonly(path, *, busy_timeout: float = 1.0, never_immutable: bool = False) -> sqlite3.Connection:
    """Open `path` read-only after checking it is a complete SQLite file.

    Raises TargetUnavailable with `reason` one of: missing, is_directory, unreadable,
    empty, not_sqlite, truncated, corrupt, locked, needs_recovery.

    A WAL-mode database whose -wal and -shm files are absent (no connection has it
    open) is opened `immutable=1`, because a read-only connection would otherwise
    create those two files. Such a connection does not see a writer that starts later;
    use `read_consistently` for reads that must be consistent. (When only one of the two
    exists, e.g. a -wal copied without its -shm, SQLite recreates the other: the -wal
    holds committed rows, and ignoring it would show stale data.)

    `never_immutable` takes SQLite's locks whatever the mode, for a read that must hold
    writers off (a backup's snapshot): in WAL mode it creates the -wal/-shm files if they
    are missing, exactly as the application's own connections would; the database file
    is not written.
    """
    path = Path(path)
    header = check_file(path)
    return _connect(path, not never_immutable and _needs_immutable(path, header), busy_timeout)


def read_consistently(
    path, read: Callable[[sqlite3.Connection], T], *, busy_timeout: float = 1.0
) -> T:
    """Call `read(connection)` on a read-only connection and return its result.

    SQLite's locks keep the read consistent, except for an `immutable` read (see
    open_readonly), which takes no locks: if the file changed while we read it, the
    result may mix two states, so it is thrown away and the read repeated.
    """
    path = Path(path)
    for _ in range(CONSISTENT_READ_ATTEMPTS):
        before = file_signature(path)
        header = check_file(path)
        immutable = _needs_immutable(path, header)
        with closing(_connect(path, immutable, busy_timeout)) as connection:
            result = read(connection)
        if not immutable or file_signature(path) == before:
            return result
    raise TargetUnavailable(
        f"{path} kept changing while it was being read: another program is writing to it. "
        "Try again when the application is idle (or stopped).",
        path=str(path),
        reason="locked",
    )


def check_file(path: Path) -> FileHeader:
    """Classify what is wrong with `path` without opening it through SQLite."""
    info = _stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise _unavailable(
            path,
            "is_directory",
            f"{path} is a directory, not a database file. "
            "Point the configuration at the database file itself.",
        )
    if not stat.S_ISREG(info.st_mode):
        raise _unavailable(
            path,
            "not_sqlite",
            f"{path} is not a regular file (it is a device, pipe or socket), so it cannot "
            "be a SQLite database. Check the configured path.",
        )
    if info.st_size == 0:
        raise _unavailable(
            path,
            "empty",
            f"{path}: the file is empty (0 bytes), so it holds no database yet. Check the "
            "path; if the application has never run, start it once, otherwise restore "
            "the database from a backup.",
        )
    header = _parse_header(path, _read_header(path))
    _check_complete(path, header, info.st_size)
    return header


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        message = f"{path} does not exist. Check the configured path (nothing was created there)."
        raise _unavailable(path, "missing", message) from None
    except PermissionError as exc:
        raise _unreadable(path, exc) from None


def _read_header(path: Path) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(HEADER_SIZE)
    except PermissionError as exc:
        raise _unreadable(path, exc) from None
    except OSError as exc:
        message = f"{path} cannot be read ({exc.strerror}). Check the disk and the file."
        raise _unavailable(path, "unreadable", message) from None


def _unreadable(path: Path, exc: OSError) -> TargetUnavailable:
    return _unavailable(
        path,
        "unreadable",
        f"{path} cannot be read by this process ({exc.strerror}). Give the user running "
        "Cutover read access to the file and search (x) access to every folder above it.",
    )


def _parse_header(path: Path, raw: bytes) -> FileHeader:
    if not raw.startswith(SQLITE_MAGIC[: len(raw)]):
        raise _not_sqlite(path)
    if len(raw) < HEADER_SIZE:
        raise _truncated(path, "is shorter than the 100-byte SQLite header")
    page_size = int.from_bytes(raw[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        message = f"{path} has a damaged header (page size {page_size}). Restore it from a backup."
        raise _unavailable(path, "corrupt", message)
    # The header's page count is only trustworthy when its "version valid for" field
    # matches the change counter (https://www.sqlite.org/fileformat.html#in_header_database_size).
    page_count = int.from_bytes(raw[28:32], "big")
    trusted = page_count > 0 and raw[24:28] == raw[92:96]
    return FileHeader(page_size, page_count if trusted else None, wal=2 in (raw[18], raw[19]))


def _not_sqlite(path: Path) -> TargetUnavailable:
    return _unavailable(
        path,
        "not_sqlite",
        f"{path} is not a SQLite database: it does not start with the SQLite header. Check "
        "that the path names the database and not another file (an encrypted database "
        "cannot be read either).",
    )


def _truncated(path: Path, what: str) -> TargetUnavailable:
    return _unavailable(
        path,
        "truncated",
        f"{path} is truncated: it {what}. It was probably copied while being written, or "
        "the copy was cut short. Restore it from a backup or copy it again.",
    )


def _check_complete(path: Path, header: FileHeader, size: int) -> None:
    # With a non-empty -wal file, pages may legitimately live there, so SQLite decides.
    if header.page_count is None or _nonempty(_sidecar(path, "-wal")):
        return
    expected = header.page_size * header.page_count
    if size < expected:
        pages = f"{header.page_count:,} pages of {header.page_size:,} bytes ({expected:,} bytes)"
        raise _truncated(path, f"has {size:,} bytes but its header describes {pages}")


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _needs_immutable(path: Path, header: FileHeader) -> bool:
    """A WAL database nobody has open: a plain read-only open would create -wal and -shm."""
    return header.wal and not _sidecar(path, "-wal").exists() and not _sidecar(path, "-shm").exists()


def sqlite_uri(path, mode: str, *, immutable: bool = False) -> str:
    """The one place a database path becomes an SQLite URI.

    The path is escaped, so a folder named with `?`, `#` or `%` still names this file, and
    `mode` (ro or rw) means SQLite never creates a file that is not there.
    """
    uri = f"file:{pathname2url(str(Path(path).absolute()))}?mode={mode}"
    return uri + "&immutable=1" if immutable else uri


def _connect(path: Path, immutable: bool, busy_timeout: float) -> sqlite3.Connection:
    uri = sqlite_uri(path, "ro", immutable=immutable)
    try:
        # isolation_level=None: callers run their own BEGIN ... ROLLBACK read transaction.
        connection = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise classify_sqlite_error(exc, path, busy_timeout=busy_timeout) from None
    try:
        connection.execute("PRAGMA query_only = 1")
        # Opening is lazy: reading the schema is what finds damage and locks.
        connection.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.Error as exc:
        connection.close()
        raise classify_sqlite_error(exc, path, busy_timeout=busy_timeout) from None
    return connection


_REASONS_BY_ERROR = {
    "SQLITE_BUSY": "locked",
    "SQLITE_LOCKED": "locked",
    "SQLITE_CORRUPT": "corrupt",
    "SQLITE_NOTADB": "corrupt",
    "SQLITE_CANTOPEN": "unreadable",
    "SQLITE_PERM": "unreadable",
    "SQLITE_AUTH": "unreadable",
    "SQLITE_IOERR": "unreadable",
    "SQLITE_READONLY": "needs_recovery",
}

# Completes "<path>: SQLite says "...", the database ..." with what it means and what to do.
_ADVICE = {
    "locked": (
        "is locked: another program is writing to it and held its lock for longer than we "
        "wait{wait}. Wait until it finishes (or stop the application) and try again."
    ),
    "corrupt": (
        "is damaged (corrupt). Do not migrate it: restore it from a backup (the sqlite3 "
        "command's .recover may save what is left)."
    ),
    "unreadable": (
        "could not be opened or read. Check permissions on the file and its folder, "
        "and the disk."
    ),
    "needs_recovery": (
        "has a journal left by a write that was interrupted, which a read-only connection "
        "may not repair. Open it once read-write (start the application, or run sqlite3 on "
        "it) so SQLite can recover it, then try again."
    ),
    "error": "could not be read; the SQLite message says why.",
}


def classify_sqlite_error(
    exc: sqlite3.Error, path, *, busy_timeout: float | None = None
) -> TargetUnavailable:
    """Turn an sqlite3 error raised while reading `path` into a TargetUnavailable."""
    reason = sqlite_error_reason(exc)
    wait = f" ({busy_timeout:g} s)" if busy_timeout is not None else ""
    message = f"{path}: SQLite says \"{exc}\"; the database " + _ADVICE[reason].format(wait=wait)
    return _unavailable(Path(path), reason, message)


def sqlite_error_reason(exc: sqlite3.Error) -> str:
    """One word for what went wrong: locked, corrupt, unreadable, needs_recovery or error."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    for prefix, reason in _REASONS_BY_ERROR.items():
        if name == prefix or name.startswith(prefix + "_"):
            return reason
    text = str(exc).lower()  # errors raised without a code (older paths) still say it
    if "locked" in text or "busy" in text:
        return "locked"
    if "malformed" in text or "not a database" in text:
        return "corrupt"
    return "error"


def _unavailable(path: Path, reason: str, message: str) -> TargetUnavailable:
    return TargetUnavailable(message, path=str(path), reason=reason)
