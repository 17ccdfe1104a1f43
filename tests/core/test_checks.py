"""Verification checks on real files: each passes and fails, none raises or hangs."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from app.core.backup import create_backup
from app.core.checks import (
    CheckResult,
    example_query,
    foreign_key_check,
    integrity_check,
    report,
    required_indexes,
    row_count_ledger,
    run_assertion,
    run_checks,
    schema_check,
    smoke_test,
)
from app.core.demo import create_demo_workspace
from app.core.workspace import load_workspace
from tests.core.conftest import folder_state

SLOW_QUERY = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
              "WHERE i < 1000000000) SELECT count(*) FROM n")

SMALL_DDL = """
CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE child (id INTEGER PRIMARY KEY,
                    parent_id INTEGER NOT NULL REFERENCES parent(id) ON DELETE CASCADE,
                    root_id INTEGER);
CREATE INDEX child_parent ON child (parent_id);
INSERT INTO parent VALUES (1, 'a'), (2, 'b');
INSERT INTO child VALUES (1, 1, 1), (2, 1, 1), (3, 2, 2);
"""


@pytest.fixture(scope="module")
def demo_source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    create_demo_workspace(folder)
    return folder


@pytest.fixture
def demo(demo_source, tmp_path) -> Path:
    """A private copy of the demo workspace (tests may write to its databases)."""
    for name in ("cutover.toml", "goals.db", "goals_dev.db"):
        (tmp_path / name).write_bytes((demo_source / name).read_bytes())
    return tmp_path


@pytest.fixture
def small(make_db) -> Path:
    return make_db(SMALL_DDL, "small.db")


def write(path: Path, sql: str) -> None:
    with closing(sqlite3.connect(path)) as connection:
        connection.executescript(sql)
        connection.commit()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- assertions


def test_demo_null_root_id_checks_fail_on_production_and_pass_on_dev(demo):
    checks = dict(load_workspace(demo / "cutover.toml").checks)
    goals = checks["null_root_id_goals"]
    failed = run_assertion(demo / "goals.db", "null_root_id_goals", goals)
    assert not failed.passed
    assert "FAILED: found" in failed.summary
    assert any(line.startswith("offending count: ") for line in failed.evidence)
    assert any("root_id=NULL" in line for line in failed.evidence)
    # activity_instances has no root_id column in production yet: a failed query, not a crash
    missing = run_assertion(demo / "goals.db", "null_root_id_activity_instances",
                            checks["null_root_id_activity_instances"])
    assert not missing.passed and "no such column: root_id" in missing.summary
    for name, sql in checks.items():
        result = run_assertion(demo / "goals_dev.db", name, sql)
        assert result.passed, result
        assert result.summary == f"{name}: passed (returned 0)"


def test_a_null_appearing_after_migration_fails_with_count_and_example(demo):
    production = demo / "goals.db"
    sql = "SELECT COUNT(*) FROM goals WHERE root_id IS NULL"
    write(production, "UPDATE goals SET root_id = id WHERE root_id IS NULL;")  # the backfill
    assert run_assertion(production, "null_root_id_goals", sql).passed
    # ... and then the old application, still running, writes a row without root_id.
    write(production, "INSERT INTO goals (id, name, type, created_at, root_id) VALUES "
                      "(999999, 'written by the old app', 'ShortTermGoal', '2026-01-01', NULL);")
    result = run_assertion(production, "null_root_id_goals", sql)
    assert not result.passed
    assert result.summary == "null_root_id_goals: FAILED: found 1 (expected 0)"
    assert "offending count: 1" in result.evidence
    assert any("id=999999" in line and "'written by the old app'" in line and "root_id=NULL" in line
               for line in result.evidence)


def test_row_returning_assertion_reports_count_and_at_most_five_rows(small):
    result = run_assertion(small, "children", "SELECT id, parent_id FROM child")
    assert not result.passed
    assert result.summary == "children: FAILED: returned 3 rows (expected none)"
    assert "offending count: 3" in result.evidence
    assert "  id=1, parent_id=1" in result.evidence
    write(small, "INSERT INTO child (parent_id) SELECT 1 FROM parent, parent, parent;")
    many = run_assertion(small, "children", "SELECT id FROM child")
    assert sum(line.startswith("  id=") for line in many.evidence) == 5


@pytest.mark.parametrize("sql", ["SELECT 0", "SELECT NULL", "SELECT id FROM child WHERE id < 0",
                                 "SELECT COUNT(*) FROM child WHERE root_id IS NULL"])
def test_assertion_passes_on_no_rows_zero_or_null(small, sql):
    assert run_assertion(small, "fine", sql).passed


def test_invalid_assertion_is_a_failed_result_naming_it(small):
    before = sha256(small)
    result = run_assertion(small, "wipe", "DELETE FROM child")
    assert not result.passed and "wipe" in result.summary and "not DELETE" in result.summary
    assert sha256(small) == before


def test_assertion_cannot_reach_pragmas_at_run_time(small):
    result = run_assertion(small, "peek", "SELECT * FROM pragma_table_info('child')")
    assert not result.passed and "not authorized" in result.summary


def test_slow_assertion_times_out_instead_of_hanging(small):
    result = run_assertion(small, "slow", SLOW_QUERY, time_limit=0.3)
    assert not result.passed
    assert result.summary == "slow: timed out after 0.3 s"
    assert result.duration_ms < 5000


def test_missing_database_is_a_failed_result_not_an_exception(tmp_path):
    result = run_assertion(tmp_path / "nope.db", "x", "SELECT 0")
    assert not result.passed and "does not exist" in result.summary
    assert not (tmp_path / "nope.db").exists()


def test_example_query_only_rewrites_plain_counts():
    assert example_query("SELECT COUNT(*) FROM t WHERE x IS NULL -- why") == \
        "SELECT * FROM t WHERE x IS NULL LIMIT 5"
    assert example_query("select count(*) as n from t") == "SELECT * FROM t LIMIT 5"
    assert example_query("SELECT COUNT(*) FROM t GROUP BY x") is None
    assert example_query("SELECT COUNT(id) FROM t") is None


# --------------------------------------------------------------------------- foreign keys


def test_foreign_keys_with_baseline_on_demo_production(demo):
    production = demo / "goals.db"
    result = foreign_key_check(production, baseline=2)
    assert result.passed
    assert "2 pre-existing" in result.summary
    assert sum(line.startswith("pre-existing: ") for line in result.evidence) == 2
    write(production, "PRAGMA foreign_keys = OFF; "
                      "UPDATE goals SET parent_id = 987654 WHERE id = (SELECT max(id) FROM goals);")
    broken = foreign_key_check(production, baseline=2)
    assert not broken.passed
    assert "1 new violation" in broken.summary


def test_foreign_keys_without_baseline_any_violation_fails(demo, small):
    assert not foreign_key_check(demo / "goals.db", baseline=None).passed
    clean = foreign_key_check(small, baseline=None)
    assert clean.passed and clean.summary == "foreign_key_check: no violations"


def test_foreign_keys_compared_row_by_row_with_violations(small):
    from app.core.checks import foreign_key_violations_of
    from app.core.engines.sqlite.files import open_readonly
    from app.core.engines.sqlite.integrity import foreign_key_violations

    write(small, "PRAGMA foreign_keys = OFF; INSERT INTO child VALUES (10, 99, 1);")
    with closing(open_readonly(small)) as connection:
        before = foreign_key_violations(connection)
    assert foreign_key_violations_of(small) == before
    # One orphan fixed, another added: the count is the same, the rows are not.
    write(small, "PRAGMA foreign_keys = OFF; DELETE FROM child WHERE id = 10; "
                 "INSERT INTO child VALUES (11, 98, 1);")
    assert foreign_key_check(small, baseline=1).passed
    result = foreign_key_check(small, baseline=before)
    assert not result.passed and any("child rowid 11" in line for line in result.evidence)


def test_violations_of_an_unreadable_target_are_a_clear_refusal(tmp_path):
    from app.core.checks import foreign_key_violations_of
    from app.core.errors import TargetUnavailable

    missing = tmp_path / "gone.db"
    with pytest.raises(TargetUnavailable) as caught:
        foreign_key_violations_of(missing)
    assert caught.value.reason == "missing" and not missing.exists()


# --------------------------------------------------------------------------- schema


def test_schema_check_against_reference(demo):
    assert schema_check(demo / "goals_dev.db", demo / "goals_dev.db").passed
    drifted = schema_check(demo / "goals.db", demo / "goals_dev.db")
    assert not drifted.passed
    assert any(line.startswith("difference: column ") for line in drifted.evidence)


def test_accepted_differences_are_listed_but_pass(make_db, small):
    reference = make_db(SMALL_DDL + "CREATE INDEX child_root ON child (root_id);", "reference.db")
    failed = schema_check(small, reference)
    assert not failed.passed and "1 difference" in failed.summary
    accepted = schema_check(small, reference, accepted={("index", "child", "child_root")})
    assert accepted.passed
    assert "1 accepted difference" in accepted.summary
    assert any(line.startswith("accepted: index child.child_root") for line in accepted.evidence)


def test_schema_check_with_missing_reference_fails_with_reason(small, tmp_path):
    result = schema_check(small, tmp_path / "missing.db")
    assert not result.passed and "does not exist" in result.summary


# --------------------------------------------------------------------------- row counts


def test_row_count_ledger_against_a_backup_manifest(small, tmp_path):
    (tmp_path / "backups").mkdir()
    backup = create_backup(small, [tmp_path / "backups"])
    counts = backup.manifest.row_counts
    same = row_count_ledger(small, counts)
    assert same.passed
    assert "child: before 3, after 3, delta +0 (expected +0) ok" in same.evidence
    write(small, "INSERT INTO child VALUES (4, 2, 2);")
    grown = row_count_ledger(small, counts)
    assert not grown.passed and "(child)" in grown.summary
    assert "child: before 3, after 4, delta +1 (expected +0) UNEXPECTED" in grown.evidence
    assert row_count_ledger(small, counts, declared={"child": 1}).passed


def test_row_count_ledger_new_and_vanished_tables(small):
    write(small, "CREATE TABLE extra (x); INSERT INTO extra VALUES (1);")
    result = row_count_ledger(small, {"parent": 2, "child": 3, "gone": 5})
    assert not result.passed
    assert "gone: before 5, now missing (the table disappeared)" in result.evidence
    assert "extra: new table, after 1, delta +1 (expected +0) UNEXPECTED" in result.evidence
    assert row_count_ledger(small, {"parent": 2, "child": 3}, declared={"extra": 1}).passed


# --------------------------------------------------------------------------- indexes


def test_required_indexes(small):
    present = required_indexes(small, ["child_parent", "CHILD_PARENT"])
    assert present.passed and "child_parent: present on child" in present.evidence
    missing = required_indexes(small, ["child_parent", "child_root"])
    assert not missing.passed
    assert missing.summary == "required_indexes: FAILED: 1 index missing (child_root)"


# --------------------------------------------------------------------------- smoke test


def test_smoke_test_writes_cascade_and_leave_the_file_byte_identical(demo):
    migrated = demo / "goals_dev.db"
    before = folder_state(demo)
    result = smoke_test(migrated, [
        "INSERT INTO goals (name, type, created_at, root_id) "
        "VALUES ('smoke', 'UltimateGoal', '2026-01-01', 1)",
        "DELETE FROM practice_sessions WHERE id = (SELECT min(id) FROM practice_sessions)",
    ])
    assert result.passed, result
    assert "in all with cascades and triggers" in result.evidence[1]  # the cascade ran
    assert result.evidence[-1] == "rolled back: nothing was kept"
    assert folder_state(demo) == before


def test_smoke_test_failure_is_reported_and_rolled_back(small):
    before = sha256(small)
    result = smoke_test(small, ["DELETE FROM child WHERE id = 1",
                                "INSERT INTO child (parent_id) VALUES (12345)"])
    assert not result.passed
    assert "statement 2 failed: FOREIGN KEY constraint failed" in result.summary
    assert sha256(small) == before


@pytest.mark.parametrize("statement", ["COMMIT", "SAVEPOINT x", "DROP TABLE child",
                                       "PRAGMA user_version = 7", "ATTACH ':memory:' AS m"])
def test_smoke_test_refuses_anything_but_row_writes(small, statement):
    before = sha256(small)
    result = smoke_test(small, ["DELETE FROM child", statement])
    assert not result.passed and "not authorized" in result.summary
    assert sha256(small) == before
    with closing(sqlite3.connect(small)) as connection:
        assert connection.execute("SELECT count(*) FROM child").fetchone() == (3,)


def test_smoke_test_rejects_several_statements_in_one_item(small):
    result = smoke_test(small, ["DELETE FROM child; COMMIT"])
    assert not result.passed and "several statements" in result.summary


def test_slow_smoke_test_times_out_and_rolls_back(small):
    before = sha256(small)
    slow = ("INSERT INTO parent (name) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
            "SELECT i + 1 FROM n WHERE i < 1000000000) SELECT 'x' FROM n")
    result = smoke_test(small, [slow], time_limit=0.3)
    assert not result.passed and result.summary == "smoke_test: timed out after 0.3 s"
    assert sha256(small) == before


# --------------------------------------------------------------------------- integrity, all


def test_integrity_check_keeps_raising_for_callers_and_times_out(small, tmp_path):
    assert integrity_check(small).passed
    assert integrity_check(small, time_limit=5).summary == "integrity_check: ok"


def test_run_checks_and_report(demo):
    production = demo / "goals.db"
    results = run_checks(
        production,
        assertions=load_workspace(demo / "cutover.toml").checks,
        fk_baseline=2,
        reference_path=demo / "goals_dev.db",
        manifest_row_counts={"goals": 0},
        indexes=["no_such_index"],
        smoke_statements=["DELETE FROM goals WHERE id = 1"],
    )
    names = [result.name for result in results]
    assert names == ["integrity_check", "foreign_key_check", "null_root_id_activity_instances",
                     "null_root_id_goals", "schema_check", "row_count_ledger",
                     "required_indexes", "smoke_test"]
    data = report(results)
    assert data["passed"] is False
    assert [check["passed"] for check in data["checks"]] == [
        True, True, False, False, False, False, False, True]
    assert all(isinstance(check["duration_ms"], float) for check in data["checks"])
    assert report([CheckResult("a", True, "a: ok")]) == {
        "passed": True,
        "checks": [{"name": "a", "passed": True, "summary": "a: ok", "evidence": [],
                    "duration_ms": None}]}


def test_run_checks_on_a_missing_file_reports_instead_of_raising(tmp_path):
    results = run_checks(tmp_path / "missing.db", assertions=[("x", "SELECT 0")])
    assert [r.passed for r in results] == [False, False, False]
    assert all("does not exist" in r.summary for r in results)
