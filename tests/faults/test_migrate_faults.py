"""Migration faults: every one leaves the target byte-for-byte unchanged, or entirely migrated.

Real files, real child processes, real SIGKILL. "Unchanged" is checked on the bytes of
the database file (SHA-256) and on what SQLite reads back from it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from app.core.diff import diff_schemas
from app.core.engines import engine_for
from app.core.errors import MigrationFailed, PlanError, RehearsalMismatch
from app.core.inspect import inspect_database
from app.core.migrate import apply_plan, rehearse
from app.core.plans import load_plan_set, make_plan_set, parse_plan_text
from app.core.prep import generate_prep
from app.core.reconcile import reconcile
from tests.core.conftest import create_database

REPO = Path(__file__).resolve().parents[2]
DEMO_PLANS = ("plans/migrate_database_improvements.sql", "plans/hotfix_activity_instances.sql")

# The child imports app.core through the real package, which loads no Flask for it.
CHILD = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from app.core.migrate import apply_plan
from app.core.plans import load_plan_set

def emit(level, text):
    print(level + "\\t" + text, flush=True)

apply_plan(sys.argv[1], load_plan_set([sys.argv[2]]), emit=emit, busy_timeout=5)
print("done", flush=True)
"""

LONG_PLAN = """\
-- phase: One
ALTER TABLE items ADD COLUMN doubled INTEGER;
UPDATE items SET doubled = n * 2;
CREATE INDEX items_doubled ON items (doubled);
-- phase: Two
UPDATE items SET tag = tag || ' (checked)';
CREATE INDEX items_tag ON items (tag);
ALTER TABLE items ADD COLUMN size INTEGER;
UPDATE items SET size = length(pad);
-- phase: Three
CREATE TABLE items_copy AS SELECT id, n, tag FROM items;
CREATE INDEX items_copy_tag ON items_copy (tag);
UPDATE items SET pad = zeroblob(64);
"""
LONG_PLAN_STATEMENTS = 10


@pytest.fixture
def make_db(tmp_path):
    def make(ddl: str, name: str = "test.db") -> Path:
        return create_database(tmp_path / name, ddl)

    return make


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state(path: Path) -> tuple:
    """What a reader sees: schema fingerprint, row counts, object names."""
    snapshot = inspect_database(path)
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        names = sorted(connection.execute("SELECT type, name FROM sqlite_schema").fetchall())
    return snapshot.schema.fingerprint(), snapshot.row_counts(), names


def plan(text: str):
    return make_plan_set([parse_plan_text(text, file="plan.sql")])


def demo_plans(folder: Path):
    return load_plan_set([folder / name for name in DEMO_PLANS])


# --------------------------------------------------------------------------- failing statements


def test_demo_failure_in_phase_3_leaves_production_byte_identical(demo):
    production = demo / "goals.db"
    before = sha256(production)
    with pytest.raises(MigrationFailed) as caught:
        apply_plan(production, demo_plans(demo))
    result = caught.value.result
    # Phases 1 and 2 really ran (two ADD COLUMNs, four backfills) before phase 3 failed.
    assert [r.statement.phase_number for r in result.statements if r.outcome == "applied"] == [
        1, 1, 2, 2, 2, 2]
    assert result.failure["error"] == "no such column: group_id"
    assert sha256(production) == before
    assert sorted(p.name for p in demo.iterdir() if p.name.startswith("goals.db")) == ["goals.db"]


def test_ddl_only_plan_with_a_failing_third_statement_leaves_neither_change(make_db):
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER);"
                 "INSERT INTO t (a) VALUES (1), (2), (3);")
    before, seen = sha256(db), state(db)
    with pytest.raises(MigrationFailed, match="no such column: missing"):
        apply_plan(db, plan("CREATE INDEX t_a ON t (a);\n"
                            "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x';\n"
                            "CREATE INDEX t_missing ON t (missing);\n"))
    assert sha256(db) == before
    assert state(db) == seen


# --------------------------------------------------------------------------- kill -9


@pytest.fixture(scope="module")
def large_template(tmp_path_factory) -> Path:
    """About 25 MB, so that each statement of LONG_PLAN takes a noticeable moment."""
    path = tmp_path_factory.mktemp("large") / "large.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.executescript("""
            CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, tag TEXT NOT NULL,
                                pad BLOB);
            CREATE INDEX items_n ON items (n);
            WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 200000)
            INSERT INTO items SELECT x, x % 1000, printf('tag %d', x), randomblob(64) FROM c;
        """)
    return path


def kill_after(db: Path, plan_path: Path, statements_done: int) -> list[str]:
    """Run LONG_PLAN in a child; SIGKILL it as soon as it reports `statements_done` lines."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(plan_path)],
                             stdout=subprocess.PIPE, text=True)
    seen: list[str] = []
    with child.stdout:
        for line in child.stdout:
            seen.append(line.rstrip("\n"))
            if sum("\t[Phase" in s for s in seen) == statements_done:
                os.kill(child.pid, signal.SIGKILL)
                break
    child.wait()
    assert child.returncode == -signal.SIGKILL
    return seen


@pytest.mark.parametrize("statements_done", [1, 4, 7, 9])
def test_kill_9_mid_migration_leaves_the_old_database(tmp_path, large_template, statements_done):
    db = tmp_path / "large.db"
    shutil.copyfile(large_template, db)
    plan_path = tmp_path / "long.sql"
    plan_path.write_text(LONG_PLAN, encoding="utf-8")
    before, seen_before = sha256(db), state(db)
    lines = kill_after(db, plan_path, statements_done)
    assert lines[-1].startswith("ok\t[Phase")
    # The transaction was open when the process died: its rollback journal is still there.
    assert (tmp_path / "large.db-journal").exists()
    with closing(sqlite3.connect(db)) as connection:  # a writer rolls the hot journal back
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert state(db) == seen_before
    assert sha256(db) == before


def test_kill_9_after_the_last_statement_leaves_old_or_new_never_a_mix(tmp_path, large_template):
    db = tmp_path / "large.db"
    shutil.copyfile(large_template, db)
    plan_path = tmp_path / "long.sql"
    plan_path.write_text(LONG_PLAN, encoding="utf-8")
    old = state(db)
    new_copy = tmp_path / "migrated.db"
    shutil.copyfile(large_template, new_copy)
    apply_plan(new_copy, load_plan_set([plan_path]))
    kill_after(db, plan_path, LONG_PLAN_STATEMENTS)  # during the checks or the COMMIT
    with closing(sqlite3.connect(db)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert state(db)[0] in (old[0], state(new_copy)[0])
    assert state(db) in (old, state(new_copy))


# --------------------------------------------------------------------------- locks


def test_a_database_locked_by_another_writer_fails_clearly_and_unchanged(make_db):
    db = make_db("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);")
    before = sha256(db)
    with closing(sqlite3.connect(db, isolation_level=None)) as other_writer:
        other_writer.execute("BEGIN IMMEDIATE")
        with pytest.raises(MigrationFailed) as caught:
            apply_plan(db, plan("ALTER TABLE t ADD COLUMN b;"), busy_timeout=0.2)
        other_writer.execute("ROLLBACK")
    error = caught.value
    assert error.message == (
        f"{db}: the database is locked by another writer; stop the application and retry "
        "(Cutover waited 0.2 s for the lock). The transaction was rolled back: nothing was changed.")
    assert error.details["reason"] == "locked"
    assert error.result.counts() == {"applied": 0, "skipped": 0, "failed": 0, "not_run": 1}
    assert sha256(db) == before


def test_a_commit_blocked_by_a_reader_is_rolled_back(make_db):
    db = make_db("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);")
    before = sha256(db)
    with closing(sqlite3.connect(db, isolation_level=None)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()  # holds a SHARED lock
        with pytest.raises(MigrationFailed) as caught:
            apply_plan(db, plan("INSERT INTO t VALUES (2);\nALTER TABLE t ADD COLUMN b;"),
                       busy_timeout=0.2)
        reader.execute("COMMIT")
    error = caught.value
    assert error.details["reason"] == "locked"
    assert error.message.startswith(f"{db}: the database is in use by another connection, which "
                                    "kept the migration from committing")
    assert error.result.counts()["applied"] == 2
    assert sha256(db) == before


# --------------------------------------------------------------------------- rehearsal records


def test_a_plan_edited_after_its_rehearsal_is_refused(demo):
    production = demo / "goals.db"
    prep_path = demo / "prep.sql"
    generate_prep(inspect_database(production).schema,
                  inspect_database(demo / "goals_dev.db").schema,
                  engine=engine_for(production), plan_set=demo_plans(demo)).save(prep_path)
    record = rehearse(production, load_plan_set([prep_path])).to_dict()
    assert record["passed"]
    text = prep_path.read_text(encoding="utf-8")
    prep_path.write_text(text.replace('"target_date" DATE', '"target_date" TEXT'), encoding="utf-8")
    before = sha256(production)
    with pytest.raises(RehearsalMismatch, match=r"^The plan changed since its rehearsal"):
        apply_plan(production, load_plan_set([prep_path]), rehearsal=record)
    assert sha256(production) == before
    # Re-spacing a statement is an edit too: SQLite may keep or name things after its text.
    prep_path.write_text(text.replace(";\n", " ;\n"), encoding="utf-8")
    with pytest.raises(RehearsalMismatch, match=r"^The plan changed since its rehearsal"):
        apply_plan(production, load_plan_set([prep_path]), rehearsal=record)
    assert sha256(production) == before
    # Comments between statements and blank lines never run: the rehearsal still stands.
    prep_path.write_text("-- reviewed by ops\n" + text.replace(";\n", ";\n\n"), encoding="utf-8")
    assert apply_plan(production, load_plan_set([prep_path]), rehearsal=record).committed


def test_a_double_quoted_string_edited_after_the_rehearsal_is_refused(make_db, tmp_path):
    """`"Archived"` names no column, so SQLite reads it as a string: changing its case changes
    which rows the DELETE removes, and the rehearsal of the other spelling proves nothing."""
    db = make_db("CREATE TABLE items (id INTEGER PRIMARY KEY, status TEXT);"
                 "INSERT INTO items (status) VALUES ('Archived'), ('archived'), ('live');")
    plan_path = tmp_path / "cleanup.sql"
    plan_path.write_text('DELETE FROM items WHERE status = "Archived";\n', encoding="utf-8")
    record = rehearse(db, load_plan_set([plan_path])).to_dict()
    assert record["passed"]
    plan_path.write_text('DELETE FROM items WHERE status = "archived";\n', encoding="utf-8")
    edited = load_plan_set([plan_path])
    assert edited.hash != record["plan_hash"]
    before, mtime = sha256(db), db.stat().st_mtime_ns
    with pytest.raises(RehearsalMismatch, match=r"^The plan changed since its rehearsal"):
        apply_plan(db, edited, rehearsal=record)
    assert (sha256(db), db.stat().st_mtime_ns) == (before, mtime)
    with closing(sqlite3.connect(db)) as connection:
        assert connection.execute("SELECT count(*) FROM items").fetchone() == (3,)


def test_a_target_changed_after_its_rehearsal_is_refused(make_db):
    db = make_db("CREATE TABLE t (a INTEGER);")
    plans = plan("CREATE INDEX t_a ON t (a);")
    record = rehearse(db, plans).to_dict()
    with closing(sqlite3.connect(db)) as connection:
        connection.execute("ALTER TABLE t ADD COLUMN drifted TEXT")
        connection.commit()
    before = sha256(db)
    with pytest.raises(RehearsalMismatch, match=r"^The target changed since its rehearsal"):
        apply_plan(db, plans, rehearsal=record)
    assert sha256(db) == before


def test_a_target_whose_trigger_changed_a_double_quoted_string_after_its_rehearsal_is_refused(make_db):
    """The trigger now logs another string: the rehearsal ran against a different target."""
    db = make_db("CREATE TABLE t (a INTEGER); CREATE TABLE log (msg TEXT);"
                 'CREATE TRIGGER t_log AFTER INSERT ON t BEGIN INSERT INTO log VALUES ("Archived"); END;')
    plans = plan("CREATE INDEX t_a ON t (a);")
    record = rehearse(db, plans).to_dict()
    assert record["passed"]
    with closing(sqlite3.connect(db)) as connection:
        connection.executescript(
            'DROP TRIGGER t_log; CREATE TRIGGER t_log AFTER INSERT ON t BEGIN INSERT INTO log VALUES ("archived"); END;')
    before, mtime = sha256(db), db.stat().st_mtime_ns
    with pytest.raises(RehearsalMismatch, match=r"^The target changed since its rehearsal"):
        apply_plan(db, plans, rehearsal=record)
    assert (sha256(db), db.stat().st_mtime_ns) == (before, mtime)


# --------------------------------------------------------------------------- plans and names


def test_a_plan_with_a_forbidden_statement_is_refused_before_anything_runs(make_db, tmp_path):
    db = make_db("CREATE TABLE t (a INTEGER);")
    before = sha256(db)
    good = tmp_path / "1_good.sql"
    good.write_text("ALTER TABLE t ADD COLUMN b;\n", encoding="utf-8")
    bad = tmp_path / "2_bad.sql"
    bad.write_text("-- phase: Sneaky\nPRAGMA writable_schema = 1;\n"
                   "UPDATE sqlite_schema SET sql = 'x';\n", encoding="utf-8")
    with pytest.raises(PlanError, match=rf"{bad}:2: PRAGMA writable_schema = 1;"):
        apply_plan(db, load_plan_set([good, bad]))
    assert sha256(db) == before


def test_identifiers_that_need_quoting_through_reconcile_prep_and_apply(make_db):
    evil = '"x""; DROP TABLE y; --"'
    spaced = '"my table"'
    target = make_db(f"CREATE TABLE y (id INTEGER); INSERT INTO y VALUES (1);"
                     f"CREATE TABLE {evil} (id INTEGER PRIMARY KEY);"
                     f"CREATE TABLE {spaced} (id INTEGER PRIMARY KEY);", "target.db")
    reference = inspect_database(make_db(
        f"CREATE TABLE y (id INTEGER);"
        f"CREATE TABLE {evil} (id INTEGER PRIMARY KEY, \"it's\" TEXT DEFAULT 'a\"b');"
        f"CREATE TABLE {spaced} (id INTEGER PRIMARY KEY, \"some col\" INTEGER);"
        f'CREATE INDEX "idx ""odd""" ON {spaced} ("some col");', "reference.db")).schema
    migration = plan(f'ALTER TABLE {spaced} ADD COLUMN "note; DROP TABLE y" TEXT;\n'
                     f'CREATE INDEX "by note" ON {spaced}("note; DROP TABLE y");\n')
    prep = make_plan_set([generate_prep(inspect_database(target).schema, reference,
                                        engine=engine_for(target)).plan()])
    assert [o.outcome for o in reconcile(target, prep).outcomes()] == ["will_run"] * 3
    assert [o.outcome for o in reconcile(target, migration).outcomes()] == ["will_run"] * 2
    apply_plan(target, prep)
    apply_plan(target, migration)
    after = inspect_database(target)
    assert after.row_counts()["y"] == 1
    assert [d.name for d in diff_schemas(reference, after.schema)] == [
        "note; DROP TABLE y", "by note"]
    assert {o.outcome for o in reconcile(target, prep).outcomes()} == {"skip"}
    assert {o.outcome for o in reconcile(target, migration).outcomes()} == {"skip"}


# --------------------------------------------------------------------------- the happy path


def test_demo_happy_path_prep_then_plans_then_a_second_run(demo):
    production, development = demo / "goals.db", demo / "goals_dev.db"
    plans = demo_plans(demo)
    prep = generate_prep(inspect_database(production).schema,
                         inspect_database(development).schema,
                         engine=engine_for(production), plan_set=plans)
    apply_plan(production, make_plan_set([prep.plan()]))
    result = apply_plan(production, plans)
    assert result.committed
    assert [r.statement.description for r in result.statements if r.outcome == "skipped"] == [
        "ALTER TABLE goals ADD COLUMN root_id INTEGER REFERENCES goals(id)",
        "ALTER TABLE practice_sessions ADD COLUMN root_id INTEGER REFERENCES goals(id)",
        "CREATE INDEX idx_goals_root_id ON goals(root_id)",
        "CREATE INDEX idx_goals_parent_id ON goals(parent_id)",
        "CREATE INDEX idx_practice_sessions_root_id ON practice_sessions(root_id)",
        "CREATE INDEX idx_practice_sessions_goal_id ON practice_sessions(goal_id)",
    ]
    assert {r.message for r in result.statements if r.outcome == "skipped"} == {
        "Column already exists, skipping (expected)", "Index already exists, skipping (expected)"}
    assert result.foreign_keys["pre_existing"] == 2 and result.foreign_keys["new"] == 0
    assert diff_schemas(inspect_database(development).schema,
                        inspect_database(production).schema) == []
    second = apply_plan(production, plans)
    assert {r.outcome for r in second.statements if not r.statement.shape.is_data} == {"skipped"}
    assert {r.outcome for r in second.statements if r.statement.shape.is_data} == {"applied"}
    assert {r.rows for r in second.statements if r.statement.shape.is_data} == {0}
