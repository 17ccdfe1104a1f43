"""Consistent copies of a SQLite target: a private snapshot to rehearse a plan on."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from app.core.engines.sqlite.files import read_consistently


def snapshot_database(source, destination, *, busy_timeout: float) -> None:
    """Copy `source` to a new file `destination` as one consistent moment.

    The online backup API with pages=-1 copies every page in one step under one read lock,
    from a read-only connection: the source is never written and a writer cannot leave
    the copy torn (read_consistently repeats the copy if the file changed meanwhile).
    """
    destination = Path(destination)

    def copy(connection: sqlite3.Connection) -> None:
        with closing(sqlite3.connect(destination)) as target:
            connection.backup(target, pages=-1)

    read_consistently(Path(source), copy, busy_timeout=busy_timeout)
