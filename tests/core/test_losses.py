"""Indexes, triggers and views a plan destroys and does not get back: named before anything
commits, in reconciliation, in the rehearsal and inside the migration's transaction."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing

import pytest

from app.core.errors import MigrationFailed, PlanError
from app.core.migrate import apply_plan, rehearse
from app.core.plans import make_plan_set, parse_plan_text
from app.core.reconcile import preflight, reconcile

TARGET = """
CREATE TABLE items (id INTEGER PRIMARY KEY, code TEXT UNIQUE, status TEXT);
CREATE INDEX items_status ON items (status);
CREATE TABLE audit (item_id INTEGER, note TEXT);
CREATE TRIGGER items_audit AFTER UPDATE ON items BEGIN
    INSERT INTO audit VALUES (new.id, 'updated');
END;
CREATE VIEW live_items AS SELECT id, code FROM items WHERE status = 'live';
INSERT INTO items (code, status) VALUES ('a', 'live'), ('b', 'archived');
"""

# The 12-step rebuild as people write it: the view is in the way of the rename, so it is
# dropped; the old table's index, trigger and the view are never re-created.
FORGETFUL_REBUILD = """-- phase: Rebuild items with a price
DROP VIEW live_items;
CREATE TABLE items_new (id INTEGER PRIMARY KEY, code TEXT UNIQUE, status TEXT, price REAL);
INSERT INTO items_new (id, code, status) SELECT id, code, status FROM items;
DROP TABLE items;
ALTER TABLE items_new RENAME TO items;
"""

RECREATED = """
CREATE INDEX items_by_status ON items (status);
CREATE TRIGGER items_audit AFTER UPDATE ON items BEGIN
    INSERT INTO audit VALUES (new.id, 'updated');
END;
CREATE VIEW live_items AS SELECT id, code FROM items WHERE status = 'live';
"""

ACCEPTANCES = ("-- accept-drop: index items_status\n-- accept-drop: trigger items_audit\n"
               "-- accept-drop: view live_items\n")


def plan(text: str):
    return make_plan_set([parse_plan_text(text, file="rebuild.sql")])


def lost(reconciliation) -> list[tuple[str, str, bool]]:
    return [(loss.object.kind, loss.object.name, loss.accepted) for loss in reconciliation.losses]


def stamp(path):
    """The file's bytes and mtime: proof that nothing was written."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


# --------------------------------------------------------------------------- the preview


def test_a_forgetful_rebuild_names_every_lost_object_and_blocks_the_plan(make_db):
    db = make_db(TARGET)
    result = reconcile(db, plan(FORGETFUL_REBUILD))
    assert lost(result) == [("view", "live_items", False), ("index", "items_status", False),
                            ("trigger", "items_audit", False)]
    assert not result.ready
    assert result.summary().endswith("blocked: 3 indexes, triggers or views lost without acceptance")
    checked = preflight(result)
    assert [(p.kind, p.error) for p in checked.problems] == [
        ("loses_object", "view live_items is destroyed by statement 1 (rebuild.sql:2: "
                         "DROP VIEW live_items) and the plan does not re-create it"),
        ("loses_object", "index items_status on items is destroyed by statement 4 (rebuild.sql:5: "
                         "DROP TABLE items) and the plan does not re-create it"),
        ("loses_object", "trigger items_audit on items is destroyed by statement 4 (rebuild.sql:5: "
                         "DROP TABLE items) and the plan does not re-create it"),
    ]
    assert "`-- accept-drop: trigger items_audit`" in checked.problems[2].fix
    assert checked.to_dict()["problems"][0]["outcome"] == "loses_object"
    drop_table = result.outcomes()[3]
    assert [loss.object.name for loss in drop_table.losses] == ["items_status", "items_audit"]
    assert result.to_dict()["losses"][0]["acceptance_line"] == "-- accept-drop: view live_items"


def test_a_rebuild_that_re_creates_everything_loses_nothing(make_db):
    """An index counts by its definition, whatever its name; the UNIQUE constraint's automatic
    index comes back with the rebuilt table's constraint."""
    db = make_db(TARGET)
    result = reconcile(db, plan(FORGETFUL_REBUILD + RECREATED))
    assert result.losses == () and result.ready
    assert preflight(result).ok


def test_a_changed_index_or_a_dropped_unique_constraint_is_a_loss(make_db):
    db = make_db(TARGET)
    text = (FORGETFUL_REBUILD.replace("code TEXT UNIQUE, status TEXT, price", "code TEXT, status TEXT, price")
            + RECREATED.replace("ON items (status)", "ON items (status DESC)"))
    result = reconcile(db, plan(text))
    assert [(kind, name) for kind, name, _ in lost(result)] == [
        ("index", "items_status"), ("index", "sqlite_autoindex_items_1")]
    assert result.losses[1].object.label() == (
        "index sqlite_autoindex_items_1 (the UNIQUE or PRIMARY KEY index of items)")


def test_accepted_losses_let_the_plan_run_and_are_part_of_its_hash(make_db):
    db = make_db(TARGET)
    accepted = plan(ACCEPTANCES + FORGETFUL_REBUILD)
    assert accepted.hash != plan(FORGETFUL_REBUILD).hash
    result = reconcile(db, accepted)
    assert lost(result) == [("view", "live_items", True), ("index", "items_status", True),
                            ("trigger", "items_audit", True)]
    assert result.ready and preflight(result).ok
    assert [a.to_dict() for a in accepted.acceptances()][0] == {
        "kind": "index", "name": "items_status", "file": "rebuild.sql", "line": 1}


def test_an_acceptance_that_names_nothing_lost_is_a_warning(make_db):
    db = make_db(TARGET)
    result = reconcile(db, plan("-- accept-drop: trigger nothing_here\nCREATE INDEX x ON items (code);\n"))
    assert result.ready
    assert result.warnings == ("rebuild.sql:1: accept-drop of trigger nothing_here names nothing "
                               "the plan destroys on this target",)


def test_what_goes_with_a_dropped_table_is_not_a_loss(make_db):
    db = make_db(TARGET)
    result = reconcile(db, plan("DROP VIEW live_items;\nDROP TABLE items;\n"
                                "CREATE VIEW live_items AS SELECT 1 AS id;\n"))
    assert result.losses == () and result.ready


def test_an_explicit_drop_of_an_index_must_be_accepted_too(make_db):
    db = make_db(TARGET)
    assert lost(reconcile(db, plan("DROP INDEX items_status;\n"))) == [("index", "items_status", False)]
    assert reconcile(db, plan("-- accept-drop: index ITEMS_STATUS\nDROP INDEX items_status;\n")).ready


@pytest.mark.parametrize("line", [
    "-- accept-drop: table items", "-- accept-drop: trigger", "-- accept-drop: index a b",
    "-- accept-drop:", "-- accept-drop: index 'a'"])
def test_an_acceptance_line_that_is_not_understood_is_refused_at_load(line):
    with pytest.raises(PlanError, match=r"^rebuild\.sql:1: `-- accept-drop:.*` is not understood"):
        plan(line + "\nDROP INDEX a;\n")


def test_quoted_names_can_be_accepted(make_db):
    db = make_db('CREATE TABLE t (a); CREATE INDEX "my index" ON t (a);')
    result = reconcile(db, plan('DROP INDEX "my index";\n'))
    assert result.losses[0].acceptance_line == '-- accept-drop: index "my index"'
    assert reconcile(db, plan('-- accept-drop: index "my index"\nDROP INDEX "my index";\n')).ready


# --------------------------------------------------------------------------- rehearsal and apply


def test_the_rehearsal_fails_and_the_migration_refuses_with_the_target_untouched(make_db):
    db = make_db(TARGET)
    before = stamp(db)
    rehearsal = rehearse(db, plan(FORGETFUL_REBUILD))
    assert not rehearsal.passed
    assert rehearsal.failure["check"] == "apply"
    assert rehearsal.failure["message"].startswith(
        "The plan destroys view live_items, index items_status on items, trigger items_audit on items "
        "and does not re-create them.")
    with pytest.raises(MigrationFailed) as caught:
        apply_plan(db, plan(FORGETFUL_REBUILD))
    assert caught.value.result.failure["reason"] == "lost_objects"
    assert "`-- accept-drop: trigger items_audit`" in caught.value.message
    assert caught.value.message.endswith("The transaction was rolled back: nothing was changed.")
    assert stamp(db) == before


def test_apply_refuses_a_loss_even_when_the_preview_could_not_see_it(make_db):
    """The check before COMMIT judges the live schema: an index that exists only on the target
    (drift the preview of another copy did not have) is still caught."""
    db = make_db(TARGET + "CREATE INDEX items_code_status ON items (code, status);")
    before = stamp(db)
    accepted_elsewhere = plan(ACCEPTANCES + FORGETFUL_REBUILD + RECREATED)
    with pytest.raises(MigrationFailed, match=r"index items_code_status on items"):
        apply_plan(db, accepted_elsewhere)
    assert stamp(db) == before


def test_an_accepted_loss_commits_and_says_so(make_db):
    db = make_db(TARGET)
    lines = []
    result = apply_plan(db, plan(ACCEPTANCES + FORGETFUL_REBUILD), emit=lambda level, text: lines.append((level, text)))
    assert result.committed
    assert ("warning", "Accepted by the plan (rebuild.sql:2): trigger items_audit on items is destroyed by "
                       "statement 4 (rebuild.sql:8: DROP TABLE items) and the plan does not re-create it") in lines
    with closing(sqlite3.connect(db)) as connection:
        assert connection.execute("SELECT name FROM sqlite_schema WHERE type = 'trigger'").fetchall() == []


def test_a_trigger_re_created_with_another_body_is_named_as_redefined(make_db):
    db = make_db(TARGET)
    text = (FORGETFUL_REBUILD + RECREATED.replace("'updated'", "'changed'"))
    result = reconcile(db, plan(text))
    assert [(loss.object.name, loss.redefined) for loss in result.losses] == [("items_audit", True)]
    assert result.losses[0].message() == (
        "trigger items_audit on items is destroyed by statement 4 (rebuild.sql:5: DROP TABLE items) "
        "and the plan re-creates it with another definition")


def test_objects_created_on_the_new_table_before_the_rename_count_as_re_created(make_db):
    """The rename rewrites them (SQLite re-quotes the table's name inside them): still the same."""
    db = make_db(TARGET)
    text = """DROP VIEW live_items;
CREATE TABLE items_new (id INTEGER PRIMARY KEY, code TEXT UNIQUE, status TEXT, price REAL);
INSERT INTO items_new (id, code, status) SELECT id, code, status FROM items;
CREATE INDEX items_status_new ON items_new (status);
DROP TRIGGER items_audit;
CREATE TRIGGER items_audit AFTER UPDATE ON items_new BEGIN
    INSERT INTO audit VALUES (new.id, 'updated');
END;
DROP TABLE items;
ALTER TABLE items_new RENAME TO items;
CREATE VIEW live_items AS SELECT id, code FROM items WHERE status = 'live';
"""
    result = reconcile(db, plan(text))
    assert result.losses == () and result.ready
    with closing(sqlite3.connect(db)) as connection:
        connection.executescript(text)
        stored = connection.execute("SELECT sql FROM sqlite_schema WHERE name = 'items_audit'").fetchone()[0]
    assert 'ON "items"' in stored  # what the comparison had to see through


def test_a_partial_index_re_created_with_a_double_quoted_string_of_another_case_is_a_loss(make_db):
    """`WHERE status = "Archived"` compares with a string: "archived" indexes other rows."""
    db = make_db(TARGET + 'CREATE UNIQUE INDEX archived_code ON items (code) WHERE status = "Archived";')
    text = 'DROP INDEX archived_code;\nCREATE UNIQUE INDEX archived_code ON items (code) WHERE status = "archived";\n'
    assert [(loss.object.name, loss.redefined) for loss in reconcile(db, plan(text)).losses] == [
        ("archived_code", True)]
    same = text.replace('"archived"', '"Archived"').replace("ON items (code)", 'ON "Items"(code)')
    assert reconcile(db, plan(same)).losses == ()
