"""The dashboard's own schema as Alembic revisions, applied at start on SQLite and PostgreSQL: a new
database is made by them and agrees with the models, an earlier Cutover's database is adopted
keeping every row, a failing revision or an unknown stamp changes nothing, and processes starting
together migrate once."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, insert, select, text
from werkzeug.security import generate_password_hash

from app import audit
from app.extensions import db
from app.models import AuditEntry, Job, workspace_key
from app.state_migrations.baseline import baseline_metadata
from app.state_migrations import VERSION_TABLE, migration_options
from app.state_schema import MIGRATIONS, StateSchemaError
from tests.conftest import ADMIN_PASSWORD, log_in, make_app
from tests.test_state_on_postgres import dispose

REPO = Path(__file__).resolve().parents[1]
REVISIONS = [step.revision for step in reversed(list(ScriptDirectory(str(MIGRATIONS)).walk_revisions()))]


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path) -> str:
    """Where a dashboard keeps its state: a file not yet made, or an empty PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    server, database = request.getfixturevalue("pg_server"), request.getfixturevalue("pg_database")
    return server.url(database).replace("postgresql://", "postgresql+psycopg://", 1)


def start(tmp_path: Path, config: Path, url: str, **overrides):
    """The dashboard started (always from one instance folder, as one installation restarted)."""
    folder = tmp_path / "dashboard"
    folder.mkdir(exist_ok=True)
    return make_app(folder, config, SQLALCHEMY_DATABASE_URI=url, **overrides)


def applied(app) -> list[str]:
    return app.extensions["cutover.state_schema"]


def differences(url: str) -> list:
    """What Alembic's autogenerate would write between the models and the database."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return compare_metadata(MigrationContext.configure(connection, opts=migration_options()), db.metadata)
    finally:
        engine.dispose()


def predicate_differences(url: str) -> list[str]:
    """Partial indexes whose condition differs from the models' (autogenerate compares names, columns
    and uniqueness only). PostgreSQL rewrites a condition when it stores it: there, that it has one."""
    engine = create_engine(url)
    dialect = engine.dialect.name
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            stored = {index["name"]: index.get("dialect_options", {}).get(f"{dialect}_where")
                      for table in db.metadata.tables for index in inspector.get_indexes(table)}
    finally:
        engine.dispose()
    found = []
    for table in db.metadata.tables.values():
        for index in table.indexes:
            wanted, there = index.dialect_options[dialect]["where"], stored.get(index.name)
            same = (wanted is None) == (there is None) and (dialect != "sqlite" or str(wanted) == str(there))
            if not same:
                found.append(f"{index.name}: {there} instead of {wanted}")
    return found


def dump(url: str) -> dict:
    """Every table's columns, indexes and rows, and the version table: to show nothing changed."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            return {table: {"columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                              for i in inspector.get_indexes(table)),
                            "rows": sorted(map(tuple, connection.exec_driver_sql(f'SELECT * FROM "{table}"')), key=repr)}
                    for table in sorted(inspector.get_table_names())}
    finally:
        engine.dispose()


def stamp(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return sorted(connection.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalars())
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- a new database


def test_a_new_state_database_is_made_by_the_revisions_and_agrees_with_the_models(tmp_path, demo_config, state_url):
    app = start(tmp_path, demo_config, state_url)
    assert applied(app) == REVISIONS
    assert stamp(state_url) == [REVISIONS[-1]]
    # A model changed without a revision shows here (Alembic's autogenerate finds the difference).
    assert differences(state_url) == [] and predicate_differences(state_url) == []
    again = start(tmp_path, demo_config, state_url)
    assert applied(again) == []  # a restart has nothing left to do
    assert log_in(again.test_client()).status_code == 302
    dispose(app, again)


def test_the_sqlite_ids_are_the_rowid(tmp_path, demo_config):
    """Each id is SQLite's INTEGER PRIMARY KEY (the rowid, numbering itself), not a BIGINT column."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    dispose(start(tmp_path, demo_config, url))
    engine = create_engine(url)
    with engine.connect() as connection:
        tables = connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()
    engine.dispose()
    for name, sql in tables:
        if name != VERSION_TABLE:
            assert "\tid INTEGER NOT NULL" in sql and "PRIMARY KEY (id)" in sql, sql


# --------------------------------------------------------------------------- adopting an earlier version's database

# The state database as a Cutover from before workspaces left it (its create_all, none of the
# in-place upgrades): per-environment unique indexes, no workspace and no end_reason columns.
BEFORE_WORKSPACES = (
    "DROP INDEX one_active_job_per_workspace_environment",
    "DROP INDEX one_open_run_per_workspace_environment",
    "DROP INDEX ix_job_workspace",
    "DROP INDEX ix_run_workspace",
    "DROP INDEX ix_monitor_window_workspace",
    "ALTER TABLE job DROP COLUMN workspace",
    "ALTER TABLE run DROP COLUMN workspace",
    "ALTER TABLE monitor_window DROP COLUMN workspace",
    "ALTER TABLE monitor_window DROP COLUMN end_reason",
    "CREATE UNIQUE INDEX one_active_job_per_environment ON job (environment) WHERE state IN ('queued', 'running')",
    "CREATE UNIQUE INDEX one_open_run_per_environment ON run (environment) WHERE status = 'open'",
)
AUDITED = [("admin", "login"), ("admin", "backup"), ("will", "migrate")]


# The SQLite file the version of 2026-11-24 made, as its own create_all wrote it.
NOVEMBER_SCHEMA = Path(__file__).parent / "fixtures" / "state_database_2026_11_24.sql"


def build_earlier_database(url: str, shape: str, workspace: str) -> int:
    """An earlier Cutover's state database, with a row in every table; returns the job's id. `shape`:
    "made_2026_11_24" (that version's own schema text, SQLite), "before_workspaces" (its shape on
    either engine), or "upgraded_in_place" (every earlier upgrade done; no version table)."""
    metadata = baseline_metadata()
    engine = create_engine(url)
    if shape == "made_2026_11_24":
        with engine.connect() as connection:
            connection.connection.driver_connection.executescript(NOVEMBER_SCHEMA.read_text())
    else:
        metadata.create_all(engine)  # what create_all made
    with engine.begin() as connection:
        for statement in BEFORE_WORKSPACES if shape == "before_workspaces" else ():
            connection.exec_driver_sql(statement)
    with engine.begin() as connection:
        job_id = _earlier_rows(connection, metadata, workspace if shape == "upgraded_in_place" else None)
    engine.dispose()
    return job_id


def _earlier_rows(connection, metadata, workspace: str | None) -> int:
    tables, moment = metadata.tables, datetime(2026, 1, 1)
    scoped = {"workspace": workspace} if workspace is not None else {}

    def add(table: str, **values) -> int:
        return connection.execute(insert(tables[table]).values(**values).returning(tables[table].c.id)).scalar()

    add("operator", username="admin", password_hash=generate_password_hash(ADMIN_PASSWORD), created_at=moment,
        session_generation=0)
    previous = audit.GENESIS
    for actor, action in AUDITED:
        entry = AuditEntry(time=moment, actor=actor, action=action, target="production", result="ok", detail="")
        add("audit_entry", time=moment, actor=actor, action=action, target="production", result="ok", detail="",
            previous_hash=previous, entry_hash=(previous := audit._entry_hash(previous, entry)))
    run_id = add("run", environment="production", created_by="admin", created_at=moment, status="finished",
                 status_note="", checklist="[]", **scoped)
    job_id = add("job", kind="backup", environment="production", params="{}", state="passed", operator="admin",
                 created_at=moment, progress_done=1, progress_total=1, result='{"backup": "20260101_000000"}',
                 error="", run_id=run_id, step="backup", **scoped)
    for line in ("backing up production", "backup verified"):
        add("log_line", job_id=job_id, level="info", time=moment, text=line, run_id=run_id, step="backup")
    add("sign_off", run_id=run_id, step="backup", kind="signoff", job_id=job_id, operator="admin", time=moment,
        note="looks right", log_sha256="", subject="", subject_sha256="")
    window = add("monitor_window", environment="production", started_at=moment, ends_at=moment, interval_seconds=900,
                 started_by="admin", reason="after the migration", state="finished", baseline="{}", log_offset=0,
                 **({"end_reason": "", **scoped} if workspace is not None else {}))
    add("health_sample", window_id=window, tick=0, due_at=moment, state="passed", results="[]", measurements="{}")
    return job_id


def kept(before: dict, after: dict) -> dict:
    """The rows of `before`, read from `after` through the columns `before` had."""
    engine_rows = {}
    for table, facts in before.items():
        names = [column[0] for column in facts["columns"]]
        positions = [[column[0] for column in after[table]["columns"]].index(name) for name in names]
        engine_rows[table] = sorted((tuple(row[p] for p in positions) for row in after[table]["rows"]), key=repr)
    return engine_rows


@pytest.mark.parametrize("shape", ["before_workspaces", "upgraded_in_place"])
def test_an_earlier_cutovers_state_database_is_adopted_keeping_every_row(tmp_path, demo_config, state_url, shape):
    adopted_keeping_every_row(tmp_path, demo_config, state_url, shape)


def test_the_2026_11_24_versions_own_state_database_is_adopted_keeping_every_row(tmp_path, demo_config):
    """That version kept its state in SQLite only."""
    adopted_keeping_every_row(tmp_path, demo_config, f"sqlite:///{tmp_path / 'state.db'}", "made_2026_11_24")


def adopted_keeping_every_row(tmp_path, demo_config, state_url: str, shape: str) -> None:
    workspace = workspace_key(demo_config)
    job_id = build_earlier_database(state_url, shape, workspace)
    before = dump(state_url)

    app = start(tmp_path, demo_config, state_url)

    assert applied(app) == ["adopted", *REVISIONS[1:]]  # completed, stamped with the baseline, then revisions
    after = dump(state_url)
    assert kept(before, after) == {table: facts["rows"] for table, facts in before.items()}
    # The old indexes are gone, the new ones and the columns are there.
    assert differences(state_url) == [] and predicate_differences(state_url) == []
    assert stamp(state_url) == [REVISIONS[-1]]
    with app.app_context():
        assert audit.verify_chain() is None
        assert [(e.actor, e.action) for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))] == AUDITED
        job = db.session.get(Job, job_id)  # old rows are the adopting workspace's
        assert (job.workspace, job.result_document) == (workspace, {"backup": "20260101_000000"})
        from app.jobs.runner import log_lines

        assert [line.text for line in log_lines(job_id)] == ["backing up production", "backup verified"]
    client = app.test_client()
    assert log_in(client).status_code == 302  # the operator and their password kept
    assert f'data-job="{job_id}"' in client.get("/jobs").get_data(as_text=True)
    with app.app_context():
        assert audit.verify_chain() is None  # the login appended to the adopted chain
    again = start(tmp_path, demo_config, state_url)
    assert applied(again) == []  # adopted once: from now on only revisions run
    dispose(app, again)


# --------------------------------------------------------------------------- nothing changed on failure


BROKEN_REVISION = '''"""Jobs gain a priority

Revision ID: 0002_broken
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_broken"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("job") as batch:  # SQLite rebuilds the table
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_column("pid_start")
    op.execute("UPDATE job SET priority = 1")
    op.execute("INSERT INTO job_priority_names (name) VALUES ('urgent')")  # no such table: fails here


def downgrade():
    pass
'''


def migrations_with(tmp_path: Path, name: str, source: str) -> Path:
    """The package's revisions plus one more, in a folder of their own."""
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / name).write_text(source.replace("{down}", REVISIONS[-1]))
    return folder


def test_a_revision_that_fails_at_start_changes_nothing_and_says_which(tmp_path, demo_config, state_url):
    first = start(tmp_path, demo_config, state_url)
    with first.app_context():
        audit.record("admin", "backup", "production")
    dispose(first)
    before = dump(state_url)
    broken = migrations_with(tmp_path, "0002_broken.py", BROKEN_REVISION)

    with pytest.raises(StateSchemaError) as caught:
        start(tmp_path, demo_config, state_url, STATE_MIGRATIONS=broken)

    message = caught.value.message
    assert "revision 0002_broken (Jobs gain a priority) failed" in message, message
    assert "job_priority_names" in message and "Nothing was changed" in message and "\n" not in message, message
    assert caught.value.details["reason"] == "migration_failed" and caught.value.exit_code == 2
    assert dump(state_url) == before  # the rebuilt table, the update and the stamp all rolled back
    app = start(tmp_path, demo_config, state_url)  # the revisions this version ships still start it
    assert applied(app) == []
    dispose(app)


def test_a_failing_adoption_leaves_the_earlier_database_as_it_was(tmp_path, demo_config):
    """An earlier version's database whose rows break a rule of the baseline (two active jobs of one
    environment: the per-workspace unique index cannot be made) is refused, and left exactly as it was."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    build_earlier_database(url, "before_workspaces", workspace_key(demo_config))
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX one_active_job_per_environment")
        for kind in ("backup", "verify"):
            connection.exec_driver_sql(
                "INSERT INTO job (kind, environment, params, state, operator, created_at, progress_done, "
                f"progress_total, result, error) VALUES ('{kind}', 'staging', '{{}}', 'running', 'admin', "
                "'2026-01-01 00:00:00', 0, 0, '{}', '')")
    engine.dispose()
    before = dump(url)

    with pytest.raises(StateSchemaError) as caught:
        start(tmp_path, demo_config, url)

    assert "completing the tables of an earlier Cutover to the baseline failed" in caught.value.message
    assert "UNIQUE constraint failed" in caught.value.message, caught.value.message
    assert dump(url) == before


def test_another_applications_table_of_the_same_name_is_never_taken_for_the_dashboards(tmp_path, demo_config,
                                                                                       state_url):
    """A database holding an application's own "job" table (and none of the dashboard's first tables)
    is not an earlier Cutover's: nothing is added to that table, and start-up says what is in the way."""
    engine = create_engine(state_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE job (id INTEGER PRIMARY KEY, title TEXT)")
        connection.exec_driver_sql("INSERT INTO job (id, title) VALUES (1, 'the application''s own row')")
    engine.dispose()
    before = dump(state_url)

    with pytest.raises(StateSchemaError) as caught:
        start(tmp_path, demo_config, state_url)

    assert f"revision {REVISIONS[0]} (The dashboard's schema when revisions began) failed" in caught.value.message
    assert "already exists" in caught.value.message and "job" in caught.value.message, caught.value.message
    assert dump(state_url) == before


def test_a_state_database_a_newer_cutover_used_is_refused_unchanged(tmp_path, demo_config, state_url):
    dispose(start(tmp_path, demo_config, state_url))
    engine = create_engine(state_url)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'f00dfeed0002'"))
    engine.dispose()
    before = dump(state_url)

    with pytest.raises(StateSchemaError) as caught:
        start(tmp_path, demo_config, state_url)

    assert "is at schema revision f00dfeed0002, which this version of Cutover does not know" in caught.value.message
    assert caught.value.details["reason"] == "newer_schema"
    assert dump(state_url) == before
    started = subprocess.run([sys.executable, "run.py"], cwd=REPO, capture_output=True, text=True, timeout=120, env={
        **os.environ, "CUTOVER_CONFIG": str(demo_config), "CUTOVER_STATE_DATABASE_URL": state_url,
        "CUTOVER_INSTANCE_DIR": str(tmp_path / "dashboard" / "instance"), "CUTOVER_PORT": "1"})
    assert started.returncode == 2, started.stderr
    lines = [line for line in started.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cutover: The dashboard's database "), started.stderr
    assert "f00dfeed0002" in lines[0] and dump(state_url) == before


# --------------------------------------------------------------------------- processes starting together


SLOW_REVISION = '''"""Operators gain a display name

Revision ID: 0002_slow
Revises: {down}
"""
import time

from alembic import op
import sqlalchemy as sa

revision = "0002_slow"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("operator") as batch:
        batch.add_column(sa.Column("display_name", sa.String(64), nullable=True))
    time.sleep(1.5)  # holds the migration open while the other processes start


def downgrade():
    pass
'''

START_AND_SAY_WHAT_RAN = """
import json, sys
from app import create_app
from config import Config
app = create_app(Config, {"STATE_MIGRATIONS": sys.argv[1]})
print(json.dumps(app.extensions["cutover.state_schema"]))
"""


@pytest.mark.slow
def test_dashboards_starting_together_migrate_the_state_database_once(tmp_path, demo_config, state_url):
    url = state_url
    migrations = migrations_with(tmp_path, "0002_slow.py", SLOW_REVISION)
    starts = []
    for number in range(3):
        env = {**os.environ, "CUTOVER_CONFIG": str(demo_config), "CUTOVER_STATE_DATABASE_URL": url,
               "CUTOVER_INSTANCE_DIR": str(tmp_path / f"instance{number}"), "CUTOVER_SECRET_KEY": "state-test-key",
               "CUTOVER_ADMIN_PASSWORD": ADMIN_PASSWORD}
        starts.append(subprocess.Popen([sys.executable, "-c", START_AND_SAY_WHAT_RAN, str(migrations)], cwd=REPO,
                                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    finished = [start.communicate(timeout=120) for start in starts]
    assert [start.returncode for start in starts] == [0, 0, 0], [err for _, err in finished]
    ran = sorted(json.loads(out.strip().splitlines()[-1]) for out, _ in finished)
    assert ran == [[], [], [*REVISIONS, "0002_slow"]]  # one process migrated; the others found it done
    assert stamp(url) == ["0002_slow"]
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM operator").scalar() == 1
    engine.dispose()


# --------------------------------------------------------------------------- the developer's command


@pytest.mark.slow
def test_the_developers_revision_command_sees_the_models_and_revisions_agree(tmp_path, demo_config):
    """`flask --app run db check` (Flask-Migrate, the env.py's developer path) finds nothing to write."""
    env = {**os.environ, "CUTOVER_CONFIG": str(demo_config), "CUTOVER_INSTANCE_DIR": str(tmp_path / "instance"),
           "CUTOVER_SECRET_KEY": "state-test-key", "CUTOVER_ADMIN_PASSWORD": ADMIN_PASSWORD}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "run", "db", "check"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr
