"""Putting a restored database in place of the target: two renames in one transaction.

A restore never writes into the target itself. The backup is restored into a new database
beside it; only once that copy has verified are the names swapped, in one transaction, so the
target is at every moment either entirely the old database or entirely the restored one. The old
database keeps living under a name of its own until the caller drops it. PostgreSQL refuses to
rename a database anyone is connected to: if the application connects at the last moment, the
swap rolls back and names it.
"""
from __future__ import annotations

from datetime import datetime, timezone

from psycopg import errors as pg_errors
from psycopg import sql

from app.core.engines.postgresql import sessions
from app.core.errors import RestoreRefused

_MAX_NAME = 63  # PostgreSQL's identifier length (NAMEDATALEN - 1)


def replaced_name(target: str, moment: datetime | None = None) -> str:
    stamp = (moment or datetime.now(timezone.utc)).strftime("%Y%m%d%H%M%S")
    suffix = f"_replaced_{stamp}"
    return target[: _MAX_NAME - len(suffix)] + suffix


def swap_in(admin, target: str, replacement: str) -> str:
    """Rename `target` away and `replacement` to `target`, atomically; the old database's new name.

    `admin` is a connection to another database of the same server (neither of these two).
    """
    old_name = replaced_name(target)
    try:
        with admin.transaction():
            admin.execute(_rename(target, old_name))
            admin.execute(_rename(replacement, target))
    except pg_errors.ObjectInUse:
        raise RestoreRefused(
            f"The restore was not swapped in: {_who_is_connected(admin, target)} connected to "
            f"{target} at the last moment. {target} is unchanged; stop that session and restore again.",
            reason="in_use") from None
    return old_name


def _rename(old: str, new: str):
    return sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new))


def _who_is_connected(admin, database: str) -> str:
    rows = admin.execute(
        sessions.SESSION_COLUMNS + " WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchall()
    described = [sessions.session_from_row(row).describe() for row in rows]
    return "; ".join(described) or "a session"
