"""Verification of a PostgreSQL target on a real server: what it checks, and that it changes nothing."""
import pytest

from app.core.checks import run_assertion, run_checks, smoke_test
from app.core.engines import engine_for
from app.core.engines.postgresql.location import PostgresLocation

SCHEMA = """
CREATE TABLE goals (id serial PRIMARY KEY, title text NOT NULL);
CREATE TABLE notes (id serial PRIMARY KEY, goal_id int, body text);
CREATE INDEX notes_goal ON notes (goal_id);
INSERT INTO goals (title) SELECT 'g' || i FROM generate_series(1, 50) i;
INSERT INTO notes (goal_id, body) SELECT (i % 50) + 1, 'n' || i FROM generate_series(1, 120) i;
"""


@pytest.fixture
def target(pg_server, pg_database, pg_url):
    pg_server.psql(SCHEMA, database=pg_database)
    return engine_for(PostgresLocation(pg_url), "postgresql")


def digest(pg_server, database) -> str:
    return pg_server.psql("SELECT md5(string_agg(g::text, ',' ORDER BY id)) || md5(string_agg(n::text, ',' ORDER BY n.id)) "
                          "FROM goals g FULL JOIN notes n USING (id)", database=database).strip()


def by_name(results):
    return {result.name: result for result in results}


def test_a_healthy_database_passes_and_says_what_was_covered(pg_server, pg_database, target):
    results = by_name(run_checks(target, manifest_row_counts={"goals": 50, "notes": 120},
                                 indexes=["notes_goal"]))
    assert results["integrity_check"].passed
    assert "amcheck is not installed" in " ".join(results["integrity_check"].evidence)
    assert results["foreign_key_check"].passed and results["row_count_ledger"].passed
    assert results["required_indexes"].passed
    pg_server.psql("CREATE EXTENSION amcheck", database=pg_database)
    checked = by_name(run_checks(target))["integrity_check"]
    assert checked.passed and "bt_index_check on 3 B-tree indexes" in " ".join(checked.evidence)


def test_an_invalid_index_and_an_unvalidated_foreign_key_are_named(pg_server, pg_database, target):
    pg_server.psql("INSERT INTO notes (goal_id, body) VALUES (999, 'orphan'), (1, 'n1')", database=pg_database)
    with pytest.raises(RuntimeError):  # leaves the index INVALID, as a failed build does
        pg_server.psql("CREATE UNIQUE INDEX CONCURRENTLY notes_body ON notes (body)", database=pg_database)
    pg_server.psql("ALTER TABLE notes ADD CONSTRAINT notes_goal_fk FOREIGN KEY (goal_id) REFERENCES goals (id) NOT VALID",
                   database=pg_database)
    results = by_name(run_checks(target))
    problems = " ".join(results["integrity_check"].evidence)
    assert not results["integrity_check"].passed
    assert "notes_body is INVALID" in problems and "notes_goal_fk is NOT VALID" in problems
    assert not results["foreign_key_check"].passed and "1 violation" in results["foreign_key_check"].summary


def test_the_ledger_counts_every_row_exactly(pg_server, pg_database, target):
    pg_server.psql("INSERT INTO goals (title) VALUES ('late')", database=pg_database)
    ledger = by_name(run_checks(target, manifest_row_counts={"goals": 50, "notes": 120}))["row_count_ledger"]
    assert not ledger.passed and "goals: before 50, after 51, delta +1" in " ".join(ledger.evidence)


def test_an_assertion_runs_read_only_under_its_time_limit(pg_server, pg_database, target):
    before = digest(pg_server, pg_database)
    passed = run_assertion(target, "titles", "SELECT count(*) FROM goals WHERE title IS NULL")
    assert passed.passed
    failing = run_assertion(target, "short", "SELECT count(*) FROM goals WHERE length(title) < 3")
    assert not failing.passed and "found 9" in failing.summary
    refused = run_assertion(target, "sequence", "SELECT nextval('goals_id_seq')")
    assert not refused.passed and "an assertion may only read" in refused.summary
    pg_server.psql("CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS "
                   "$$ INSERT INTO goals (title) VALUES ('bumped') RETURNING 0 $$", database=pg_database)
    before = digest(pg_server, pg_database)
    hidden = run_assertion(target, "hidden", "SELECT bump()")  # the text looks like a read
    assert not hidden.passed and "read-only transaction" in hidden.summary
    slow = run_assertion(target, "slow", "SELECT count(*) FROM goals WHERE pg_sleep(0.2) IS NULL", time_limit=0.5)
    assert not slow.passed and "timed out after 0.5 s" in slow.summary
    assert digest(pg_server, pg_database) == before
    assert pg_server.psql("SELECT last_value FROM goals_id_seq", database=pg_database).strip() == "50"


def test_the_smoke_test_keeps_nothing(pg_server, pg_database, target):
    before = digest(pg_server, pg_database)
    result = smoke_test(target, ["INSERT INTO goals (title) VALUES ('smoke')", "DELETE FROM notes WHERE goal_id = 1"])
    assert result.passed and "rolled back" in result.evidence[-1]
    failed = smoke_test(target, ["INSERT INTO goals (title) VALUES (NULL)"])
    assert not failed.passed and "null value" in failed.summary
    assert digest(pg_server, pg_database) == before
