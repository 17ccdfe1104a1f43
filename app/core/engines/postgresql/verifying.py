"""Whole-database checks of a PostgreSQL target, as verification and the health page run them.

The server checks every page it reads (and every constraint as rows change), so there is no
PRAGMA integrity_check to run. What can still be wrong: an index left INVALID by a failed
CREATE INDEX CONCURRENTLY, a constraint added NOT VALID and never validated, and corruption
the server only meets when it reads an index or table page, which `amcheck` finds where the
extension is installed (bt_index_check on every B-tree index: an AccessShareLock, nothing
blocked). Without amcheck the check says so instead of claiming more than it did.
"""
from __future__ import annotations

from contextlib import contextmanager

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from app.core.errors import said_by

_BTREE_INDEXES = """
SELECT c.oid, n.nspname || '.' || c.relname
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = c.relam
WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND n.nspname = ANY(%s)
  AND c.relpersistence <> 't'
ORDER BY 2"""
_INVALID = """
SELECT n.nspname || '.' || c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid AND n.nspname = ANY(%s) ORDER BY 1"""
_UNVALIDATED = """
SELECT n.nspname || '.' || r.relname || ' ' || c.conname FROM pg_constraint c
JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
WHERE NOT c.convalidated AND n.nspname = ANY(%s) ORDER BY 1"""


def has_amcheck(connection) -> bool:
    return connection.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'amcheck')").fetchone()[0]


def integrity_problems(connection, schemas, limit: int) -> list[str]:
    """['ok'] or up to `limit` problems: invalid indexes, unvalidated constraints, amcheck's findings."""
    schemas = list(schemas)
    problems = [f"index {name} is INVALID (a failed CREATE INDEX CONCURRENTLY?): the server does not use it; "
                "drop it and build it again" for (name,) in connection.execute(_INVALID, (schemas,))]
    problems += [f"constraint {name} is NOT VALID: rows that were there when it was added were never checked; "
                 "VALIDATE CONSTRAINT it" for (name,) in connection.execute(_UNVALIDATED, (schemas,))]
    if has_amcheck(connection):
        for oid, name in connection.execute(_BTREE_INDEXES, (schemas,)).fetchall():
            if len(problems) >= limit:
                break
            problem = _checked_index(connection, oid, name)
            if problem:
                problems.append(problem)
    return problems[:limit] or ["ok"]


def _checked_index(connection, oid: int, name: str) -> str | None:
    try:
        with connection.transaction():
            connection.execute("SELECT bt_index_check(%s::regclass)", (oid,))
    except pg_errors.QueryCanceled:
        raise  # the check's time limit: the caller reports it as timed out
    except psycopg.Error as exc:
        return f"index {name}: amcheck: {said_by(exc)}"
    return None


def integrity_scope(connection, schemas) -> str:
    """What the integrity check covered, in words."""
    if not has_amcheck(connection):
        return ("amcheck is not installed in this database, so index pages were not checked (the server "
                "checks each page as it reads it): CREATE EXTENSION amcheck, as a superuser, to have them checked")
    count = len(connection.execute(_BTREE_INDEXES, (list(schemas),)).fetchall())
    return f"amcheck: bt_index_check on {count:,} B-tree index{'es' if count != 1 else ''}"


@contextmanager
def read_only_here(connection):
    """Inside the read transaction the caller opened: make sure it cannot write."""
    if connection.info.transaction_status == TransactionStatus.IDLE:
        connection.execute("BEGIN READ ONLY")
        try:
            yield connection
        finally:
            connection.execute("ROLLBACK")
        return
    if connection.execute("SELECT current_setting('transaction_read_only')").fetchone()[0] != "on":
        raise RuntimeError("an assertion must run in a read-only transaction")
    yield connection


@contextmanager
def rolled_back(connection):
    """A transaction that is always rolled back: the smoke test's writes are never kept."""
    connection.execute("BEGIN")
    try:
        yield connection
    finally:
        connection.execute("ROLLBACK")
