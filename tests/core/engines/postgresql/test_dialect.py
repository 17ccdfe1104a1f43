"""PostgreSQL's dialect: statements split as psql splits them, and refusals the real server
agrees with (what it will not run inside a transaction block, and what it runs there fine)."""
import subprocess

import psycopg
import pytest
from psycopg import errors as pg_errors

from app.core.engines.base import Dialect
from app.core.engines.postgresql.dialect import PostgresDialect
from app.core.plans import parse_plan_text

DIALECT = PostgresDialect()


def split(text: str) -> list[str]:
    return [statement for statement, _ in DIALECT.split_statements(text)]


# --------------------------------------------------------------------------- the interface


def test_it_implements_the_whole_dialect_interface():
    assert isinstance(DIALECT, Dialect)
    assert not PostgresDialect.__abstractmethods__


# --------------------------------------------------------------------------- splitting


@pytest.mark.parametrize("statement", [
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;",
    "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$ SELECT 'has $$; and $x$;' $body$;",
    "DO $do$ BEGIN PERFORM 1; END $do$;",
    "SELECT 'a;b', 'it''s; quoted';",
    "SELECT E'it\\'s; escaped', e'\\\\';",
    "SELECT 'back\\slash; kept';",  # standard_conforming_strings: a backslash is a character
    'CREATE TABLE "semi;colon" ("odd""name;" int);',
    "SELECT 1 /* a comment; /* nested; */ still one; */;",
    "SELECT U&'d\\0061t;a', U&\"na;me\" FROM t;",
    "SELECT 'one'\n  'continued; string';",
    "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO l VALUES (1); INSERT INTO l VALUES (2));",
    "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN x END;\n  SELECT 2;\nEND;",
    "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END;",
])
def test_a_semicolon_inside_quotes_bodies_comments_and_parentheses_does_not_split(statement):
    assert split(statement + "\nSELECT 2;") == [statement, "SELECT 2;"]
    assert DIALECT.statement_is_complete(statement)


@pytest.mark.parametrize("text", [
    "SELECT $$ ;", "SELECT $a$ ; $b$ ;", "SELECT 'a;", "SELECT E'a\\';", 'SELECT "a;',
    "SELECT 1 /* /* */ ;", "SELECT (1;", "CREATE FUNCTION f() BEGIN ATOMIC SELECT 1;", "SELECT 1",
    "SELECT 1; SELECT 2", "",
])
def test_an_unclosed_quote_body_comment_or_parenthesis_is_incomplete(text):
    assert not DIALECT.statement_is_complete(text)


def test_a_dollar_inside_a_name_or_a_parameter_is_no_dollar_quote():
    assert split("SELECT a$$b, $1 FROM t; SELECT 2;") == ["SELECT a$$b, $1 FROM t;", "SELECT 2;"]


def test_begin_is_a_block_only_in_a_function_or_procedure():
    assert split("CREATE TABLE begin_end (x int); SELECT 1;") == ["CREATE TABLE begin_end (x int);", "SELECT 1;"]
    assert split("BEGIN; SELECT 1;") == ["BEGIN;", "SELECT 1;"]


def test_each_statement_keeps_its_first_line_and_comments_after_the_semicolon_are_dropped():
    text = "SELECT 1; -- one\n\nCREATE TABLE t (\n  x int\n);\n/* c */"
    assert DIALECT.split_statements(text) == [("SELECT 1;", 0), ("-- one\n\nCREATE TABLE t (\n  x int\n);", 0)]
    assert DIALECT.statement_is_complete(text)


def test_a_meta_command_ends_at_its_line_end():
    assert split("\\set x 1\nSELECT 1;") == ["\\set x 1", "SELECT 1;"]
    assert DIALECT.statement_is_complete("\\connect other")


def test_standard_conforming_strings_off_reads_backslashes_as_escapes():
    assert PostgresDialect(standard_conforming_strings=False).split_statements("SELECT 'a\\'; b';") == [
        ("SELECT 'a\\'; b';", 0)]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("sql, named", [
    ("BEGIN;", "BEGIN"), ("begin transaction isolation level serializable;", "BEGIN"),
    ("START TRANSACTION;", "START TRANSACTION"), ("COMMIT;", "COMMIT"), ("END;", "END"),
    ("ROLLBACK;", "ROLLBACK"), ("ABORT;", "ABORT"), ("SAVEPOINT s;", "SAVEPOINT"),
    ("RELEASE SAVEPOINT s;", "RELEASE"), ("PREPARE TRANSACTION 'x';", "PREPARE TRANSACTION"),
    ("COMMIT PREPARED 'x';", "COMMIT PREPARED"), ("ROLLBACK PREPARED 'x';", "ROLLBACK PREPARED"),
])
def test_transaction_control_is_refused_in_every_phase(sql, named):
    reason = DIALECT.forbidden_reason(sql)
    assert reason.startswith(f"{named} controls transactions") and "remove it" in reason


@pytest.mark.parametrize("sql", ["\\set x 1", "\\connect other", "SELECT 1 \\gexec", "SELECT 1\\; SELECT 2;",
                                 "\\copy t FROM 'rows.csv'"])
def test_psql_meta_commands_are_refused(sql):
    assert "is a psql meta-command" in DIALECT.forbidden_reason(sql)


@pytest.mark.parametrize("sql", ["COPY t FROM STDIN;", "COPY t (a, b) FROM stdin WITH (FORMAT csv);",
                                 "COPY t TO STDOUT;", "COPY (SELECT * FROM t) TO STDOUT;"])
def test_copy_through_psql_streams_is_refused(sql):
    assert DIALECT.forbidden_reason(sql).startswith("COPY ... FROM STDIN / TO STDOUT")


@pytest.mark.parametrize("sql, named", [
    ("CREATE DATABASE other;", "CREATE DATABASE"), ("DROP DATABASE other;", "DROP DATABASE"),
    ("CREATE TABLESPACE fast LOCATION '/ssd';", "CREATE TABLESPACE"),
    ("DROP TABLESPACE fast;", "DROP TABLESPACE"),
    ("ALTER DATABASE app SET TABLESPACE fast;", "ALTER DATABASE ... SET TABLESPACE"),
])
def test_what_reaches_beyond_the_database_is_refused_in_every_phase(sql, named):
    assert DIALECT.forbidden_reason(sql).startswith(f"{named} reaches beyond the database")


@pytest.mark.parametrize("sql, starts", [
    ("ALTER SYSTEM SET work_mem = '64MB';", "ALTER SYSTEM rewrites the server's configuration"),
    ("DISCARD ALL;", "DISCARD ALL resets the session"),
    ("SET standard_conforming_strings = off;", "SET standard_conforming_strings changes"),
    ("SET SESSION standard_conforming_strings TO on;", "SET standard_conforming_strings changes"),
])
def test_what_changes_the_server_or_the_session_is_refused(sql, starts):
    assert DIALECT.forbidden_reason(sql).startswith(starts)


# Everything the dialect says PostgreSQL cannot run inside a transaction block, with the
# name the server uses. Each one is proven against the real server below.
OWN_TRANSACTION = [
    ("CREATE INDEX CONCURRENTLY items_name ON items (name);", "CREATE INDEX CONCURRENTLY"),
    ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS items_u ON items (id);", "CREATE INDEX CONCURRENTLY"),
    ("DROP INDEX CONCURRENTLY items_old;", "DROP INDEX CONCURRENTLY"),
    ("DROP INDEX CONCURRENTLY IF EXISTS items_old;", "DROP INDEX CONCURRENTLY"),
    ("REINDEX INDEX CONCURRENTLY items_old;", "REINDEX CONCURRENTLY"),
    ("REINDEX TABLE CONCURRENTLY items;", "REINDEX CONCURRENTLY"),
    ("REINDEX (CONCURRENTLY) TABLE items;", "REINDEX CONCURRENTLY"),
    ("REINDEX SCHEMA public;", "REINDEX SCHEMA"),
    ("REINDEX (VERBOSE) DATABASE {database};", "REINDEX DATABASE"),
    ("REINDEX SYSTEM {database};", "REINDEX SYSTEM"),
    ("VACUUM;", "VACUUM"),
    ("VACUUM (ANALYZE, VERBOSE) items;", "VACUUM"),
    ("vacuum full items;", "VACUUM"),
    ("CLUSTER;", "CLUSTER without a table"),
    ("CLUSTER VERBOSE;", "CLUSTER without a table"),
    ("ALTER TABLE measures DETACH PARTITION measures_1 CONCURRENTLY;",
     "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY"),
]
# What the dialect refuses in every phase and the server refuses inside a transaction block too.
NEVER_IN_A_TRANSACTION = [
    "CREATE DATABASE {database}_other;", "DROP DATABASE {database}_other;",
    "CREATE TABLESPACE fast LOCATION '/nonexistent';", "DROP TABLESPACE fast;",
    "ALTER DATABASE {database} SET TABLESPACE pg_default;", "ALTER SYSTEM SET work_mem = '64MB';",
    "DISCARD ALL;", "COMMIT PREPARED 'x';", "ROLLBACK PREPARED 'x';",
]
# DDL a migration runs inside its transaction, some of it close kin of the refused statements.
IN_A_TRANSACTION = [
    "CREATE INDEX items_name ON items (name);", "CREATE UNIQUE INDEX items_u ON items (id);",
    "DROP INDEX items_old;", "REINDEX TABLE items;", "REINDEX INDEX items_old;",
    "ALTER TABLE items ADD COLUMN price numeric(10, 2) DEFAULT 0 NOT NULL;",
    "CLUSTER items USING items_pkey;", "CLUSTER VERBOSE items USING items_pkey;", "ANALYZE items;",
    "CREATE TYPE colour AS ENUM ('red');", "ALTER TYPE mood ADD VALUE 'sad';",
    "ALTER TABLE measures DETACH PARTITION measures_1;", "DISCARD PLANS;",
    "CREATE MATERIALIZED VIEW names AS SELECT name FROM items;",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
    "DO $$ BEGIN PERFORM 1; END $$;", "COPY items TO '/dev/null';",
]


@pytest.mark.parametrize("sql, named", OWN_TRANSACTION)
def test_what_cannot_run_in_a_transaction_needs_a_phase_of_its_own(sql, named):
    reason = DIALECT.needs_own_transaction(sql.format(database="app"))
    assert reason == (f"PostgreSQL cannot run {named} inside a transaction block; put it in a "
                      "phase of its own declared `-- phase: TITLE (no transaction)`.")
    assert DIALECT.forbidden_reason(sql.format(database="app")) is None


@pytest.mark.parametrize("sql", IN_A_TRANSACTION)
def test_ordinary_ddl_is_allowed_in_the_migrations_transaction(sql):
    assert DIALECT.forbidden_reason(sql) is None
    assert DIALECT.needs_own_transaction(sql) is None


@pytest.fixture
def server_database(pg_server, pg_database):
    pg_server.psql(
        "CREATE TABLE items (id int PRIMARY KEY, name text); CREATE INDEX items_old ON items (name);"
        "CREATE TYPE mood AS ENUM ('happy');"
        "CREATE TABLE measures (at int, value int) PARTITION BY RANGE (at);"
        "CREATE TABLE measures_1 PARTITION OF measures FOR VALUES FROM (0) TO (10);",
        database=pg_database)
    return pg_server.url(pg_database), pg_database


def run_in_a_transaction(url: str, sql: str) -> None:
    """Run `sql` inside BEGIN ... and roll back, whatever it did."""
    with psycopg.connect(url, autocommit=True) as connection:
        with pytest.raises(_RolledBack):
            with connection.transaction():
                connection.execute(sql)
                raise _RolledBack


class _RolledBack(Exception):
    pass


@pytest.mark.parametrize("sql", [sql for sql, _ in OWN_TRANSACTION] + NEVER_IN_A_TRANSACTION)
def test_the_server_refuses_them_inside_a_transaction_block(server_database, sql):
    url, database = server_database
    sql = sql.format(database=database)
    assert DIALECT.needs_own_transaction(sql) or DIALECT.forbidden_reason(sql)
    with psycopg.connect(url, autocommit=True) as connection:
        with pytest.raises(pg_errors.ActiveSqlTransaction, match="cannot run inside a transaction block"):
            with connection.transaction():
                connection.execute(sql)


@pytest.mark.parametrize("sql", IN_A_TRANSACTION)
def test_the_server_runs_ordinary_ddl_inside_a_transaction(server_database, sql):
    run_in_a_transaction(server_database[0], sql)


def test_a_concurrent_index_runs_on_the_server_outside_a_transaction(server_database):
    url, _ = server_database
    with psycopg.connect(url, autocommit=True) as connection:
        for sql, _ in OWN_TRANSACTION[:3]:
            connection.execute(sql)
        assert connection.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'items'").fetchone() == (3,)


# --------------------------------------------------------------------------- a new enum value


def test_a_new_enum_value_is_refused_where_the_same_transaction_uses_it():
    problems = DIALECT.transaction_problems([
        "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'sad' BEFORE 'happy';",
        "ALTER TYPE mood ADD VALUE 'angry' AFTER 'sad';",  # placing a value next to it is no use
        "SELECT 'happy'::mood;",
        "UPDATE people SET mood = 'sad' WHERE id = 1;",
        "CREATE TABLE m (v mood DEFAULT E'angry');",
    ])
    assert [position for position, _ in problems] == [3, 4]
    assert problems[0][1].startswith("it uses the enum value 'sad', which an earlier ALTER TYPE ... ADD VALUE adds")
    assert "unsafe use of new value" in problems[0][1]
    assert "-- phase: TITLE (no transaction)" in problems[0][1]


def test_the_server_refuses_a_new_enum_value_in_its_own_transaction_but_not_its_neighbour(server_database):
    url, _ = server_database
    run_in_a_transaction(url, "ALTER TYPE mood ADD VALUE 'sad'; ALTER TYPE mood ADD VALUE 'angry' AFTER 'sad'")
    with psycopg.connect(url, autocommit=True) as connection:
        with pytest.raises(pg_errors.UnsafeNewEnumValueUsage):
            with connection.transaction():
                connection.execute("ALTER TYPE mood ADD VALUE 'sad'")
                connection.execute("UPDATE items SET name = 'x' WHERE 'sad'::mood IS NOT NULL")


# --------------------------------------------------------------------------- against psql itself

SAMPLE_PLAN = """\
-- A plan psql would split at every ';' it treats as an end.
-- phase: Tables
CREATE TABLE "semi;colon" (id int PRIMARY KEY, note text DEFAULT 'a;b', "odd""name;" text);
/* a block comment; with /* a nested one; */ still inside; */
INSERT INTO "semi;colon" (id, note) VALUES (1, E'it\\'s; escaped'), (2, 'back\\slash; kept');
CREATE TABLE log (n int); CREATE TABLE log2 (n int);

-- phase: Functions
CREATE FUNCTION add_one(x int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    RETURN x + 1; -- a comment; inside the body
END;
$$;
CREATE FUNCTION tagged() RETURNS text LANGUAGE sql AS $fn$ SELECT 'has $$; inside' $fn$;
CREATE FUNCTION atomic_one(x int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
    SELECT CASE WHEN x > 0 THEN x ELSE 0 END;
END;
CREATE RULE log_insert AS ON INSERT TO "semi;colon" DO ALSO (INSERT INTO log VALUES (1); INSERT INTO log VALUES (2));
DO $$ BEGIN PERFORM add_one(1); END $$;
UPDATE "semi;colon" SET note = 'first line
second; line' WHERE id = 1;
"""


def sample_statements() -> list[str]:
    plan = parse_plan_text(SAMPLE_PLAN, file="sample.sql", dialect=DIALECT)
    return [statement.sql for statement in plan.statements()]


def test_the_sample_plan_is_split_exactly_as_psql_sends_it(pg_server, pg_database, tmp_path):
    plan_file = tmp_path / "sample.sql"
    plan_file.write_text(SAMPLE_PLAN, encoding="utf-8")
    # --echo-queries prints each query as psql sends it (without its `--` comments).
    sent = subprocess.run(
        [str(pg_server.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--echo-queries",
         "-d", pg_server.url(pg_database), "-f", str(plan_file)],
        capture_output=True, text=True, timeout=60, check=True).stdout
    assert sent == "".join(statement + "\n" for statement in sample_statements())
    assert len(sample_statements()) == 10


def test_every_statement_of_the_sample_plan_is_one_statement_the_server_runs(pg_server, pg_database):
    with psycopg.connect(pg_server.url(pg_database), autocommit=True) as connection:
        with connection.transaction():
            for statement in sample_statements():
                # A prepared statement holds exactly one command: two would be refused.
                connection.execute(statement, prepare=True)
        assert connection.execute("SELECT add_one(1), tagged(), atomic_one(5)").fetchone() == (2, "has $$; inside", 5)
        assert connection.execute('SELECT note FROM "semi;colon" ORDER BY id').fetchall() == [
            ("first line\nsecond; line",), ("back\\slash; kept",)]


# --------------------------------------------------------------------------- read-only queries


@pytest.mark.parametrize("sql", [
    "SELECT count(*) FROM goals WHERE root_id IS NULL",
    "WITH orphans AS (SELECT id FROM a EXCEPT SELECT id FROM b) SELECT count(*) FROM orphans;",
    "VALUES (1)", "TABLE goals", "SHOW server_version", "(SELECT 1) UNION (SELECT 2)",
    "SELECT 'update; delete' AS words, \"insert\" FROM t",
    "SELECT substring(name FOR 2) FROM t",
])
def test_a_query_that_only_reads_passes(sql):
    assert DIALECT.read_only_query_problem(sql) is None


@pytest.mark.parametrize("sql, words", [
    ("WITH gone AS (DELETE FROM goals RETURNING id) SELECT count(*) FROM gone", "DELETE"),
    ("WITH x AS (UPDATE t SET a = 1 RETURNING a) SELECT * FROM x", "UPDATE"),
    ("WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT 1", "INSERT"),
    ("SELECT * INTO copy_of_goals FROM goals", "SELECT ... INTO creates a table"),
    ("SELECT * FROM goals FOR UPDATE", "FOR UPDATE/SHARE"),
    ("SELECT * FROM goals FOR KEY SHARE", "FOR UPDATE/SHARE"),
    ("SELECT nextval('goals_id_seq')", "nextval()"),
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "pg_terminate_backend()"),
    ("SELECT pg_advisory_lock(1)", "pg_advisory_lock()"),
    ("DELETE FROM goals", "starts with DELETE"),
    ("EXPLAIN ANALYZE DELETE FROM goals", "starts with EXPLAIN"),
])
def test_a_query_that_may_write_is_refused(sql, words):
    problem = DIALECT.read_only_query_problem(sql)
    assert problem.writes and words in problem.message


@pytest.mark.parametrize("sql, words", [
    ("SELECT 1; SELECT 2", "several statements"), ("SELECT 'open", "never closed"),
    ("SELECT (1", "parentheses"), ("", "empty"), ("\\dt", "meta-command"),
])
def test_a_query_that_cannot_be_read_is_refused_without_claiming_it_writes(sql, words):
    problem = DIALECT.read_only_query_problem(sql)
    assert not problem.writes and words in problem.message


def test_the_server_agrees_that_what_the_text_check_refuses_would_write(server_database):
    url, _ = server_database
    with psycopg.connect(url, autocommit=True) as connection:
        with pytest.raises(pg_errors.ReadOnlySqlTransaction):
            with connection.transaction():
                connection.execute("SET TRANSACTION READ ONLY")
                connection.execute("WITH gone AS (DELETE FROM items RETURNING id) SELECT count(*) FROM gone")


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name, quoted", [("items", '"items"'), ('odd"name', '"odd""name"'),
                                          ("Mixed Case;", '"Mixed Case;"')])
def test_quote_identifier_doubles_double_quotes(name, quoted):
    assert DIALECT.quote_identifier(name) == quoted


def test_quote_identifier_refuses_a_nul():
    with pytest.raises(ValueError):
        DIALECT.quote_identifier("a\x00b")


def test_a_quoted_name_means_that_name_on_the_server(pg_server, pg_database):
    name = 'odd"name; DROP TABLE x; --'
    with psycopg.connect(pg_server.url(pg_database), autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {DIALECT.quote_identifier(name)} (x int)")
        assert connection.execute("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace").fetchall() == [(name,)]
