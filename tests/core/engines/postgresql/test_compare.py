"""Comparing two real PostgreSQL databases: every kind of difference found, classified by
what it takes on the right side (additive, rebuild, destructive) and explained."""
from itertools import count

import pytest

from app.core.diff import summarise_drift
from app.core.engines.postgresql.compare import diff_catalogs, rewrites_on_type_change
from tests.core.engines.postgresql.catalogs import BOTH_SCHEMAS, FULL_SCHEMA, copy_by_dump, read

# customers and orders hold rows, events is empty; each case adds to one side or both.
BASE = """
CREATE TYPE status AS ENUM ('draft', 'active');
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, name varchar(80), score numeric(10,2),
                        code varchar(10));
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, status status, note text);
CREATE TABLE events (id int, at timestamptz);
CREATE SEQUENCE counter;
CREATE VIEW names AS SELECT id, name FROM customers;
CREATE MATERIALIZED VIEW totals AS SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
INSERT INTO customers VALUES (1, 'a@x', 'A', 1.5, 'c1');
INSERT INTO orders VALUES (1, 1, 'draft', 'first');
"""
_sides = count(1)


@pytest.fixture(scope="module")
def sides_database(pg_server):
    """One database for the module's cases: each side of each case is a schema of its own,
    read as the default schema, which is far quicker than two fresh databases per case."""
    name = pg_server.create_database("compare")
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def compare(pg_server, sides_database):
    """compare(left_sql, right_sql, **options) → the differences of BASE+left against BASE+right."""

    def side(extra_sql: str):
        schema = f"side_{next(_sides)}"
        pg_server.psql(f"CREATE SCHEMA {schema}; SET search_path = {schema}; {BASE} {extra_sql}",
                       sides_database)
        return read(pg_server, sides_database, schemas=(schema,))

    def run(left_sql: str = "", right_sql: str = "", **options):
        left, right = side(left_sql), side(right_sql)
        differences = diff_catalogs(left, right, left_label="development", right_label="production", **options)
        if differences:  # "no differences" and "same fingerprint" agree (column order aside)
            assert left.fingerprint() != right.fingerprint()
        return differences

    return run


@pytest.fixture
def compare_databases(pg_server):
    """Like compare, with a fresh database per side: for what a whole database has (extensions)."""
    made = []

    def side(extra_sql: str):
        made.append(pg_server.create_database())
        pg_server.psql(extra_sql or "SELECT 1", made[-1])
        return read(pg_server, made[-1])

    yield lambda left_sql, right_sql: diff_catalogs(side(left_sql), side(right_sql),
                                                    left_label="development", right_label="production")
    for name in made:
        pg_server.drop_database(name)


def test_identical_schemas_have_no_differences(compare):
    assert compare("CREATE TABLE extra (id int)", "CREATE TABLE extra (id int)") == []


def test_a_database_and_its_dump_and_restore_copy_are_the_same(pg_server, pg_database, tmp_path):
    pg_server.psql(FULL_SCHEMA, pg_database)
    copy = copy_by_dump(pg_server, pg_database, tmp_path)
    try:
        original = read(pg_server, pg_database, schemas=BOTH_SCHEMAS)
        restored = read(pg_server, copy, schemas=BOTH_SCHEMAS)
        assert diff_catalogs(original, restored) == []
        assert original.canonical() == restored.canonical()
        assert original.fingerprint() == restored.fingerprint()
        assert original.row_counts() == restored.row_counts()
    finally:
        pg_server.drop_database(copy)


def test_columns_added_in_another_order_are_no_difference(compare):
    assert compare("ALTER TABLE events ADD COLUMN a int; ALTER TABLE events ADD COLUMN b int",
                   "ALTER TABLE events ADD COLUMN b int; ALTER TABLE events ADD COLUMN a int") == []


C = "ALTER TABLE customers "
E = "ALTER TABLE events "
PARENT = "CREATE TABLE events_parent (id int PRIMARY KEY);"

# (left SQL, right SQL, options, (object, table, name, change, fix), words in the explanation)
CASES = {
    "table only in development": (
        "CREATE TABLE extra (id int)", "", {},
        ("table", "extra", "extra", "only_left", "additive"), ["CREATE TABLE"]),
    "table only in production": (
        "", "CREATE TABLE extra (id int); INSERT INTO extra VALUES (1), (2)", {},
        ("table", "extra", "extra", "only_right", "destructive"), ["DROP TABLE", "its 2 rows"]),
    "table made unlogged": (
        E + "SET UNLOGGED", "", {},
        ("table", "events", "events", "changed", "rebuild"), ["persistence unlogged", "SET LOGGED / SET UNLOGGED rewrites"]),
    "nullable column": (
        C + "ADD COLUMN phone text", "", {},
        ("column", "customers", "phone", "only_left", "additive"), ["ADD COLUMN", "without rewriting"]),
    "NOT NULL column with a constant default": (
        C + "ADD COLUMN active boolean NOT NULL DEFAULT true", "", {},
        ("column", "customers", "active", "only_left", "additive"), ["without rewriting"]),
    "column with a volatile default": (
        C + "ADD COLUMN token uuid DEFAULT gen_random_uuid()", "", {},
        ("column", "customers", "token", "only_left", "rebuild"), ["volatile", "(1 row)"]),
    "NOT NULL column without default on a populated table": (
        C + "ADD COLUMN ref text NOT NULL DEFAULT 'x'; " + C + "ALTER COLUMN ref DROP DEFAULT", "", {},
        ("column", "customers", "ref", "only_left", "rebuild"), ["fails on a table with rows"]),
    "NOT NULL column without default on an empty table": (
        E + "ADD COLUMN code text NOT NULL", "", {},
        ("column", "events", "code", "only_left", "additive"), ["ADD COLUMN"]),
    "identity column": (
        C + "ADD COLUMN number int GENERATED ALWAYS AS IDENTITY", "", {},
        ("column", "customers", "number", "only_left", "rebuild"), ["identity", "rewriting"]),
    "column only in production": (
        "", C + "ADD COLUMN legacy text", {},
        ("column", "customers", "legacy", "only_right", "destructive"), ["DROP COLUMN"]),
    "type change that rewrites": (
        C + "ALTER COLUMN score TYPE integer", "", {},
        ("column", "customers", "score", "changed", "rebuild"),
        ["type integer in development vs numeric(10,2) in production", "rewrites"]),
    "type change that only widens": (
        C + "ALTER COLUMN code TYPE varchar(200)", "", {},
        ("column", "customers", "code", "changed", "additive"), ["without rewriting"]),
    "SET NOT NULL on a populated table": (
        C + "ALTER COLUMN name SET NOT NULL", "", {},
        ("column", "customers", "name", "changed", "rebuild"), ["SET NOT NULL scans", "ACCESS EXCLUSIVE"]),
    "SET NOT NULL on an empty table": (
        E + "ALTER COLUMN at SET NOT NULL", "", {},
        ("column", "events", "at", "changed", "additive"), ["empty"]),
    "DROP NOT NULL": (
        C + "ALTER COLUMN email DROP NOT NULL", "", {},
        ("column", "customers", "email", "changed", "additive"), ["DROP NOT NULL"]),
    "default changed": (
        C + "ALTER COLUMN name SET DEFAULT 'anonymous'", "", {},
        ("column", "customers", "name", "changed", "additive"), ["SET DEFAULT", "'anonymous'"]),
    "collation changed": (
        C + 'ALTER COLUMN email TYPE text COLLATE "C"', "", {},
        ("column", "customers", "email", "changed", "rebuild"), ["collation", "indexes"]),
    "identity dropped in development": (
        "", C + "ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY", {},
        ("column", "customers", "id", "changed", "destructive"), ["DROP IDENTITY"]),
    "CHECK on a populated table": (
        C + "ADD CONSTRAINT score_positive CHECK (score > 0)", "", {},
        ("constraint", "customers", "score_positive", "only_left", "rebuild"), ["NOT VALID", "VALIDATE"]),
    "CHECK that is NOT VALID": (
        C + "ADD CONSTRAINT score_positive CHECK (score > 0) NOT VALID", "", {},
        ("constraint", "customers", "score_positive", "only_left", "additive"), ["NOT VALID"]),
    "foreign key on a populated table": (
        "ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers(id)", "", {},
        ("constraint", "orders", "orders_customer_id_fkey", "only_left", "rebuild"), ["blocks writes"]),
    "foreign key on an empty table": (
        PARENT + E + "ADD FOREIGN KEY (id) REFERENCES events_parent(id)", PARENT, {},
        ("constraint", "events", "events_id_fkey", "only_left", "additive"), ["empty"]),
    "UNIQUE on a populated table": (
        C + "ADD UNIQUE (email)", "", {},
        ("constraint", "customers", "customers_email_key", "only_left", "rebuild"), ["CONCURRENTLY"]),
    "constraint only in production": (
        "", C + "ADD CONSTRAINT score_positive CHECK (score > 0)", {},
        ("constraint", "customers", "score_positive", "only_right", "destructive"), ["DROP CONSTRAINT"]),
    "constraint defined differently": (
        C + "ADD CONSTRAINT score_positive CHECK (score > 0)",
        C + "ADD CONSTRAINT score_positive CHECK (score >= 0)", {},
        ("constraint", "customers", "score_positive", "changed", "rebuild"), ["drop it and add it again"]),
    "constraint not yet validated in production": (
        C + "ADD CONSTRAINT score_positive CHECK (score > 0)",
        C + "ADD CONSTRAINT score_positive CHECK (score > 0) NOT VALID", {},
        ("constraint", "customers", "score_positive", "changed", "additive"), ["VALIDATE CONSTRAINT"]),
    "index on a small table": (
        "CREATE INDEX customers_name ON customers (name)", "", {},
        ("index", "customers", "customers_name", "only_left", "additive"), ["CREATE INDEX"]),
    "index on a big table": (
        "CREATE UNIQUE INDEX customers_name ON customers (name)", "", {"big_table_rows": 1},
        ("index", "customers", "customers_name", "only_left", "rebuild"), ["CONCURRENTLY", "UNIQUE"]),
    "index only in production": (
        "", "CREATE INDEX customers_name ON customers (name)", {},
        ("index", "customers", "customers_name", "only_right", "destructive"), ["DROP INDEX"]),
    "index defined differently": (
        "CREATE INDEX customers_name ON customers (name)",
        "CREATE INDEX customers_name ON customers (lower(name))", {},
        ("index", "customers", "customers_name", "changed", "additive"), ["lower((name)::text)", "drop it"]),
    "index left invalid in production": (
        "CREATE INDEX customers_name ON customers (name)",
        "CREATE INDEX customers_name ON customers (name);"  # as a failed CREATE INDEX CONCURRENTLY leaves it
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'customers_name'::regclass", {},
        ("index", "customers", "customers_name", "changed", "additive"), ["INVALID in production"]),
    "sequence only in development": (
        "CREATE SEQUENCE tickets", "", {},
        ("sequence", None, "tickets", "only_left", "additive"), ["CREATE SEQUENCE"]),
    "sequence only in production": (
        "", "CREATE SEQUENCE tickets", {},
        ("sequence", None, "tickets", "only_right", "destructive"), ["DROP SEQUENCE"]),
    "sequence options": (
        "ALTER SEQUENCE counter INCREMENT 5", "SELECT nextval('counter')", {},
        ("sequence", None, "counter", "changed", "additive"), ["increment 5 in development vs 1", "ALTER SEQUENCE"]),
    "view only in development": (
        "CREATE VIEW emails AS SELECT email FROM customers", "", {},
        ("view", None, "emails", "only_left", "additive"), ["CREATE VIEW"]),
    "view only in production": (
        "", "CREATE VIEW emails AS SELECT email FROM customers", {},
        ("view", None, "emails", "only_right", "destructive"), ["DROP VIEW"]),
    "view defined differently": (
        "CREATE OR REPLACE VIEW names AS SELECT id, name FROM customers WHERE id > 0", "", {},
        ("view", None, "names", "changed", "rebuild"), ["CREATE OR REPLACE VIEW"]),
    "materialized view only in development": (
        "CREATE MATERIALIZED VIEW scores AS SELECT score FROM customers", "", {},
        ("materialized_view", None, "scores", "only_left", "additive"), ["CREATE MATERIALIZED VIEW"]),
    "materialized view defined differently": (
        "DROP MATERIALIZED VIEW totals; CREATE MATERIALIZED VIEW totals AS SELECT customer_id FROM orders",
        "", {},
        ("materialized_view", None, "totals", "changed", "rebuild"), ["REFRESH cannot change"]),
    "index on a materialized view": (
        "CREATE UNIQUE INDEX totals_customer ON totals (customer_id)", "", {},
        ("index", "totals", "totals_customer", "only_left", "additive"), ["CREATE INDEX"]),
    "trigger only in development": (
        "CREATE TRIGGER touch_orders BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch()", "", {},
        ("trigger", "orders", "touch_orders", "only_left", "additive"), ["on orders", "CREATE TRIGGER"]),
    "trigger only in production": (
        "", "CREATE TRIGGER touch_orders BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch()", {},
        ("trigger", "orders", "touch_orders", "only_right", "destructive"), ["DROP TRIGGER"]),
    "trigger defined differently": (
        "CREATE TRIGGER touch_orders BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch()",
        "CREATE TRIGGER touch_orders BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION touch()", {},
        ("trigger", "orders", "touch_orders", "changed", "additive"), ["CREATE OR REPLACE TRIGGER"]),
    "trigger disabled in production": (
        "CREATE TRIGGER touch_orders BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch()",
        "CREATE TRIGGER touch_orders BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();"
        "ALTER TABLE orders DISABLE TRIGGER touch_orders", {},
        ("trigger", "orders", "touch_orders", "changed", "additive"), ["enabled in development but disabled in production", "ENABLE"]),
    "enum only in development": (
        "CREATE TYPE mood AS ENUM ('happy')", "", {},
        ("enum", None, "mood", "only_left", "additive"), ["CREATE TYPE"]),
    "enum only in production": (
        "", "CREATE TYPE mood AS ENUM ('happy')", {},
        ("enum", None, "mood", "only_right", "destructive"), ["DROP TYPE"]),
    "enum value added in development": (
        "ALTER TYPE status ADD VALUE 'paused' BEFORE 'active'", "", {},
        ("enum", None, "status", "changed", "additive"), ["(paused)", "ADD VALUE"]),
    "enum value only in production": (
        "", "ALTER TYPE status ADD VALUE 'archived'", {},
        ("enum", None, "status", "changed", "destructive"), ["(archived)", "cannot drop an enum value"]),
    "enum values in another order": (
        "CREATE TYPE mood AS ENUM ('happy', 'sad')", "CREATE TYPE mood AS ENUM ('sad', 'happy')", {},
        ("enum", None, "mood", "changed", "rebuild"), ["orders its values differently"]),
}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_each_difference_is_found_classified_and_explained(compare, case):
    left_sql, right_sql, options, expected, words = CASES[case]
    differences = compare(left_sql, right_sql, **options)
    found = [(d.object, d.table, d.name, d.change, d.fix) for d in differences]
    assert found == [expected], [d.explanation for d in differences]
    [difference] = differences
    for word in words:
        assert word in difference.explanation
    assert (difference.left is None) == (difference.change == "only_right")
    assert (difference.right is None) == (difference.change == "only_left")
    assert difference.explanation.endswith(".")


@pytest.mark.parametrize("left_sql, right_sql, change, fix, words", [
    ("CREATE EXTENSION pg_trgm", "", "only_left", "additive", "CREATE EXTENSION"),
    ("", "CREATE EXTENSION pg_trgm", "only_right", "destructive", "DROP EXTENSION"),
])
def test_extensions_of_the_database(compare_databases, left_sql, right_sql, change, fix, words):
    [difference] = compare_databases(left_sql, right_sql)
    assert (difference.object, difference.name, difference.change, difference.fix) == (
        "extension", "pg_trgm", change, fix)
    assert words in difference.explanation


def test_one_column_changed_in_several_ways_takes_the_strongest_fix(compare):
    [difference] = compare(C + "ALTER COLUMN score TYPE integer; " + C + "ALTER COLUMN score SET DEFAULT 0;"
                           + C + "ALTER COLUMN name DROP NOT NULL", "")
    assert difference.fix == "rebuild"
    assert "rewrites" in difference.explanation and "SET DEFAULT" in difference.explanation


def test_a_table_only_on_one_side_is_one_difference_with_its_parts(compare):
    differences = compare("CREATE TABLE extra (id int PRIMARY KEY, name text);"
                          "CREATE INDEX extra_name ON extra (name);"
                          "CREATE TRIGGER touch_extra BEFORE UPDATE ON extra FOR EACH ROW EXECUTE FUNCTION touch()", "")
    assert [(d.object, d.name) for d in differences] == [("table", "extra")]


def test_the_drift_summary_reads_the_differences(compare):
    summary = summarise_drift(compare("CREATE TABLE extra (id int)", "CREATE SEQUENCE tickets"))
    assert summary.status == "diverged"
    assert summary.by_fix == {"additive": 1, "rebuild": 0, "destructive": 1}


@pytest.mark.parametrize("old, new, rewrites", [
    ("character varying(80)", "character varying(200)", False),
    ("character varying(200)", "character varying(80)", True),
    ("character varying(80)", "text", False),
    ("text", "character varying", False),
    ("text", "character varying(10)", True),
    ("numeric(10,2)", "numeric(12,2)", False),
    ("numeric(10,2)", "numeric(12,3)", True),
    ("numeric(10,2)", "numeric", False),
    ("numeric", "numeric(10,2)", True),
    ("integer", "bigint", True),
])
def test_which_type_changes_rewrite_the_table(old, new, rewrites):
    assert rewrites_on_type_change(old, new) is rewrites
