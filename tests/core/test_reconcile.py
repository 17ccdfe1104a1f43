"""Reconciliation: each statement's outcome predicted on a copy of the target's schema."""

from __future__ import annotations

import pytest

from app.core.demo import create_demo_workspace
from app.core.engines import engine_for
from app.core.inspect import inspect_database
from app.core.plans import load_plan_set, parse_plan_text, make_plan_set
from app.core.reconcile import DATA_NOTE, preflight, reconcile, reconcile_schema
from tests.core.conftest import folder_state

DEMO_PLANS = ("plans/migrate_database_improvements.sql", "plans/hotfix_activity_instances.sql")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return create_demo_workspace(tmp_path_factory.mktemp("reconcile") / "demo").parent


@pytest.fixture(scope="module")
def demo_plans(demo):
    return load_plan_set([demo / name for name in DEMO_PLANS])


def plan(text: str):
    return make_plan_set([parse_plan_text(text, file="plan.sql")])


def outcomes(reconciliation) -> list[tuple[str, str]]:
    return [(o.outcome, o.message) for o in reconciliation.outcomes()]


# --------------------------------------------------------------------------- the demo


def test_demo_production_is_partially_migrated_and_blocked_at_group_id(demo, demo_plans):
    result = reconcile(demo / "goals.db", demo_plans)
    skip_column = ("skip", "Column already exists, skipping (expected)")
    skip_index = ("skip", "Index already exists, skipping (expected)")
    new, data = ("will_run", "will run (new)"), ("will_run", "will run")
    assert outcomes(result) == (
        [skip_column, skip_column, new, new]
        + [data] * 4
        + [skip_index] * 4 + [("will_fail", "no such column: group_id")] + [new] * 5
        + [new] * 7 + [data] * 3 + [new] * 3
        + [new] * 3
    )
    assert [(p.number, p.status, p.blocked) for p in result.phases] == [
        (1, "partly_applied", False), (2, "data_only", False), (3, "partly_applied", True),
        (4, "pending", False), (5, "pending", False)]
    assert result.state == "partly_applied" and not result.ready
    assert result.summary() == ("partially migrated: phases 1, 3 partly applied; phases 4-5 not "
                                "started; phase 2 data only; blocked: 1 statement will fail")


def test_data_statements_carry_the_idempotency_note(demo, demo_plans):
    result = reconcile(demo / "goals.db", demo_plans)
    notes = {o.statement.index: o.note for o in result.outcomes() if o.note}
    assert notes == {i: DATA_NOTE for i in (4, 5, 6, 7, 25, 26, 27)}


def test_demo_development_is_fully_migrated(demo, demo_plans):
    result = reconcile(demo / "goals_dev.db", demo_plans)
    assert {o.outcome for o in result.outcomes() if not o.statement.shape.is_data} == {"skip"}
    assert result.state == "applied" and result.ready
    assert result.summary() == ("fully migrated: phases 1, 3-5 applied; phase 2 data only; "
                                "ready to run")


def test_reconciliation_reads_only_the_schema_and_changes_nothing(demo, demo_plans):
    before = folder_state(demo)
    result = reconcile(demo / "goals.db", demo_plans)
    assert folder_state(demo) == before
    assert result.target_fingerprint == inspect_database(demo / "goals.db").schema.fingerprint()


def test_preflight_explains_the_drift_with_the_prep_statement(demo, demo_plans):
    result = reconcile(demo / "goals.db", demo_plans)
    reference = inspect_database(demo / "goals_dev.db").schema
    report = preflight(result, reference)
    assert not report.ok
    (problem,) = report.to_dict()["problems"]
    assert (problem["index"], problem["line"], problem["phase_number"], problem["error"]) == (
        12, 55, 3, "no such column: group_id")
    assert problem["fix"] == (
        "production lacks activity_definitions.group_id which development has; run the prep plan "
        '(ALTER TABLE "activity_definitions" ADD COLUMN "group_id" INTEGER REFERENCES '
        '"activity_groups"("id") ON DELETE SET NULL) first. It references activity_groups, '
        "which production lacks too; the prep plan creates it first.")


def test_preflight_without_a_reference_still_names_the_error(demo, demo_plans):
    (problem,) = preflight(reconcile(demo / "goals.db", demo_plans)).problems
    assert problem.fix == ('SQLite would stop here with "no such column: group_id". Fix the plan, '
                           "or the drift it depends on, and reconcile again.")


def test_preflight_names_a_missing_table_the_reference_has(make_db):
    target = make_db("CREATE TABLE a (id INTEGER PRIMARY KEY);", "target.db")
    reference = inspect_database(make_db("CREATE TABLE a (id INTEGER PRIMARY KEY);"
                                         "CREATE TABLE b (id INTEGER PRIMARY KEY);", "ref.db")).schema
    result = reconcile(target, plan("INSERT INTO b (id) VALUES (1);"))
    (problem,) = preflight(result, reference, target_label="staging").problems
    assert problem.fix == ("staging lacks table b which development has; run the prep plan "
                           "(CREATE TABLE b ...) first.")


def test_reconciliation_to_dict_shape(demo, demo_plans):
    data = reconcile(demo / "goals.db", demo_plans).to_dict()
    assert set(data) == {"target", "plan_hash", "target_fingerprint", "state", "ready",
                         "summary", "counts", "warnings", "losses", "phases"}
    assert data["losses"] == []
    assert data["counts"] == {"will_run": 27, "skip": 6, "conflict": 0, "will_fail": 1}
    phase = data["phases"][2]
    assert (phase["status"], phase["blocked"], phase["counts"]["skip"]) == ("partly_applied", True, 4)
    failing = phase["statements"][4]
    assert (failing["outcome"], failing["message"], failing["line"]) == (
        "will_fail", "no such column: group_id", 55)


# --------------------------------------------------------------------------- skips and conflicts


def test_same_definition_written_differently_is_a_skip(make_db):
    db = make_db('CREATE TABLE "Audit" (id INTEGER PRIMARY KEY, note TEXT DEFAULT \'a b\');'
                 "CREATE INDEX audit_note ON Audit (note);"
                 "CREATE VIEW notes AS SELECT note FROM audit;"
                 "CREATE TRIGGER audit_touch AFTER UPDATE ON audit BEGIN SELECT 1; END;")
    result = reconcile(db, plan(
        "create table if not exists audit(\n  id integer primary key, -- the key\n"
        "  note text default 'a b');\n"
        "CREATE INDEX IF NOT EXISTS main.audit_note ON \"audit\"(note);\n"
        "CREATE VIEW IF NOT EXISTS notes AS\n  SELECT note FROM audit;\n"
        "CREATE TRIGGER IF NOT EXISTS audit_touch AFTER UPDATE ON audit BEGIN\n  SELECT 1;\nEND;\n"
        "ALTER TABLE AUDIT ADD COLUMN Note text DEFAULT 'a b';\n"))
    assert outcomes(result) == [
        ("skip", "Table already exists, skipping (expected)"),
        ("skip", "Index already exists, skipping (expected)"),
        ("skip", "View already exists, skipping (expected)"),
        ("skip", "Trigger already exists, skipping (expected)"),
        ("skip", "Column already exists, skipping (expected)"),
    ]


def test_an_existing_object_with_another_definition_is_a_conflict(make_db):
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT);"
                 "CREATE INDEX t_a ON t (a);")
    result = reconcile(db, plan(
        "CREATE INDEX IF NOT EXISTS t_a ON t (b);\n"
        "ALTER TABLE t ADD COLUMN b INTEGER;\n"
        "ALTER TABLE t ADD COLUMN a INTEGER NOT NULL DEFAULT 0;\n"
        "CREATE INDEX t ON t (a);\n"))
    assert [(o.outcome, o.message, o.existing, o.planned) for o in result.outcomes()] == [
        ("conflict", "index t_a already exists with a different definition (SQLite would keep "
                     "the existing one)", "CREATE INDEX t_a ON t(a)", "CREATE INDEX t_a ON t(b)"),
        ("conflict", "column t.b already exists with a different definition", "b text", "b integer"),
        ("conflict", "column t.a already exists with a different definition", "a integer",
         "a integer NOT NULL DEFAULT 0"),
        ("conflict", "a table named t already exists; the plan creates a index with that name",
         None, None),
    ]
    assert not result.ready


def test_a_table_with_other_columns_is_a_conflict(make_db):
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER);")
    (outcome,) = reconcile(db, plan("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY);")).outcomes()
    assert (outcome.outcome, outcome.existing, outcome.planned) == (
        "conflict", "CREATE TABLE t(id integer PRIMARY KEY, a integer)",
        "CREATE TABLE t(id integer PRIMARY KEY)")


def test_a_different_foreign_key_on_an_existing_column_is_a_conflict(make_db):
    db = make_db("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE q (id INTEGER PRIMARY KEY);"
                 "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p);")
    result = reconcile(db, plan("ALTER TABLE c ADD COLUMN p_id INTEGER REFERENCES p(id);\n"
                                "ALTER TABLE c ADD COLUMN p_id INTEGER REFERENCES q(id);\n"))
    assert [o.outcome for o in result.outcomes()] == ["skip", "conflict"]


def test_a_table_the_plan_creates_and_extends_is_skipped_on_the_second_run(make_db):
    text = ("CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, note TEXT);\n"
            "ALTER TABLE audit ADD COLUMN seen INTEGER DEFAULT 0;\n")
    db = make_db("CREATE TABLE audit (id INTEGER PRIMARY KEY, note TEXT);"
                 "ALTER TABLE audit ADD COLUMN seen INTEGER DEFAULT 0;")
    assert [o.outcome for o in reconcile(db, plan(text)).outcomes()] == ["skip", "skip"]


def test_drops_of_what_is_already_gone_are_skipped(make_db):
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY, a);")
    result = reconcile(db, plan("DROP TABLE IF EXISTS old;\nDROP INDEX gone;\n"
                                "ALTER TABLE t DROP COLUMN never;\nALTER TABLE t DROP COLUMN a;\n"))
    assert [(o.outcome, o.message, o.note) for o in result.outcomes()] == [
        ("skip", "Table already dropped, skipping (expected)", None),
        ("skip", "Index already dropped, skipping (expected)", None),
        ("skip", "Column already dropped, skipping (expected)", None),
        ("will_run", "will run", "destructive: drops column a and what it holds"),
    ]


def test_statements_run_in_order_on_the_copy(make_db):
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY);")
    result = reconcile(db, plan(
        "ALTER TABLE t ADD COLUMN a INTEGER;\n"
        "CREATE INDEX t_a ON t (a);\n"
        "ALTER TABLE t ADD COLUMN a INTEGER;\n"
        "UPDATE t SET b = 1;\n"
        "INSERT INTO t (id, a) VALUES (1, 2);\n"
        "SELECT count(*) FROM t;\n"
        "CREATE TABLE broken (;\n"))
    assert outcomes(result) == [
        ("will_run", "will run (new)"),
        ("will_run", "will run (new)"),
        ("skip", "Column already exists, skipping (expected)"),
        ("will_fail", "no such column: b"),
        ("will_run", "will run"),
        ("will_run", "will run"),
        ("will_fail", 'near ";": syntax error'),
    ]


def test_identifiers_that_need_quoting_are_reconciled(make_db):
    evil = 'x"; DROP TABLE y; --'
    quoted = '"x""; DROP TABLE y; --"'
    db = make_db(f'CREATE TABLE y (id INTEGER); CREATE TABLE {quoted} ("my col" TEXT);'
                 f'CREATE INDEX "odd index" ON {quoted} ("my col");')
    result = reconcile(db, plan(
        f'ALTER TABLE {quoted} ADD COLUMN "my col" TEXT;\n'
        f'CREATE INDEX IF NOT EXISTS "odd index" ON {quoted}("my col");\n'
        f'ALTER TABLE {quoted} ADD COLUMN [new col] INTEGER;\n'))
    assert [o.outcome for o in result.outcomes()] == ["skip", "skip", "will_run"]
    assert result.outcomes()[2].statement.shape.table == evil
    assert result.schema.table("y") is not None


def test_reconcile_schema_gives_the_same_answer_as_the_file(demo, demo_plans):
    schema = inspect_database(demo / "goals.db").schema
    from_schema = reconcile_schema(engine_for(demo / "goals.db"), schema, demo_plans, target="snapshot")
    from_file = reconcile(demo / "goals.db", demo_plans)
    assert outcomes(from_schema) == outcomes(from_file)
    assert from_schema.target_fingerprint == from_file.target_fingerprint


def test_a_virtual_table_the_copy_cannot_build_is_a_warning(make_db):
    db = make_db("CREATE VIRTUAL TABLE docs USING fts5(body); CREATE TABLE t (a);")
    result = reconcile(db, plan("ALTER TABLE t ADD COLUMN a;\n"))
    assert outcomes(result) == [("skip", "Column already exists, skipping (expected)")]
    assert result.warnings == ()  # fts5 is built in here: nothing to warn about


# A double-quoted token that names no column is a string: the target's object and the plan's
# are different, so SQLite keeping the target's (IF NOT EXISTS) must not pass as "already there".
ARCHIVED_TARGET = ("CREATE TABLE items (id INTEGER PRIMARY KEY, status TEXT, code TEXT);"
                   "CREATE TABLE log (msg TEXT);")
ARCHIVED_OBJECTS = [
    'CREATE TRIGGER items_log AFTER INSERT ON items BEGIN INSERT INTO log VALUES ("Archived"); END',
    'CREATE VIEW archived AS SELECT code FROM items WHERE status = "Archived"',
    'CREATE UNIQUE INDEX archived_code ON items (code) WHERE status = "Archived"',
    'CREATE TABLE extra (status TEXT CHECK (status != "Archived"))',
]


@pytest.mark.parametrize("existing", ARCHIVED_OBJECTS)
def test_a_double_quoted_string_of_another_case_is_a_conflict_not_a_skip(make_db, existing):
    db = make_db(ARCHIVED_TARGET + existing + ";")
    planned = existing.replace('"Archived"', '"archived"').replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS")
    planned = planned.replace("CREATE VIEW", "CREATE VIEW IF NOT EXISTS").replace(
        "INDEX archived_code", "INDEX IF NOT EXISTS archived_code").replace("TABLE extra", "TABLE IF NOT EXISTS extra")
    (outcome,) = reconcile(db, plan(planned + ";\n")).outcomes()
    assert outcome.outcome == "conflict", outcome
    assert '"Archived"' in outcome.existing and '"archived"' in outcome.planned
    (same,) = reconcile(db, plan(existing.replace("  ", " ") + ";\n")).outcomes()
    assert same.outcome == "skip"


def test_an_added_column_whose_check_differs_in_a_double_quoted_string_is_a_conflict(make_db):
    db = make_db('CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT CHECK (s != "Archived"));')
    result = reconcile(db, plan('ALTER TABLE t ADD COLUMN s TEXT CHECK (s != "archived");\n'
                                'ALTER TABLE t ADD COLUMN s TEXT CHECK (s != "Archived");\n'))
    assert [o.outcome for o in result.outcomes()] == ["conflict", "skip"]


@pytest.mark.parametrize(("existing", "planned"), [
    ("SELECT a+b FROM t", "SELECT a + b FROM t"),
    ("SELECT upper(name) FROM t", "SELECT UPPER(name) FROM t"),
    ("SELECT a /* sum */ + b FROM t", "SELECT a + b FROM t"),
])
def test_a_view_whose_columns_would_be_named_differently_is_a_conflict(make_db, existing, planned):
    """A column without AS is named after its expression as written: the normal form cannot
    see the difference, SQLite's names can."""
    db = make_db(f"CREATE TABLE t (a INTEGER, b INTEGER, name TEXT); CREATE VIEW v AS {existing};")
    (outcome,) = reconcile(db, plan(f"CREATE VIEW IF NOT EXISTS v AS {planned};\n")).outcomes()
    assert (outcome.outcome, outcome.message) == (
        "conflict", "view v already exists with other column names (SQLite names a column without AS "
                    "after its expression as written)")
    (same,) = reconcile(db, plan(f"CREATE VIEW IF NOT EXISTS v AS\n  {existing};\n")).outcomes()
    assert same.outcome == "skip"
    assert reconcile(db, plan("CREATE VIEW IF NOT EXISTS v (x) AS SELECT a FROM t;\n")).outcomes()[0].outcome == "conflict"
