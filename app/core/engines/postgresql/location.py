"""Where a PostgreSQL target is: its URL (never with a password) and where the password comes from.

cutover.toml names a database as `url = "postgresql://user@host:port/db"`. Secrets never go in
that file: the password comes from the variable named by `password_env`, else from libpq's own
PGPASSWORD, ~/.pgpass or PGSERVICE, which psycopg reads itself. Everything Cutover shows
(pages, API, logs, reports, audit) is `label`: the URL without any password.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from app.core.errors import ConfigError

SCHEMES = ("postgresql", "postgres")
APPLICATION_NAME = "cutover"  # how Cutover's own sessions are told apart in pg_stat_activity


@dataclass(frozen=True)
class PostgresLocation:
    """Which database, which of its schemas, and how Cutover may connect and wait there."""

    url: str
    password_env: str | None = None
    schemas: tuple[str, ...] = ("public",)  # what Cutover inspects and compares
    # [migration] lock_timeout_seconds / statement_timeout_seconds: how long a migration's
    # statement may queue for a lock, and run; None = no limit.
    lock_timeout: float = 5.0
    statement_timeout: float | None = None

    def __post_init__(self):
        check_url(self.url)

    @property
    def label(self) -> str:
        return without_password(self.url)

    @property
    def database(self) -> str:
        return unquote(self._parts().path.lstrip("/"))

    @property
    def server(self) -> str:
        """host:port, as an operator would look for it."""
        parts = self._parts()
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"

    def _parts(self):
        return urlsplit(self.url)

    def on_database(self, database: str) -> PostgresLocation:
        """The same server, user and password, another database (a scratch copy)."""
        moved = urlunsplit(urlsplit(self.url)._replace(path="/" + quote(database)))
        return replace(self, url=moved)

    def connect_arguments(self, environ=os.environ) -> dict:
        """Keyword arguments for psycopg.connect: the URL plus the password, when one is named."""
        arguments = {"conninfo": self.url, "application_name": APPLICATION_NAME}
        if self.password_env:
            if self.password_env not in environ:
                raise ConfigError(
                    f"The password for {self.label} comes from the environment variable "
                    f"{self.password_env} (password_env), which is not set: export it before "
                    "starting Cutover."
                )
            arguments["password"] = environ[self.password_env]
        return arguments

    def sqlalchemy_address(self, environ=os.environ) -> tuple[str, dict[str, str]]:
        """The URL for SQLAlchemy's psycopg driver, and PGPASSWORD when password_env names one
        (libpq reads it; the URL stays free of secrets)."""
        url = urlunsplit(self._parts()._replace(scheme="postgresql+psycopg"))
        password = self.connect_arguments(environ).get("password")
        return url, ({"PGPASSWORD": password} if password is not None else {})

    def identity(self) -> tuple:
        """One database, however the URL spells it (host case, a default port left out)."""
        parts = self._parts()
        return ("postgresql", (parts.hostname or "localhost").lower(), parts.port or 5432, self.database)

    def __str__(self) -> str:
        return self.label


def check_url(url: str) -> None:
    """Refuse what is not a password-free postgresql:// URL naming a database."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(
            f"url = {without_password(url)!r} is not a PostgreSQL URL: write "
            "postgresql://user@host:port/database."
        )
    if parts.password is not None:
        raise ConfigError(
            f"url = {without_password(url)!r} carries a password: secrets never go in cutover.toml. "
            "Remove it from the URL and name an environment variable holding it with "
            'password_env = "VAR", or use PGPASSWORD, ~/.pgpass or PGSERVICE.'
        )
    if not parts.path.strip("/"):
        raise ConfigError(f"url = {url!r} names no database: end it with /DATABASE.")


def without_password(url: str) -> str:
    """The URL as it may be shown: any password replaced, nothing else changed."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))
