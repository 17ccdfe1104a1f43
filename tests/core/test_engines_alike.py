"""The same plan, the same promises, on both engines: each case runs on a SQLite file and on a
PostgreSQL database of the suite's own server."""
import sqlite3
from contextlib import closing

import pytest

from app.core.engines import engine_for
from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import MigrationFailed
from app.core.migrate import apply_plan, rehearse
from app.core.plans import load_plan_set
from app.core.reconcile import reconcile

SCHEMA = [
    "CREATE TABLE goals (id INTEGER PRIMARY KEY, title TEXT NOT NULL, root_id INTEGER)",
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, goal_id INTEGER REFERENCES goals (id), body TEXT)",
    "INSERT INTO goals (id, title, root_id) VALUES (1, 'a', NULL), (2, 'b', 1), (3, 'c', 1)",
    "INSERT INTO notes (id, goal_id, body) VALUES (1, 1, 'x'), (2, 2, 'y')",
]
PLAN = """-- phase: Columns
ALTER TABLE goals ADD COLUMN deleted_at TEXT;
CREATE INDEX goals_root ON goals (root_id);
-- phase: Data
UPDATE goals SET deleted_at = 'never' WHERE deleted_at IS NULL;
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "target.db"
        with closing(sqlite3.connect(path)) as connection, connection:
            for statement in SCHEMA:
                connection.execute(statement)
        return engine_for(path)
    pg_server = request.getfixturevalue("pg_server")
    database = request.getfixturevalue("pg_database")
    pg_server.psql(";\n".join(SCHEMA), database=database)
    return engine_for(PostgresLocation(pg_server.url(database)), "postgresql")


def plan(tmp_path, target, text=PLAN):
    path = tmp_path / "plan.sql"
    path.write_text(text)
    return load_plan_set([path], dialect=target.dialect)


def contents(target) -> tuple:
    def read(connection):
        rows = [tuple(row) for row in connection.execute("SELECT * FROM goals ORDER BY id").fetchall()]
        return target.read_schema(connection, count_rows=False).fingerprint(), rows
    return target.read_consistently(read)


def test_a_plan_applies_once_and_a_second_run_skips_what_is_there(tmp_path, target):
    first = apply_plan(target, plan(tmp_path, target))
    assert first.committed and first.counts()["applied"] == 3
    second = apply_plan(target, plan(tmp_path, target))
    assert [r.outcome for r in second.statements] == ["skipped", "skipped", "applied"]
    assert second.fingerprint_before == second.fingerprint_after


def test_a_failing_statement_leaves_the_database_as_it_was(tmp_path, target):
    before = contents(target)
    with pytest.raises(MigrationFailed):
        apply_plan(target, plan(tmp_path, target, PLAN + "ALTER TABLE goals ADD COLUMN x INTEGER REFERENCES nowhere (id);\n"
                                                         "INSERT INTO nowhere VALUES (1);\n"))
    assert contents(target) == before


def test_the_preview_and_the_rehearsal_change_nothing(tmp_path, target):
    before = contents(target)
    predicted = [o.outcome for o in reconcile(target, plan(tmp_path, target)).outcomes()]
    assert predicted == ["will_run", "will_run", "will_run"]
    rehearsal = rehearse(target, plan(tmp_path, target), workdir=tmp_path)
    assert rehearsal.passed, rehearsal.failure
    assert contents(target) == before
