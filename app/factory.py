"""Application factory: extensions, the workspace, security hooks, blueprints, CLI, error pages,
and the job kinds joined to the runner."""
from __future__ import annotations

import os
import re
import secrets
from contextlib import contextmanager
from pathlib import Path

from flask import Flask, Request
from sqlalchemy import event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.routing import IntegerConverter, ValidationError

from app.core.errors import said_by
from app.extensions import csrf, db, login_manager
from app.state_schema import StateDatabaseUnavailable
from config import Config, check_numeric_settings

PROJECT_DIR = Path(__file__).resolve().parent.parent


class DatabaseId(IntegerConverter):
    """`<int:...>` in every route: an id SQLite can hold (a signed 64-bit integer). A larger
    one names no row, so the route answers 404 instead of the driver's OverflowError (a 500);
    only ASCII digits, and never thousands of them handed to int()."""

    regex = r"[0-9]+"
    LARGEST = 2 ** 63 - 1

    def to_python(self, value: str) -> int:
        if len(value) > len(str(self.LARGEST)) or int(value) > self.LARGEST:
            raise ValidationError()
        return super().to_python(value)


def database_int(value: str) -> int:
    """int() of a request value, refused (ValueError) beyond what SQLite can hold."""
    if not value.isascii() or not value.lstrip("-").isdigit() or len(value.lstrip("-")) > len(str(DatabaseId.LARGEST)):
        raise ValueError(value)
    number = int(value)
    if not -DatabaseId.LARGEST <= number <= DatabaseId.LARGEST:
        raise ValueError(value)
    return number


class RequestValues(ImmutableMultiDict):
    """Query and form values: `get(..., type=int)` gives the default for a number beyond 64
    bits, as for any other value that is not a number (it would overflow every query)."""

    def get(self, key, default=None, type=None):
        return super().get(key, default, database_int if type is int else type)


class CutoverRequest(Request):
    parameter_storage_class = RequestValues


def create_app(config_class: type = Config, overrides: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        template_folder=str(PROJECT_DIR / "templates"),
        static_folder=str(PROJECT_DIR / "static"),
    )
    app.request_class = CutoverRequest
    app.url_map.converters["int"] = DatabaseId  # before any route is added: every id route uses it
    app.config.from_object(config_class)
    app.config.update(overrides or {})
    check_numeric_settings(app.config)
    # Flask's own names for the one checked limit.
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_FORM_MEMORY_SIZE"] = app.config["CUTOVER_MAX_REQUEST_BYTES"]
    instance_dir = _absolute_instance_dir(app)
    instance_dir.mkdir(parents=True, exist_ok=True)
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or _stored_secret_key(instance_dir)

    _prepare_state_database_url(app)
    db.init_app(app)
    from app.models import serialise_log_lines

    with app.app_context():
        _tune_state_database(app)
        serialise_log_lines(db.engine)
        _open_state_database(app)
    login_manager.init_app(app)
    csrf.init_app(app)

    from app import auth_setup, cli, security, targets
    from app.web import register_blueprints
    from app.web.errors import register_error_handlers

    targets.init_app(app)
    security.init_app(app)
    register_blueprints(app)
    register_error_handlers(app)
    cli.init_app(app)
    _join_job_kinds()
    with app.app_context(), _state_database_errors(app):
        _migrate_state_database(app)
        auth_setup.ensure_first_operator(app)
        if not app.config.get("CUTOVER_IS_WORKER"):
            from app.checklist.progress import settle_open_runs
            from app.jobs.runner import reconcile_jobs

            reconcile_jobs()
            settle_open_runs(app.extensions["cutover.targets"])
    return app


def _migrate_state_database(app: Flask) -> None:
    """The dashboard's schema, brought to this version's revisions before anything reads it; one
    process at a time (the others find it done). `flask --app run db ...` is a developer's tool for
    writing the next revision (see docs/ARCHITECTURE.md)."""
    from flask_migrate import Migrate

    from app.models import current_workspace, schema_lock
    from app.state_schema import MIGRATIONS, StateSchemaError, migrate_state_database

    migrations = app.config.get("STATE_MIGRATIONS", MIGRATIONS)
    Migrate(app, db, directory=str(migrations))
    where = str(_state_database_file() or _shown(db.engine.url))
    try:
        with schema_lock(db.engine):
            # What this start applied (revision ids; "adopted" for an earlier version's tables).
            app.extensions["cutover.state_schema"] = migrate_state_database(
                db.engine, current_workspace() or "", where, migrations)
    except StateSchemaError:
        db.engine.dispose()  # start-up ends here: no pooled connection outlives the app
        raise


def _join_job_kinds() -> None:
    """The runner and the monitor name no job kind and no checklist: what a job does, and who
    hears that a job or a monitoring window ended, is joined here, above them all."""
    from app.actions import monitoring, tasks
    from app.checklist import progress, steps
    from app.jobs import registry

    registry.register_tasks(tasks.TASKS)
    registry.register_steps(steps.STEP_TASKS)
    registry.when_a_job_ends(progress.settle_after_job)
    monitoring.when_a_window_ends(progress.settle_after_window)


def _absolute_instance_dir(app: Flask) -> Path:
    """The instance folder, made absolute once against the current directory: the secret key,
    the audit files, job workers (started elsewhere) and a relative state database URL (which
    Flask-SQLAlchemy resolves in app.instance_path) then all use one folder."""
    instance_dir = Path(app.config["INSTANCE_DIR"]).absolute()
    app.config["INSTANCE_DIR"] = instance_dir
    app.instance_path = str(instance_dir)
    return instance_dir


SUPPORTED_STATE_URLS = "sqlite:////path/to/cutover.db or postgresql+psycopg://user@host:port/database"
# What a PostgreSQL state database connection carries unless its URL says otherwise.
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10


def _prepare_state_database_url(app: Flask) -> None:
    """Refuse a state database URL SQLAlchemy cannot use (one line, before any engine exists),
    and give a PostgreSQL one a connect timeout, a name the server shows (application_name)
    and a check of pooled connections (a server restart must not fail the next page)."""
    url = _state_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        return
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS, "application_name": "cutover"}
    connect_args = {key: value for key, value in connect_args.items() if key not in url.query}
    options["connect_args"] = {**connect_args, **options.get("connect_args", {})}
    options.setdefault("pool_pre_ping", True)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def _state_database_url(value) -> URL:
    what = f"The dashboard's database URL {_without_password(str(value))}"
    fix = f"Set CUTOVER_STATE_DATABASE_URL to {SUPPORTED_STATE_URLS}."
    try:
        url = make_url(value)
        dialect = url.get_dialect()
    except (ArgumentError, ValueError) as exc:  # NoSuchModuleError is an ArgumentError
        raise StateDatabaseUnavailable(f"{what} is not one Cutover can use ({said_by(exc)}). {fix}",
                                       path=_without_password(str(value)), reason="bad_url") from None
    if url.get_backend_name() == "postgresql" and url.get_driver_name() != "psycopg":
        raise StateDatabaseUnavailable(
            f"{what} names the driver {url.get_driver_name()}, which Cutover does not install: write "
            "postgresql+psycopg://... (psycopg 3).", path=_shown(url), reason="bad_url")
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise StateDatabaseUnavailable(f"{what} needs a driver that is not installed ({exc}). {fix}",
                                       path=_shown(url), reason="bad_url") from None
    return url


def _without_password(text: str) -> str:
    """A URL as it may be shown: a password in it (user:password@) becomes ***."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", text)


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _state_database_file() -> Path | None:
    """The path of the dashboard's SQLite file; None for another database or an in-memory one."""
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or url.database.startswith("file:"):
        return None
    return Path(url.database)


def _tune_state_database(app: Flask) -> None:
    """WAL lets job processes write log lines while the server reads them; waits instead of failing."""
    if _state_database_file() is None:
        return
    busy_ms = int(app.config["STATE_BUSY_TIMEOUT"] * 1000)

    @event.listens_for(db.engine, "connect")
    def set_pragmas(connection, _record):
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()


def _open_state_database(app: Flask) -> None:
    """Look at the dashboard's database before SQLite does, then open it once.

    A missing folder is not created (a typo or an unmounted disk would silently start an
    empty dashboard, without its runs and audit log), a file that is not SQLite is never
    overwritten, and a database another process keeps locked is waited for (STATE_BUSY_TIMEOUT)
    and then reported, naming the process when /proc shows it. Each ends start-up with one
    message (StateDatabaseUnavailable, exit code 2)."""
    if db.engine.dialect.name == "postgresql":
        with _state_database_errors(app), db.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1").scalar()
        return
    path = _state_database_file()
    if path is None:
        return
    _check_state_database_file(path)
    with _state_database_errors(app):
        with db.engine.connect() as connection:
            connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()


def _check_state_database_file(path: Path) -> None:
    what = f"The dashboard's database {path}"
    fix = "Fix it, or set CUTOVER_STATE_DATABASE_URL to another database file."
    folder = path.parent
    if not folder.exists():
        raise StateDatabaseUnavailable(
            f"{what} cannot be opened: its folder {folder} does not exist. Create the folder (Cutover does not, "
            "so that a mistyped path or an unmounted disk does not start an empty dashboard without its runs and "
            "audit log), or set CUTOVER_STATE_DATABASE_URL to a database in an existing folder.", path=str(path))
    if not folder.is_dir():
        raise StateDatabaseUnavailable(f"{what} cannot be opened: {folder} is not a folder. {fix}", path=str(path))
    if path.is_dir():
        raise StateDatabaseUnavailable(f"{what} is a directory, not a database file. {fix}", path=str(path))
    if path.exists() and not path.is_file():
        raise StateDatabaseUnavailable(f"{what} is not a regular file. {fix}", path=str(path))
    # The file's header is left to SQLite (a file that is not SQLite fails its first read, and
    # nothing is written to it): opening and closing it here would drop every POSIX lock this
    # process holds on it, those of SQLite's connections included (a test, or the CLI, may
    # build a second app beside a first one).
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        raise StateDatabaseUnavailable(
            f"{what} is on a read-only file system: Cutover writes every run, log line and audit entry there "
            "(and SQLite its -wal and -shm files beside it). Remount it read-write, or set "
            "CUTOVER_STATE_DATABASE_URL to a database on a writable disk.", path=str(path))
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StateDatabaseUnavailable(
            f"{what} cannot be written by {_user()} (permission denied). Give that user read and write access "
            "to the file and its folder, or start Cutover as the user that owns it.", path=str(path))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StateDatabaseUnavailable(
            f"{what} cannot be used: its folder {folder} is not writable by {_user()}, and SQLite keeps its -wal "
            "and -shm files beside the database. Give that user write access to the folder.", path=str(path))


@contextmanager
def _state_database_errors(app: Flask):
    """SQLite's and PostgreSQL's errors on the dashboard's own database, as one StateDatabaseUnavailable."""
    try:
        yield
    except SQLAlchemyError as exc:
        if db.engine.dialect.name == "postgresql":
            db.engine.dispose()  # start-up ends here: no pooled connection outlives the app
            raise _postgres_state_database_error(db.engine.url, getattr(exc, "orig", None) or exc) from None
        path = _state_database_file()
        if path is None:
            raise
        raise _state_database_error(path, getattr(exc, "orig", None) or exc, app.config["STATE_BUSY_TIMEOUT"]) from None


def _state_database_error(path: Path, error: BaseException, waited: float) -> StateDatabaseUnavailable:
    what = f"The dashboard's database {path}"
    name = getattr(error, "sqlite_errorname", "") or ""
    text = str(error)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        from app.core.processes import processes_holding

        holders = "; ".join(f"pid {p.pid}: {' '.join(p.cmdline.split())[:100]}" for p in processes_holding(path))
        by = f" (held open by {holders})" if holders else ""
        return StateDatabaseUnavailable(
            f"{what} is locked by another process{by}: Cutover waited {waited:g} s for it. Stop that process "
            "(another Cutover server or command, or an sqlite3 shell in a transaction), then start again.",
            path=str(path), reason="locked")
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in text or "malformed" in text:
        return StateDatabaseUnavailable(
            f"{what} is not a SQLite database, or is damaged (SQLite says \"{text}\"); Cutover will not use or "
            "overwrite it. Restore it from a copy, or set CUTOVER_STATE_DATABASE_URL to another file.",
            path=str(path), reason="corrupt")
    return StateDatabaseUnavailable(
        f"{what} cannot be used: SQLite says \"{text}\". Check that the file and its folder exist and that "
        f"{_user()} can read and write both.", path=str(path), reason="unusable")


# (words all in PostgreSQL's or libpq's message, reason, what to do): the first match wins.
_POSTGRES_PROBLEMS = (
    (("password authentication failed",), "wrong_password",
     "Check the user and password in CUTOVER_STATE_DATABASE_URL (or PGPASSWORD, ~/.pgpass)."),
    (("no password supplied",), "no_password",
     "The server asks for a password: put it in CUTOVER_STATE_DATABASE_URL (user:password@host), "
     "or use PGPASSWORD or ~/.pgpass."),
    (("database", "does not exist"), "missing",
     "Create it on that server (createdb, or CREATE DATABASE): Cutover does not, so that a mistyped name "
     "does not start an empty dashboard without its runs and audit log. Or fix CUTOVER_STATE_DATABASE_URL."),
    (("role", "does not exist"), "missing", "Create that role on the server, or fix the user in CUTOVER_STATE_DATABASE_URL."),
    (("connection refused",), "unreachable",
     "Start the server, or check the host and port in CUTOVER_STATE_DATABASE_URL."),
    (("timeout expired",), "unreachable",
     "The server did not answer in time: check the host, the port and any firewall in between."),
    (("resolve host",), "unreachable", "Check the host name in CUTOVER_STATE_DATABASE_URL."),
    (("translate host name",), "unreachable", "Check the host name in CUTOVER_STATE_DATABASE_URL."),
    (("no pg_hba.conf entry",), "refused",
     "The server's pg_hba.conf does not let this user in from here: ask its administrator."),
    (("permission denied",), "permission",
     "The user needs to connect to the database and to create tables in it (or own it): grant that, "
     "or use another user."),
)


def _postgres_state_database_error(url: URL, error: BaseException) -> StateDatabaseUnavailable:
    what = f"The dashboard's database {_shown(url)}"
    said = said_by(error)
    said = said.rsplit("failed: ", 1)[-1].removeprefix("FATAL:").strip().rstrip(".")  # libpq's preamble
    for words, reason, fix in _POSTGRES_PROBLEMS:
        if all(word in said.lower() for word in words):
            break
    else:
        reason, fix = "unusable", "Check CUTOVER_STATE_DATABASE_URL and that the server is up."
    verb = "cannot be reached" if reason == "unreachable" else "cannot be used"
    return StateDatabaseUnavailable(f"{what} {verb}: PostgreSQL says \"{said}\". {fix}",
                                    path=_shown(url), reason=reason)


def _user() -> str:
    import pwd

    try:
        return f"user {pwd.getpwuid(os.geteuid()).pw_name}"
    except KeyError:
        return f"uid {os.geteuid()}"


def _stored_secret_key(instance_dir: Path) -> str:
    """A random key kept on disk (0600) so sessions survive a restart without a configured key."""
    key_file = instance_dir / "secret_key"
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_hex(32)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key
