"""The dashboard's own schema, kept as Alembic revisions (app/state_migrations/versions/) and
brought to the newest one at every start, so that an upgrade of Cutover keeps its state.

Everything runs in one transaction on the state database: SQLite's BEGIN IMMEDIATE (a second
process starting at once waits for it, then finds nothing left to do; PostgreSQL's advisory
schema lock is taken around it by the factory), the revisions, the version row. A revision that
fails leaves the database as it was. A database made by a Cutover from before revisions (no
version table) is first completed to the baseline and stamped with it (state_migrations/legacy.py).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine

from app.core.errors import ConfigError, said_by
from app.state_migrations import VERSION_TABLE
from app.state_migrations.baseline import REVISION as BASELINE
from app.state_migrations.legacy import adopt_legacy_database, is_legacy

MIGRATIONS = Path(__file__).resolve().parent / "state_migrations"


class StateDatabaseUnavailable(ConfigError):
    """The dashboard's own database cannot be opened or is held by another process: start-up
    stops with one message (exit code 2) instead of a traceback."""

    code = "state_database_unavailable"


class StateSchemaError(StateDatabaseUnavailable):
    """The dashboard's schema could not be brought to this version's: nothing was changed, start-up stops."""

    code = "state_schema_error"


def migrate_state_database(engine: Engine, workspace: str, where: str, migrations: Path = MIGRATIONS) -> list[str]:
    """Bring the state database to the newest revision; returns what ran ("adopted", revision
    ids, oldest first), empty when it already was. `where` names the database in messages."""
    script = ScriptDirectory(str(migrations))
    if _up_to_date(engine, script):
        return []
    with _migration_transaction(engine) as connection:
        config = _alembic_config(migrations, connection)
        current = _current_revisions(connection, script, where)
        done = []
        if not current and is_legacy(connection):
            _adopt(connection, config, workspace, where)
            current, done = (BASELINE,), ["adopted"]
        pending = [step.revision for step in reversed(list(script.iterate_revisions("heads", current or "base")))]
        applied = config.attributes["applied"]
        try:
            command.upgrade(config, "heads")
        except Exception as error:
            failed = next((revision for revision in pending if revision not in applied), None)
            what = f"revision {_describe(script, failed)}" if failed else "the upgrade"
            raise _failed(where, what, error) from error
        return done + applied


def _up_to_date(engine: Engine, script: ScriptDirectory) -> bool:
    """Read without a lock first: nearly every start (and every job's worker) finds the newest
    revision already there, and need not wait for SQLite's write lock behind a busy writer."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_heads()
        connection.rollback()
    return bool(current) and set(current) == set(script.get_heads())


@contextmanager
def _migration_transaction(engine: Engine):
    """One connection, in one transaction that commits only when everything succeeded."""
    with engine.connect() as connection:
        if engine.dialect.name != "sqlite":
            with connection.begin():
                yield connection
            return
        with _sqlite_immediate_transaction(connection):
            yield connection


@contextmanager
def _sqlite_immediate_transaction(connection: Connection):
    """BEGIN IMMEDIATE takes the write lock before anything is read, so a second process waits here
    and then finds the work done; Python's sqlite3 is told not to open or commit transactions of its
    own meanwhile (it would not hold CREATE or ALTER in one). Foreign keys are off, as SQLite asks
    for table rebuilds (batch mode drops and renames tables others reference); the pooled connection
    gets both settings back."""
    driver = connection.connection.driver_connection
    isolation_level = driver.isolation_level
    foreign_keys = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
    connection.commit()
    driver.isolation_level = None
    try:
        connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.rollback()
            raise
        connection.commit()
    finally:
        connection.exec_driver_sql(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        connection.commit()
        driver.isolation_level = isolation_level


def _alembic_config(migrations: Path, connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["connection"] = connection
    config.attributes["applied"] = applied = []
    config.attributes["options"] = {"on_version_apply": lambda step, **_: (
        applied.append(step.up_revision_id) if step.is_upgrade and not step.is_stamp else None)}
    return config


def _current_revisions(connection: Connection, script: ScriptDirectory, where: str) -> tuple[str, ...]:
    """The database's stamp; refused when it names a revision this version does not have (a newer
    Cutover ran on it: going back would leave its schema unknown)."""
    current = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_heads()
    unknown = [revision for revision in current if not _known(script, revision)]
    if unknown:
        raise StateSchemaError(
            f"The dashboard's database {where} is at schema revision {', '.join(unknown)}, which this version of "
            "Cutover does not know: a newer Cutover has used it. Start that newer version, or restore the state "
            "database from a copy taken before it was upgraded.", path=where, reason="newer_schema")
    return current


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:  # ResolutionError is one
        return False


def _adopt(connection: Connection, config: Config, workspace: str, where: str) -> None:
    try:
        adopt_legacy_database(connection, workspace)
        command.stamp(config, BASELINE)
    except Exception as error:
        raise _failed(where, "completing the tables of an earlier Cutover to the baseline", error) from error


def _describe(script: ScriptDirectory, revision: str) -> str:
    doc = (script.get_revision(revision).doc or "").strip().splitlines()
    return f"{revision} ({doc[0].rstrip('.')})" if doc else revision


def _failed(where: str, what: str, error: BaseException) -> StateSchemaError:
    said = said_by(getattr(error, "orig", None) or error)
    return StateSchemaError(
        f"The dashboard's database {where} could not be brought to this version's schema: {what} failed: "
        f"{said}. Nothing was changed: the database is as it was before this start. Fix the cause and start "
        "again, or start the version of Cutover that last used it.", path=where, reason="migration_failed")
