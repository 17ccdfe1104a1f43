"""Plans on a real PostgreSQL server: one transaction, reconciliation, rehearsal, losses, locks."""
import threading

import psycopg
import pytest

from app.core.engines import engine_for
from app.core.engines.postgresql import scratch
from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import Conflict, MigrationFailed
from app.core.migrate import apply_plan, rehearse
from app.core.plans import load_plan_set
from app.core.reconcile import preflight, reconcile

SCHEMA = """
CREATE TABLE goals (id serial PRIMARY KEY, title text NOT NULL, score int CHECK (score > 0));
CREATE TABLE notes (id serial PRIMARY KEY, goal_id int REFERENCES goals (id), body text);
CREATE INDEX notes_goal ON notes (goal_id);
CREATE VIEW goal_titles AS SELECT id, title FROM goals;
INSERT INTO goals (title, score) SELECT 'g' || i, i FROM generate_series(1, 200) i;
INSERT INTO notes (goal_id, body) SELECT (i % 200) + 1, 'n' || i FROM generate_series(1, 500) i;
"""

PLAN = """-- phase: Columns
ALTER TABLE goals ADD COLUMN parent_id int REFERENCES goals (id);
ALTER TABLE notes ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
-- phase: Tables
CREATE TABLE tags (id serial PRIMARY KEY, name text UNIQUE NOT NULL);
CREATE INDEX goals_parent ON goals (parent_id);
CREATE VIEW open_goals AS SELECT id, title FROM goals WHERE parent_id IS NULL;
-- phase: Data
UPDATE goals SET parent_id = 1 WHERE id BETWEEN 2 AND 11;
"""


@pytest.fixture
def target(pg_server, pg_database, pg_url):
    pg_server.psql(SCHEMA, database=pg_database)
    return engine_for(PostgresLocation(pg_url), "postgresql")


def plan(tmp_path, text=PLAN, name="plan.sql"):
    path = tmp_path / name
    path.write_text(text)
    return load_plan_set([path], dialect=engine_for(PostgresLocation("postgresql://x@localhost/x"),
                                                    "postgresql").dialect)


def state(pg_server, database) -> str:
    return pg_server.psql(
        "SELECT (SELECT count(*) FROM goals) || '/' || (SELECT count(*) FROM notes) || '/' || "
        "(SELECT string_agg(table_name || '.' || column_name, ',' ORDER BY table_name, column_name) "
        " FROM information_schema.columns WHERE table_schema = 'public') || '/' || "
        "(SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public')",
        database=database).strip()


def scratch_databases(pg_server) -> list[str]:
    return [name for name in pg_server.databases() if name.startswith(scratch.PREFIX)]


def fingerprint(target) -> str:
    return target.read_consistently(lambda c: target.read_schema(c, count_rows=False).fingerprint())


def test_a_plan_commits_in_one_transaction_and_records_where(tmp_path, pg_server, pg_database, target):
    lines = []
    result = apply_plan(target, plan(tmp_path), emit=lambda level, text: lines.append(text))
    assert result.committed and result.counts() == {"applied": 6, "skipped": 0, "failed": 0, "not_run": 0}
    assert result.statements[-1].rows == 10
    assert result.commit_point["wal_lsn"] and result.commit_point["at"].endswith("Z")
    assert any("lock_timeout 5 s" in line and "advisory lock" in line for line in lines)
    assert "goals.parent_id" in state(pg_server, pg_database)


def test_a_failing_statement_rolls_everything_back(tmp_path, pg_server, pg_database, target):
    before, schema = state(pg_server, pg_database), fingerprint(target)
    broken = PLAN + "ALTER TABLE goals ADD COLUMN group_id int REFERENCES missing (id);\n"
    with pytest.raises(MigrationFailed) as caught:
        apply_plan(target, plan(tmp_path, broken))
    assert "missing" in caught.value.message and "rolled back" in caught.value.message
    assert state(pg_server, pg_database) == before and fingerprint(target) == schema


def test_a_second_run_skips_what_is_there(tmp_path, target):
    apply_plan(target, plan(tmp_path))
    again = apply_plan(target, plan(tmp_path))
    outcomes = [(r.outcome, r.message) for r in again.statements]
    assert [o for o, _ in outcomes] == ["skipped"] * 5 + ["applied"]
    assert all("already exists, skipping (expected)" in m for _, m in outcomes[:5])


def test_an_object_there_with_another_definition_is_a_conflict(tmp_path, pg_server, pg_database, target):
    pg_server.psql("CREATE TABLE tags (id int PRIMARY KEY, name varchar(20))", database=pg_database)
    before = state(pg_server, pg_database)
    with pytest.raises(MigrationFailed) as caught:
        apply_plan(target, plan(tmp_path))
    assert caught.value.result.failure["reason"] == "conflict"
    assert "table tags already exists with a different definition" in caught.value.message
    assert state(pg_server, pg_database) == before


def test_the_preview_predicts_on_a_copy_of_the_schema(tmp_path, pg_server, pg_database, target):
    pg_server.psql("CREATE TABLE tags (id serial PRIMARY KEY, name text UNIQUE NOT NULL)", database=pg_database)
    text = PLAN + "ALTER TABLE goals ADD COLUMN owner_id int REFERENCES users (id);\n"
    before = state(pg_server, pg_database)
    result = reconcile(target, plan(tmp_path, text))
    outcomes = [o.outcome for o in result.outcomes()]
    assert outcomes == ["will_run", "will_run", "skip", "will_run", "will_run", "will_run", "will_fail"]
    assert 'relation "users" does not exist' in result.outcomes()[-1].message
    assert not preflight(result).ok
    assert state(pg_server, pg_database) == before and not scratch_databases(pg_server)


def test_a_view_lost_to_a_cascade_stops_the_migration_unless_accepted(tmp_path, pg_server, pg_database, target):
    text = "ALTER TABLE goals DROP COLUMN title CASCADE;\n"
    before = state(pg_server, pg_database)
    with pytest.raises(MigrationFailed) as caught:
        apply_plan(target, plan(tmp_path, text))
    assert caught.value.result.failure["reason"] == "lost_objects"
    assert "goal_titles" in caught.value.message
    assert state(pg_server, pg_database) == before
    accepted = apply_plan(target, plan(tmp_path, "-- accept-drop: view goal_titles\n" + text))
    assert accepted.committed


def test_a_lock_held_by_the_application_names_it_and_changes_nothing(tmp_path, pg_server, pg_database, target):
    before = state(pg_server, pg_database)
    app = psycopg.connect(target.location.url, application_name="shop-web")
    app.execute("SELECT count(*) FROM goals")  # holds ACCESS SHARE until it ends its transaction
    target.location = PostgresLocation(target.location.url, lock_timeout=0.5)
    try:
        with pytest.raises(MigrationFailed) as caught:
            apply_plan(target, plan(tmp_path))
    finally:
        app.rollback()
        app.close()
    assert caught.value.result.failure["reason"] == "locked"
    assert "shop-web" in caught.value.message and "lock_timeout (0.5 s)" in caught.value.message
    assert state(pg_server, pg_database) == before


def test_two_migrators_never_run_at_once(tmp_path, target):
    started, release = threading.Event(), threading.Event()

    def slow(level, text):
        if text.startswith("[Phase 1]") and not started.is_set():
            started.set()
            release.wait(10)

    first = threading.Thread(target=lambda: apply_plan(target, plan(tmp_path), emit=slow))
    first.start()
    assert started.wait(10)
    try:
        with pytest.raises(Conflict) as caught:
            apply_plan(target, plan(tmp_path, "CREATE TABLE other (id int);\n", "other.sql"))
        assert "Another migration is running" in caught.value.message
    finally:
        release.set()
        first.join(10)


def test_a_phase_outside_the_transaction_runs_after_the_commit(tmp_path, pg_server, pg_database, target):
    text = PLAN + "-- phase: Index online (no transaction)\nCREATE INDEX CONCURRENTLY notes_body ON notes (body);\n"
    lines = []
    result = apply_plan(target, plan(tmp_path, text), emit=lambda level, line: lines.append(line))
    assert result.outside_transaction == {"phases": [4], "completed": True}
    assert "notes_body" in state(pg_server, pg_database)
    assert any("NOT atomic" in line for line in lines)
    assert lines.index(next(l for l in lines if l.startswith("Committed"))) < lines.index(
        next(l for l in lines if "notes_body" in l))


def test_a_rehearsal_runs_on_a_copy_and_leaves_nothing_behind(tmp_path, pg_server, pg_database, target):
    before = state(pg_server, pg_database)
    lines = []
    result = rehearse(target, plan(tmp_path), emit=lambda level, text: lines.append(text))
    assert result.passed, result.failure
    assert any("TEMPLATE" in line for line in lines)
    assert {check.name for check in result.checks} >= {"apply", "integrity", "foreign_keys", "row_counts"}
    assert state(pg_server, pg_database) == before and not scratch_databases(pg_server)


def test_a_rehearsal_beside_a_connected_session_copies_by_dump(tmp_path, pg_server, pg_database, target):
    app = psycopg.connect(target.location.url, application_name="shop-web")
    lines = []
    try:
        result = rehearse(target, plan(tmp_path), emit=lambda level, text: lines.append(text))
    finally:
        app.close()
    assert result.passed, result.failure
    assert any("dumping and restoring" in line for line in lines)
    assert not scratch_databases(pg_server)


def test_a_failing_rehearsal_is_dropped_too(tmp_path, pg_server, pg_database, target):
    result = rehearse(target, plan(tmp_path, "ALTER TABLE nothing ADD COLUMN x int;\n"))
    assert not result.passed and result.failure["check"] == "apply"
    assert not scratch_databases(pg_server)


def test_the_stamp_moves_with_writes_to_this_database_only(tmp_path, pg_server, pg_database, target):
    stamp = target.stamp()
    other = pg_server.create_database()
    pg_server.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)", database=other)
    with scratch.scratch_database(target.location):
        pass
    assert target.unchanged_since(stamp)
    pg_server.psql("UPDATE goals SET score = score WHERE id = 1", database=pg_database)
    assert not target.unchanged_since(stamp)
    stamp = target.stamp()
    pg_server.psql("TRUNCATE notes", database=pg_database)
    assert not target.unchanged_since(stamp)
    stamp = target.stamp()
    pg_server.psql("ALTER TABLE goals ADD COLUMN x int", database=pg_database)
    assert not target.unchanged_since(stamp)


def test_the_preview_rates_each_statements_lock_risk(tmp_path, target):
    text = ("ALTER TABLE goals ADD COLUMN parent_id int REFERENCES goals (id);\n"
            "CREATE INDEX goals_parent ON goals (parent_id);\n"
            "CREATE TABLE tags (id serial PRIMARY KEY);\n")
    outcomes = reconcile(target, plan(tmp_path, text)).outcomes()
    risks = [[risk["kind"] for risk in outcome.to_dict()["lock_risks"]] for outcome in outcomes]
    assert "index_not_concurrent" in risks[1] and risks[2] == []
    assert risks[0]  # a foreign key added with its column blocks writes to the parent
