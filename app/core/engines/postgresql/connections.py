"""Opening a connection to a PostgreSQL target, and what its refusals mean to an operator.

Every failure to connect becomes one TargetUnavailable naming the target (its password-free
URL), the server's own words and the fix; nothing has been sent to the database by then.
"""
from __future__ import annotations

import psycopg

from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import TargetUnavailable, said_by

CONNECT_TIMEOUT_SECONDS = 5


def connect(location: PostgresLocation, *, autocommit: bool = True,
            timeout: float = CONNECT_TIMEOUT_SECONDS) -> psycopg.Connection:
    """A connection as Cutover (application_name "cutover")."""
    arguments = location.connect_arguments()
    try:
        return psycopg.connect(**arguments, autocommit=autocommit,
                               connect_timeout=max(1, round(timeout)))
    except psycopg.Error as exc:
        raise unavailable(location, exc) from exc


# (words in the server's or libpq's message, reason, what to do) — first match wins.
_CONNECT_PROBLEMS = (
    ("password authentication failed", "wrong_password",
     "Check the password: Cutover takes it from the variable named by password_env, else from "
     "PGPASSWORD, ~/.pgpass or PGSERVICE."),
    ("no password supplied", "no_password",
     'The server asks for a password and none was given: set password_env = "VAR" on this '
     "environment and export VAR, or use PGPASSWORD, ~/.pgpass or PGSERVICE."),
    ("does not exist", "missing",
     "Check the user and database names in the URL, or create what is missing "
     "(createdb / CREATE ROLE) on that server."),
    ("connection refused", "unreachable",
     "Is the server running, and listening on that host and port? Check the URL's host and port."),
    ("timeout expired", "unreachable",
     "The server did not answer in time: check the host, the port and any firewall in between."),
    ("could not translate host name", "unreachable", "Check the host name in the URL."),
    ("no pg_hba.conf entry", "refused",
     "The server's pg_hba.conf does not let this user in from here: ask its administrator."),
    ("permission denied", "permission",
     "The user lacks a right Cutover needs here: grant it (CONNECT on the database) or use another user."),
)


def unavailable(location: PostgresLocation, exc: Exception) -> TargetUnavailable:
    said = _first_line(exc)
    reason, fix = next(
        ((reason, fix) for words, reason, fix in _CONNECT_PROBLEMS if words in said.lower()),
        ("error", "Check the URL and that the server is up."),
    )
    return TargetUnavailable(
        f"Cannot connect to {location.label}: {said}. {fix}", path=location.label, reason=reason,
    )


def _first_line(exc: Exception) -> str:
    # libpq prefixes "connection failed: connection to server at ... failed: "; keep its last words.
    return said_by(exc).rsplit("failed: ", 1)[-1].rstrip(".")
