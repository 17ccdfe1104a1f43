"""Building a new SQLite file from nothing (the demo workspace's databases).

The file is built under a temporary name next to where it belongs, so an interrupted build
never leaves a half-built database under the real name; the caller renames it into place
(`os.replace`) once everything that goes with it is ready.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

Connection = sqlite3.Connection  # what a builder is handed: autocommit, transactions its own
_DATABASE_FILES = ("", "-journal", "-wal", "-shm")


def build_database_file(final_path: Path, build: Callable[[Connection], None], *,
                        foreign_keys: bool) -> Path:
    """Build a database under a temporary name next to `final_path`; return that name."""
    temp_path = final_path.with_name(f".{final_path.name}.partial")
    remove_database_files(temp_path)  # left over from an interrupted build
    try:
        with closing(sqlite3.connect(temp_path, isolation_level=None)) as connection:
            connection.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
            build(connection)
    except BaseException:
        remove_database_files(temp_path)
        raise
    return temp_path


def remove_database_files(path: Path) -> None:
    """Delete a database file and whatever SQLite kept beside it."""
    for suffix in _DATABASE_FILES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
