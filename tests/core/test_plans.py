"""Plan files: phases, statements split the way the target's dialect splits them (SQLite's
unless told), refusals, phases outside the transaction, the hash."""

from __future__ import annotations

import pytest

from app.core.demo import create_demo_workspace
from app.core.engines.postgresql.dialect import PostgresDialect
from app.core.errors import PlanError
from app.core.plans import (
    describe,
    load_plan,
    load_plan_set,
    make_plan_set,
    parse_plan_text,
    statement_shape,
)

POSTGRES = PostgresDialect()

DEMO_PLANS = ("plans/migrate_database_improvements.sql", "plans/hotfix_activity_instances.sql")


@pytest.fixture(scope="module")
def demo_plan_set(tmp_path_factory):
    folder = create_demo_workspace(tmp_path_factory.mktemp("plans") / "demo").parent
    return load_plan_set([folder / name for name in DEMO_PLANS])


def write(tmp_path, text: str, name: str = "plan.sql"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the demo plans


def test_demo_plan_set_has_five_phases_numbered_across_files(demo_plan_set):
    assert [(p.number, p.title, len(p.statements)) for p in demo_plan_set.phases()] == [
        (1, "Add root_id columns", 4),
        (2, "Backfill root_id", 4),
        (3, "Indexes for root_id and hot lookups", 10),
        (4, "Soft deletes and audit trail", 13),
        (5, "Hotfix: activity_instances columns", 3),
    ]
    assert [s.index for s in demo_plan_set.statements()] == list(range(34))


def test_statements_know_their_file_line_phase_and_comments(demo_plan_set):
    statement = demo_plan_set.statements()[12]
    assert statement.file.endswith("plans/migrate_database_improvements.sql")
    assert (statement.line, statement.phase, statement.phase_number) == (
        55, "Indexes for root_id and hot lookups", 3)
    assert statement.sql == ("CREATE INDEX IF NOT EXISTS idx_activity_definitions_group_id "
                             "ON activity_definitions(group_id);")
    assert statement.comments == ("The activity picker lists definitions group by group.",)
    assert statement.description == (
        "CREATE INDEX idx_activity_definitions_group_id ON activity_definitions(group_id)")


def test_header_comments_belong_to_the_file_not_to_the_first_statement(demo_plan_set):
    migration, hotfix = demo_plan_set.plans
    assert migration.comments[0] == "Fractal goals: database improvements."
    assert hotfix.comments[0].startswith("Hotfix applied in development")
    assert demo_plan_set.statements()[0].comments == (
        "A page that shows one goal tree can then filter on root_id instead of walking",
        "parent_id chains for every session, activity and metric.",
    )


def test_plan_set_to_dict_shape(demo_plan_set):
    data = demo_plan_set.to_dict()
    assert (data["hash"], data["phase_count"], data["statement_count"]) == (
        demo_plan_set.hash, 5, 34)
    first = data["plans"][0]["phases"][0]["statements"][0]
    assert set(first) == {"index", "file", "line", "phase", "phase_number", "description",
                          "sql", "comments"}
    assert first["sql"] == "ALTER TABLE goals ADD COLUMN root_id INTEGER REFERENCES goals(id);"


# --------------------------------------------------------------------------- splitting


def test_statements_before_any_phase_line_go_to_a_phase_named_after_the_file(tmp_path):
    plan = load_plan(write(tmp_path, "CREATE TABLE a (x);\n-- phase: Two\nCREATE TABLE b (y);\n",
                           "hotfix_2024.sql"))
    assert [(p.title, p.number, p.line, len(p.statements)) for p in plan.phases] == [
        ("hotfix_2024", 1, 0, 1), ("Two", 2, 2, 1)]


def test_semicolons_inside_strings_and_trigger_bodies_do_not_split(tmp_path):
    text = (
        "INSERT INTO t (note) VALUES ('a; b; -- not a comment');\n"
        "CREATE TRIGGER t_touch AFTER UPDATE ON t BEGIN\n"
        "    UPDATE u SET n = n + 1;\n"
        "    INSERT INTO log VALUES ('x;y');\n"
        "END;\n"
        "CREATE TABLE a (x); CREATE TABLE b (y); -- two on one line\n"
    )
    statements = parse_plan_text(text, file="p.sql").statements()
    assert [(s.line, s.sql) for s in statements] == [
        (1, "INSERT INTO t (note) VALUES ('a; b; -- not a comment');"),
        (2, "CREATE TRIGGER t_touch AFTER UPDATE ON t BEGIN\n    UPDATE u SET n = n + 1;\n"
            "    INSERT INTO log VALUES ('x;y');\nEND;"),
        (6, "CREATE TABLE a (x);"),
        (6, "CREATE TABLE b (y);"),
    ]


def test_a_phase_line_inside_a_statement_is_part_of_it(tmp_path):
    plan = parse_plan_text("CREATE TABLE a (\n-- phase: not a phase\n  x INTEGER\n);\n")
    assert [p.title for p in plan.phases] == ["<plan>"]
    assert plan.statements()[0].sql == "CREATE TABLE a (\n-- phase: not a phase\n  x INTEGER\n);"


def test_a_byte_order_mark_and_crlf_line_ends_are_accepted(tmp_path):
    path = tmp_path / "windows.sql"
    path.write_bytes("\ufeff-- phase: One\r\nCREATE TABLE a (x);\r\n".encode("utf-8"))
    plan = load_plan(path)
    assert [(p.title, [s.sql for s in p.statements]) for p in plan.phases] == [
        ("One", ["CREATE TABLE a (x);"])]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("statement, word", [
    ("BEGIN;", "BEGIN controls transactions"),
    ("BEGIN IMMEDIATE TRANSACTION;", "BEGIN controls transactions"),
    ("COMMIT;", "COMMIT controls transactions"),
    ("END TRANSACTION;", "END controls transactions"),
    ("ROLLBACK;", "ROLLBACK controls transactions"),
    ("SAVEPOINT before_hotfix;", "SAVEPOINT controls transactions"),
    ("RELEASE before_hotfix;", "RELEASE controls transactions"),
    ("VACUUM;", "VACUUM cannot run inside a transaction"),
    ("ATTACH DATABASE 'other.db' AS other;", "ATTACH would let the plan reach another database"),
    ("DETACH other;", "DETACH would let the plan reach another database"),
    ("PRAGMA writable_schema = ON;", "PRAGMA writable_schema is not allowed in a plan: it lets SQL"),
    ("PRAGMA main.journal_mode = WAL;", "PRAGMA journal_mode is not allowed in a plan: it cannot"),
    ("pragma foreign_keys=off;", "PRAGMA foreign_keys is not allowed in a plan: it is silently"),
    ("PRAGMA table_info(goals);", "PRAGMA table_info is not allowed in a plan: a PRAGMA changes"),
])
def test_statements_that_break_the_transaction_are_refused_naming_file_line_and_statement(
        tmp_path, statement, word):
    path = write(tmp_path, f"-- phase: One\nCREATE TABLE a (x);\n\n{statement}\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    error = caught.value
    assert error.exit_code == 2 and error.code == "plan_error"
    assert error.message.startswith(f"The plan was refused and nothing ran:\n{path}:4: {statement}: {word}")
    assert error.details["problems"][0]["line"] == 4


def test_every_refused_statement_is_listed_at_once(tmp_path):
    path = write(tmp_path, "BEGIN;\nCREATE TABLE a (x);\nCOMMIT;\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert [(p["line"], p["statement"]) for p in caught.value.details["problems"]] == [
        (1, "BEGIN;"), (3, "COMMIT;")]


def test_begin_and_end_inside_a_trigger_body_are_allowed(tmp_path):
    plan = load_plan(write(tmp_path, "CREATE TRIGGER t1 AFTER INSERT ON a BEGIN\n"
                                     "  DELETE FROM b;\nEND;\n"))
    assert len(plan.statements()) == 1


def test_an_incomplete_last_statement_is_refused(tmp_path):
    path = write(tmp_path, "CREATE TABLE a (x);\n\nALTER TABLE a\n  ADD COLUMN y TEXT\n")
    with pytest.raises(PlanError, match=rf"^{path}:3: the last statement is incomplete .*"
                                        r": ALTER TABLE a$"):
        load_plan(path)


def test_an_unclosed_string_is_an_incomplete_statement(tmp_path):
    path = write(tmp_path, "INSERT INTO a VALUES ('it''s;\n")
    with pytest.raises(PlanError, match=rf"^{path}:1: the last statement is incomplete"):
        load_plan(path)


def test_a_missing_file_a_directory_and_an_empty_plan_are_refused(tmp_path):
    with pytest.raises(PlanError, match=r"does not exist: check the path"):
        load_plan(tmp_path / "nope.sql")
    with pytest.raises(PlanError, match=r"is a directory"):
        load_plan(tmp_path)
    with pytest.raises(PlanError, match=r"contains no SQL statements"):
        load_plan(write(tmp_path, "-- phase: Nothing yet\n-- just comments\n"))
    with pytest.raises(PlanError, match=r"No plan files were given"):
        load_plan_set([])


def test_a_file_that_is_not_utf8_is_refused_with_its_line(tmp_path):
    path = tmp_path / "latin1.sql"
    path.write_bytes("CREATE TABLE a (x);\nINSERT INTO a VALUES ('café');\n".encode("latin-1"))
    with pytest.raises(PlanError, match=rf"^{path}:2: the plan is not valid UTF-8 \(byte 0xe9\)"):
        load_plan(path)


def test_a_set_with_one_bad_file_is_refused_whole(tmp_path):
    good = write(tmp_path, "CREATE TABLE a (x);\n", "good.sql")
    bad = write(tmp_path, "VACUUM;\n", "bad.sql")
    with pytest.raises(PlanError, match=rf"{bad}:1: VACUUM;"):
        load_plan_set([good, bad])


# --------------------------------------------------------------------------- the hash


# What SQLite does with a statement, observed on a fresh database: the rows left, the stored
# schema and the names of a view's columns. Two spellings that normalise alike must behave
# alike; these pairs show that every normal form of SQL text would merge spellings that do not.
PROBE_DDL = ("CREATE TABLE t (id INTEGER PRIMARY KEY, status TEXT, a INT, b INT, Name TEXT);"
             "INSERT INTO t (status, a, b) VALUES ('Archived', 1, 2), ('archived', 3, 4), "
             "('live', 5, 6);")
EDITS_THAT_CHANGE_WHAT_RUNS = [
    # A double-quoted token that names no column is a string in SQLite.
    ('DELETE FROM t WHERE status = "Archived";', 'DELETE FROM t WHERE status = "archived";'),
    # String literals are data.
    ("DELETE FROM t WHERE status = 'Archived';", "DELETE FROM t WHERE status = 'archived';"),
    # A view's unaliased column is named after the expression as written: spacing, case of
    # bare words and keywords, and comments all show in the application's result rows.
    ("CREATE VIEW v AS SELECT a+b FROM t;", "CREATE VIEW v AS SELECT a + b FROM t;"),
    ("CREATE VIEW v AS SELECT upper(Name) FROM t;", "CREATE VIEW v AS SELECT upper(name) FROM t;"),
    ("CREATE VIEW v AS SELECT a AND b FROM t;", "CREATE VIEW v AS SELECT a and b FROM t;"),
    ("CREATE VIEW v AS SELECT a/*x*/+b FROM t;", "CREATE VIEW v AS SELECT a+b FROM t;"),
    # A bare word defines a name: its case is what PRAGMA table_info and SELECT * report.
    ("ALTER TABLE t ADD COLUMN Archived INT;", "ALTER TABLE t ADD COLUMN archived INT;"),
    # A comment inside a CREATE is stored in the schema.
    ("CREATE TABLE u (x -- why\n);", "CREATE TABLE u (x\n);"),
]


def observe(tmp_path, sql: str, name: str):
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(tmp_path / name)) as connection:
        connection.executescript(PROBE_DDL + sql)
        rows = connection.execute("SELECT id, status FROM t ORDER BY id").fetchall()
        schema = connection.execute("SELECT name, sql FROM sqlite_schema ORDER BY name").fetchall()
        columns = [row[1] for row in connection.execute("PRAGMA table_info(t)")]
        view = ([d[0] for d in connection.execute("SELECT * FROM v").description]
                if any(row[0] == "v" for row in schema) else None)
    return rows, schema, columns, view


@pytest.mark.parametrize(("before", "after"), EDITS_THAT_CHANGE_WHAT_RUNS)
def test_an_edit_sqlite_treats_differently_changes_the_hash(tmp_path, before, after):
    assert observe(tmp_path, before, "before.db") != observe(tmp_path, after, "after.db")
    rehearsed = load_plan_set([write(tmp_path, before + "\n", "rehearsed.sql")])
    edited = load_plan_set([write(tmp_path, after + "\n", "edited.sql")])
    assert edited.hash != rehearsed.hash


def test_the_hash_covers_each_statement_exactly_as_it_is_executed(tmp_path):
    """Nothing is normalised: re-spacing a statement or a comment inside it is an edit (SQLite
    may store or name things after that text), while what is never executed does not count:
    comments between statements, blank lines, phase titles, how statements are split in files."""
    original = load_plan_set([write(tmp_path, "-- phase: One\nALTER TABLE goals ADD COLUMN x INT;\n")])
    recommented = load_plan_set([write(tmp_path, (
        "-- a new comment\n\n-- phase: Renamed phase\n-- why it runs\n"
        "ALTER TABLE goals ADD COLUMN x INT;\n\n-- the end\n"), "recommented.sql")])
    assert recommented.hash == original.hash
    assert [s.sql for s in recommented.statements()] == [s.sql for s in original.statements()]
    for restyled in ("alter table goals add column x INT;\n",
                     "ALTER TABLE goals  ADD COLUMN x INT;\n",
                     'ALTER TABLE "goals" ADD COLUMN x INT;\n',
                     "ALTER TABLE goals ADD COLUMN x INT ;\n",
                     "ALTER TABLE goals /* why */ ADD COLUMN x INT;\n"):
        assert load_plan_set([write(tmp_path, restyled, "restyled.sql")]).hash != original.hash, restyled


def test_hash_changes_with_any_statement_edit_or_reordering(tmp_path):
    base = load_plan_set([write(tmp_path, "CREATE TABLE a (x);\nCREATE TABLE b (y);\n")]).hash
    for text in ("CREATE TABLE a (x);\nCREATE TABLE b (z);\n",
                 "CREATE TABLE b (y);\nCREATE TABLE a (x);\n",
                 "CREATE TABLE a (x);\nCREATE TABLE b (y);\nINSERT INTO a VALUES ('A');\n",
                 "CREATE TABLE a (x);\n"):
        assert load_plan_set([write(tmp_path, text, "edited.sql")]).hash != base, text


def test_hash_changes_when_a_string_literal_changes_case(tmp_path):
    lower = load_plan_set([write(tmp_path, "UPDATE a SET x = 'yes';\n")]).hash
    upper = load_plan_set([write(tmp_path, "UPDATE a SET x = 'YES';\n", "upper.sql")]).hash
    assert lower != upper


def test_hash_covers_the_statements_in_order_whatever_the_files(tmp_path):
    one = load_plan_set([write(tmp_path, "CREATE TABLE a (x);\nCREATE TABLE b (y);\n")])
    two = load_plan_set([write(tmp_path, "CREATE TABLE a (x);\n", "1.sql"),
                         write(tmp_path, "CREATE TABLE b (y);\n", "2.sql")])
    assert one.hash == two.hash
    assert [s.index for s in two.statements()] == [0, 1]
    assert [p.number for p in two.phases()] == [1, 2]


# --------------------------------------------------------------------------- shapes


def test_describe_shows_the_main_verb_of_a_with_statement_and_drops_if_not_exists():
    assert describe("WITH RECURSIVE t(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM t LIMIT 3)\n"
                    "UPDATE goals SET x = 1 -- note\n WHERE id IN (SELECT id FROM t);") == (
        "WITH … UPDATE goals SET x = 1 WHERE id IN (SELECT id FROM t)")
    assert describe("CREATE TABLE IF NOT EXISTS audit (\n  id INTEGER\n);") == (
        "CREATE TABLE audit (id INTEGER)")
    long = "UPDATE t SET " + ", ".join(f"c{i} = {i}" for i in range(40))
    assert describe(long).endswith(", c9 = 9, c10 =…") and len(describe(long)) <= 100


@pytest.mark.parametrize("sql, expected", [
    ("ALTER TABLE \"my table\" ADD COLUMN [we ird] TEXT DEFAULT 'x'",
     ("alter", "column", "we ird", "my table", "add_column")),
    ("alter table main.t add c int", ("alter", "column", "c", "t", "add_column")),
    ("ALTER TABLE t DROP COLUMN c", ("alter", "column", "c", "t", "drop_column")),
    ("ALTER TABLE t RENAME TO u", ("alter", "table", "t", "t", "rename")),
    ("CREATE UNIQUE INDEX IF NOT EXISTS i ON \"x\"\"y\" (a)", ("create", "index", "i", 'x"y', None)),
    ("CREATE TRIGGER tr AFTER UPDATE OF a ON t BEGIN SELECT 1; END", ("create", "trigger", "tr", "t", None)),
    ("CREATE VIEW v AS SELECT 1", ("create", "view", "v", None, None)),
    ("DROP TABLE IF EXISTS old", ("drop", "table", "old", "old", None)),
    ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", ("insert", "table", None, "t", None)),
    ("REPLACE INTO t VALUES (1)", ("insert", "table", None, "t", None)),
    ("UPDATE OR IGNORE t SET a = 1", ("update", "table", None, "t", None)),
    ("DELETE FROM t WHERE a", ("delete", "table", None, "t", None)),
    ("SELECT 1", ("select", None, None, None, None)),
])
def test_statement_shape(sql, expected):
    shape = statement_shape(sql)
    assert (shape.verb, shape.object, shape.name, shape.table, shape.alter_action) == expected


def test_temporary_objects_are_marked():
    assert statement_shape("CREATE TEMP TABLE scratch (x)").temporary
    assert statement_shape("CREATE TABLE temp.scratch (x)").temporary
    assert not statement_shape("CREATE TABLE main.scratch (x)").temporary


# --------------------------------------------------------------------------- phases outside the transaction


def test_a_sqlite_plan_keeps_the_hash_signed_rehearsals_hold():
    plan = parse_plan_text("-- phase: a\nCREATE TABLE t (x);\n-- accept-drop: index i\n"
                           "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;\n")
    assert make_plan_set([plan]).hash == "4ef1cc58789ee7569a3c1b01b587570893ff81335fbad0a0eb2d3f49f43354f6"


def test_a_phase_outside_the_transaction_is_refused_on_sqlite(tmp_path):
    path = write(tmp_path, "CREATE TABLE a (x);\n-- phase: Later (no transaction)\nCREATE TABLE b (y);\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.message == (
        f"{path}:2: `-- phase: Later (no transaction)` cannot be run: SQLite runs a whole plan set "
        "in one transaction, so a phase cannot run outside it. Remove `(no transaction)`, and any "
        "statement that needs it.")
    assert caught.value.details["line"] == 2


def test_a_phase_declared_outside_the_transaction_is_recorded():
    plan = parse_plan_text(
        "-- phase: Columns\nALTER TABLE items ADD COLUMN name text;\n"
        "-- phase: Indexes (No Transaction)\nCREATE INDEX CONCURRENTLY items_name ON items (name);\n"
        "DROP INDEX CONCURRENTLY items_old;\n", file="plan.sql", dialect=POSTGRES)
    assert [(p.title, p.transactional) for p in plan.phases] == [("Columns", True), ("Indexes", False)]
    assert [s.transactional for s in plan.statements()] == [True, False, False]
    assert [s.phase for s in plan.statements()] == ["Columns", "Indexes", "Indexes"]
    shapes = [phase.to_dict() for phase in plan.phases]
    assert "transactional" not in shapes[0] and shapes[1]["transactional"] is False


def test_what_cannot_run_in_a_transaction_is_refused_outside_such_a_phase_naming_the_fix(tmp_path):
    path = write(tmp_path, "-- phase: Indexes\nCREATE INDEX CONCURRENTLY items_name ON items (name);\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path, dialect=POSTGRES)
    assert caught.value.message == (
        f"The plan was refused and nothing ran:\n{path}:2: CREATE INDEX CONCURRENTLY items_name ON items "
        "(name);: PostgreSQL cannot run CREATE INDEX CONCURRENTLY inside a transaction block; put it "
        "in a phase of its own declared `-- phase: TITLE (no transaction)`.")


def test_a_phase_outside_the_transaction_still_refuses_what_no_phase_may_run(tmp_path):
    path = write(tmp_path, "-- phase: Cleanup (no transaction)\nVACUUM items;\nBEGIN;\nDISCARD ALL;\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path, dialect=POSTGRES)
    assert [(p["line"], p["reason"].split(" ")[0]) for p in caught.value.details["problems"]] == [
        (3, "BEGIN"), (4, "DISCARD")]


def test_a_phase_outside_the_transaction_needs_a_title(tmp_path):
    path = write(tmp_path, "-- phase: (no transaction)\nVACUUM;\n")
    with pytest.raises(PlanError, match=rf"^{path}:1: the phase has no title"):
        load_plan(path, dialect=POSTGRES)


def test_the_hash_covers_which_statements_run_outside_the_transaction():
    statements = "CREATE INDEX items_name ON items (name);\nANALYZE items;\n"
    inside = parse_plan_text(f"-- phase: Indexes\n{statements}", dialect=POSTGRES)
    outside = parse_plan_text(f"-- phase: Indexes (no transaction)\n{statements}", dialect=POSTGRES)
    split = parse_plan_text("-- phase: Indexes\nCREATE INDEX items_name ON items (name);\n"
                            "-- phase: Statistics (no transaction)\nANALYZE items;\n", dialect=POSTGRES)
    hashes = {make_plan_set([plan]).hash for plan in (inside, outside, split)}
    assert len(hashes) == 3
    # Without such a phase, a PostgreSQL plan's hash is made as every plan's always was.
    renamed = parse_plan_text(f"-- phase: Other title\n{statements}", dialect=POSTGRES)
    assert make_plan_set([renamed]).hash == make_plan_set([inside]).hash


def test_a_new_enum_value_cannot_be_used_in_the_migrations_transaction(tmp_path):
    adds = write(tmp_path, "ALTER TYPE mood ADD VALUE 'sad';\n", "adds.sql")
    uses = write(tmp_path, "-- phase: Data\nUPDATE people SET mood = 'sad';\n", "uses.sql")
    with pytest.raises(PlanError) as caught:
        load_plan_set([adds, uses], dialect=POSTGRES)
    assert caught.value.details["problems"][0]["line"] == 2
    assert caught.value.details["file"] == str(uses)
    assert "it uses the enum value 'sad'" in caught.value.message
    with pytest.raises(PlanError, match="unsafe use of new value"):
        parse_plan_text("ALTER TYPE mood ADD VALUE 'sad';\nSELECT 'sad'::mood;\n", dialect=POSTGRES)
    later = write(tmp_path, "-- phase: Data (no transaction)\nUPDATE people SET mood = 'sad';\n", "later.sql")
    assert len(load_plan_set([adds, later], dialect=POSTGRES).statements()) == 2


def test_statements_are_split_by_the_dialect_given():
    text = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$;\nSELECT f();\n"
    statements = parse_plan_text(text, dialect=POSTGRES).statements()
    assert [(s.line, s.sql.splitlines()[-1]) for s in statements] == [(1, "$$;"), (6, "SELECT f();")]
