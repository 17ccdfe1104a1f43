"""app.core.inspect: every kind of object, the facts, exact counts, integrity checks."""

import json
import re
import shutil
import sqlite3
import subprocess
from contextlib import closing

import pytest

from app.core.engines.sqlite import introspection as inspect_module
from app.core.inspect import inspect_database
from app.core.schema import Column, ForeignKey, Index, IndexColumn, Schema, Table, Trigger, View
from tests.core.conftest import SQLITE_CLI, create_database, folder_state

INJECTION = 'x"; DROP TABLE y; --'


@pytest.fixture
def rich(rich_db):
    return inspect_database(rich_db)


def test_tables_are_sorted_and_internal_tables_skipped(rich):
    # parent uses AUTOINCREMENT, so sqlite_sequence exists; it is SQLite's, not the app's.
    assert [t.name for t in rich.schema.tables] == ["child", "pair_refs", "pairs", "parent", "typed"]


def test_columns(rich):
    child = rich.schema.table("child")
    assert child.columns == (
        Column("id", "INTEGER", False, None, 1),
        Column("parent_id", "INTEGER", False, None, 0),
        Column("amount", "REAL", True, "0.0", 0),
        Column("label", "VARCHAR(20)", False, "'none'", 0),
        Column("doubled", "INTEGER", False, None, 0, "virtual", generated="amount * 2"),
        Column("stored_label", "TEXT", False, None, 0, "stored", generated="upper(label)"),
    )
    parent = rich.schema.table("PARENT")  # names are case-insensitive
    assert parent.columns == (
        Column("id", "INTEGER", False, None, 1),
        Column("name", "TEXT", True, None, 0, collation="NOCASE"),
        Column("created_at", "TEXT", False, "CURRENT_TIMESTAMP", 0),
    )


def test_composite_primary_key_positions_and_without_rowid(rich):
    pairs = rich.schema.table("pairs")
    assert [(c.name, c.pk, c.not_null) for c in pairs.columns] == [
        ("a", 2, True),
        ("b", 1, True),
        ("note", 0, False),
    ]
    assert pairs.primary_key() == ("b", "a")
    assert (pairs.without_rowid, pairs.strict) == (True, False)


def test_strict(rich):
    typed = rich.schema.table("typed")
    assert (typed.strict, typed.without_rowid) == (True, False)
    assert [c.type for c in typed.columns] == ["INT", "TEXT", "REAL", "ANY"]


def test_indexes(rich):
    child = rich.schema.table("child")
    assert child.indexes == (
        Index(
            name="child_amount",
            table="child",
            columns=(
                IndexColumn("amount", None, True, "BINARY"),
                IndexColumn("label", None, False, "NOCASE"),
            ),
            unique=False,
            where=None,
            origin="c",
            sql="CREATE INDEX child_amount ON child (amount DESC, label COLLATE NOCASE)",
        ),
        Index(
            name="child_big",
            table="child",
            columns=(IndexColumn("amount", None, False, "BINARY"),),
            unique=False,
            where="amount > 100",
            origin="c",
            sql="CREATE INDEX child_big ON child (amount) WHERE amount > 100",
        ),
        Index(
            name="child_lower",
            table="child",
            columns=(IndexColumn(None, "lower(label)", False, "BINARY"),),
            unique=False,
            where=None,
            origin="c",
            sql="CREATE INDEX child_lower ON child (lower(label))",
        ),
        Index(
            name="sqlite_autoindex_child_1",
            table="child",
            columns=(
                IndexColumn("parent_id", None, False, "BINARY"),
                IndexColumn("label", None, False, "BINARY"),
            ),
            unique=True,
            where=None,
            origin="u",
            sql=None,
        ),
    )
    assert [i.is_automatic for i in child.indexes] == [False, False, False, True]
    pairs_index = rich.schema.table("pairs").indexes
    assert [(i.name, i.origin, i.unique) for i in pairs_index] == [("sqlite_autoindex_pairs_1", "pk", True)]


def test_foreign_keys(rich):
    assert rich.schema.table("child").foreign_keys == (
        ForeignKey(("parent_id",), "parent", ("id",), "SET NULL", "CASCADE", "NONE"),
    )
    assert rich.schema.table("pair_refs").foreign_keys == (
        ForeignKey(("a", "b"), "pairs", ("a", "b"), "NO ACTION", "NO ACTION", "NONE"),
    )


def test_implicit_foreign_key_target_is_none(make_db):
    path = make_db("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p_id REFERENCES p);")
    fk = inspect_database(path).schema.table("c").foreign_keys[0]
    assert (fk.columns, fk.table, fk.to) == (("p_id",), "p", (None,))


def test_table_constraints(rich):
    assert rich.schema.table("parent").constraints == ("CHECK(length(name) > 0)", "UNIQUE(name)")
    assert rich.schema.table("child").constraints == ("UNIQUE(parent_id, label)",)
    assert rich.schema.table("pairs").constraints == ("PRIMARY KEY(b, a)",)
    assert rich.schema.table("pair_refs").constraints == ("FOREIGN KEY(a, b) REFERENCES pairs(a, b)",)


def test_triggers_and_views(rich):
    assert rich.schema.triggers == (
        Trigger(
            "child_touch",
            "child",
            "CREATE TRIGGER child_touch AFTER UPDATE ON child BEGIN\n"
            "    UPDATE parent SET name = name WHERE id = NEW.parent_id;\nEND",
        ),
    )
    assert rich.schema.views == (
        View("big_children", "CREATE VIEW big_children AS SELECT id, amount FROM child WHERE amount > 100"),
    )


def test_exact_row_counts(rich):
    assert rich.row_counts() == {"child": 3, "pair_refs": 0, "pairs": 1, "parent": 2, "typed": 0}


def test_facts(rich, rich_db):
    facts = rich.facts
    assert facts.path == str(rich_db)
    assert facts.size_bytes == rich_db.stat().st_size == facts.page_size * facts.page_count
    assert (facts.page_size, facts.freelist_count) == (4096, 0)
    assert (facts.user_version, facts.application_id) == (7, 1234)
    assert (facts.encoding, facts.journal_mode) == ("UTF-8", "delete")
    assert facts.sqlite_version == sqlite3.sqlite_version
    assert (facts.quick_check, facts.foreign_key_violations) == ("ok", 0)
    assert facts.foreign_key_violation_samples == ()
    assert rich.deep is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", rich.inspected_at)


def test_shallow_inspection_skips_integrity_checks(rich_db):
    snapshot = inspect_database(rich_db, deep=False)
    assert snapshot.deep is False
    facts = snapshot.facts
    assert (facts.quick_check, facts.foreign_key_violations, facts.foreign_key_violation_samples) == (
        None,
        None,
        (),
    )
    assert snapshot.row_counts()["child"] == 3


def test_foreign_key_violations_are_counted_with_samples(make_db):
    orphans = "".join(f"INSERT INTO c (p_id) VALUES ({n});" for n in range(100, 115))
    path = make_db(
        "PRAGMA foreign_keys = OFF;"
        "CREATE TABLE p (id INTEGER PRIMARY KEY);"
        "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id));"
        "INSERT INTO p VALUES (1); INSERT INTO c (p_id) VALUES (1);" + orphans
    )
    facts = inspect_database(path).facts
    assert facts.quick_check == "ok"
    assert facts.foreign_key_violations == 15
    assert facts.foreign_key_violation_samples == tuple(
        {"table": "c", "rowid": rowid, "parent": "p", "fkid": 0} for rowid in range(2, 12)
    )


def test_foreign_key_mismatch_leaves_the_count_unknown(make_db):
    # The parent column is not unique, so SQLite cannot run foreign_key_check at all.
    path = make_db("CREATE TABLE p (code TEXT); CREATE TABLE c (code REFERENCES p(code));")
    facts = inspect_database(path).facts
    assert (facts.quick_check, facts.foreign_key_violations) == ("ok", None)


def test_quick_check_reports_problems(make_db):
    path = make_db("CREATE TABLE t (a); INSERT INTO t VALUES (1), (NULL), (NULL);")
    # Make the stored rows break the declared schema, as a hand-edited schema could.
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute("UPDATE sqlite_schema SET sql = 'CREATE TABLE t (a NOT NULL)' WHERE name = 't'")
        connection.commit()
    facts = inspect_database(path).facts
    assert facts.quick_check == "NULL value in t.a\nNULL value in t.a"
    assert facts.foreign_key_violations is None  # not trusted on a damaged file


def test_wal_database_counts_rows_still_in_the_wal(make_db):
    path = make_db("PRAGMA journal_mode = WAL; CREATE TABLE t (a);")
    with closing(sqlite3.connect(path)) as writer:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(500)])
        writer.commit()
        snapshot = inspect_database(path)
        main_size = path.stat().st_size
        wal_size = path.with_name(path.name + "-wal").stat().st_size
    assert snapshot.row_counts() == {"t": 500}
    assert wal_size > 0
    assert snapshot.facts.size_bytes == main_size + wal_size
    assert snapshot.facts.journal_mode == "wal"


def test_one_read_transaction_covers_schema_and_counts(make_db, monkeypatch):
    """A commit that lands while we count does not show up in the counts."""
    path = make_db("PRAGMA journal_mode = WAL; CREATE TABLE a (x); CREATE TABLE b (x);")
    real_count = inspect_module._count_rows
    with closing(sqlite3.connect(path)) as writer:
        writer.execute("SELECT count(*) FROM a")  # the app is running: -wal and -shm exist

        def count_then_write(connection, table):
            writer.execute("INSERT INTO b VALUES (1)")
            writer.commit()
            return real_count(connection, table)

        monkeypatch.setattr(inspect_module, "_count_rows", count_then_write)
        snapshot = inspect_database(path)
        assert writer.execute("SELECT count(*) FROM b").fetchone() == (2,)
    assert snapshot.row_counts() == {"a": 0, "b": 0}


def test_identifier_injection_is_harmless(make_db):
    quoted = '"x""; DROP TABLE y; --"'
    path = make_db(
        f"CREATE TABLE y (a); CREATE TABLE {quoted} ({quoted} TEXT DEFAULT 'v');"
        f"CREATE INDEX {quoted[:-1]}_i\" ON {quoted} ({quoted});"
        f"INSERT INTO {quoted} DEFAULT VALUES; INSERT INTO {quoted} DEFAULT VALUES;"
    )
    snapshot = inspect_database(path)
    table = snapshot.schema.table(INJECTION)
    assert table.row_count == 2
    assert [c.name for c in table.columns] == [INJECTION]
    assert [i.name for i in table.indexes] == [INJECTION + "_i"]
    assert table.indexes[0].columns == (IndexColumn(INJECTION, None, False, "BINARY"),)
    assert snapshot.row_counts() == {INJECTION: 2, "y": 0}


def test_virtual_table_and_its_shadow_tables(make_db):
    path = make_db("CREATE VIRTUAL TABLE docs USING fts5(title, body); INSERT INTO docs VALUES ('a', 'b');")
    snapshot = inspect_database(path)
    assert [t.name for t in snapshot.schema.tables] == ["docs"]  # docs_data etc. are internal
    docs = snapshot.schema.table("docs")
    assert [(c.name, c.hidden) for c in docs.columns] == [
        ("title", ""),
        ("body", ""),
        ("docs", "hidden"),
        ("rank", "hidden"),
    ]
    assert docs.row_count == 1 and docs.is_virtual


def test_analyze_statistics_are_not_part_of_the_schema(make_db):
    path = make_db("CREATE TABLE t (a); CREATE INDEX t_a ON t (a); INSERT INTO t VALUES (1); ANALYZE;")
    assert [t.name for t in inspect_database(path).schema.tables] == ["t"]


def test_inspection_touches_nothing(rich_db):
    before = folder_state(rich_db.parent)
    inspect_database(rich_db)
    assert folder_state(rich_db.parent) == before


def test_snapshot_to_dict_is_json_ready(rich):
    data = json.loads(json.dumps(rich.to_dict()))
    assert set(data) == {"path", "inspected_at", "deep", "facts", "schema"}
    assert set(data["schema"]) == {"tables", "triggers", "views", "fingerprint"}
    assert data["schema"]["fingerprint"] == rich.schema.fingerprint()
    child = next(t for t in data["schema"]["tables"] if t["name"] == "child")
    assert child["row_count"] == 3
    assert child["columns"][2] == {
        "name": "amount",
        "type": "REAL",
        "not_null": True,
        "default": "0.0",
        "pk": 0,
        "hidden": "",
        "collation": None,
        "generated": None,
    }
    assert child["foreign_keys"] == [
        {
            "columns": ["parent_id"],
            "table": "parent",
            "to": ["id"],
            "on_update": "SET NULL",
            "on_delete": "CASCADE",
            "match": "NONE",
        }
    ]
    assert data["facts"]["foreign_key_violation_samples"] == []


# --- fingerprint ------------------------------------------------------------------------


def test_fingerprint_of_copy_and_dump_rebuild(rich_db, tmp_path):
    copy = tmp_path / "copy.db"
    shutil.copy(rich_db, copy)
    rebuilt = tmp_path / "rebuilt.db"
    dump = subprocess.run([SQLITE_CLI, str(rich_db), ".dump"], capture_output=True, check=True)
    subprocess.run([SQLITE_CLI, str(rebuilt)], input=dump.stdout, check=True)
    prints = {inspect_database(p).schema.fingerprint() for p in (rich_db, copy, rebuilt)}
    assert len(prints) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", prints.pop())


def test_fingerprint_ignores_data_but_not_column_order(make_db):
    first = make_db("CREATE TABLE t (a INT, b TEXT);", "first.db")
    more_rows = make_db("CREATE TABLE t (a INT, b TEXT); INSERT INTO t VALUES (1, 'x');", "more.db")
    swapped = make_db("CREATE TABLE t (b TEXT, a INT);", "swapped.db")
    fingerprint = {p.name: inspect_database(p).schema.fingerprint() for p in (first, more_rows, swapped)}
    assert fingerprint["first.db"] == fingerprint["more.db"]
    assert fingerprint["first.db"] != fingerprint["swapped.db"]


def test_fingerprint_of_an_empty_schema_is_stable():
    empty = Schema((), (), ())
    assert empty.fingerprint() == Schema((), (), ()).fingerprint()
    assert empty.table("anything") is None


def test_table_lookup_by_any_case():
    table = Table("Goals", (), (), (), False, False, "CREATE TABLE Goals (a)", ())
    schema = Schema((table,), (), ())
    assert schema.table("goals") is schema.table("GOALS") is table


def test_database_created_in_another_folder_is_inspected_by_absolute_path(tmp_path, monkeypatch):
    path = create_database(tmp_path / "rel.db", "CREATE TABLE t (a);")
    monkeypatch.chdir(tmp_path)
    snapshot = inspect_database("rel.db")
    assert snapshot.path == "rel.db" and snapshot.row_counts() == {"t": 0}
    assert path.exists()


def test_virtual_table_whose_module_is_missing(make_db):
    path = make_db("CREATE TABLE t (a);")
    with closing(sqlite3.connect(path)) as connection:  # as if made by an app with an extension
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute(
            "INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) "
            "VALUES ('table', 'v', 'v', 0, 'CREATE VIRTUAL TABLE v USING no_such_module(a)')"
        )
        connection.commit()
    snapshot = inspect_database(path)
    assert snapshot.row_counts() == {"t": 0, "v": None}
    assert snapshot.schema.table("v").columns == ()
    assert snapshot.facts.quick_check == "ok"
