"""Read everything Cutover shows about a target: schema, facts, row counts, integrity.

How a target is read depends on its engine (engines/sqlite/introspection.py for SQLite).
"""
from __future__ import annotations

from app.core.engines import engine_for
from app.core.schema import Snapshot


def inspect_database(path, *, deep: bool = True, busy_timeout: float = 1.0) -> Snapshot:
    """Inspect the target at `path` without writing anything.

    Raises TargetUnavailable when it cannot be read; `deep` adds the whole-database checks.
    """
    return engine_for(path).snapshot(deep=deep, busy_timeout=busy_timeout)
