"""A schema scratch: a private, empty SQLite database in memory, to try DDL on.

Reconciliation builds its copy of a target's schema on one and runs the plan there; prep
tries its statements on one; deciding whether an ADD COLUMN is already applied reads
the planned column back from one. In memory, it costs a fraction of a millisecond,
never touches a file, and is gone when closed.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager


@contextmanager
def empty_database() -> Iterator[sqlite3.Connection]:
    """An empty in-memory database, in autocommit mode (each statement stands alone)."""
    with closing(sqlite3.connect(":memory:", isolation_level=None)) as connection:
        yield connection
