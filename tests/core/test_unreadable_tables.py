"""Virtual tables SQLite cannot read here: explained, backed up, fixable by a plan.

Two real cases: a spellfix1 table on a SQLite without that extension (written into
sqlite_schema, as the application that loads the extension would have created it), and
an FTS5 external-content table whose content table was dropped. Both files pass
integrity_check; only reading those tables fails.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from app.core.backup import create_backup, verify_backup
from app.core.checks import row_count_ledger
from app.core.diff import diff_schemas
from app.core.engines import engine_for
from app.core.inspect import inspect_database
from app.core.migrate import apply_plan, rehearse
from app.core.plans import load_plan_set
from app.core.reconcile import schema_fingerprint
from tests.core.conftest import create_database, folder_state

SPELLFIX = "CREATE VIRTUAL TABLE spell USING spellfix1"
BROKEN_FTS = """
CREATE TABLE other (a);
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
INSERT INTO notes VALUES (1, 'hello world'), (2, 'goodbye');
CREATE VIRTUAL TABLE docs USING fts5(body, content='notes', content_rowid='id');
INSERT INTO docs(docs) VALUES ('rebuild');
DROP TABLE notes;
"""


def with_spellfix_table(path):
    """Add the sqlite_schema row an application with the spellfix1 extension would have made."""
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute(
            "INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) "
            "VALUES ('table', 'spell', 'spell', 0, ?)", (SPELLFIX,))
        connection.commit()
    return path


@pytest.fixture
def spellfix_db(tmp_path):
    return with_spellfix_table(create_database(tmp_path / "spell.db", "CREATE TABLE other (a);"))


@pytest.fixture
def broken_fts_db(tmp_path):
    return create_database(tmp_path / "fts.db", BROKEN_FTS)


@pytest.fixture
def folders(tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    return [folder]


def plan_file(tmp_path, text):
    path = tmp_path / "plan.sql"
    path.write_text(text)
    return load_plan_set([path])


def integrity(path) -> str:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


# --- explained ------------------------------------------------------------------------


def test_a_missing_module_is_explained_and_the_rest_is_inspected(spellfix_db):
    snapshot = inspect_database(spellfix_db)
    assert integrity(spellfix_db) == "ok" and snapshot.facts.quick_check == "ok"
    assert snapshot.row_counts() == {"other": 0, "spell": None}
    [notice] = snapshot.schema.unreadable_tables()
    assert notice["table"] == "spell" and notice["problem"] == "no such module: spellfix1"
    explanation = notice["explanation"]
    assert "uses the module spellfix1, which this SQLite does not have" in explanation
    assert "backups copy it byte for byte" in explanation
    assert "run DROP TABLE spell from that application" in explanation
    [spell] = [t for t in snapshot.schema.to_dict()["tables"] if t["name"] == "spell"]
    assert spell["unreadable"] == "no such module: spellfix1"


def test_a_dropped_fts_content_table_is_explained_not_fatal(broken_fts_db):
    snapshot = inspect_database(broken_fts_db)
    assert integrity(broken_fts_db) == "ok" and snapshot.facts.quick_check == "ok"
    assert snapshot.row_counts() == {"docs": None, "other": 0}
    docs = snapshot.schema.table("docs")
    assert docs.unreadable == "no such table: main.notes"
    assert [c.name for c in docs.columns] == ["body", "docs", "rank"]
    explanation = docs.unreadable_explanation()
    assert "reads its rows from the content table notes, which does not exist" in explanation
    assert "CREATE TABLE notes again" in explanation and "DROP TABLE docs" in explanation


def test_the_diff_compares_unreadable_tables_by_definition(spellfix_db, broken_fts_db):
    spell = inspect_database(spellfix_db).schema
    assert diff_schemas(spell, inspect_database(spellfix_db).schema) == []
    fts = inspect_database(broken_fts_db).schema
    [difference] = [d for d in diff_schemas(spell, fts) if d.name == "spell"]
    assert difference.change == "only_left"


# --- fingerprint and migration ----------------------------------------------------------


@pytest.mark.parametrize("fixture", ["spellfix_db", "broken_fts_db"])
def test_the_fingerprint_the_migration_reads_is_the_inspections(fixture, request):
    path = request.getfixturevalue(fixture)
    with closing(sqlite3.connect(path)) as connection:
        assert schema_fingerprint(engine_for(path), connection) == inspect_database(path).schema.fingerprint()


def test_a_rehearsed_plan_migrates_a_database_with_a_missing_module(spellfix_db, tmp_path):
    plan_set = plan_file(tmp_path, "ALTER TABLE other ADD COLUMN b;\n")
    rehearsal = rehearse(spellfix_db, plan_set)
    assert rehearsal.passed, rehearsal.failure
    result = apply_plan(spellfix_db, plan_set, rehearsal=rehearsal.to_dict())
    assert result.counts()["applied"] == 1
    after = inspect_database(spellfix_db)
    assert [c.name for c in after.schema.table("other").columns] == ["a", "b"]
    assert after.schema.table("spell").sql == SPELLFIX  # left alone


@pytest.mark.parametrize("plan, tables", [
    ("DROP TABLE docs;\n", {"other": 0}),
    ("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n", {"docs": 0, "notes": 0, "other": 0}),
    ("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n"
     "INSERT INTO docs(docs) VALUES ('rebuild');\n", {"docs": 0, "notes": 0, "other": 0}),
])
def test_a_plan_repairs_a_broken_fts_table(broken_fts_db, tmp_path, folders, plan, tables):
    backup = create_backup(broken_fts_db, folders)
    assert backup.status == "verified"
    plan_set = plan_file(tmp_path, plan)
    rehearsal = rehearse(broken_fts_db, plan_set)
    assert rehearsal.passed, rehearsal.failure
    apply_plan(broken_fts_db, plan_set, rehearsal=rehearsal.to_dict())
    after = inspect_database(broken_fts_db)
    assert after.row_counts() == tables and after.schema.unreadable_tables() == []
    ledger = row_count_ledger(broken_fts_db, backup.manifest.row_counts)
    assert ledger.passed == ("docs" in tables), ledger.evidence
    assert any(line.startswith("docs: ") for line in ledger.evidence)


def test_a_plan_that_breaks_an_fts_table_fails_its_rehearsal(tmp_path):
    path = create_database(tmp_path / "ok.db", BROKEN_FTS.replace("DROP TABLE notes;", ""))
    before = folder_state(tmp_path)
    rehearsal = rehearse(path, plan_file(tmp_path, "DROP TABLE notes;\n"))
    assert not rehearsal.passed
    assert "docs 2 → unreadable (no such table: main.notes)" in rehearsal.failure["message"]
    assert folder_state(tmp_path) == {**before, "plan.sql": folder_state(tmp_path)["plan.sql"]}


# --- backed up ------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["spellfix_db", "broken_fts_db"])
def test_backups_of_unreadable_tables_succeed_and_verify(fixture, request, folders):
    path = request.getfixturevalue(fixture)
    source = path.read_bytes()
    backup = create_backup(path, folders)
    assert backup.status == "verified"
    assert backup.manifest.row_counts == inspect_database(path).row_counts()
    assert verify_backup(backup).verified
    assert backup.copies[0].read_bytes() == source == path.read_bytes()


def test_the_ledger_says_a_table_became_unreadable(tmp_path):
    path = create_database(tmp_path / "ok.db", BROKEN_FTS.replace("DROP TABLE notes;", ""))
    counts = inspect_database(path).row_counts()
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("DROP TABLE notes")
        connection.commit()
    ledger = row_count_ledger(path, counts, declared={"notes": -2})
    assert not ledger.passed
    assert "docs: before 2, now unreadable (no such table: main.notes) UNEXPECTED" in ledger.evidence
