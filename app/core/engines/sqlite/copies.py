"""Consistent copies of a SQLite target: a private snapshot to rehearse a plan on, and the
backup API copy both it and a backup's snapshot (backup_copy.py) are made with.

The two snapshots stay two entry points because they differ where it matters: a rehearsal's
copy reads the target the way inspection does (immutable when nothing has it open, so no
-wal/-shm appears beside it; repeated if the file moved), all in one step; a backup holds a
read transaction with SQLite's locks (a byte copy in rollback-journal mode, the backup API
in steps with progress in WAL mode) and fans one copy out into several. What they share is
`backup_api_copy`.
"""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Callable

from app.core.engines.sqlite.files import read_consistently


def snapshot_database(source, destination, *, busy_timeout: float) -> None:
    """Copy `source` to a new file `destination` as one consistent moment.

    The online backup API with pages=-1 copies every page in one step under one read lock,
    from a read-only connection: the source is never written and a writer cannot leave
    the copy torn (read_consistently repeats the copy if the file changed meanwhile).
    """
    destination = Path(destination)
    read_consistently(Path(source), lambda connection: backup_api_copy(connection, destination),
                      busy_timeout=busy_timeout)


def backup_api_copy(connection: sqlite3.Connection, destination: Path, *, step_pages: int = -1,
                    progress: Callable[[int, int, int], None] | None = None,
                    private: bool = False) -> None:
    """Copy the database `connection` reads into the file `destination` with SQLite's online
    backup API; `connection` is only read.

    One moment: with step_pages=-1 every page is copied in one step under one read lock;
    in steps, the caller's read transaction must pin the moment. `progress` is SQLite's
    (status, remaining, total pages) callback. `private`: the copy is written with no
    journal and no fsync (nobody sees it until the caller fsyncs and publishes it) and
    left in rollback-journal mode, so that a reader creates no -wal/-shm beside it.
    """
    with closing(sqlite3.connect(destination, isolation_level=None)) as target:
        if private:
            target.execute("PRAGMA journal_mode = OFF")
            target.execute("PRAGMA synchronous = OFF")
        connection.backup(target, pages=step_pages, progress=progress)
        if private:
            # The source's WAL header would make every reader create -wal/-shm beside the copy.
            target.execute("PRAGMA journal_mode = DELETE").fetchone()
