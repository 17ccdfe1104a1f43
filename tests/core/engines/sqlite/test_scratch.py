"""The SQLite engine's schema scratch, and the schema rows a copy is rebuilt from."""

from contextlib import closing

import pytest

from app.core.engines import engine_for
from app.core.schema import SchemaRow
from tests.core.conftest import create_database, folder_state


def test_the_scratch_is_empty_private_and_gone_on_exit(tmp_path):
    target = create_database(tmp_path / "target.db", "CREATE TABLE t (id INTEGER PRIMARY KEY);")
    engine = engine_for(target)
    before = folder_state(tmp_path)
    with engine.schema_scratch() as scratch:
        assert scratch.execute("SELECT count(*) FROM sqlite_schema").fetchone() == (0,)
        scratch.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, added TEXT)")
        with pytest.raises(engine.Error, match="already exists"):
            scratch.execute("CREATE TABLE t (id)")
    assert folder_state(tmp_path) == before  # nothing reached the target or its folder
    with pytest.raises(engine.Error):  # closed: a scratch is never reused
        scratch.execute("SELECT 1")


def test_schema_rows_rebuild_the_schema_in_creation_order_without_sqlites_own_objects(tmp_path):
    target = create_database(tmp_path / "target.db", """
        CREATE TABLE b (id INTEGER PRIMARY KEY, code TEXT UNIQUE);
        CREATE TABLE a (id INTEGER PRIMARY KEY);
        CREATE INDEX b_code ON b (code);
        CREATE VIEW v AS SELECT id FROM a;
        CREATE TRIGGER a_gone AFTER DELETE ON a BEGIN DELETE FROM b WHERE id = old.id; END;
        CREATE VIRTUAL TABLE docs USING fts5(body);
        ANALYZE;
    """)
    engine = engine_for(target)
    with closing(engine.open_readonly()) as connection:
        rows = engine.schema_rows(connection)
    assert all(isinstance(row, SchemaRow) for row in rows)
    # No sqlite_autoindex_*, sqlite_stat1 or docs_data/docs_idx/...: creating their owner makes them.
    assert [(row.type, row.name, row.table) for row in rows] == [
        ("table", "b", "b"), ("table", "a", "a"), ("index", "b_code", "b"), ("view", "v", "v"),
        ("trigger", "a_gone", "a"), ("table", "docs", "docs")]
    with engine.schema_scratch() as scratch:
        for row in rows:
            scratch.execute(row.sql)
        assert engine.schema_rows(scratch) == rows
