"""Has a PostgreSQL target changed since a stamp? Told by the server's write-ahead log position.

Every change to any database of a server moves `pg_current_wal_lsn()`; nothing else writes
there but housekeeping. So an unchanged position proves the database unchanged, and a moved
one is treated as changed, which errs on the side of safety: a cached page is re-read, a
"nothing changed since the backup" is not granted. The database's OID goes with it, so a
database dropped and re-created under the same name never matches an old stamp.
"""
from __future__ import annotations

import psycopg

from app.core.engines.postgresql.connections import connect
from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import TargetUnavailable


def stamp_of(location: PostgresLocation) -> list:
    """["postgresql", database oid, WAL position], or ["unavailable", reason] when unreachable."""
    try:
        with connect(location) as connection:
            oid, position = connection.execute(
                "SELECT oid, pg_current_wal_lsn()::text FROM pg_database WHERE datname = current_database()"
            ).fetchone()
    except (TargetUnavailable, psycopg.Error) as exc:
        return ["unavailable", getattr(exc, "reason", type(exc).__name__)]
    return ["postgresql", oid, position]
