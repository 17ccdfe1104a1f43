"""A PostgreSQL target's backups: one pg_dump of one moment, proven by restoring it.

The snapshot: a REPEATABLE READ transaction of ours exports its snapshot, reads the schema
and counts every table exactly in it, and hands it to `pg_dump --snapshot`, so the dump and
the manifest's row counts and fingerprint describe the very same moment, while the
application keeps writing. The WAL position of that moment is recorded too (a point-in-time
recovery target).

A copy counts as verified only once it has been restored, all or nothing, into a scratch
database on the target's server and gives exactly those row counts and that schema
fingerprint; the scratch database is always dropped afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.core.engines.base import SnapshotTaken
from app.core.engines.postgresql import dumps, scratch
from app.core.engines.postgresql.catalog import Catalog, read_catalog, read_catalog_in_transaction
from app.core.engines.postgresql.connections import connect
from app.core.engines.postgresql.location import PostgresLocation
from app.core.engines.postgresql.tools import client_tool

PG_DUMP = "pg_dump"  # the one backup method: custom format, one consistent snapshot
EVERY_ROW = 2**62  # count every table exactly: a backup's ledger is never an estimate
LOCK_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class RestoredCopy:
    """What a restored backup copy holds, in the shape the backup catalogue compares."""

    schema: Catalog

    def row_counts(self) -> dict[str, int | None]:
        return self.schema.row_counts()


def server_major(location: PostgresLocation) -> int:
    with connect(location) as connection:
        return connection.info.server_version // 10000


def take_dump(location: PostgresLocation, copies, *, progress, log, complete, fan_out) -> SnapshotTaken:
    """pg_dump of one exported snapshot into the first partial copy, then hashed into the others."""
    first = copies.first.temporary
    with connect(location) as connection:
        major = connection.info.server_version // 10000
        tool = client_tool("pg_dump", major)  # refused before anything is read when too old
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            snapshot_id, position = connection.execute(
                "SELECT pg_export_snapshot(), pg_current_wal_lsn()::text").fetchone()
            catalog = read_catalog_in_transaction(
                connection, schemas=location.schemas, exact_count_below_rows=EVERY_ROW,
                exact_count_below_pages=EVERY_ROW, lock_timeout_ms=LOCK_TIMEOUT_MS)
            log(f"Snapshot {snapshot_id} at WAL {position}: {sum(c or 0 for c in catalog.row_counts().values()):,} "
                f"rows in {len(catalog.tables)} tables; pg_dump {tool.version} writes it.")
            dumps.dump(location, Path(first), server_major=major, snapshot=snapshot_id)
        finally:
            connection.execute("ROLLBACK")
    complete([first])
    size, sha256 = fan_out(copies, Path(first).stat().st_size, progress)
    complete([copy.temporary for copy in copies.copies[1:]])
    described = {
        "schema_fingerprint": catalog.fingerprint(),
        "row_counts": catalog.row_counts(),
        "engine_facts": {"server_version": catalog.facts.server_version, "pg_dump_version": tool.version,
                         "wal_lsn": position, "schemas": list(location.schemas)},
    }
    return SnapshotTaken(size, sha256, PG_DUMP, "", described=described, hashed_from_copy=True)


def check_archive(location: PostgresLocation, path) -> str:
    return dumps.archive_problem(location, Path(path), server_major=server_major(location))


def restored(location: PostgresLocation, path) -> RestoredCopy:
    """Restore the copy into a scratch database and read what it holds; the scratch is dropped."""
    major = server_major(location)
    with scratch.scratch_database(location) as name:
        dumps.restore(location, Path(path), name, server_major=major, scratch=True)
        with connect(location.on_database(name)) as connection:
            return RestoredCopy(read_catalog(connection, schemas=location.schemas, exact_count_below_rows=EVERY_ROW,
                                             exact_count_below_pages=EVERY_ROW, lock_timeout_ms=LOCK_TIMEOUT_MS))
