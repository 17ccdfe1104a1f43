"""Private copies of a PostgreSQL target to try a plan on: the rehearsal's, and the preview's.

A rehearsal runs the plan on a copy of the real data in a scratch database on the target's
server. When nobody is connected to the target, the server copies it file by file (CREATE
DATABASE ... TEMPLATE, as `createdb -T` does): the fastest copy there is. PostgreSQL refuses
that while any session is connected (or when Cutover's user does not own the target), so
then the copy is a pg_dump restored into an empty scratch database. The preview's copy holds
the schema alone. Either is dropped on the way out, whatever happens (scratch.py).
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from app.core.engines.postgresql import dumps, scratch
from app.core.engines.postgresql.connections import connect
from app.core.engines.postgresql.location import PostgresLocation


def server_major(location: PostgresLocation) -> int:
    with connect(location) as connection:
        return connection.info.server_version // 10000


@contextmanager
def data_copy(location: PostgresLocation, *, workdir=None,
              say: Callable[[str], None] = lambda text: None) -> Iterator[PostgresLocation]:
    """A scratch database holding the target's schema and rows, dropped on exit."""
    with ExitStack() as stack:
        try:
            name = stack.enter_context(scratch.scratch_database(location, template=location.database))
        except scratch.ScratchRefused as refused:
            say(f"the server cannot copy it as a template ({refused.message}); dumping and restoring it instead")
        else:
            say(f"copied by the server (CREATE DATABASE ... TEMPLATE {location.database})")
            yield location.on_database(name)
            return
    with _dumped(location, workdir=workdir, schema_only=False) as copy:
        yield copy


@contextmanager
def schema_copy(location: PostgresLocation, *, workdir=None) -> Iterator[PostgresLocation]:
    """A scratch database holding the target's schema and no rows, dropped on exit."""
    with _dumped(location, workdir=workdir, schema_only=True) as copy:
        yield copy


@contextmanager
def _dumped(location: PostgresLocation, *, workdir, schema_only: bool) -> Iterator[PostgresLocation]:
    major = server_major(location)
    with tempfile.TemporaryDirectory(prefix="cutover-pg-copy-", dir=workdir) as folder:
        archive = Path(folder) / "copy.dump"
        dumps.dump(location, archive, server_major=major, schema_only=schema_only)
        with scratch.scratch_database(location) as name:
            dumps.restore(location, archive, name, server_major=major, scratch=not schema_only)
            yield location.on_database(name)
