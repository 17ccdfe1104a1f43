"""pg_dump and pg_restore, run as Cutover runs them: the right client, no secret on a command line.

A dump is `pg_dump -Fc` (custom format: compressed, restorable selectively, one file) of one
consistent moment (pg_dump reads in one REPEATABLE READ transaction). The password reaches the
programs through their environment (PGPASSWORD), never their arguments, which any local user
can read in /proc; PGAPPNAME marks their sessions as Cutover's own.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from app.core.engines.postgresql.location import APPLICATION_NAME, PostgresLocation
from app.core.engines.postgresql.tools import client_tool
from app.core.errors import BackupError, CutoverError

_OUTPUT_KEPT = 4000  # characters of a failing program's stderr shown to the operator


def dump(location: PostgresLocation, destination: Path, *, server_major: int, snapshot: str | None = None,
         schema_only: bool = False) -> None:
    """Write the target's custom-format dump to `destination`; `snapshot` (pg_export_snapshot's)
    makes it describe exactly the moment a transaction of ours sees."""
    pg_dump = client_tool("pg_dump", server_major)
    _run([str(pg_dump.path), "--format=custom", "--no-password", f"--file={destination}",
          *([f"--snapshot={snapshot}"] if snapshot else []), *(["--schema-only"] if schema_only else []),
          f"--dbname={location.url}"], location, failure=lambda said: BackupError(
              f"pg_dump could not dump {location.label}: {said}. No backup was kept.",
              reason="dump_failed"))


def restore(location: PostgresLocation, dump_file: Path, database: str, *, server_major: int,
            scratch: bool = False) -> None:
    """Restore `dump_file` into the existing, empty `database` on the target's server.

    All or nothing (one transaction), unless `database` is a `scratch` one that is dropped
    whatever happens: then tables load and indexes build on several connections at once
    (about 30% faster at 1 GB on two cores), and a failure still stops the restore."""
    pg_restore = client_tool("pg_restore", server_major)
    how = [f"--jobs={restore_jobs()}"] if scratch else ["--single-transaction"]
    _run([str(pg_restore.path), *how, "--exit-on-error", "--no-password",
          f"--dbname={location.on_database(database).url}", str(dump_file)], location,
         failure=lambda said: CutoverError(f"pg_restore could not restore {dump_file.name} into "
                                           f"{database}: {said}", reason="restore_failed"))


def restore_jobs() -> int:
    """One pg_restore connection per core, at most four: the server does the work on the same machine or
    another, and more connections than that mostly wait for the biggest table."""
    return max(1, min(4, os.cpu_count() or 1))


def _run(command: list[str], location: PostgresLocation, *, failure) -> None:
    finished = subprocess.run(command, capture_output=True, text=True, env=_environment(location))
    if finished.returncode != 0:
        said = (finished.stderr.strip() or f"exit status {finished.returncode}")[-_OUTPUT_KEPT:]
        raise failure(said)


def _environment(location: PostgresLocation) -> dict[str, str]:
    environment = {**os.environ, "PGAPPNAME": APPLICATION_NAME, "LC_ALL": "C"}
    password = location.connect_arguments().get("password")
    if password is not None:
        environment["PGPASSWORD"] = password
    return environment


def archive_problem(location: PostgresLocation, dump_file: Path, *, server_major: int) -> str:
    """'ok' when pg_restore can read the archive's table of contents, else what it said."""
    pg_restore = client_tool("pg_restore", server_major)
    finished = subprocess.run([str(pg_restore.path), "--list", str(dump_file)], capture_output=True,
                              text=True, env=_environment(location))
    if finished.returncode == 0:
        return "ok"
    return (finished.stderr.strip() or f"exit status {finished.returncode}").splitlines()[0]
