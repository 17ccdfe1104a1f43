"""Preflight on real files and a real server: every reject counted, explained, with examples; nothing written."""
import hashlib
import importlib

from app.core.move import preflight
from tests.core.move.conftest import count_all


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_clean_data_is_movable(clean_source, target):
    result = preflight(clean_source, target)
    assert result.movable, result.to_dict()
    assert {t["name"]: (t["rows"], t["accepted"]) for t in result.to_dict()["tables"]} == {
        "users": (2, 2), "goals": (3, 3), "notes": (2, 2)}
    assert [t.name for t in result.tables] == ["users", "goals", "notes"]  # parents first
    assert "goals.done: integers 0/1 to boolean" in result.conversions()
    assert "goals.meta: JSON text to jsonb" in result.conversions()


def test_every_reason_is_found_with_examples_and_the_closure(dirty_source, target, pg_server, pg_database):
    before, stamp = sha(dirty_source.path), target.stamp()
    document = preflight(dirty_source, target).to_dict()
    assert not document["movable"]
    rejects = {(t["name"], r["reason"]): r for t in document["tables"] for r in t["rejects"]}
    assert {key: r["count"] for key, r in rejects.items()} == {
        ("users", "duplicate_unique_key"): 1, ("users", "not_boolean"): 1, ("users", "unparsable_timestamp"): 1,
        ("users", "text_too_long"): 1,
        ("goals", "foreign_key_orphan"): 1, ("goals", "null_in_not_null"): 1, ("goals", "invalid_json"): 1,
        ("goals", "integer_overflow"): 1, ("goals", "parent_rejected"): 2,
        ("notes", "parent_rejected"): 1, ("notes", "foreign_key_orphan"): 1,
    }
    assert rejects["goals", "foreign_key_orphan"]["examples"][0]["key"] == {"id": 10}
    assert "users(id) = 99" in rejects["goals", "foreign_key_orphan"]["examples"][0]["detail"]
    assert [e["key"] for e in rejects["goals", "parent_rejected"]["examples"]] == [{"id": 14}, {"id": 15}]
    assert rejects["notes", "parent_rejected"]["examples"][0]["key"] == {"id": 3}
    assert rejects["goals", "null_in_not_null"]["examples"][0]["column"] == "title"
    assert document["rejected_rows"] == 12
    assert sha(dirty_source.path) == before
    assert target.unchanged_since(stamp)  # the server's own counters: not a row, not a catalog entry written
    assert count_all(pg_server, pg_database) == {"users": 0, "goals": 0, "notes": 0}


def test_unmapped_columns_missing_tables_and_required_columns_are_named(tmp_path, target, pg_server, pg_database):
    from tests.core.move.conftest import make_source
    from app.core.engines import engine_for

    schema = ("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, active INTEGER, created_at TEXT, nickname TEXT);"
              "CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);")
    source = engine_for(make_source(tmp_path / "s.db", "", schema))
    pg_server.psql("INSERT INTO users (email, active, created_at) VALUES ('x@y', true, now())", database=pg_database)
    result = preflight(source, target)
    assert result.unmapped_columns == ["users.nickname"]
    assert result.missing_tables == ["audit"]
    assert result.target_not_empty == ["users"]
    assert result.target_only_tables == ["goals", "notes"]
    problems = result.blocking_problems()
    assert "source column users.nickname has no column in the target: its data would be dropped " \
           "(add it, or --drop users.nickname)" in problems
    assert not result.movable
    decided = preflight(source, target, drop=["users.nickname", "audit"])
    assert decided.unmapped_columns == [] and decided.missing_tables == []
    assert decided.dropped == ["audit", "users.nickname"]


def test_a_required_target_column_the_source_lacks_is_a_mismatch(tmp_path, target):
    from tests.core.move.conftest import make_source
    from app.core.engines import engine_for

    source = engine_for(make_source(tmp_path / "s.db", "", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);"))
    mismatches = preflight(source, target).schema_mismatches
    assert {(m["table"], m["column"]) for m in mismatches} == {("users", "active"), ("users", "created_at")}
    assert "NOT NULL, no default" in mismatches[0]["problem"]


def test_keys_that_differ_in_sqlite_but_not_in_the_target_are_duplicates(tmp_path, pg_server, pg_database, pg_url):
    from tests.core.move.conftest import make_source
    from app.core.engines import engine_for

    pg_server.psql("CREATE TABLE readings (taken timestamp PRIMARY KEY, value integer)", database=pg_database)
    source = engine_for(make_source(
        tmp_path / "r.db", "INSERT INTO readings VALUES ('2026-01-01 10:00:00', 1), ('2026-01-01T10:00', 2);",
        "CREATE TABLE readings (taken TEXT PRIMARY KEY, value INTEGER);"))
    table = preflight(source, engine_for(pg_url, kind="postgresql")).to_dict()["tables"][0]
    assert table["rejects"][0]["reason"] == "duplicate_unique_key"
    assert table["rejects"][0]["examples"][0]["key"] == {"taken": "2026-01-01T10:00"}


BATCHED_TARGET = """
CREATE TABLE kinds (id bigint PRIMARY KEY, name varchar(5) NOT NULL);
CREATE TABLE events (id bigint PRIMARY KEY, kind integer REFERENCES kinds(id), small smallint, ratio double precision,
                     label varchar(4), note text, at timestamp NOT NULL, ok boolean);
CREATE TABLE tags (id bigint PRIMARY KEY, event bigint NOT NULL REFERENCES events(id), word text);
"""
BATCHED_SOURCE = """
CREATE TABLE kinds (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE events (id INTEGER PRIMARY KEY, kind INTEGER, small INTEGER, ratio REAL, label TEXT, note TEXT, at TEXT,
                     ok INTEGER);
CREATE TABLE tags (id INTEGER PRIMARY KEY, event INTEGER, word TEXT);
"""
BATCHED_ROWS = """
INSERT INTO kinds VALUES (1, 'a'), (2, 'b'), (3, 'too long');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
INSERT INTO events SELECT i, 1 + i % 2, i, i / 7.0, 'l' || (i % 10), CASE WHEN i % 3 THEN 'note' END,
                          '2026-01-01 00:00:' || printf('%02d', i % 60), i % 2 FROM n;
-- Each fault alone in its batch of 16 rows, so that each check of the batch judge is needed.
UPDATE events SET kind = 99 WHERE id = 20;                 -- orphan
UPDATE events SET kind = 3 WHERE id = 40;                  -- its parent is rejected
UPDATE events SET small = 40000 WHERE id = 60;             -- smallint overflow
UPDATE events SET ratio = 'x' WHERE id = 80;               -- not a number
UPDATE events SET ratio = 5 WHERE id = 90;                 -- an integer in a float column: converted, accepted
UPDATE events SET note = 'a' || char(0) || 'b' WHERE id = 100;  -- NUL
UPDATE events SET label = 'abcde' WHERE id = 120;          -- too long
UPDATE events SET at = NULL WHERE id = 150;                -- NOT NULL
UPDATE events SET at = '2026-02-30 00:00:00' WHERE id = 250;  -- no such day
UPDATE events SET ok = 'maybe' WHERE id = 270;             -- not a boolean
UPDATE events SET kind = NULL WHERE id = 290;              -- a NULL reference: accepted
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
INSERT INTO tags SELECT i, i, 'w' FROM n;
UPDATE tags SET event = 777 WHERE id = 5;                  -- orphan
"""


def test_batches_judged_at_once_give_the_verdicts_of_the_row_by_row_judge(tmp_path, pg_server, pg_database, pg_url,
                                                                           monkeypatch):
    """Most batches take the column-by-column path; the verdicts, reasons, examples and counts
    are exactly those of judging every row one by one."""
    from app.core.engines import engine_for
    from app.core.engines.sqlite import movesource
    from app.core.move import move
    from tests.core.move.conftest import make_source

    preflight_module = importlib.import_module("app.core.move.preflight")  # the package's `preflight` is the function

    pg_server.psql(BATCHED_TARGET, database=pg_database)
    source = engine_for(make_source(tmp_path / "b.db", BATCHED_ROWS, BATCHED_SOURCE))
    target = engine_for(pg_url, kind="postgresql")
    monkeypatch.setattr(movesource, "BATCH_ROWS", 16)
    at_once = []
    judge_batch = preflight_module._BatchJudge.__call__

    def counted(self, raws):
        verdicts = judge_batch(self, raws)
        at_once.append(verdicts is not None)
        return verdicts

    monkeypatch.setattr(preflight_module._BatchJudge, "__call__", counted)
    batched = preflight(source, target).to_dict()
    monkeypatch.setattr(preflight_module._BatchJudge, "for_table", classmethod(lambda cls, judge, position: None))
    assert preflight(source, target).to_dict() == batched
    assert at_once.count(True) >= 15 and at_once.count(False) >= 15  # both paths were taken
    rejects = {(t["name"], r["reason"]): r["count"] for t in batched["tables"] for r in t["rejects"]}
    assert rejects == {
        ("kinds", "text_too_long"): 1,
        ("events", "foreign_key_orphan"): 1, ("events", "parent_rejected"): 1, ("events", "integer_overflow"): 1,
        ("events", "value_not_of_type"): 2, ("events", "text_too_long"): 1, ("events", "null_in_not_null"): 1,
        ("events", "unparsable_timestamp"): 1, ("events", "not_boolean"): 1,
        ("tags", "parent_rejected"): 9, ("tags", "foreign_key_orphan"): 1,
    }
    monkeypatch.undo()
    monkeypatch.setattr(movesource, "BATCH_ROWS", 16)
    report = move(source, target, quarantine=tmp_path / "rejects.db")
    assert report.passed, report.lines()
    assert {t.name: (t.moved, t.quarantined) for t in report.tables} == {
        "kinds": (2, 1), "events": (291, 9), "tags": (290, 10)}
    assert pg_server.psql("SELECT ratio FROM events WHERE id = 90", database=pg_database).strip() == "5"


def test_a_unique_key_over_the_rows_not_deleted_is_judged_on_those_rows_only(tmp_path, pg_server, pg_database, pg_url):
    """UNIQUE (email) WHERE deleted_at IS NULL, the soft-delete shape: two deleted rows may share an
    address, a live row may share one with a deleted row, two live rows may not."""
    from app.core.engines import engine_for
    from tests.core.move.conftest import make_source

    pg_server.psql("CREATE TABLE members (id bigint PRIMARY KEY, email text NOT NULL, deleted_at timestamp);"
                   "CREATE UNIQUE INDEX members_live_email ON members (email) WHERE deleted_at IS NULL",
                   database=pg_database)
    source = engine_for(make_source(tmp_path / "m.db", """
        INSERT INTO members VALUES (1, 'a@x', '2026-01-01 00:00:00'), (2, 'a@x', '2026-01-02 00:00:00'),
                                   (3, 'a@x', NULL), (4, 'b@x', NULL), (5, 'b@x', NULL);""",
        "CREATE TABLE members (id INTEGER PRIMARY KEY, email TEXT, deleted_at TEXT);"))
    target = engine_for(pg_url, kind="postgresql")
    table = preflight(source, target).to_dict()["tables"][0]
    assert [(r["reason"], r["count"], [e["key"] for e in r["examples"]]) for r in table["rejects"]] == [
        ("duplicate_unique_key", 1, [{"id": 5}])]
    assert "members_live_email" in table["rejects"][0]["examples"][0]["detail"]


def test_what_only_the_server_can_judge_is_named(tmp_path, pg_server, pg_database, pg_url):
    from app.core.engines import engine_for
    from tests.core.move.conftest import make_source

    pg_server.psql("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, price numeric CHECK (price > 0),"
                   " status text);"
                   "CREATE UNIQUE INDEX items_lower_name ON items (lower(name));"
                   "CREATE UNIQUE INDEX items_active_name ON items (name) WHERE status = 'active'",
                   database=pg_database)
    source = engine_for(make_source(tmp_path / "i.db", "INSERT INTO items VALUES (1, 'A', 2, 'active');",
                                    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL, status TEXT);"))
    result = preflight(source, engine_for(pg_url, kind="postgresql"))
    assert sorted(result.to_dict()["checked_by_the_server"]) == [
        "items.items_active_name", "items.items_lower_name", "items.items_price_check"]
    assert result.movable
    checks = dict(result.tables[0].server_checks)
    assert checks["items_price_check"] == "CHECK ((price > (0)::numeric))"
    assert "lower(name)" in checks["items_lower_name"]


def test_a_partial_unique_key_over_a_column_the_source_lacks_is_left_to_the_server(tmp_path, pg_server, pg_database,
                                                                                   pg_url):
    """The target fills deleted_at itself (NULL, or a default preflight cannot know): which rows the
    index covers is the server's to say."""
    from app.core.engines import engine_for
    from tests.core.move.conftest import make_source

    pg_server.psql("CREATE TABLE members (id bigint PRIMARY KEY, email text NOT NULL, deleted_at timestamp);"
                   "CREATE UNIQUE INDEX members_live_email ON members (email) WHERE deleted_at IS NULL",
                   database=pg_database)
    source = engine_for(make_source(tmp_path / "m.db", "INSERT INTO members VALUES (1, 'a@x'), (2, 'a@x');",
                                    "CREATE TABLE members (id INTEGER PRIMARY KEY, email TEXT);"))
    result = preflight(source, engine_for(pg_url, kind="postgresql"))
    assert result.to_dict()["checked_by_the_server"] == ["members.members_live_email"]
    assert result.tables[0].server_checks == [
        ("members_live_email", "UNIQUE (email) WHERE deleted_at IS NULL")]
    assert result.movable  # not judged here: the server refuses the duplicate during the copy, which rolls back
