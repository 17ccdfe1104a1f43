"""The diff and the fingerprint against SQLite itself, over a generated family of schemas.

A base schema, then one mutation at a time (column types and affinities, defaults,
collations, NOT NULL, ON CONFLICT, foreign-key actions and deferral, composite keys,
CHECKs with literals, rowid alias or not, WITHOUT ROWID and STRICT, partial / unique /
expression / descending indexes, triggers, views). Each mutation says whether it
matters; SQLite is the judge of that:

- when SQLite's own PRAGMAs (table_list, table_xinfo with each default evaluated by
  SQLite, index_list, index_xinfo, foreign_key_list) differ, it matters;
- when they do not, a mutation that matters carries a probe (statements run on both
  schemas) whose outcome differs, and a cosmetic one's probe gives the same outcome.

The diff, both ways, is non-empty exactly when the mutation matters, and so is the
fingerprint's change. Every schema of the family also survives a dump round trip
(`iterdump` and the sqlite3 CLI's `.dump`) with an empty diff and the same fingerprint.
"""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass

import pytest

from app.core.diff import diff_schemas
from app.core.inspect import inspect_database
from tests.core.conftest import RICH_DDL, SQLITE_CLI

BASE = """
CREATE TABLE parent (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    kind TEXT COLLATE NOCASE DEFAULT 'a',
    status TEXT DEFAULT 'active',
    score REAL CHECK (score >= 0),
    note
);
CREATE TABLE pairs (
    a INTEGER NOT NULL,
    b TEXT NOT NULL,
    label TEXT,
    PRIMARY KEY (a, b)
);
CREATE TABLE child (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES parent (id) ON DELETE CASCADE,
    pa INTEGER,
    pb TEXT,
    state TEXT CHECK (state IN ('open', 'closed')),
    FOREIGN KEY (pa, pb) REFERENCES pairs (a, b)
);
CREATE TABLE tags (name TEXT PRIMARY KEY, weight INT, CHECK (weight >= 0)) WITHOUT ROWID;
CREATE INDEX child_parent ON child (parent_id);
CREATE UNIQUE INDEX parent_code_kind ON parent (code, kind);
CREATE INDEX parent_open ON parent (score) WHERE status = 'open';
CREATE INDEX parent_lower ON parent (lower(code));
CREATE INDEX child_pa ON child (pa);
CREATE VIEW open_children AS SELECT id, state FROM child WHERE state = 'open';
CREATE TRIGGER child_touch AFTER UPDATE ON child BEGIN
    UPDATE parent SET note = 'touched' WHERE id = NEW.parent_id;
END;
"""


@dataclass(frozen=True)
class Mutation:
    name: str
    edits: tuple[tuple[str, str], ...]  # (old, new): each old occurs exactly once
    matters: bool
    probe: tuple[str, ...] = ()  # statements whose outcome shows the difference (or not)
    start: tuple[tuple[str, str], ...] = ()  # edits giving the "before" schema; base when ()

    def before(self) -> str:
        return apply_edits(BASE, self.start)

    def after(self) -> str:
        return apply_edits(self.before(), self.edits)


def apply_edits(ddl: str, edits) -> str:
    for old, new in edits:
        assert ddl.count(old) == 1, f"{old!r} must occur once"
        ddl = ddl.replace(old, new)
    return ddl


def m(name, old, new, matters, probe=(), start=()) -> Mutation:
    return Mutation(name, ((old, new),), matters, tuple(probe), tuple(start))


# --- the family -----------------------------------------------------------------------

TYPES = ["TEXT", "VARCHAR(20)", "INT", "INTEGER", "BIGINT", "REAL", "DOUBLE", "NUMERIC",
         "BOOLEAN", "DATETIME", "BLOB", "CHARACTER(20)"]


def type_mutations() -> list[Mutation]:
    generated = [m(f"type of an untyped column: {t}", "    note\n", f"    note {t}\n", True)
                 for t in TYPES]
    generated += [m(f"type TEXT -> {t}", "label TEXT", f"label {t}", True)
                  for t in TYPES if t != "TEXT"]
    generated += [m(f"affinity INT -> {t or 'none'}", "weight INT", f"weight {t}".rstrip(), True)
                  for t in ("INTEGER", "REAL", "TEXT", "NUMERIC", "")]
    generated.append(m("type case", "label TEXT", "label text", False))
    return generated


DEFAULT_PROBE = ("INSERT INTO parent (code) VALUES ('p')", "SELECT kind, status, typeof(status) FROM parent")


def default_mutations() -> list[Mutation]:
    variants = [
        ("DEFAULT \"active\"", False),  # a double-quoted default is the string
        ("DEFAULT active", False),  # so is a bare word, case kept
        ("DEFAULT Active", True),
        ("DEFAULT 'Active'", True),
        ("DEFAULT NULL", True),
        ("DEFAULT 1", True),
        ("DEFAULT '1'", True),
        ("DEFAULT TRUE", True),
        ("DEFAULT CURRENT_DATE", True),
        ("DEFAULT  'active'", False),
        ("", True),
    ]
    generated = [m(f"default {new or 'none'}", "status TEXT DEFAULT 'active'",
                   f"status TEXT {new}".rstrip(), matters, DEFAULT_PROBE)
                 for new, matters in variants]
    generated.append(m("bare-word default case", "status TEXT DEFAULT active",
                       "status TEXT DEFAULT Active", True, DEFAULT_PROBE,
                       start=[("status TEXT DEFAULT 'active'", "status TEXT DEFAULT active")]))
    generated.append(m("default TRUE spelled true", "status TEXT DEFAULT TRUE",
                       "status TEXT DEFAULT true", False, DEFAULT_PROBE,
                       start=[("status TEXT DEFAULT 'active'", "status TEXT DEFAULT TRUE")]))
    return generated


COLLATION_PROBE = ("INSERT INTO pairs VALUES (1, 'x', 'A ')", "SELECT count(*) FROM pairs WHERE label = 'a '",
                   "SELECT count(*) FROM pairs WHERE label = 'A'")


def collation_mutations() -> list[Mutation]:
    generated = [m(f"collation NOCASE -> {new or 'none'}", "COLLATE NOCASE DEFAULT",
                   f"{new} DEFAULT".lstrip(), matters)
                 for new, matters in (("COLLATE BINARY", True), ("COLLATE RTRIM", True),
                                      ("COLLATE nocase", False), ("", True))]
    # A collation no index uses: only behaviour shows it.
    generated += [m(f"collation of an unindexed column: {new}", "label TEXT,", f"label TEXT {new},",
                    matters, COLLATION_PROBE)
                  for new, matters in (("COLLATE NOCASE", True), ("COLLATE RTRIM", True),
                                       ("COLLATE BINARY", False))]
    return generated


NOT_NULL_PROBE = ("INSERT INTO parent (code, kind) VALUES ('p', NULL)", "SELECT code, kind FROM parent")
PK_PROBE = ("INSERT INTO parent (id, code) VALUES (1, 'a')", "INSERT INTO parent (id, code) VALUES (1, 'b')",
            "SELECT id, code FROM parent")
PAIR_PROBE = ("INSERT INTO pairs VALUES (1, 'x', 'one')", "INSERT INTO pairs VALUES (1, 'x', 'two')",
              "SELECT label FROM pairs")
UNIQUE_PROBE = ("INSERT INTO parent (id, code, kind) VALUES (1, 'a', 'x')",
                "INSERT INTO parent (id, code, kind) VALUES (2, 'a', 'y')", "SELECT id FROM parent")
TAG_PROBE = ("INSERT INTO tags VALUES ('n', -1)", "SELECT count(*) FROM tags")
KIND_NOT_NULL = [("kind TEXT COLLATE NOCASE DEFAULT 'a'", "kind TEXT COLLATE NOCASE NOT NULL DEFAULT 'a'")]


def constraint_mutations() -> list[Mutation]:
    return [
        m("NOT NULL added", "label TEXT,", "label TEXT NOT NULL,", True),
        m("NOT NULL dropped", "code TEXT NOT NULL UNIQUE", "code TEXT UNIQUE", True),
        *[m(f"NOT NULL ON CONFLICT {action}", "NOT NULL DEFAULT 'a'",
            f"NOT NULL ON CONFLICT {action} DEFAULT 'a'", action != "ABORT", NOT_NULL_PROBE,
            KIND_NOT_NULL)
          for action in ("REPLACE", "IGNORE", "ABORT")],
        *[m(f"PRIMARY KEY ON CONFLICT {action}", "    id INTEGER PRIMARY KEY,\n    code",
            f"    id INTEGER PRIMARY KEY ON CONFLICT {action},\n    code", action != "ABORT", PK_PROBE)
          for action in ("REPLACE", "IGNORE", "ABORT")],
        *[m(f"table PRIMARY KEY ON CONFLICT {action}", "PRIMARY KEY (a, b)",
            f"PRIMARY KEY (a, b) ON CONFLICT {action}", action != "ABORT", PAIR_PROBE)
          for action in ("REPLACE", "IGNORE", "ABORT")],
        *[m(f"UNIQUE ON CONFLICT {action}", "NOT NULL UNIQUE", f"NOT NULL UNIQUE ON CONFLICT {action}",
            action != "ABORT", UNIQUE_PROBE)
          for action in ("REPLACE", "IGNORE", "ABORT")],
        m("ON CONFLICT on a table CHECK is ignored by SQLite", "CHECK (weight >= 0))",
          "CHECK (weight >= 0) ON CONFLICT IGNORE)", False, TAG_PROBE),
        m("composite key order", "PRIMARY KEY (a, b)", "PRIMARY KEY (b, a)", True),
    ]


ORPHAN = ("BEGIN", "INSERT INTO child (id, parent_id) VALUES (1, 99)", "ROLLBACK")
PAIR_ORPHAN = ("BEGIN", "INSERT INTO child (id, pa, pb) VALUES (1, 5, 'z')", "ROLLBACK")
COLUMN_FK = "    parent_id INTEGER REFERENCES parent (id) ON DELETE CASCADE,\n"
TABLE_FK = [(COLUMN_FK, "    parent_id INTEGER,\n"),
            ("    FOREIGN KEY (pa, pb)", "    FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE,\n"
                                       "    FOREIGN KEY (pa, pb)")]


def foreign_key_mutations() -> list[Mutation]:
    deferrals = [("DEFERRABLE INITIALLY DEFERRED", True), ("DEFERRABLE INITIALLY IMMEDIATE", False),
                 ("DEFERRABLE", False), ("NOT DEFERRABLE INITIALLY DEFERRED", False),
                 ("NOT DEFERRABLE", False)]
    generated = [
        *[m(f"ON DELETE CASCADE -> {action}", "ON DELETE CASCADE", f"ON DELETE {action}", True)
          for action in ("SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION")],
        m("ON UPDATE added", "ON DELETE CASCADE", "ON DELETE CASCADE ON UPDATE CASCADE", True),
        m("implied parent key", "REFERENCES parent (id)", "REFERENCES parent", False),
        Mutation("column-level foreign key written table-level", tuple(TABLE_FK), False, ORPHAN),
    ]
    generated += [m(f"column FK {clause}", "ON DELETE CASCADE", f"ON DELETE CASCADE {clause}",
                    matters, ORPHAN) for clause, matters in deferrals]
    generated += [m(f"table FK {clause}", "REFERENCES parent (id) ON DELETE CASCADE,\n    FOREIGN",
                    f"REFERENCES parent (id) ON DELETE CASCADE {clause},\n    FOREIGN", matters, ORPHAN,
                    TABLE_FK) for clause, matters in deferrals]
    generated += [m(f"composite FK {clause}", "REFERENCES pairs (a, b)", f"REFERENCES pairs (a, b) {clause}",
                    matters, PAIR_ORPHAN) for clause, matters in deferrals]
    return generated


def check_mutations() -> list[Mutation]:
    probe = ("INSERT INTO child (id, state) VALUES (1, 'closed')", "SELECT state FROM child")
    score = ("INSERT INTO parent (code, score) VALUES ('p', 0)", "INSERT INTO parent (code, score) VALUES ('q', -1)",
             "SELECT score FROM parent")
    return [
        m("CHECK literal case", "('open', 'closed')", "('open', 'Closed')", True, probe),
        m("CHECK double-quoted literal", "('open', 'closed')", "(\"open\", \"closed\")", False, probe),
        m("CHECK double-quoted literal case", "('open', 'closed')", "(\"open\", \"Closed\")", True, probe),
        m("CHECK double-quoted literal case, both quoted", "(\"open\", \"closed\")", "(\"open\", \"Closed\")",
          True, probe, start=[("('open', 'closed')", "(\"open\", \"closed\")")]),
        m("CHECK quoted column name", "CHECK (state IN", "CHECK (\"State\" IN", False, probe),
        m("CHECK bound", "CHECK (score >= 0)", "CHECK (score > 0)", True, score),
        m("CHECK dropped", "    score REAL CHECK (score >= 0),", "    score REAL,", True, score),
    ]


SEQUENCE_PROBE = ("INSERT INTO parent (code) VALUES ('a')", "INSERT INTO parent (code) VALUES ('b')",
                  "DELETE FROM parent WHERE code = 'b'", "INSERT INTO parent (code) VALUES ('c')",
                  "SELECT id FROM parent WHERE code = 'c'")
ALIAS_PROBE = ("INSERT INTO parent (id, code) VALUES ('x', 'p')", "SELECT id, typeof(id) FROM parent")
PARENT_ID = "    id INTEGER PRIMARY KEY,\n    code"


def key_mutations() -> list[Mutation]:
    return [
        m("INTEGER PRIMARY KEY DESC is not the rowid", PARENT_ID,
          "    id INTEGER PRIMARY KEY DESC,\n    code", True, ALIAS_PROBE),
        m("INTEGER PRIMARY KEY ASC is", PARENT_ID, "    id INTEGER PRIMARY KEY ASC,\n    code", False,
          ALIAS_PROBE),
        m("INT PRIMARY KEY is not the rowid", PARENT_ID, "    id INT PRIMARY KEY,\n    code", True,
          ALIAS_PROBE),
        Mutation("table-level PRIMARY KEY (id DESC) is still the rowid",
                 ((PARENT_ID, "    id INTEGER,\n    code"),
                  ("    note\n);", "    note,\n    PRIMARY KEY (id DESC)\n);")), False, ALIAS_PROBE),
        m("AUTOINCREMENT", PARENT_ID, "    id INTEGER PRIMARY KEY AUTOINCREMENT,\n    code", True,
          SEQUENCE_PROBE),
        m("WITHOUT ROWID dropped", ") WITHOUT ROWID;", ");", True),
        m("STRICT added", ") WITHOUT ROWID;", ") WITHOUT ROWID, STRICT;", True),
    ]


# The query planner's own account of which index a query can use.
PARTIAL_PROBE = ("EXPLAIN QUERY PLAN SELECT id FROM parent WHERE status = 'open' AND score > 1",)
EXPRESSION_PROBE = ("EXPLAIN QUERY PLAN SELECT id FROM parent WHERE lower(code) = 'x'",)


def index_mutations() -> list[Mutation]:
    return [
        m("partial WHERE literal case", "WHERE status = 'open'", "WHERE status = 'Open'", True, PARTIAL_PROBE),
        m("partial WHERE double-quoted literal", "WHERE status = 'open'", "WHERE status = \"open\"", False,
          PARTIAL_PROBE),
        m("partial index made full", " WHERE status = 'open';", ";", True),
        m("unique index made plain", "CREATE UNIQUE INDEX parent_code_kind", "CREATE INDEX parent_code_kind", True),
        m("index column order", "(code, kind)", "(kind, code)", True),
        m("expression changed", "(lower(code))", "(upper(code))", True, EXPRESSION_PROBE),
        m("expression function case", "(lower(code))", "(LOWER(code))", False, EXPRESSION_PROBE),
        m("expression quoted column", "(lower(code))", "(lower(\"code\"))", False, EXPRESSION_PROBE),
        m("descending index", "child (pa)", "child (pa DESC)", True),
        m("ascending spelled out", "child (pa)", "child (pa ASC)", False),
        m("index collation", "child (pa)", "child (pa COLLATE NOCASE)", True),
        m("index dropped", "CREATE INDEX child_pa ON child (pa);\n", "", True),
        m("index identifiers quoted", "child_parent ON child (parent_id)", "child_parent ON [child] (\"parent_id\")",
          False),
    ]


TRIGGER_PROBE = ("INSERT INTO parent (id, code) VALUES (1, 'p')", "INSERT INTO child (id, parent_id) VALUES (1, 1)",
                 "SELECT note FROM parent", "UPDATE child SET state = 'open'", "SELECT note FROM parent")
VIEW_PROBE = ("INSERT INTO child (id, state) VALUES (1, 'open')", "SELECT * FROM open_children")


def trigger_and_view_mutations() -> list[Mutation]:
    return [
        m("trigger literal case", "SET note = 'touched'", "SET note = 'Touched'", True, TRIGGER_PROBE),
        m("trigger double-quoted literal", "SET note = 'touched'", "SET note = \"touched\"", False, TRIGGER_PROBE),
        m("trigger double-quoted literal case", "SET note = 'touched'", "SET note = \"Touched\"", True,
          TRIGGER_PROBE),
        m("trigger event", "AFTER UPDATE ON child", "AFTER INSERT ON child", True, TRIGGER_PROBE),
        m("trigger restyled", "BEGIN\n    UPDATE parent", "begin update  parent", False, TRIGGER_PROBE),
        m("trigger dropped", "CREATE TRIGGER child_touch AFTER UPDATE ON child BEGIN\n"
          "    UPDATE parent SET note = 'touched' WHERE id = NEW.parent_id;\nEND;\n", "", True, TRIGGER_PROBE),
        m("view literal case", "WHERE state = 'open'", "WHERE state = 'Open'", True, VIEW_PROBE),
        m("view double-quoted literal", "WHERE state = 'open'", "WHERE state = \"open\"", False, VIEW_PROBE),
        m("view double-quoted literal case", "WHERE state = 'open'", "WHERE state = \"Open\"", True, VIEW_PROBE),
        m("view quoted column", "WHERE state = 'open'", "WHERE \"State\" = 'open'", False, VIEW_PROBE),
        m("view columns", "SELECT id, state FROM child", "SELECT id FROM child", True, VIEW_PROBE),
        m("view restyled", "CREATE VIEW open_children AS SELECT", "create view \"open_children\" as  select",
          False, VIEW_PROBE),
    ]


def restyle_mutations() -> list[Mutation]:
    return [
        m("table name quoted, keywords lower case", "CREATE TABLE pairs (", "create table \"pairs\" (", False),
        m("comment and spacing", "    pa INTEGER,\n", "    pa   INTEGER, -- the pair's a\n", False),
    ]


FAMILY = [
    *type_mutations(), *default_mutations(), *collation_mutations(), *constraint_mutations(),
    *foreign_key_mutations(), *check_mutations(), *key_mutations(), *index_mutations(),
    *trigger_and_view_mutations(), *restyle_mutations(),
]


# --- SQLite's own account ---------------------------------------------------------------


def build(path, ddl: str):
    with closing(sqlite3.connect(path)) as connection:
        connection.executescript(ddl)
    return path


def pragma_facts(path) -> dict:
    """What SQLite reports about every table, spelled so that equal means equal."""
    with closing(sqlite3.connect(path)) as connection:
        tables = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite~_%' ESCAPE '~'")]
        return {name.lower(): _table_facts(connection, name) for name in tables}


def _table_facts(connection, table: str) -> dict:
    listed = connection.execute(
        'SELECT type, wr, "strict" FROM pragma_table_list WHERE name = ?', (table,)).fetchone()
    columns = [
        (name.lower(), " ".join(declared.upper().split()).replace("( ", "(").replace(" )", ")"),
         notnull, evaluated_default(default), pk, hidden)
        for name, declared, notnull, default, pk, hidden in connection.execute(
            'SELECT name, type, "notnull", dflt_value, pk, hidden FROM pragma_table_xinfo(?)', (table,))
    ]
    key = [name for name, *_, pk, _hidden in columns if pk]
    indexes = {}
    for name, unique, origin, partial in connection.execute(
            'SELECT name, "unique", origin, partial FROM pragma_index_list(?)', (table,)):
        terms = connection.execute(
            'SELECT cid, lower(name), "desc", upper(coll), key FROM pragma_index_xinfo(?)', (name,)).fetchall()
        # Automatic indexes are named by position: identify them by what they index.
        label = name.lower() if origin == "c" else (origin, tuple(terms))
        indexes[str(label)] = (unique, origin, partial, tuple(terms))
    keys = {}
    for fk_id, rows in itertools.groupby(connection.execute(
            'SELECT id, "table", "from", "to", on_update, on_delete, match '
            "FROM pragma_foreign_key_list(?) ORDER BY id, seq", (table,)), key=lambda row: row[0]):
        rows = list(rows)
        parent = rows[0][1].lower()
        to = tuple((row[3] or "").lower() for row in rows)
        if not any(to):  # REFERENCES parent: the parent's primary key
            to = tuple(name for name, *_, pk, _hidden in _parent_columns(connection, parent) if pk)
        keys[(tuple(row[2].lower() for row in rows), parent, to)] = rows[0][4:]
    return {"list": listed, "columns": columns, "key": key, "indexes": indexes, "foreign_keys": keys}


def _parent_columns(connection, parent: str):
    return [(name.lower(), pk, 0) for name, pk in connection.execute(
        "SELECT name, pk FROM pragma_table_xinfo(?) ORDER BY pk", (parent,))]


def evaluated_default(default: str | None):
    """The value SQLite stores for a DEFAULT, as SQLite computes it; the time-dependent
    CURRENT_* keep their (upper-cased) spelling."""
    if default is None or default.upper().startswith("CURRENT_"):
        return default and default.upper()
    with closing(sqlite3.connect(":memory:")) as scratch:
        scratch.execute(f"CREATE TABLE d (x DEFAULT {default}, y)")
        scratch.execute("INSERT INTO d (y) VALUES (1)")
        return scratch.execute("SELECT x, typeof(x) FROM d").fetchone()


def probe_outcome(path, statements) -> list:
    """Each statement's rows, or its error, on a fresh copy of the schema."""
    outcome = []
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("PRAGMA foreign_keys = ON")
        for statement in statements:
            try:
                outcome.append(connection.execute(statement).fetchall())
            except sqlite3.Error as exc:
                outcome.append(f"error: {exc}")
    return outcome


# --- the tests ------------------------------------------------------------------------------


@pytest.fixture
def databases(tmp_path):
    counter = itertools.count()

    def make(ddl: str):
        return build(tmp_path / f"db{next(counter)}.db", ddl)

    return make


def test_the_family_is_large_and_every_mutation_applies():
    assert len(FAMILY) >= 120
    assert len({mutation.name for mutation in FAMILY}) == len(FAMILY)
    for mutation in FAMILY:
        assert mutation.after() != mutation.before()


@pytest.mark.parametrize("mutation", FAMILY, ids=lambda mutation: mutation.name)
def test_the_diff_sees_exactly_what_sqlite_treats_as_real(mutation, databases):
    before, after = databases(mutation.before()), databases(mutation.after())

    def probe(ddl, mutation):
        return probe_outcome(databases(ddl), mutation.probe)

    if pragma_facts(before) != pragma_facts(after):
        assert mutation.matters, "SQLite's PRAGMAs differ: this mutation is not cosmetic"
    elif mutation.matters:
        assert mutation.probe, "a difference the PRAGMAs do not show needs a probe"
        assert probe(mutation.before(), mutation) != probe(mutation.after(), mutation), (
            "the probe shows no difference: this mutation is cosmetic")
    elif mutation.probe:
        assert probe(mutation.before(), mutation) == probe(mutation.after(), mutation)
    left, right = inspect_database(before).schema, inspect_database(after).schema
    forward = diff_schemas(left, right, left_label="before", right_label="after")
    backward = diff_schemas(right, left, left_label="after", right_label="before")
    assert bool(forward) == mutation.matters, [d.explanation for d in forward]
    assert bool(backward) == mutation.matters, [d.explanation for d in backward]
    assert (left.fingerprint() != right.fingerprint()) == mutation.matters


SCHEMAS = [("base", BASE), ("rich", RICH_DDL)] + [(mutation.name, mutation.after()) for mutation in FAMILY]


@pytest.mark.parametrize("name, ddl", SCHEMAS, ids=[name for name, _ in SCHEMAS])
def test_dump_round_trips_diff_empty(name, ddl, databases, tmp_path):
    original = databases(ddl)
    schema = inspect_database(original).schema
    with closing(sqlite3.connect(original)) as connection:
        script = "\n".join(connection.iterdump())
    replayed = databases(script)
    cli_dump = subprocess.run([SQLITE_CLI, str(original), ".dump"], capture_output=True, text=True, check=True)
    cli_copy = tmp_path / "cli.db"
    cli_copy.unlink(missing_ok=True)
    subprocess.run([SQLITE_CLI, str(cli_copy)], input=cli_dump.stdout, capture_output=True, text=True, check=True)
    for copy in (replayed, cli_copy):
        rebuilt = inspect_database(copy).schema
        assert diff_schemas(schema, rebuilt) == []
        assert diff_schemas(rebuilt, schema) == []
        assert rebuilt.fingerprint() == schema.fingerprint()


def test_fingerprints_of_schemas_without_the_new_facts_are_unchanged(databases):
    """Backups record the fingerprint: one taken before deferral, ON CONFLICT and the rowid
    alias were read still verifies when the schema uses none of them."""
    assert inspect_database(databases(RICH_DDL)).schema.fingerprint() == (
        "f7de2516372cc253d14ceea99b3086227ebcc31f68663a7169f548d792e713e2")
    assert inspect_database(databases(BASE)).schema.fingerprint() == (
        "fcc6d5bde3873b0bfe43eadbe485641b1a819740d091103cfc11006c1f63ad36")
