"""Applying plans in one transaction, and rehearsing them on a snapshot."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing

import pytest

from app.core import migrate
from app.core.engines import engine_for
from app.core.engines.sqlite import SQLiteEngine, integrity, introspection
from app.core.errors import MigrationFailed, TargetUnavailable
from app.core.events import collecting
from app.core.inspect import inspect_database
from app.core.migrate import apply_plan, check_rehearsal, rehearse
from app.core.plans import load_plan_set, make_plan_set, parse_plan_text
from app.core.prep import generate_prep
from app.core.engines.sqlite.transactions import immediate_transaction, open_for_writing
from tests.core.conftest import folder_state

DEMO_PLANS = ("plans/migrate_database_improvements.sql", "plans/hotfix_activity_instances.sql")


def demo_plans(folder):
    return load_plan_set([folder / name for name in DEMO_PLANS])


def plan(text: str):
    return make_plan_set([parse_plan_text(text, file="plan.sql")])


def run(path, plan_set, **options):
    lines: list[tuple[str, str]] = []
    result = apply_plan(path, plan_set, emit=collecting(lines), **options)
    return result, masked(lines)


def failing_run(path, plan_set, **options):
    lines: list[tuple[str, str]] = []
    with pytest.raises(MigrationFailed) as caught:
        apply_plan(path, plan_set, emit=collecting(lines), **options)
    return caught.value, masked(lines)


def masked(lines):
    """Durations vary from run to run; everything else in a line is exact."""
    return [(level, re.sub(r"\d+ ms\b", "N ms", text)) for level, text in lines]


def prepare_demo(folder):
    """Apply the prep plan from development, as an operator would before the migration."""
    prep = generate_prep(inspect_database(folder / "goals.db").schema,
                         inspect_database(folder / "goals_dev.db").schema,
                         engine=engine_for(folder / "goals.db"), plan_set=demo_plans(folder))
    apply_plan(folder / "goals.db", make_plan_set([prep.plan()]))


def fingerprint(path):
    return inspect_database(path).schema.fingerprint()


def columns(path, table):
    with closing(sqlite3.connect(path)) as connection:
        return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]


# --------------------------------------------------------------------------- the transaction


def test_pythons_sqlite3_autocommits_ddl_by_default(make_db):
    """The trap: with the default isolation_level, DDL before a failure stays committed."""
    db = make_db("CREATE TABLE t (a INTEGER);")
    with closing(sqlite3.connect(db)) as connection:
        connection.execute("CREATE INDEX t_a ON t (a)")
        connection.execute("ALTER TABLE t ADD COLUMN b TEXT")
        with pytest.raises(sqlite3.OperationalError):
            connection.execute("CREATE INDEX t_c ON t (c)")
        assert not connection.in_transaction
        connection.rollback()
    assert columns(db, "t") == ["a", "b"]


def test_immediate_transaction_undoes_ddl_on_failure(make_db):
    db = make_db("CREATE TABLE t (a INTEGER);")
    with closing(open_for_writing(db, busy_timeout=1)) as connection:
        with pytest.raises(sqlite3.OperationalError, match="no such column: c"):
            with immediate_transaction(connection):
                connection.execute("CREATE INDEX t_a ON t (a)")
                connection.execute("ALTER TABLE t ADD COLUMN b TEXT")
                connection.execute("CREATE INDEX t_c ON t (c)")
        assert not connection.in_transaction
    assert columns(db, "t") == ["a"]


def test_rollback_never_hides_the_real_error(make_db):
    """When SQLite already ended the transaction, our ROLLBACK is skipped, not raised."""
    db = make_db("CREATE TABLE t (a INTEGER);")
    with closing(open_for_writing(db, busy_timeout=1)) as connection:
        with pytest.raises(ValueError, match="the real error"):
            with immediate_transaction(connection):
                connection.execute("INSERT INTO t VALUES (1)")
                connection.execute("ROLLBACK")  # as SQLite does itself after SQLITE_FULL
                raise ValueError("the real error")


def test_immediate_transaction_needs_an_autocommit_connection(make_db):
    db = make_db("CREATE TABLE t (a INTEGER);")
    with closing(sqlite3.connect(db)) as connection:
        with pytest.raises(ValueError, match="isolation_level=None"):
            with immediate_transaction(connection):
                pass


def test_a_missing_target_is_not_created(tmp_path):
    with pytest.raises(TargetUnavailable, match="does not exist"):
        apply_plan(tmp_path / "goals.db", plan("CREATE TABLE t (a);"))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the demo


def demo_opening_lines(path):
    """How every apply of the demo plans to demo production begins (2 orphans predate it)."""
    return [
        ("info", f"Migrating {path}: plan 75458d891952, 34 statements in 5 phases, one transaction"),
        ("info", "Write lock taken (BEGIN IMMEDIATE): nobody sees a change before COMMIT"),
        ("info", "Integrity before: quick_check ok"),
        ("warning", "Foreign keys before: 2 pre-existing violations (reported, not fatal: only "
                    "new ones stop the migration)"),
        ("warning", "  pre-existing: activity_instances rowid 288 → practice_sessions "
                    "(practice_session_id)"),
        ("warning", "  pre-existing: metric_values rowid 1039 → activity_instances "
                    "(activity_instance_id)"),
        ("info", "Phase 1: Add root_id columns (4 statements)"),
    ]


def test_demo_production_fails_at_the_group_id_index_and_rolls_back(demo):
    path = demo / "goals.db"
    error, lines = failing_run(path, demo_plans(demo))
    assert lines == [
        *demo_opening_lines(path),
        ("expected", "[Phase 1] ALTER TABLE goals ADD COLUMN root_id INTEGER REFERENCES goals(id) "
                     "… ⚠ Column already exists, skipping (expected) N ms"),
        ("expected", "[Phase 1] ALTER TABLE practice_sessions ADD COLUMN root_id INTEGER "
                     "REFERENCES goals(id) … ⚠ Column already exists, skipping (expected) N ms"),
        ("ok", "[Phase 1] ALTER TABLE activity_instances ADD COLUMN root_id INTEGER REFERENCES "
               "goals(id) … ✓ Success (new) N ms"),
        ("ok", "[Phase 1] ALTER TABLE metric_values ADD COLUMN root_id INTEGER REFERENCES "
               "goals(id) … ✓ Success (new) N ms"),
        ("info", "Phase 2: Backfill root_id (4 statements)"),
        ("ok", "[Phase 2] WITH … UPDATE goals SET root_id = (SELECT tree.root FROM tree WHERE "
               "tree.id = goals.id) WHERE root_… ✓ Success: 96 rows updated (data statement, "
               "idempotent by design) N ms"),
        ("ok", "[Phase 2] UPDATE practice_sessions SET root_id = (SELECT goals.root_id FROM goals "
               "WHERE goals.id = practice_s… ✓ Success: 68 rows updated (data statement, "
               "idempotent by design) N ms"),
        ("ok", "[Phase 2] UPDATE activity_instances SET root_id = COALESCE((SELECT ps.root_id FROM "
               "practice_sessions AS ps WH… ✓ Success: 600 rows updated (data statement, "
               "idempotent by design) N ms"),
        ("ok", "[Phase 2] UPDATE metric_values SET root_id = COALESCE((SELECT ai.root_id FROM "
               "activity_instances AS ai WHERE… ✓ Success: 1,100 rows updated (data statement, "
               "idempotent by design) N ms"),
        ("info", "Phase 3: Indexes for root_id and hot lookups (10 statements)"),
        ("expected", "[Phase 3] CREATE INDEX idx_goals_root_id ON goals(root_id) … ⚠ Index "
                     "already exists, skipping (expected) N ms"),
        ("expected", "[Phase 3] CREATE INDEX idx_goals_parent_id ON goals(parent_id) … ⚠ Index "
                     "already exists, skipping (expected) N ms"),
        ("expected", "[Phase 3] CREATE INDEX idx_practice_sessions_root_id ON "
                     "practice_sessions(root_id) … ⚠ Index already exists, skipping (expected) N ms"),
        ("expected", "[Phase 3] CREATE INDEX idx_practice_sessions_goal_id ON "
                     "practice_sessions(goal_id) … ⚠ Index already exists, skipping (expected) N ms"),
        ("error", "[Phase 3] CREATE INDEX idx_activity_definitions_group_id ON "
                  "activity_definitions(group_id) … ✗ Error: no such column: group_id N ms"),
        ("error", f"Rolled back: {path} is exactly as it was before the migration."),
    ]
    plans_file = demo / DEMO_PLANS[0]
    assert error.message == (
        f'statement 13 (phase 3 "Indexes for root_id and hot lookups", {plans_file}:55) failed: '
        "no such column: group_id. The transaction was rolled back: nothing was changed.")
    result = error.result
    assert (result.committed, result.fingerprint_after, result.counts()) == (
        False, None, {"applied": 6, "skipped": 6, "failed": 1, "not_run": 21})
    assert result.failure["reason"] == "statement_failed"
    assert result.failure["error"] == "no such column: group_id"
    assert result.failure["statement"]["index"] == 12
    assert error.to_dict()["result"]["failure"]["statement"]["line"] == 55


def test_demo_happy_path_after_the_prep(demo):
    path = demo / "goals.db"
    prepare_demo(demo)
    before = fingerprint(path)
    result, lines = run(path, demo_plans(demo))
    after = fingerprint(path)
    assert lines[:7] == demo_opening_lines(path)
    assert lines[20:] == [
        ("expected", "[Phase 3] CREATE INDEX idx_practice_sessions_goal_id ON "
                     "practice_sessions(goal_id) … ⚠ Index already exists, skipping (expected) N ms"),
        ("ok", "[Phase 3] CREATE INDEX idx_activity_definitions_group_id ON "
               "activity_definitions(group_id) … ✓ Success (new) N ms"),
        ("ok", "[Phase 3] CREATE INDEX idx_activity_definitions_root_id ON "
               "activity_definitions(root_id) … ✓ Success (new) N ms"),
        ("ok", "[Phase 3] CREATE INDEX idx_activity_instances_root_id ON "
               "activity_instances(root_id) … ✓ Success (new) N ms"),
        ("ok", "[Phase 3] CREATE INDEX idx_activity_instances_session_id ON "
               "activity_instances(practice_session_id) … ✓ Success (new) N ms"),
        ("ok", "[Phase 3] CREATE INDEX idx_metric_values_root_id ON metric_values(root_id) … "
               "✓ Success (new) N ms"),
        ("ok", "[Phase 3] CREATE INDEX idx_metric_values_instance_id ON "
               "metric_values(activity_instance_id) … ✓ Success (new) N ms"),
        ("info", "Phase 4: Soft deletes and audit trail (13 statements)"),
        ("ok", "[Phase 4] ALTER TABLE goals ADD COLUMN deleted_at DATETIME … ✓ Success (new) N ms"),
        ("ok", "[Phase 4] ALTER TABLE practice_sessions ADD COLUMN deleted_at DATETIME … "
               "✓ Success (new) N ms"),
        ("ok", "[Phase 4] ALTER TABLE activity_definitions ADD COLUMN deleted_at DATETIME … "
               "✓ Success (new) N ms"),
        ("ok", "[Phase 4] ALTER TABLE activity_instances ADD COLUMN deleted_at DATETIME … "
               "✓ Success (new) N ms"),
        ("ok", "[Phase 4] ALTER TABLE goals ADD COLUMN updated_at DATETIME … ✓ Success (new) N ms"),
        ("ok", "[Phase 4] ALTER TABLE practice_sessions ADD COLUMN updated_at DATETIME … "
               "✓ Success (new) N ms"),
        ("ok", "[Phase 4] ALTER TABLE activity_instances ADD COLUMN updated_at DATETIME … "
               "✓ Success (new) N ms"),
        ("ok", "[Phase 4] UPDATE goals SET updated_at = created_at WHERE updated_at IS NULL … "
               "✓ Success: 200 rows updated (data statement, idempotent by design) N ms"),
        ("ok", "[Phase 4] UPDATE practice_sessions SET updated_at = created_at WHERE updated_at "
               "IS NULL … ✓ Success: 220 rows updated (data statement, idempotent by design) N ms"),
        ("ok", "[Phase 4] UPDATE activity_instances SET updated_at = created_at WHERE updated_at "
               "IS NULL … ✓ Success: 600 rows updated (data statement, idempotent by design) N ms"),
        ("ok", "[Phase 4] CREATE TABLE audit_log (id INTEGER PRIMARY KEY, table_name TEXT NOT "
               "NULL, row_id INTEGER NOT NULL,… ✓ Success (new) N ms"),
        ("ok", "[Phase 4] CREATE INDEX idx_audit_log_row ON audit_log(table_name, row_id) … "
               "✓ Success (new) N ms"),
        ("ok", "[Phase 4] CREATE INDEX idx_goals_live_root_id ON goals(root_id) WHERE deleted_at "
               "IS NULL … ✓ Success (new) N ms"),
        ("info", "Phase 5: Hotfix: activity_instances columns (3 statements)"),
        ("ok", "[Phase 5] ALTER TABLE activity_instances ADD COLUMN completed BOOLEAN DEFAULT 0 … "
               "✓ Success (new) N ms"),
        ("ok", "[Phase 5] ALTER TABLE activity_instances ADD COLUMN notes STRING … "
               "✓ Success (new) N ms"),
        ("ok", "[Phase 5] ALTER TABLE activity_instances ADD COLUMN data STRING … "
               "✓ Success (new) N ms"),
        ("info", "Integrity after: quick_check ok"),
        ("ok", "Foreign keys after: no new violations (2 pre-existing)"),
        ("ok", f"Committed: 28 statements applied, 6 skipped, in N ms; schema {before[:12]} → "
               f"{after[:12]}"),
    ]
    assert (result.committed, result.fingerprint_before, result.fingerprint_after) == (
        True, before, after)
    assert result.foreign_keys == {"before": 2, "after": 2, "new": 0, "pre_existing": 2,
                                   "new_samples": [], "unavailable": None}


def test_second_run_skips_every_ddl_statement_and_says_data_runs_again(demo):
    path = demo / "goals.db"
    prepare_demo(demo)
    apply_plan(path, demo_plans(demo))
    result, lines = run(path, demo_plans(demo))
    statement_lines = [(level, text) for level, text in lines if text.startswith("[Phase")]
    assert {level for level, text in statement_lines if "data statement" not in text} == {"expected"}
    assert [text[text.index("✓"):] for level, text in statement_lines if level == "ok"] == [
        "✓ Success: 0 rows updated (data statement, idempotent by design) N ms"] * 7
    assert result.counts() == {"applied": 7, "skipped": 27, "failed": 0, "not_run": 0}
    assert result.fingerprint_before == result.fingerprint_after


def test_apply_result_to_dict_shape(demo):
    prepare_demo(demo)
    data = apply_plan(demo / "goals.db", demo_plans(demo)).to_dict()
    assert set(data) == {"path", "plan_hash", "committed", "started_at", "duration_ms",
                         "fingerprint_before", "fingerprint_after", "counts", "failure",
                         "quick_check_before", "quick_check_after", "foreign_keys", "timings",
                         "statements", "commit_point", "outside_transaction"}
    assert set(data["timings"]) == {"checks_before_ms", "statements_ms", "checks_after_ms"}
    assert {k: v for k, v in data["statements"][4].items() if k != "duration_ms"} == {
        "index": 4, "file": str(demo / DEMO_PLANS[0]), "line": 19, "phase": "Backfill root_id",
        "phase_number": 2,
        "description": "WITH … UPDATE goals SET root_id = (SELECT tree.root FROM tree WHERE "
                       "tree.id = goals.id) WHERE root_…",
        "outcome": "applied",
        "message": "Success: 96 rows updated (data statement, idempotent by design)",
        "rows": 96,
    }


# --------------------------------------------------------------------------- stopping


def test_a_conflict_found_on_the_live_schema_stops_the_run(make_db):
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);")
    error, lines = failing_run(db, plan("CREATE INDEX t_id ON t (id);\n"
                                        "ALTER TABLE t ADD COLUMN a INTEGER;\n"))
    assert lines[-4:] == [
        ("error", "[Phase 1] ALTER TABLE t ADD COLUMN a INTEGER … ✗ Conflict: column t.a already "
                  "exists with a different definition N ms"),
        ("error", "  existing: a text"),
        ("error", "  plan:     a integer"),
        ("error", f"Rolled back: {db} is exactly as it was before the migration."),
    ]
    assert error.result.failure["reason"] == "conflict"
    assert inspect_database(db).schema.table("t").indexes == ()


def test_a_new_foreign_key_violation_stops_the_run_but_old_ones_do_not(make_db):
    db = make_db("CREATE TABLE p (id INTEGER PRIMARY KEY);"
                 "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id));"
                 "INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1), (2, 99);")
    ok, _ = run(db, plan("ALTER TABLE c ADD COLUMN q_id INTEGER REFERENCES p(id);\n"
                         "UPDATE c SET q_id = 1;\n"))
    assert ok.foreign_keys["new"] == 0 and ok.foreign_keys["before"] == 1
    error, lines = failing_run(db, plan("INSERT INTO c (id, p_id) VALUES (3, 42);\nDELETE FROM p;\n"))
    assert lines[-6:] == [
        ("error", "Foreign keys after: 4 new violations"),
        ("error", "  new: c rowid 1 → p (p_id)"),
        ("error", "  new: c rowid 1 → p (q_id)"),
        ("error", "  new: c rowid 2 → p (q_id)"),
        ("error", "  new: c rowid 3 → p (p_id)"),
        ("error", f"Rolled back: {db} is exactly as it was before the migration."),
    ]
    assert error.result.failure["reason"] == "foreign_keys"
    assert error.result.foreign_keys["new"] == 4
    with closing(sqlite3.connect(db)) as connection:
        assert connection.execute("SELECT count(*) FROM p").fetchone() == (1,)


def test_above_the_exact_limit_violations_are_compared_by_checksums(make_db, monkeypatch):
    monkeypatch.setattr(integrity, "EXACT_VIOLATION_LIMIT", 1)
    db = make_db("CREATE TABLE p (id INTEGER PRIMARY KEY);"
                 "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id));"
                 "INSERT INTO c VALUES (1, 7), (2, 8), (3, 9);")
    unchanged, _ = run(db, plan("CREATE INDEX c_p ON c (p_id);"))
    assert unchanged.foreign_keys["new"] == 0
    same_rows, _ = run(db, plan("UPDATE c SET p_id = 10 WHERE id = 3;"))  # still row 3
    assert same_rows.foreign_keys["new"] == 0
    error, _ = failing_run(db, plan("DELETE FROM c WHERE id = 1;\nINSERT INTO c VALUES (4, 11);"))
    assert error.result.foreign_keys["new_samples"] == [
        "c → p (p_id): 3 before, 3 after"]
    error, _ = failing_run(db, plan("DELETE FROM c WHERE id = 3;"))
    assert error.result.foreign_keys["new_samples"] == [
        "c → p (p_id): changed and too many to compare row by row (3 before, 2 after)"]


def test_statements_on_a_wal_database_are_atomic_too(make_db):
    db = make_db("PRAGMA journal_mode = WAL; CREATE TABLE t (a INTEGER);")
    failing_run(db, plan("ALTER TABLE t ADD COLUMN b;\nCREATE INDEX t_c ON t (c);\n"))
    assert columns(db, "t") == ["a"]
    result, _ = run(db, plan("ALTER TABLE t ADD COLUMN b;\nCREATE INDEX t_b ON t (b);\n"))
    assert result.committed and columns(db, "t") == ["a", "b"]


def test_a_plan_select_does_not_keep_the_commit_from_happening(make_db):
    db = make_db("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2), (3);")
    result, lines = run(db, plan("SELECT a FROM t;\nALTER TABLE t ADD COLUMN b;\n"))
    assert result.committed
    assert lines[5] == ("ok", "[Phase 1] SELECT a FROM t … ✓ Success N ms")


# --------------------------------------------------------------------------- rehearsal


def test_rehearsal_passes_after_the_prep_and_never_touches_the_target(demo):
    prepare_demo(demo)
    before = folder_state(demo)
    reference = inspect_database(demo / "goals_dev.db").schema
    lines: list[tuple[str, str]] = []
    result = rehearse(demo / "goals.db", demo_plans(demo), reference_schema=reference,
                      emit=collecting(lines), workdir=demo.parent)
    assert folder_state(demo) == before
    assert sorted(p.name for p in demo.parent.iterdir()) == ["demo"]  # the snapshot is gone
    assert result.passed and result.failure is None
    assert result.target_fingerprint == fingerprint(demo / "goals.db")
    assert result.lines == tuple(lines)
    assert [text for _, text in masked(lines) if text.startswith(("Check", "Rehearsal"))] == [
        f"Rehearsal: taking a consistent snapshot of {demo / 'goals.db'}",
        "Check apply: passed: 28 applied, 6 skipped",
        "Check integrity: passed: quick_check ok",
        "Check foreign_keys: passed: 0 new violations, 2 pre-existing",
        "Check row_counts: passed: unchanged except where the plan inserts or deletes",
        "Check schema_vs_reference: passed: no differences",
        "Rehearsal passed in N ms: the plan applies cleanly to a copy of the target",
    ]
    data = result.to_dict()
    assert set(data) == {"passed", "plan_hash", "target", "target_fingerprint", "target_schema_sha256",
                         "rehearsed_at", "failure", "checks", "remaining_differences", "timings",
                         "lines", "apply"}
    with closing(sqlite3.connect(demo / "goals.db")) as connection:
        assert data["target_schema_sha256"] == introspection.schema_text_sha256(connection)
    assert set(data["timings"]) == {"snapshot_ms", "apply_ms", "verify_ms", "total_ms"}


def test_rehearsal_without_the_prep_fails_at_the_group_id_index(demo):
    before = folder_state(demo)
    result = rehearse(demo / "goals.db", demo_plans(demo))
    assert folder_state(demo) == before
    assert not result.passed
    assert result.failure["check"] == "apply"
    assert result.failure["error"] == "no such column: group_id"
    assert (result.failure["statement"]["phase_number"], result.failure["statement"]["line"]) == (3, 55)
    assert result.lines[-2:] == (
        ("error", "Check apply: FAILED: " + result.apply.failure["message"]),
        ("error", result.lines[-1][1]),
    )
    assert re.fullmatch(r"Rehearsal FAILED in \d+ ms \(apply\); the target itself was not touched",
                        result.lines[-1][1])


def test_rehearsal_reports_row_counts_changed_behind_the_plans_back(make_db):
    db = make_db("CREATE TABLE a (x INTEGER); CREATE TABLE log (x INTEGER);"
                 "INSERT INTO a VALUES (1), (2);"
                 "CREATE TRIGGER a_log AFTER UPDATE ON a BEGIN INSERT INTO log VALUES (NEW.x); END;")
    result = rehearse(db, plan("UPDATE a SET x = x + 1;"))
    assert not result.passed
    assert result.failure == {"check": "row_counts", "statement": None, "error": None,
                              "message": "changed although the plan does not write to them: "
                                         "log 0 → 2"}


def test_rehearsal_reports_remaining_differences_without_failing(make_db):
    db = make_db("CREATE TABLE a (x INTEGER);", "target.db")
    reference = inspect_database(make_db("CREATE TABLE a (x INTEGER, y TEXT);", "ref.db")).schema
    result = rehearse(db, plan("CREATE INDEX a_x ON a (x);"), reference_schema=reference)
    assert result.passed
    assert [(d["object"], d["name"], d["change"]) for d in result.remaining_differences] == [
        ("column", "y", "only_left"), ("index", "a_x", "only_right")]
    assert result.checks[-1].to_rehearsal_dict() == {
        "name": "schema_vs_reference", "passed": False, "blocking": False,
        "detail": "2 differences remain (column y, index a_x)"}


def test_check_rehearsal_accepts_only_the_same_plan_on_the_same_schema(demo):
    prepare_demo(demo)
    plans = demo_plans(demo)
    record = rehearse(demo / "goals.db", plans).to_dict()
    current = fingerprint(demo / "goals.db")
    check_rehearsal(record, plans, current)
    with pytest.raises(Exception, match=r"^The target changed since its rehearsal \(schema "):
        check_rehearsal(record, plans, "0" * 64)
    other = plan("CREATE INDEX x ON goals (name);")
    with pytest.raises(Exception, match=r"^The plan changed since its rehearsal \(rehearsed "):
        check_rehearsal(record, other, current)
    with pytest.raises(Exception, match=r"^The rehearsal of this plan did not pass"):
        check_rehearsal({**record, "passed": False}, plans, current)
    result = apply_plan(demo / "goals.db", plans, rehearsal=record)
    assert result.committed


def test_exact_and_aggregated_violation_checksums_agree(make_db):
    """Python's and SQLite's checksums must match: a run may compare one with the other."""
    db = make_db("CREATE TABLE p (id INTEGER PRIMARY KEY);"
                 "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id),"
                 "                q_id INTEGER REFERENCES p(id));"
                 "INSERT INTO c VALUES (-9223372036854775807, 1, NULL), (-5, 2, 3),"
                 "                     (7, NULL, 4), (9223372036854775807, 5, 6);")
    with closing(sqlite3.connect(db)) as connection:
        exact = integrity._exact_violations(connection)
        aggregated = integrity._aggregated_violations(connection)
    assert exact.groups == aggregated.groups
    assert exact.total == aggregated.total == 6


def test_rehearsal_lines_name_the_target_not_a_temporary_path(demo):
    lines = []
    rehearse(demo / "goals.db", demo_plans(demo), emit=lambda level, text: lines.append(text))
    migrating = [line for line in lines if line.startswith("Migrating ")]
    assert migrating == [f"Migrating the snapshot of {demo / 'goals.db'}: " + migrating[0].split(": ", 1)[1]]
    assert all("cutover-rehearsal-" not in line for line in lines)


def test_a_rehearsal_folder_with_uri_characters_still_rehearses_its_snapshot(demo):
    workdir = demo / "backups" / "odd?name#1"
    workdir.mkdir()
    before = sorted(p.name for p in (demo / "backups").iterdir())
    result = rehearse(demo / "goals.db", demo_plans(demo), workdir=workdir)
    assert result.failure["error"] == "no such column: group_id"
    # an unescaped URI would stop at "?" and create a stray database named "odd"
    assert sorted(p.name for p in (demo / "backups").iterdir()) == before
    assert list(workdir.iterdir()) == []


def test_the_precondition_runs_under_the_write_lock_and_can_refuse(make_db):
    from app.core.errors import TargetChanged

    path = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
    before = folder_state(path.parent)
    blocked = []

    def another_writer_then_refuse():
        with closing(sqlite3.connect(path, timeout=0)) as other:
            try:
                other.execute("INSERT INTO t VALUES (2)")
                other.commit()
            except sqlite3.OperationalError as exc:
                blocked.append(str(exc))
        raise TargetChanged("changed since the backup")

    with pytest.raises(TargetChanged):
        apply_plan(path, plan("ALTER TABLE t ADD COLUMN note TEXT;"), precondition=another_writer_then_refuse)
    assert blocked == ["database is locked"]  # nobody can write while the precondition looks
    assert folder_state(path.parent) == before


def test_same_file_state_sees_any_write_but_not_an_empty_wal_made_by_opening(make_db):
    from app.core.engines.sqlite.stamps import file_signature, same_file_state

    path = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY);")
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    recorded = [list(part) if part else None for part in file_signature(path)]
    assert recorded[1] is None  # the last connection closed: the WAL was checkpointed away
    reader = sqlite3.connect(path)
    reader.execute("SELECT 1 FROM t").fetchall()
    assert same_file_state(path, recorded)  # an empty WAL, made by opening
    reader.execute("INSERT INTO t VALUES (1)")
    reader.commit()
    assert not same_file_state(path, recorded)
    reader.close()


def test_a_trigger_that_differs_in_a_double_quoted_string_is_not_skipped_as_already_there(make_db):
    """`"Archived"` names no column, so it is a string: the target's trigger logs another value
    than the plan's, and IF NOT EXISTS would silently keep the target's."""
    db = make_db("CREATE TABLE items (id INTEGER PRIMARY KEY, status TEXT); CREATE TABLE log (msg TEXT);"
                 'CREATE TRIGGER items_log AFTER INSERT ON items BEGIN INSERT INTO log VALUES ("Archived"); END;')
    before = folder_state(db.parent)
    plans = plan('CREATE TRIGGER IF NOT EXISTS items_log AFTER INSERT ON items BEGIN\n'
                 '    INSERT INTO log VALUES ("archived");\nEND;\n')
    with pytest.raises(MigrationFailed, match=r"trigger items_log already exists with a different definition"):
        apply_plan(db, plans)
    assert folder_state(db.parent) == before


def test_a_view_named_differently_by_its_spacing_stops_the_migration_and_the_same_one_is_skipped(make_db):
    db = make_db("CREATE TABLE t (a INTEGER, b INTEGER); CREATE VIEW v AS SELECT a+b FROM t;")
    before = folder_state(db.parent)
    with pytest.raises(MigrationFailed, match=r"view v already exists with other column names"):
        apply_plan(db, plan("CREATE VIEW IF NOT EXISTS v AS SELECT a + b FROM t;\n"))
    assert folder_state(db.parent) == before
    result = apply_plan(db, plan("CREATE VIEW IF NOT EXISTS v AS\n    SELECT a+b FROM t;\n"))
    assert result.counts()["skipped"] == 1
    with closing(sqlite3.connect(db)) as connection:
        assert connection.execute("SELECT name FROM sqlite_temp_schema").fetchall() == []
        assert [d[0] for d in connection.execute("SELECT * FROM v").description] == ["a+b"]


class _LabelledEngine(SQLiteEngine):
    """A SQLite target shown by a label of its own, as an engine with a URL shows it without
    its password: apply and rehearsal must name the target by its label, never its location."""

    name = ""  # not registered: engine_for("sqlite") stays the real engine

    @property
    def label(self) -> str:
        return "the labelled target"


def test_apply_and_rehearsal_name_the_target_by_its_engines_label(make_db):
    path = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    result, lines = run(_LabelledEngine(path), plan("ALTER TABLE t ADD COLUMN note TEXT;"))
    assert result.committed and result.path == "the labelled target"
    assert "Migrating the labelled target: " in lines[0][1] and str(path) not in repr(lines)

    rehearsed = rehearse(_LabelledEngine(path), plan("CREATE TABLE u (id INTEGER PRIMARY KEY);"))
    assert rehearsed.passed and rehearsed.target == "the labelled target"
    assert str(path) not in repr(rehearsed.lines)


def test_a_shortened_statement_is_followed_by_one_ellipsis_only():
    from app.core.migrate import statement_line
    from app.core.plans import PlanStatement
    long = PlanStatement("p.sql", 1, "P", "UPDATE goals SET title = '" + "x" * 200 + "'", (), 0)
    line = statement_line(long, "✓ Success", 3)
    assert "… …" not in line and line.count("…") == 1
