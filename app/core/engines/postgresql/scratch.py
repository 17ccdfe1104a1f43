"""Scratch databases: private databases on the target's server, always dropped afterwards.

A rehearsal runs on one, a backup is verified by restoring into one. Each is named
`cutover_scratch_<host>_<pid>_<random>`: a scratch database whose creating process is gone
(killed mid-rehearsal, a power cut) is found by that name and dropped the next time Cutover
makes one on the same server, so none is ever left behind for long.
"""
from __future__ import annotations

import os
import re
import secrets
import socket
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from psycopg import errors as pg_errors
from psycopg import sql

from app.core.engines.postgresql.connections import connect
from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import CutoverError, said_by
from app.core.fsutil import process_alive

PREFIX = "cutover_scratch_"
_NAME = re.compile(PREFIX + r"([0-9a-f]{8})_(\d+)_[0-9a-f]+$")
MAINTENANCE_DATABASE = "postgres"


class ScratchRefused(CutoverError):
    """A scratch database could not be made; nothing was changed on the target."""

    code = "scratch_refused"
    http_status = 409


def _host_tag() -> str:
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def scratch_name() -> str:
    return f"{PREFIX}{_host_tag()}_{os.getpid()}_{secrets.token_hex(4)}"


@contextmanager
def scratch_database(location: PostgresLocation, *, template: str | None = None) -> Iterator[str]:
    """A new empty database (or a copy of `template`) on the target's server, dropped on the way out."""
    name = scratch_name()
    with connect(location.on_database(MAINTENANCE_DATABASE)) as admin:
        drop_abandoned(admin)
        _create(admin, location, name, template)
    try:
        yield name
    finally:
        with connect(location.on_database(MAINTENANCE_DATABASE)) as admin:
            drop(admin, name)


def _create(admin, location: PostgresLocation, name: str, template: str | None) -> None:
    # An empty scratch is made from template0: template1 may hold a site's own objects, which
    # a restore into it would then meet twice.
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(template or "template0"))
    try:
        admin.execute(statement)
    except pg_errors.InsufficientPrivilege:
        if template:
            raise ScratchRefused(f"only {template}'s owner or a superuser may copy it as a template",
                                 reason="not_owner") from None
        raise ScratchRefused(
            f"Cutover's user on {location.server} may not create databases, and needs a scratch "
            "database to rehearse on and to verify backups in: ALTER ROLE ... CREATEDB, or use "
            "another user. Nothing was changed.") from None
    except pg_errors.ObjectInUse as exc:
        raise ScratchRefused(
            f"{template} could not be copied: {said_by(exc)}.", reason="in_use") from None


def drop(admin, name: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def drop_abandoned(admin) -> list[str]:
    """Drop scratch databases that a process of this host made and did not live to drop."""
    rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                         (PREFIX + "%",)).fetchall()
    dropped = []
    for (name,) in rows:
        if _abandoned(name):
            drop(admin, name)
            dropped.append(name)
    return dropped


def _abandoned(name: str) -> bool:
    match = _NAME.match(name)
    if match is None or match.group(1) != _host_tag():
        return False  # another host's: only it can tell whether its maker still runs
    return not process_alive(int(match.group(2)))
