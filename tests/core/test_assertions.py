"""validate_assertion: one read-only query, or a UsageError naming the check."""

from __future__ import annotations

import sqlite3

import pytest

from app.core.assertions import statement_verb, validate_assertion, validate_checks_config
from app.core.engines import engine_for
from app.core.engines.base import QueryProblem
from app.core.engines.sqlite.guards import read_only_authorizer
from app.core.errors import ConfigError, UsageError
from app.core.sql import significant_tokens

SQLITE = engine_for("target.db").dialect  # as a caller has it, from its target's engine


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM goals WHERE root_id IS NULL",
        "select count(*) from goals where root_id is null;",
        "  SELECT id FROM goals WHERE name = 'a;b' -- trailing comment",
        "WITH orphans AS (SELECT id FROM goals WHERE root_id IS NULL) SELECT COUNT(*) FROM orphans",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT * FROM n",
        "VALUES (0)",
    ],
)
def test_read_only_queries_are_accepted(sql):
    assert validate_assertion("ok", sql, SQLITE) == sql.strip().rstrip(";").strip()


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("DELETE FROM goals", "not DELETE"),
        ("UPDATE goals SET root_id = 1", "not UPDATE"),
        ("INSERT INTO goals DEFAULT VALUES", "not INSERT"),
        ("WITH x AS (SELECT 1) DELETE FROM goals", "not DELETE"),
        ("PRAGMA foreign_keys = OFF", "not PRAGMA"),
        ("ATTACH 'other.db' AS other", "not ATTACH"),
        ("DROP TABLE goals", "not DROP"),
        ("SELECT 1; DELETE FROM goals", "several statements"),
        ("SELECT 1; SELECT 2", "several statements"),
        ("SELEC COUNT(*) FROM goals", "not SELEC"),
        ("SELECT COUNT(*) FORM goals WHERE x", "syntax error"),
        ("SELECT COUNT(* FROM goals", "syntax error"),
        ("SELECT 'unterminated FROM goals", "incomplete"),
        ("", "empty"),
        ("  ;  ", "empty"),
    ],
)
def test_writes_several_statements_and_syntax_errors_are_rejected_naming_the_check(sql, expected):
    with pytest.raises(UsageError) as caught:
        validate_assertion("no_null_root", sql, SQLITE)
    assert "no_null_root" in caught.value.message
    assert expected in caught.value.message


def test_syntax_error_quotes_sqlite():
    with pytest.raises(UsageError, match='near "goals": syntax error'):
        validate_assertion("typo", "SELECT COUNT(*) FORM goals", SQLITE)


def test_missing_tables_are_left_to_run_time():
    # The tables exist only in the target, so "no such table" is not an error here.
    validate_assertion("later", "SELECT COUNT(*) FROM no_such_table WHERE whatever IS NULL", SQLITE)


def test_a_query_that_would_do_more_than_read_is_refused_in_the_dialects_words():
    # A pragma's table-valued function is not a plain read: SQLite's authorizer says no.
    with pytest.raises(UsageError) as caught:
        validate_assertion("peek", "SELECT * FROM pragma_table_info('goals')", SQLITE)
    assert caught.value.message == ("check 'peek': the query does something other than read "
                                    "(not authorized); an assertion may only read.")


def test_statement_verb_looks_past_with():
    assert statement_verb(significant_tokens("WITH a AS (SELECT 1), b AS (SELECT 2) SELECT 3")) == "SELECT"
    assert statement_verb(significant_tokens("WITH a AS (SELECT 1) UPDATE t SET x = 1")) == "UPDATE"


def test_authorizer_denies_everything_but_reading(tmp_path):
    with sqlite3.connect(tmp_path / "a.db") as connection:
        connection.execute("CREATE TABLE t (x)")
        connection.set_authorizer(read_only_authorizer)
        assert connection.execute("SELECT count(*) FROM t").fetchone() == (0,)
        for sql in ("INSERT INTO t VALUES (1)", "DELETE FROM t", "PRAGMA user_version = 3",
                    "CREATE TABLE u (y)", "ATTACH ':memory:' AS other"):
            with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
                connection.execute(sql)
    connection.close()


def test_config_errors_name_the_file_and_the_key(tmp_path):
    config = tmp_path / "cutover.toml"
    validate_checks_config(config, [("fine", "SELECT 0")])
    with pytest.raises(ConfigError) as caught:
        validate_checks_config(config, [("fine", "SELECT 0"), ("wipe", "DELETE FROM goals")])
    assert str(config) in caught.value.message
    assert "checks.wipe" in caught.value.message


def test_load_workspace_rejects_a_writing_check(tmp_path):
    from app.core.workspace import load_workspace

    config = tmp_path / "cutover.toml"
    config.write_text("[environments.a]\ndatabase = 'a.db'\n[checks]\n"
                      "two = \"SELECT 1; DROP TABLE goals\"\n")
    with pytest.raises(ConfigError) as caught:
        load_workspace(config)
    assert "checks.two" in caught.value.message and "several statements" in caught.value.message


def test_config_checks_are_compiled_in_each_dialect_the_caller_names(tmp_path):
    class RefusingDialect(type(SQLITE)):
        def read_only_query_problem(self, sql):
            return QueryProblem(writes=False, message="this dialect cannot parse anything.")

    config = tmp_path / "cutover.toml"
    validate_checks_config(config, [("fine", "SELECT 0")], dialects=[SQLITE])
    with pytest.raises(ConfigError) as caught:
        validate_checks_config(config, [("fine", "SELECT 0")], dialects=[SQLITE, RefusingDialect()])
    assert caught.value.message.endswith("checks.fine: this dialect cannot parse anything.")
