"""app.core.sql: quoting, tokenizing and normalising SQL text."""

import sqlite3
from contextlib import closing

import pytest

from app.core.sql import (
    column_clauses,
    create_table_items,
    index_key_items,
    index_term_expression,
    is_plain_identifier,
    is_table_constraint,
    normalise_default,
    normalise_definition,
    normalise_sql,
    normalise_tokens,
    quote_identifier,
    quote_literal,
    split_top_level,
    significant_tokens,
    tokenize,
)

NASTY_NAMES = [
    'x"; DROP TABLE y; --',
    "with space",
    "semi;colon",
    "[bracket]",
    "back`tick",
    "it's",
    "Ünïcödé",
    "select",
    "",
]


# --- quoting --------------------------------------------------------------------------


def test_quote_identifier_doubles_quotes():
    assert quote_identifier('x"; DROP TABLE y; --') == '"x""; DROP TABLE y; --"'
    assert quote_identifier("plain") == '"plain"'


def test_quote_identifier_refuses_nul():
    with pytest.raises(ValueError, match="NUL"):
        quote_identifier("a\x00b")


def test_quote_literal_doubles_single_quotes():
    assert quote_literal("it's") == "'it''s'"


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_quoted_names_round_trip_through_sqlite(name):
    table, column = quote_identifier(name), quote_identifier(name + "_c")
    with closing(sqlite3.connect(":memory:")) as connection:
        connection.execute("CREATE TABLE y (a)")
        connection.execute(f"CREATE TABLE {table} ({column})")
        connection.execute(f"INSERT INTO {table} VALUES ({quote_literal(name)})")
        assert connection.execute(f"SELECT {column} FROM {table}").fetchall() == [(name,)]
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_schema")}
    assert names == {"y", name}  # and y was not dropped


# --- tokenizer ------------------------------------------------------------------------


def test_tokenize_loses_nothing():
    sql = "CREATE TABLE \"a\"\"b\" ([c d] INT -- note\n, `e` TEXT /* x */ DEFAULT 'f''g', h BLOB DEFAULT x'00ff')"
    assert "".join(token.text for token in tokenize(sql)) == sql


def test_tokenize_kinds():
    tokens = significant_tokens("SELECT 'a;b', \"c\", 1.5e3, x'ff', ?1, :p FROM t -- bye")
    assert [(t.kind, t.text) for t in tokens] == [
        ("word", "SELECT"),
        ("string", "'a;b'"),
        ("comma", ","),
        ("quoted", '"c"'),
        ("comma", ","),
        ("number", "1.5e3"),
        ("comma", ","),
        ("blob", "x'ff'"),
        ("comma", ","),
        ("param", "?1"),
        ("comma", ","),
        ("param", ":p"),
        ("word", "FROM"),
        ("word", "t"),
    ]


def test_tokenize_unterminated_comment_is_still_a_comment():
    assert [t.kind for t in tokenize("a /* open")] == ["word", "space", "comment"]


# --- normalise_sql ----------------------------------------------------------------------

SAME_TABLE_IN_FOUR_STYLES = [
    "CREATE TABLE Users (Id INTEGER PRIMARY KEY, Name VARCHAR(20) NOT NULL DEFAULT 'a  B', CHECK (Id > 0))",
    'create table "users"(\n  "id" integer primary key,\n  "name" varchar( 20 ) not null default \'a  B\',\n  check(id>0)\n);',
    "CREATE TABLE [USERS] ( [ID] Integer Primary Key , [NAME] VarChar(20) Not Null Default 'a  B' , Check ( [id] > 0 ) )",
    "CREATE TABLE `users` -- the users\n(`id` INTEGER /* rowid */ PRIMARY KEY,`name` VARCHAR (20) NOT NULL DEFAULT 'a  B',CHECK(`id`>0))",
]


def test_same_statement_in_different_styles_normalises_equal():
    normalised = {normalise_sql(sql) for sql in SAME_TABLE_IN_FOUR_STYLES}
    assert normalised == {
        "CREATE TABLE users(id integer PRIMARY KEY, name varchar(20) NOT NULL DEFAULT 'a  B', CHECK(id > 0))"
    }


def test_string_literals_are_untouched():
    sql = "SELECT 'Hello  World -- not a comment /* nor this */ SELECT', 'It''s' FROM t"
    assert normalise_sql(sql) == sql


def test_numbers_are_kept_exactly():
    assert normalise_sql("SELECT 1.50, 0x1F, 1e10, .5") == "SELECT 1.50, 0x1F, 1e10, .5"


def test_comments_are_dropped_and_whitespace_collapsed():
    assert normalise_sql("SELECT  a , -- one\n\t b /* two */ FROM\n t ;") == "SELECT a, b FROM t"


def test_quoted_names_unquote_only_when_plain():
    sql = 'SELECT "Foo", [Bar], `Baz`, "order", "two words", "Ünï", "a""b" FROM "T"'
    assert normalise_sql(sql) == 'SELECT foo, bar, baz, "order", "two words", Ünï, "a""b" FROM t'


def test_only_ascii_letters_are_folded():
    # SQLite folds ASCII only: "É" and "é" are different names.
    assert normalise_sql('"Éa"') != normalise_sql('"éa"')
    assert normalise_sql('"Éa"') == normalise_sql('"ÉA"')


def test_operator_synonyms_and_unary_minus():
    assert normalise_sql("a==-1 AND b<>2 AND c - 1 > (- 2)") == "a = -1 AND b != 2 AND c - 1 > (-2)"


def test_brackets_stick_to_the_word_before_them():
    assert normalise_sql("count (*) IN ( 1,2 )") == "count(*) IN(1, 2)"


def test_normalise_none_and_empty():
    assert normalise_sql(None) == ""
    assert normalise_sql("  -- only a comment") == ""


def test_normalise_default():
    assert normalise_default(None) is None
    assert normalise_default('"Hello"') == "'Hello'"  # DEFAULT "x" is the string 'x'
    assert normalise_default("-1") == "-1"
    assert normalise_default("current_timestamp") == "CURRENT_TIMESTAMP"
    assert normalise_default("( 1+1 )") == "(1 + 1)"


def test_is_plain_identifier():
    assert is_plain_identifier("group_id")
    assert is_plain_identifier("ünï")
    assert not is_plain_identifier("Group_id")  # callers lower-case first
    assert not is_plain_identifier("order")
    assert not is_plain_identifier("1abc")
    assert not is_plain_identifier("a b")


# --- structure helpers ------------------------------------------------------------------


def test_split_top_level_respects_brackets_strings_and_quotes():
    tokens = significant_tokens("a, f(b, c), 'd, e', \"g, h\", (i, (j, k))")
    items = [normalise_tokens(item) for item in split_top_level(tokens)]
    assert items == ["a", "f(b, c)", "'d, e'", '"g, h"', "(i, (j, k))"]


def test_create_table_items_and_constraints():
    sql = (
        'CREATE TABLE IF NOT EXISTS main."t(1" (a INT DEFAULT (1, 2), "b,c" TEXT CHECK (a > 0), '
        "CONSTRAINT pk PRIMARY KEY (a), UNIQUE (a, \"b,c\"), CHECK (length(\"b,c\") < 9), "
        "FOREIGN KEY (a) REFERENCES p (id)) STRICT"
    )
    items = create_table_items(sql)
    assert [normalise_tokens(item) for item in items] == [
        "a int DEFAULT(1, 2)",
        '"b,c" text CHECK(a > 0)',
        "CONSTRAINT pk PRIMARY KEY(a)",
        'UNIQUE(a, "b,c")',
        'CHECK(length("b,c") < 9)',
        "FOREIGN KEY(a) REFERENCES p(id)",
    ]
    assert [is_table_constraint(item) for item in items] == [False, False, True, True, True, True]


def test_create_table_items_without_a_body():
    assert create_table_items("CREATE TABLE t AS SELECT (1, 2) AS x") == []
    assert create_table_items("CREATE VIRTUAL TABLE f USING fts5(a, b)") == []


def test_column_clauses():
    item = significant_tokens(
        '"Total" NUMERIC(10, 2) CONSTRAINT c1 CHECK (Total >= 0) COLLATE "nocase" '
        "UNIQUE ON CONFLICT replace GENERATED ALWAYS AS (price * qty) STORED"
    )
    clauses = column_clauses(item)
    assert clauses.name == "Total"
    assert clauses.collation == "NOCASE"
    assert clauses.checks == ("CHECK(total >= 0)",)
    assert clauses.unique == "UNIQUE ON CONFLICT REPLACE"
    assert clauses.generated == "price * qty"


def test_column_clauses_of_a_plain_column():
    clauses = column_clauses(significant_tokens("note TEXT DEFAULT ('unique check')"))
    assert (clauses.collation, clauses.generated, clauses.checks, clauses.unique) == (
        None,
        None,
        (),
        None,
    )


def test_index_key_items():
    sql = "CREATE UNIQUE INDEX ix ON t (a DESC, lower(b) COLLATE nocase ASC, (c + 1)) WHERE a IS NOT NULL AND b > 'x'"
    terms, where = index_key_items(sql)
    assert [index_term_expression(term) for term in terms] == ["a", "lower(b)", "(c + 1)"]
    assert where == "a IS NOT NULL AND b > 'x'"
    assert index_key_items("CREATE INDEX ix ON t(a)")[1] is None


# --- normalise_definition: when two definitions are the same object ------------------------

PROBE_SCHEMA = ("CREATE TABLE items (id INTEGER PRIMARY KEY, status TEXT, code TEXT);"
                "CREATE TABLE log (msg TEXT);")
PROBE_ROWS = [("Archived", "a"), ("archived", "a"), ("Archived", "a"), ("live", "b")]

# Written differently, the same object: names folded and re-quoted, keywords, spacing, comments.
SAME_OBJECT = [
    ('CREATE TRIGGER t1 AFTER INSERT ON "Items" BEGIN INSERT INTO "log" VALUES (new.status); END',
     "create trigger T1 after insert on items begin\n  insert into LOG values (NEW.status); -- why\nend"),
    ('CREATE VIEW v AS SELECT "items".code FROM "Items" WHERE status = \'live\'',
     "CREATE VIEW v AS SELECT items.code FROM items WHERE status='live'"),
    ('CREATE UNIQUE INDEX i ON items (code COLLATE "nocase") WHERE status = \'Archived\'',
     "CREATE UNIQUE INDEX i ON \"items\"(code COLLATE NOCASE) WHERE status = 'Archived'"),
    ('CREATE TABLE extra ("Status" TEXT CHECK (length(status) > 0), PRIMARY KEY ("Status"))',
     "CREATE TABLE extra (status TEXT CHECK (length(status) > 0), PRIMARY KEY (status))"),
]
# A double-quoted token that names no column is a string: these pairs behave differently.
DIFFERENT_OBJECTS = [
    ('CREATE TRIGGER t1 AFTER INSERT ON items BEGIN INSERT INTO log VALUES ("Archived"); END',
     'CREATE TRIGGER t1 AFTER INSERT ON items BEGIN INSERT INTO log VALUES ("archived"); END'),
    ('CREATE VIEW v AS SELECT code FROM items WHERE status = "Archived"',
     'CREATE VIEW v AS SELECT code FROM items WHERE status = "archived"'),
    ('CREATE UNIQUE INDEX i ON items (code) WHERE status = "Archived"',
     'CREATE UNIQUE INDEX i ON items (code) WHERE status = "archived"'),
    ('CREATE TABLE extra (status TEXT CHECK (status != "Archived"))',
     'CREATE TABLE extra (status TEXT CHECK (status != "archived"))'),
]


def behaviour(ddl: str) -> tuple:
    """What the object does: which inserts it lets through, what it logs, what a view shows."""
    with closing(sqlite3.connect(":memory:")) as connection:
        connection.executescript(PROBE_SCHEMA + ddl + ";")
        outcomes = []
        for table in ("items", "extra"):
            if not connection.execute("SELECT 1 FROM sqlite_schema WHERE name = ?", (table,)).fetchone():
                continue
            for status, code in PROBE_ROWS:
                try:
                    columns = "(status, code)" if table == "items" else "(status)"
                    values = (status, code) if table == "items" else (status,)
                    connection.execute(f"INSERT INTO {table} {columns} VALUES ({', '.join('?' * len(values))})", values)
                    outcomes.append("ok")
                except sqlite3.IntegrityError as error:
                    # Names resolve without case, so the case SQLite quotes them in is not behaviour.
                    outcomes.append(str(error).lower())
        log = connection.execute("SELECT msg FROM log").fetchall()
        view = connection.execute("SELECT * FROM v").fetchall() if "VIEW" in ddl.upper() else None
    return outcomes, log, view


@pytest.mark.parametrize(("first", "second"), SAME_OBJECT)
def test_definitions_written_differently_are_one_object(first, second):
    assert behaviour(first) == behaviour(second)
    assert normalise_definition(first) == normalise_definition(second)


@pytest.mark.parametrize(("first", "second"), DIFFERENT_OBJECTS)
def test_a_double_quoted_string_keeps_its_spelling_in_a_definition(first, second):
    assert behaviour(first) != behaviour(second)
    assert normalise_definition(first) != normalise_definition(second)


def test_double_quoted_tokens_that_are_certainly_names_are_folded():
    sql = ('CREATE TABLE "T" ("Code" TEXT COLLATE "NoCase" CHECK ("Code" != "Archived"), b, '
           'PRIMARY KEY ("Code"), FOREIGN KEY ("B") REFERENCES "P" ("Id"))')
    assert normalise_definition(sql) == (
        'CREATE TABLE t(code text COLLATE nocase CHECK("Code" != "Archived"), b, PRIMARY KEY(code), '
        "FOREIGN KEY(b) REFERENCES p(id))")
    assert normalise_definition('SELECT 1 FROM "T" WHERE x IS DISTINCT FROM "Archived"') == (
        'SELECT 1 FROM t WHERE x IS DISTINCT FROM "Archived"')
    assert normalise_definition('CREATE TABLE "T" AS SELECT f("Archived") FROM "S"') == (
        'CREATE TABLE t AS SELECT f("Archived") FROM s')
