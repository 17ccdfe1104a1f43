"""Putting a verified PostgreSQL backup back in place of the target, all or nothing.

The target is never written into. The backup is restored (pg_restore --single-transaction)
into a new database beside it, made like the target (owner, encoding, locale, its grants and
settings), and checked against the manifest: exact row counts and schema fingerprint. Only
then do the two databases swap names, in one transaction (swap.py), and the old one, which
the caller's safety backup holds, is dropped. A process killed before the swap leaves the
target untouched and a scratch-named database that the next scratch sweep drops; killed
after it, the target is the restored database.
"""
from __future__ import annotations

from pathlib import Path

from psycopg import sql

from app.core.engines.postgresql import dumps, scratch, swap
from app.core.engines.postgresql.backups import EVERY_ROW, LOCK_TIMEOUT_MS, server_major
from app.core.engines.postgresql.catalog import read_catalog
from app.core.engines.postgresql.connections import connect
from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import RestoreRefused


def replace_with(location: PostgresLocation, copy_path: Path, fingerprint: str, row_counts: dict, say) -> None:
    """Restore `copy_path` beside the target, check it, swap it in and drop the old database."""
    major = server_major(location)
    maintenance = location.on_database(scratch.MAINTENANCE_DATABASE)
    name = scratch.scratch_name()
    with connect(maintenance) as admin:
        scratch.drop_abandoned(admin)
        _create_like_target(admin, location.database, name)
    try:
        dumps.restore(location, copy_path, name, server_major=major)
        _check(location.on_database(name), fingerprint, row_counts)
        say(f"Backup restored into {name} beside the target and checked against its manifest.")
        with connect(maintenance) as admin:
            old = swap.swap_in(admin, location.database, name)
    except BaseException:
        with connect(maintenance) as admin:
            scratch.drop(admin, name)
        raise
    say(f"{location.database} is now the restored database; dropping the replaced one ({old}).")
    with connect(maintenance) as admin:
        scratch.drop(admin, old)


def _create_like_target(admin, target: str, name: str) -> None:
    """A new, empty database with the target's owner, encoding, locale, grants and settings:
    pg_dump carries none of them (they belong to the database, not to what it holds)."""
    owner, encoding, collate, ctype = admin.execute(
        """SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype
           FROM pg_database WHERE datname = %s""", (target,)).fetchone()
    admin.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
        sql.Identifier(name), sql.Identifier(owner), sql.Literal(encoding), sql.Literal(collate), sql.Literal(ctype)))
    for privilege, grantee in admin.execute(
            """SELECT a.privilege_type, coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC')
               FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s""", (target,)).fetchall():
        grantee_sql = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
        admin.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}").format(sql.SQL(privilege), sql.Identifier(name), grantee_sql))
    for (setting,) in admin.execute(
            """SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
               WHERE d.datname = %s AND s.setrole = 0""", (target,)).fetchall():
        key, _, value = setting.partition("=")
        admin.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(sql.Identifier(name), sql.Identifier(key),
                                                                    sql.Literal(value)))


def _check(restored: PostgresLocation, fingerprint: str, row_counts: dict) -> None:
    with connect(restored) as connection:
        catalog = read_catalog(connection, schemas=restored.schemas, exact_count_below_rows=EVERY_ROW,
                               exact_count_below_pages=EVERY_ROW, lock_timeout_ms=LOCK_TIMEOUT_MS)
    if catalog.fingerprint() != fingerprint or catalog.row_counts() != row_counts:
        raise RestoreRefused(
            "The restored copy does not hold what its manifest says (row counts or schema differ): "
            "the target was not touched. Verify the backup again, or restore another one.",
            reason="replacement_differs")
