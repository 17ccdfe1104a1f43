"""Putting a restored SQLite file in place: the side files it leaves, folding them in, WAL back on."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from app.core.engines.base import TargetInUse
from app.core.engines.sqlite.files import sqlite_uri

SIDE_FILES = ("-wal", "-shm", "-journal")
SAFETY_SIDE_FILES = ("", "-wal", "-journal")  # -shm is an index SQLite rebuilds


def set_journal_mode(path, mode: str) -> str:
    """Switch a file of ours (a backup is stored with a rollback header) to `mode` (e.g. WAL);
    the mode SQLite reports."""
    if mode.lower() not in ("wal", "delete", "truncate", "persist", "memory", "off"):
        raise ValueError(f"not a journal mode: {mode!r}")
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        return connection.execute(f"PRAGMA journal_mode = {mode.upper()}").fetchone()[0]


def fold_side_files(target: Path, busy_timeout: float) -> str | None:
    """Let SQLite fold a hot journal or the -wal into the main file, so it stands alone.

    Raises TargetInUse when a connection keeps it busy; returns SQLite's message when the
    file cannot be opened at all (a damaged database cannot be settled), else None."""
    uri = sqlite_uri(target, "rw")
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)) as db:
            db.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # rolls back a hot journal
            if db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if busy:
                    raise sqlite3.OperationalError("database is locked")
    except sqlite3.Error as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise TargetInUse(str(exc)) from None
        return str(exc)
    return None
