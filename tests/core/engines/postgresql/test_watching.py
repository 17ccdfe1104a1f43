"""The new-rows watch on a real PostgreSQL server: by primary key, by a self-filled timestamp, or not at all."""
import pytest

from app.core.engines import engine_for
from app.core.engines.postgresql.location import PostgresLocation
from app.core.newrows import capture_baseline, new_rows_check

SCHEMA = """
CREATE TABLE goals (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, root_id int, note text);
CREATE TABLE events (code text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), kind text);
CREATE TABLE tags (name text, colour text);
INSERT INTO goals (root_id, note) SELECT 1, NULL FROM generate_series(1, 20);
INSERT INTO events (code, at, kind) VALUES ('a', now() - interval '1 hour', 'x');
INSERT INTO tags VALUES ('t', 'red');
"""


@pytest.fixture
def target(pg_server, pg_database, pg_url):
    pg_server.psql(SCHEMA, database=pg_database)
    return engine_for(PostgresLocation(pg_url), "postgresql")


def test_the_baseline_names_each_tables_key(target):
    baseline = capture_baseline(target)
    assert baseline["goals"] == {"key": "id", "max_rowid": 20, "filled": ["root_id"]}
    assert baseline["events"]["key"] == "at" and baseline["events"]["filled"] == ["kind"]
    assert baseline["tags"] == {"key": None, "max_rowid": None, "filled": []}


def test_new_rows_that_leave_a_filled_column_null_fail(pg_server, pg_database, target):
    baseline = capture_baseline(target)
    pg_server.psql("INSERT INTO goals (root_id) VALUES (1), (NULL); INSERT INTO events (code) VALUES ('b')",
                   database=pg_database)
    result = new_rows_check(target, baseline)
    assert not result.passed
    assert "goals.root_id: 1 of 2 new row(s) are NULL" in result.evidence
    assert "events.kind: 1 of 1 new row(s) are NULL" in result.evidence
    assert any("not watched" in line and "tags" in line for line in result.evidence)


def test_filled_new_rows_pass(pg_server, pg_database, target):
    baseline = capture_baseline(target)
    pg_server.psql("INSERT INTO goals (root_id) VALUES (2)", database=pg_database)
    result = new_rows_check(target, baseline)
    assert result.passed and result.summary.startswith("1 new row(s)")
