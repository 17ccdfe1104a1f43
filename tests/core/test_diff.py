"""app.core.diff: what differs, and what it would take to bring the right side along."""

import shutil
import sqlite3
import subprocess
from contextlib import closing

import pytest

from app.core.diff import Difference, diff_schemas, summarise_drift, type_affinity
from app.core.inspect import inspect_database
from tests.core.conftest import RICH_DDL, SQLITE_CLI

INJECTION = 'x"; DROP TABLE y; --'


@pytest.fixture
def schema_of(make_db):
    """schema_of(ddl) -> the inspected Schema of a fresh database built from `ddl`."""
    counter = iter(range(1000))

    def build(ddl: str):
        return inspect_database(make_db(ddl, f"db{next(counter)}.db")).schema

    return build


@pytest.fixture
def diff(schema_of):
    def compare(left_ddl: str, right_ddl: str, **labels) -> list[dict]:
        return [d.to_dict() for d in diff_schemas(schema_of(left_ddl), schema_of(right_ddl), **labels)]

    return compare


def column(name, type_="", not_null=False, default=None, pk=0, hidden="", collation=None, generated=None):
    return {
        "name": name,
        "type": type_,
        "not_null": not_null,
        "default": default,
        "pk": pk,
        "hidden": hidden,
        "collation": collation,
        "generated": generated,
    }


# --- no differences -----------------------------------------------------------------------


def test_database_against_itself_copy_and_dump_rebuild(rich_db, tmp_path):
    copy = tmp_path / "copy.db"
    shutil.copy(rich_db, copy)
    rebuilt = tmp_path / "rebuilt.db"
    dump = subprocess.run([SQLITE_CLI, str(rich_db), ".dump"], capture_output=True, check=True)
    subprocess.run([SQLITE_CLI, str(rebuilt)], input=dump.stdout, check=True)
    original = inspect_database(rich_db).schema
    assert diff_schemas(original, original) == []
    for other in (copy, rebuilt):
        schema = inspect_database(other).schema
        assert diff_schemas(original, schema) == []
        assert diff_schemas(schema, original) == []
        assert schema.fingerprint() == original.fingerprint()


STYLE_A = """
CREATE TABLE parent (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);
CREATE TABLE child (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES parent ON DELETE CASCADE,
    amount NUMERIC(10,2) DEFAULT -1 CHECK (amount <> 0),
    note VARCHAR(20) COLLATE NOCASE DEFAULT 'a  b'
);
CREATE INDEX child_amount ON child (amount DESC) WHERE amount > 0;
CREATE VIEW positive AS SELECT id, amount FROM child WHERE amount > 0;
CREATE TRIGGER child_check BEFORE INSERT ON child BEGIN SELECT RAISE(ABORT, 'no') WHERE NEW.amount == 0; END;
"""

STYLE_B = """
create table "Parent"(
  [ID] integer primary key,
  `Code` text not null,
  constraint code_unique unique (code)
);
CREATE   TABLE Child (
  "Id" INTEGER PRIMARY KEY, -- the row id
  "Parent_Id" INTEGER,
  Amount numeric( 10, 2 ) DEFAULT - 1,
  Note varchar(20) collate nocase default 'a  b',
  FOREIGN KEY (parent_id) REFERENCES parent(id) ON DELETE CASCADE,
  CONSTRAINT amount_nonzero CHECK(amount != 0)
);
create index CHILD_AMOUNT on CHILD(AMOUNT desc) where AMOUNT>0;
create view Positive as select ID, AMOUNT from CHILD where AMOUNT > 0;
create trigger Child_Check before insert on Child begin
  select raise(ABORT, 'no') where new.amount = 0;
end;
"""


def test_same_schema_written_in_different_styles(schema_of):
    a, b = schema_of(STYLE_A), schema_of(STYLE_B)
    assert diff_schemas(a, b) == []
    assert diff_schemas(b, a) == []
    assert a.fingerprint() == b.fingerprint()


def test_column_order_alone_is_not_a_difference(schema_of):
    a = schema_of("CREATE TABLE t (a INT, b TEXT, c REAL);")
    b = schema_of("CREATE TABLE t (c REAL, a INT, b TEXT);")
    assert diff_schemas(a, b) == []
    assert a.fingerprint() != b.fingerprint()  # the fingerprint does cover order


def test_equivalent_type_spellings_are_equal(diff):
    assert diff("CREATE TABLE t (a VARCHAR(20), b DOUBLE PRECISION);", "CREATE TABLE t (a varchar ( 20 ), b double   precision);") == []


# --- tables --------------------------------------------------------------------------------


def test_table_only_left_is_one_additive_row(diff, schema_of):
    left = schema_of(
        "CREATE TABLE keep (a); CREATE TABLE goals (id INTEGER PRIMARY KEY, title TEXT);"
        "CREATE INDEX goals_title ON goals (title);"
        "CREATE TRIGGER goals_t AFTER INSERT ON goals BEGIN SELECT 1; END;"
    )
    right = schema_of("CREATE TABLE keep (a);")
    differences = diff_schemas(left, right, left_label="development", right_label="production")
    assert [d.to_dict() for d in differences] == [
        {
            "object": "table",
            "table": "goals",
            "name": "goals",
            "change": "only_left",
            "fix": "additive",
            "left": left.table("goals").to_dict(),
            "right": None,
            "explanation": "Table goals exists in development but not in production; "
            "CREATE TABLE can add it, followed by its 1 index and 1 trigger.",
        }
    ]


def test_table_only_right_is_one_destructive_row(schema_of):
    left = schema_of("CREATE TABLE keep (a);")
    right = schema_of(
        "CREATE TABLE keep (a); CREATE TABLE old_log (line TEXT); CREATE INDEX old_i ON old_log (line);"
        "INSERT INTO old_log VALUES ('a'), ('b');"
    )
    (difference,) = diff_schemas(left, right)
    assert difference.to_dict() == {
        "object": "table",
        "table": "old_log",
        "name": "old_log",
        "change": "only_right",
        "fix": "destructive",
        "left": None,
        "right": right.table("old_log").to_dict(),
        "explanation": "Table old_log exists in right but not in left; "
        "only DROP TABLE would remove it, and with it its 2 rows.",
    }


@pytest.mark.parametrize(
    ("left_ddl", "right_ddl", "phrase"),
    [
        ("CREATE TABLE t (a INT) STRICT;", "CREATE TABLE t (a INT);", "it is STRICT in left but not in right"),
        (
            "CREATE TABLE t (a TEXT NOT NULL PRIMARY KEY);",
            "CREATE TABLE t (a TEXT NOT NULL PRIMARY KEY) WITHOUT ROWID;",
            "it is WITHOUT ROWID in right but not in left",
        ),
        (
            "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT);",
            "CREATE TABLE t (id INTEGER PRIMARY KEY);",
            "it uses AUTOINCREMENT in left but not in right",
        ),
        (
            "CREATE TABLE t (a INT CHECK (a > 0));",
            "CREATE TABLE t (a INT CHECK (a >= 0));",
            "its CHECK/UNIQUE constraints differ (left: CHECK(a > 0); right: CHECK(a >= 0))",
        ),
        (
            "CREATE TABLE t (a, b, UNIQUE (a, b));",
            "CREATE TABLE t (a, b);",
            "its CHECK/UNIQUE constraints differ (left: UNIQUE(a, b); right: none)",
        ),
        (
            "CREATE TABLE p (x, y, PRIMARY KEY (x, y)); CREATE TABLE t (a, b, FOREIGN KEY (a, b) REFERENCES p (x, y));",
            "CREATE TABLE p (x, y, PRIMARY KEY (x, y)); CREATE TABLE t (a, b);",
            "its multi-column foreign keys differ (left: (a, b) REFERENCES p(x, y); right: none)",
        ),
    ],
)
def test_changed_table_facts_need_a_rebuild(diff, left_ddl, right_ddl, phrase):
    differences = diff(left_ddl, right_ddl)
    assert len(differences) == 1
    (difference,) = differences
    assert (difference["object"], difference["name"], difference["change"], difference["fix"]) == (
        "table",
        "t",
        "changed",
        "rebuild",
    )
    assert difference["explanation"] == (
        f"Table t differs between left and right: {phrase}; "
        "SQLite can only change this by rebuilding the table."
    )


def test_sqlite_internal_tables_are_never_differences(diff):
    differences = diff(
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT); INSERT INTO t DEFAULT VALUES; ANALYZE;",
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT);",
    )
    assert differences == []


# --- columns -------------------------------------------------------------------------------


def test_missing_column_that_add_column_can_add(diff):
    differences = diff(
        "CREATE TABLE activity_definitions (id INTEGER PRIMARY KEY, name TEXT, group_id INTEGER REFERENCES groups(id));",
        "CREATE TABLE activity_definitions (id INTEGER PRIMARY KEY, name TEXT);",
        left_label="development",
        right_label="production",
    )
    assert differences == [
        {
            "object": "column",
            "table": "activity_definitions",
            "name": "group_id",
            "change": "only_left",
            "fix": "additive",
            "left": column("group_id", "INTEGER"),
            "right": None,
            "explanation": "Column activity_definitions.group_id exists in development but not in "
            "production; ALTER TABLE ... ADD COLUMN can add it.",
        }
    ]


@pytest.mark.parametrize(
    ("definition", "fix", "because"),
    [
        ("b TEXT NOT NULL DEFAULT 'x'", "additive", None),
        ("b INTEGER DEFAULT -1 CHECK (b != 0)", "additive", None),
        ("b AS (a * 2) VIRTUAL", "additive", None),
        ("b TEXT DEFAULT NULL", "additive", None),
        ("b TEXT DEFAULT ('x')", "additive", None),
        ("b INTEGER DEFAULT (-1)", "additive", None),
        ("b TEXT DEFAULT (CAST(1 AS TEXT))", "additive", None),
        ("b TEXT DEFAULT TRUE", "additive", None),
        ("b TEXT DEFAULT x'00'", "additive", None),
        ("b TEXT DEFAULT (random())", "rebuild", "its default random() is not a constant"),
        ("b TEXT NOT NULL", "rebuild", "it is NOT NULL without a non-NULL default"),
        ("b TEXT NOT NULL DEFAULT NULL", "rebuild", "it is NOT NULL without a non-NULL default"),
        ("b TEXT DEFAULT CURRENT_TIMESTAMP", "rebuild", "its default CURRENT_TIMESTAMP is not a constant"),
        ("b INTEGER DEFAULT (1 + 1)", "rebuild", "its default 1 + 1 is not a constant"),
        ("b TEXT UNIQUE", "rebuild", "it has a UNIQUE constraint"),
        ("b AS (a * 2) STORED", "rebuild", "it is a STORED generated column"),
        (
            "b TEXT NOT NULL UNIQUE",
            "rebuild",
            "it has a UNIQUE constraint and it is NOT NULL without a non-NULL default",
        ),
    ],
)
def test_missing_column_fix_class(diff, definition, fix, because):
    differences = diff(f"CREATE TABLE t (a INT, {definition});", "CREATE TABLE t (a INT);")
    assert _sqlite_can_add(definition) == (fix == "additive")  # the rule matches SQLite
    column_rows = [d for d in differences if d["object"] == "column"]
    assert len(column_rows) == 1
    row = column_rows[0]
    assert (row["name"], row["change"], row["fix"]) == ("b", "only_left", fix)
    if because is None:
        assert row["explanation"].endswith("ALTER TABLE ... ADD COLUMN can add it.")
    else:
        assert row["explanation"] == (
            "Column t.b exists in left but not in right; ALTER TABLE ... ADD COLUMN cannot add it "
            f"because {because}, so the table must be rebuilt."
        )


def _sqlite_can_add(definition: str) -> bool:
    """Ask SQLite itself, on a table that has rows (some refusals only apply then)."""
    with closing(sqlite3.connect(":memory:")) as connection:
        connection.execute("CREATE TABLE t (a INT)")
        connection.execute("INSERT INTO t VALUES (1)")
        try:
            connection.execute(f"ALTER TABLE t ADD COLUMN {definition}")
        except sqlite3.OperationalError:
            return False
    return True


def test_missing_primary_key_column_needs_a_rebuild(diff):
    differences = diff("CREATE TABLE t (a, b, PRIMARY KEY (a, b));", "CREATE TABLE t (a, PRIMARY KEY (a));")
    column_rows = [d for d in differences if d["object"] == "column"]
    assert [(d["name"], d["fix"]) for d in column_rows] == [("b", "rebuild")]
    assert "because it is part of the PRIMARY KEY" in column_rows[0]["explanation"]


def test_column_only_right_is_destructive(diff):
    assert diff("CREATE TABLE t (a);", "CREATE TABLE t (a, legacy TEXT DEFAULT 'x');") == [
        {
            "object": "column",
            "table": "t",
            "name": "legacy",
            "change": "only_right",
            "fix": "destructive",
            "left": None,
            "right": column("legacy", "TEXT", default="'x'"),
            "explanation": "Column t.legacy exists in right but not in left; only dropping it "
            "(ALTER TABLE ... DROP COLUMN or a rebuild) removes it, and its values with it.",
        }
    ]


def test_changed_type_with_the_same_affinity(diff):
    assert diff("CREATE TABLE users (name VARCHAR(20));", "CREATE TABLE users (name TEXT);") == [
        {
            "object": "column",
            "table": "users",
            "name": "name",
            "change": "changed",
            "fix": "rebuild",
            "left": column("name", "VARCHAR(20)"),
            "right": column("name", "TEXT"),
            "explanation": "Column users.name differs between left and right: VARCHAR(20) vs TEXT: "
            "different declared type, same TEXT affinity; stored values behave the same; "
            "SQLite cannot change a column in place, so the table must be rebuilt.",
        }
    ]


@pytest.mark.parametrize(
    ("left_definition", "right_definition", "phrase"),
    [
        ("a INTEGER", "a TEXT", "INTEGER vs TEXT: different type affinity (INTEGER vs TEXT); "
         "stored values may be converted differently"),
        ("a", "a REAL", "(no type) vs REAL: different type affinity (BLOB vs REAL); "
         "stored values may be converted differently"),
        ("a TEXT NOT NULL DEFAULT ''", "a TEXT DEFAULT ''", "NOT NULL in left but not in right"),
        ("a TEXT DEFAULT 'x'", "a TEXT DEFAULT 'y'", "default 'x' in left vs 'y' in right"),
        ("a TEXT DEFAULT 'x'", "a TEXT", "default 'x' in left vs none in right"),
        ("a TEXT COLLATE NOCASE", "a TEXT", "collation NOCASE in left vs BINARY in right"),
        ("a INT AS (b + 1)", "a INT AS (b + 2)", "kind VIRTUAL generated AS (b + 1) in left vs "
         "VIRTUAL generated AS (b + 2) in right"),
        ("a INT AS (b + 1) STORED", "a INT", "kind STORED generated AS (b + 1) in left vs ordinary in right"),
        ("a INT REFERENCES p(id)", "a INT", "foreign key p(id) ON UPDATE NO ACTION ON DELETE NO ACTION "
         "in left vs none in right"),
        ("a INT REFERENCES p(id) ON DELETE CASCADE", "a INT REFERENCES p(id)",
         "foreign key p(id) ON UPDATE NO ACTION ON DELETE CASCADE in left vs "
         "p(id) ON UPDATE NO ACTION ON DELETE NO ACTION in right"),
    ],
)
def test_changed_column(diff, left_definition, right_definition, phrase):
    parent = "CREATE TABLE p (id INTEGER PRIMARY KEY);"
    differences = diff(
        f"{parent} CREATE TABLE t ({left_definition}, b INT);",
        f"{parent} CREATE TABLE t ({right_definition}, b INT);",
    )
    assert [(d["object"], d["name"], d["change"], d["fix"]) for d in differences] == [
        ("column", "a", "changed", "rebuild")
    ]
    assert differences[0]["explanation"] == (
        f"Column t.a differs between left and right: {phrase}; "
        "SQLite cannot change a column in place, so the table must be rebuilt."
    )


def test_changed_primary_key_position(diff):
    differences = diff("CREATE TABLE t (a, b, PRIMARY KEY (a, b));", "CREATE TABLE t (a, b, PRIMARY KEY (b, a));")
    assert [(d["name"], d["explanation"].split(": ", 1)[1].split(";")[0]) for d in differences] == [
        ("a", "primary-key position 1 in left vs 2 in right"),
        ("b", "primary-key position 2 in left vs 1 in right"),
    ]


def test_several_changes_to_one_column_are_one_row(diff):
    differences = diff("CREATE TABLE t (a TEXT NOT NULL DEFAULT 'x');", "CREATE TABLE t (a INT);")
    assert len(differences) == 1
    assert differences[0]["explanation"] == (
        "Column t.a differs between left and right: TEXT vs INT: different type affinity "
        "(TEXT vs INTEGER); stored values may be converted differently; NOT NULL in left but not "
        "in right; default 'x' in left vs none in right; SQLite cannot change a column in place, "
        "so the table must be rebuilt."
    )


# --- indexes -------------------------------------------------------------------------------


def test_index_only_left_only_right_and_changed(schema_of):
    left = schema_of(
        "CREATE TABLE t (a, b); CREATE INDEX t_new ON t (a); CREATE INDEX t_same ON t (a, b);"
        "CREATE UNIQUE INDEX t_changed ON t (a DESC, b COLLATE NOCASE) WHERE a > 0;"
    )
    right = schema_of(
        "CREATE TABLE t (a, b); CREATE INDEX t_old ON t (b); CREATE INDEX t_same ON t (a, b);"
        "CREATE INDEX t_changed ON t (a, b);"
    )
    differences = [d.to_dict() for d in diff_schemas(left, right)]
    assert differences == [
        {
            "object": "index",
            "table": "t",
            "name": "t_changed",
            "change": "changed",
            "fix": "rebuild",
            "left": left.table("t").indexes[0].to_dict(),
            "right": right.table("t").indexes[0].to_dict(),
            "explanation": "Index t_changed on t differs between left and right: columns "
            "(a DESC, b COLLATE NOCASE) in left vs (a, b) in right; UNIQUE in left but not in right; "
            "WHERE a > 0 in left vs none in right; drop and re-create the index; no table data is lost.",
        },
        {
            "object": "index",
            "table": "t",
            "name": "t_new",
            "change": "only_left",
            "fix": "additive",
            "left": left.table("t").indexes[1].to_dict(),
            "right": None,
            "explanation": "Index t_new on t exists in left but not in right; CREATE INDEX can add it.",
        },
        {
            "object": "index",
            "table": "t",
            "name": "t_old",
            "change": "only_right",
            "fix": "destructive",
            "left": None,
            "right": right.table("t").indexes[0 + 1].to_dict(),
            "explanation": "Index t_old on t exists in right but not in left; only DROP INDEX removes "
            "it (no table data is lost).",
        },
    ]


def test_missing_unique_index_warns_about_duplicates(diff):
    (row,) = diff("CREATE TABLE t (a); CREATE UNIQUE INDEX t_a ON t (a);", "CREATE TABLE t (a);")
    assert row["explanation"] == (
        "Index t_a on t exists in left but not in right; CREATE INDEX can add it "
        "(it is UNIQUE: duplicate values already in right would make it fail)."
    )


def test_expression_index_change(diff):
    (row,) = diff(
        "CREATE TABLE t (a); CREATE INDEX t_e ON t (lower(a));",
        "CREATE TABLE t (a); CREATE INDEX t_e ON t (upper(a));",
    )
    assert "columns (lower(a)) in left vs (upper(a)) in right" in row["explanation"]


def test_automatic_indexes_are_never_differences(diff):
    # The UNIQUE shows up once, as a table constraint, not again as sqlite_autoindex_t_1.
    differences = diff("CREATE TABLE t (a, b, UNIQUE (a, b));", "CREATE TABLE t (a, b);")
    assert [(d["object"], d["name"]) for d in differences] == [("table", "t")]


# --- triggers and views --------------------------------------------------------------------


def test_triggers(diff):
    base = "CREATE TABLE t (a); CREATE TABLE log (a);"
    differences = diff(
        base + "CREATE TRIGGER t_new AFTER INSERT ON t BEGIN INSERT INTO log VALUES (NEW.a); END;"
        "CREATE TRIGGER t_changed AFTER DELETE ON t BEGIN DELETE FROM log WHERE a = OLD.a; END;",
        base + "CREATE TRIGGER t_old AFTER UPDATE ON t BEGIN SELECT 1; END;"
        "CREATE TRIGGER t_changed AFTER DELETE ON t BEGIN DELETE FROM log; END;",
    )
    assert [(d["object"], d["table"], d["name"], d["change"], d["fix"]) for d in differences] == [
        ("trigger", "t", "t_changed", "changed", "rebuild"),
        ("trigger", "t", "t_new", "only_left", "additive"),
        ("trigger", "t", "t_old", "only_right", "destructive"),
    ]
    assert [d["explanation"] for d in differences] == [
        "Trigger t_changed is defined differently in left and right; drop and re-create the "
        "trigger; no table data is lost.",
        "Trigger t_new exists in left but not in right; CREATE TRIGGER can add it.",
        "Trigger t_old exists in right but not in left; only DROP TRIGGER removes it "
        "(no table data is lost).",
    ]
    assert differences[1]["left"] == {
        "name": "t_new",
        "table": "t",
        "sql": "CREATE TRIGGER t_new AFTER INSERT ON t BEGIN INSERT INTO log VALUES (NEW.a); END",
    }


def test_views(diff):
    base = "CREATE TABLE t (a);"
    differences = diff(
        base + "CREATE VIEW v_new AS SELECT a FROM t; CREATE VIEW v_changed AS SELECT a FROM t;",
        base + "CREATE VIEW v_old AS SELECT 1; CREATE VIEW v_changed AS SELECT a FROM t WHERE a > 1;",
    )
    assert differences == [
        {
            "object": "view",
            "table": None,
            "name": "v_changed",
            "change": "changed",
            "fix": "rebuild",
            "left": {"name": "v_changed", "sql": "CREATE VIEW v_changed AS SELECT a FROM t"},
            "right": {"name": "v_changed", "sql": "CREATE VIEW v_changed AS SELECT a FROM t WHERE a > 1"},
            "explanation": "View v_changed is defined differently in left and right; drop and "
            "re-create the view; no table data is lost.",
        },
        {
            "object": "view",
            "table": None,
            "name": "v_new",
            "change": "only_left",
            "fix": "additive",
            "left": {"name": "v_new", "sql": "CREATE VIEW v_new AS SELECT a FROM t"},
            "right": None,
            "explanation": "View v_new exists in left but not in right; CREATE VIEW can add it.",
        },
        {
            "object": "view",
            "table": None,
            "name": "v_old",
            "change": "only_right",
            "fix": "destructive",
            "left": None,
            "right": {"name": "v_old", "sql": "CREATE VIEW v_old AS SELECT 1"},
            "explanation": "View v_old exists in right but not in left; only DROP VIEW removes it "
            "(no table data is lost).",
        },
    ]


# --- order, summary, names -------------------------------------------------------------------


def test_order_is_tables_by_name_then_triggers_then_views(diff):
    differences = diff(
        "CREATE TABLE b (x, new_col); CREATE INDEX b_x ON b (x); CREATE TABLE a (x INT) STRICT;"
        "CREATE TABLE only_dev (x); CREATE TRIGGER on_dev AFTER INSERT ON only_dev BEGIN SELECT 1; END;"
        "CREATE TRIGGER b_t AFTER INSERT ON b BEGIN SELECT 1; END; CREATE VIEW v AS SELECT 1;",
        "CREATE TABLE b (x, old_col); CREATE TABLE a (x INT); CREATE TABLE Z_prod (x);",
    )
    assert [(d["object"], d["name"], d["change"]) for d in differences] == [
        ("table", "a", "changed"),
        ("column", "new_col", "only_left"),
        ("column", "old_col", "only_right"),
        ("index", "b_x", "only_left"),
        ("table", "only_dev", "only_left"),  # its trigger on_dev is not listed again
        ("table", "Z_prod", "only_right"),
        ("trigger", "b_t", "only_left"),
        ("view", "v", "only_left"),
    ]


def test_names_match_case_insensitively(diff):
    assert diff('CREATE TABLE "Goals" ("Title" TEXT);', "CREATE TABLE goals (title TEXT);") == []


def test_identifier_injection_is_diffed_fine(diff):
    quoted = '"x""; DROP TABLE y; --"'
    differences = diff(
        f"CREATE TABLE y (a); CREATE TABLE {quoted} (a, {quoted} TEXT);",
        f"CREATE TABLE y (a); CREATE TABLE {quoted} (a);",
    )
    assert [(d["object"], d["table"], d["name"], d["fix"]) for d in differences] == [
        ("column", INJECTION, INJECTION, "additive")
    ]
    assert differences[0]["explanation"] == (
        f"Column {INJECTION}.{INJECTION} exists in left but not in right; "
        "ALTER TABLE ... ADD COLUMN can add it."
    )


def _row(change: str, fix: str) -> Difference:
    return Difference("column", "t", "c", change, fix, None, None, "")


@pytest.mark.parametrize(
    ("rows", "status"),
    [
        ([], "in_sync"),
        ([_row("only_left", "additive"), _row("only_left", "rebuild")], "behind"),
        ([_row("only_right", "destructive")], "ahead"),
        ([_row("only_left", "additive"), _row("only_right", "destructive")], "diverged"),
        ([_row("changed", "rebuild")], "diverged"),
    ],
)
def test_summarise_drift_status(rows, status):
    assert summarise_drift(rows).status == status


def test_summarise_drift_counts(diff, schema_of):
    left = schema_of("CREATE TABLE t (a, b NOT NULL, c); CREATE VIEW v AS SELECT 1;")
    right = schema_of("CREATE TABLE t (a TEXT, d); CREATE TABLE extra (x);")
    summary = summarise_drift(diff_schemas(left, right))
    assert summary.to_dict() == {
        "status": "diverged",
        "total": 6,
        "by_fix": {"additive": 2, "rebuild": 2, "destructive": 2},
        "by_change": {"only_left": 3, "only_right": 2, "changed": 1},
    }


@pytest.mark.parametrize(
    ("declared", "affinity"),
    [
        ("INT", "INTEGER"),
        ("BIGINT", "INTEGER"),
        ("POINT", "INTEGER"),  # rule 1 wins: "INT" appears inside "POINT"
        ("VARCHAR(20)", "TEXT"),
        ("CLOB", "TEXT"),
        ("BLOB", "BLOB"),
        ("", "BLOB"),
        ("DOUBLE PRECISION", "REAL"),
        ("FLOATING POINT", "INTEGER"),
        ("float", "REAL"),
        ("DECIMAL(10,5)", "NUMERIC"),
        ("BOOLEAN", "NUMERIC"),
        ("STRING", "NUMERIC"),
    ],
)
def test_type_affinity(declared, affinity):
    assert type_affinity(declared) == affinity


def test_rich_schema_against_an_older_production(rich_db, schema_of):
    """The realistic case: production missed a few migrations and has local leftovers."""
    development = inspect_database(rich_db).schema
    production = schema_of(RICH_DDL.replace("    stored_label TEXT AS (upper(label)) STORED,\n", "")
                           .replace("CREATE INDEX child_big ON child (amount) WHERE amount > 100;", "")
                           .replace("CREATE TABLE typed (i INT, t TEXT, r REAL, x ANY) STRICT;", ""))
    differences = diff_schemas(development, production, left_label="development", right_label="production")
    assert [(d.object, d.name, d.change, d.fix) for d in differences] == [
        ("column", "stored_label", "only_left", "rebuild"),
        ("index", "child_big", "only_left", "additive"),
        ("table", "typed", "only_left", "additive"),
    ]
    assert summarise_drift(differences).status == "behind"


def test_int_primary_key_is_explained_as_not_the_rowid(diff):
    [difference] = diff("CREATE TABLE t (id INTEGER PRIMARY KEY, v);", "CREATE TABLE t (id INT PRIMARY KEY, v);",
                        left_label="dev", right_label="prod")
    assert "INTEGER vs INT: only INTEGER PRIMARY KEY makes the column an alias of the rowid" in difference["explanation"]
    assert "behave the same" not in difference["explanation"]


def test_integer_primary_key_desc_is_explained_as_not_the_rowid(diff):
    [difference] = diff("CREATE TABLE t (id INTEGER PRIMARY KEY, v);",
                        "CREATE TABLE t (id INTEGER PRIMARY KEY DESC, v);", left_label="dev", right_label="prod")
    assert difference["object"] == "table" and difference["fix"] == "rebuild"
    assert "its key id is the rowid in dev but not in prod" in difference["explanation"]


def test_a_deferred_foreign_key_is_explained(diff):
    [difference] = diff("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p REFERENCES p (id));",
                        "CREATE TABLE p (id INTEGER PRIMARY KEY); "
                        "CREATE TABLE c (p REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);")
    assert difference["object"] == "column" and difference["name"] == "p"
    assert "DEFERRABLE INITIALLY DEFERRED (checked at COMMIT) in right" in difference["explanation"]


def test_on_conflict_clauses_are_explained(diff):
    [difference] = diff("CREATE TABLE t (a NOT NULL DEFAULT 1);",
                        "CREATE TABLE t (a NOT NULL ON CONFLICT REPLACE DEFAULT 1);")
    assert "NOT NULL conflict resolution the default (ABORT) in left vs ON CONFLICT REPLACE in right" in (
        difference["explanation"])
    [difference] = diff("CREATE TABLE t (a, b, PRIMARY KEY (a, b));",
                        "CREATE TABLE t (a, b, PRIMARY KEY (a, b) ON CONFLICT IGNORE);")
    assert "PRIMARY KEY conflict resolution the default (ABORT) in left vs ON CONFLICT IGNORE in right" in (
        difference["explanation"])
