"""Pending revisions rendered (offline, or captured on a copy) and compiled into one PlanSet."""
from __future__ import annotations

import pytest

from app.core.engines import engine_for
from app.core.errors import AlembicError, PlanError
from app.core.migrate import apply_plan
from app.core.revisions.compiling import CAPTURED, NEEDS_CAPTURE, OFFLINE, capture_plan, render_plan
from app.core.revisions.graph import read_graph, read_stamp
from tests.core.revisions.alembic_fixture import copy_project, revision_text, sqlite_database, write_revision


@pytest.fixture
def project(tmp_path):
    return copy_project(tmp_path / "app")


def rendered(project, database, target="owner0006"):
    engine, graph = engine_for(database), read_graph(project)
    return graph, render_plan(project, engine, graph, read_stamp(engine, graph), target)


def test_each_revision_is_rendered_offline_with_the_version_table_statements(project, tmp_path):
    graph, plan = rendered(project, sqlite_database(project, tmp_path / "db.db", "base0001"), "merge0004")
    by_id = {r.revision.id: r for r in plan.revisions}
    assert [r.revision.id for r in plan.revisions] == ["prio0003", "tags0002", "merge0004"]
    assert by_id["prio0003"].statements == (
        "ALTER TABLE goals ADD COLUMN priority INTEGER;",
        "UPDATE goals SET priority = 1;",
        "UPDATE alembic_version SET version_num='prio0003' WHERE alembic_version.version_num = 'base0001';")
    assert by_id["merge0004"].statements[-2:] == (
        "DELETE FROM alembic_version WHERE alembic_version.version_num = 'tags0002';",
        "UPDATE alembic_version SET version_num='merge0004' WHERE alembic_version.version_num = 'prio0003';")
    assert all(r.rendering == OFFLINE for r in plan.revisions)
    assert [by_id[i].data_changes for i in ("prio0003", "tags0002", "merge0004")] == [True, False, True]


def test_from_an_empty_database_the_version_table_is_created_first(project, tmp_path):
    _, plan = rendered(project, sqlite_database(project, tmp_path / "db.db", "base0001"), "base0001")
    assert plan.revisions == ()
    graph = read_graph(project)
    empty = tmp_path / "empty.db"
    empty.touch()
    plan = render_plan(project, engine_for(empty), graph, (), "base0001")
    assert plan.revisions[0].statements[0].startswith("CREATE TABLE alembic_version")
    assert plan.revisions[0].statements[-1].startswith("INSERT INTO alembic_version (version_num) VALUES ('base0001')")


def test_revisions_that_read_the_database_need_a_capture_and_say_why(project, tmp_path):
    _, plan = rendered(project, sqlite_database(project, tmp_path / "db.db", "merge0004"))
    count, owner = plan.revisions
    assert count.rendering == NEEDS_CAPTURE and "scalar" in count.offline_error
    assert owner.rendering == NEEDS_CAPTURE and "batch mode with dialect sqlite" in owner.offline_error
    with pytest.raises(AlembicError, match="read the database"):
        plan.plan_set(engine_for(tmp_path / "db.db"))


def test_a_capture_on_a_copy_renders_the_values_read_as_literals(project, tmp_path):
    database = sqlite_database(project, tmp_path / "db.db", "merge0004", [("a", "x"), ("b", "y"), ("c", "z")])
    graph, plan = rendered(project, database)
    with engine_for(database).rehearsal_copy(workdir=tmp_path, busy_timeout=1.0, say=lambda text: None) as copy:
        captured = capture_plan(project, copy, graph, plan)
    count, owner = captured.revisions
    assert count.rendering == CAPTURED and count.statements == (
        "INSERT INTO settings (key, value) VALUES ('goal_count', '3');",
        "UPDATE alembic_version SET version_num='count0005' WHERE alembic_version.version_num = 'merge0004';")
    assert owner.statements[0].startswith("CREATE TABLE _alembic_tmp_goals")
    assert "DROP TABLE goals;" in owner.statements and owner.data_changes
    assert not any(s.upper().startswith(("SELECT", "PRAGMA")) for s in owner.statements)  # reads are left out


def test_the_compiled_plan_set_has_one_phase_per_revision_and_applies_in_one_transaction(project, tmp_path):
    database = sqlite_database(project, tmp_path / "db.db", "base0001", [("a", "x")])
    _, plan = rendered(project, database, "merge0004")
    plan_set = plan.plan_set(engine_for(database))
    assert [p.title for p in plan_set.phases()] == [
        "prio0003: goal priority, filled in (the other side of the branch; a data migration)",
        "tags0002: tags (one side of a branch)",
        "merge0004: merge tags and priority; settings table with its first row"]
    assert plan_set.hash == rendered(project, database, "merge0004")[1].plan_set(engine_for(database)).hash
    apply_plan(database, plan_set, baseline=None)
    assert read_stamp(engine_for(database), read_graph(project)) == ("merge0004",)


def test_a_revision_that_cannot_run_in_a_transaction_is_refused_on_sqlite(project, tmp_path):
    write_revision(project, "conc0007_concurrently.py", revision_text(
        "conc0007", "owner0006", 'with op.get_context().autocommit_block():\n    op.execute("SELECT 1")'))
    database = sqlite_database(project, tmp_path / "db.db", "owner0006")
    _, plan = rendered(project, database, "conc0007")
    assert not plan.revisions[0].transactional
    with pytest.raises(AlembicError, match="conc0007 cannot run inside a transaction"):
        plan.plan_set(engine_for(database))


def test_statements_the_dialect_forbids_are_refused_before_anything_runs(project, tmp_path):
    write_revision(project, "vac0007_vacuum.py", revision_text("vac0007", "owner0006", 'op.execute("VACUUM")'))
    database = sqlite_database(project, tmp_path / "db.db", "owner0006")
    _, plan = rendered(project, database, "vac0007")
    with pytest.raises(PlanError, match="VACUUM"):
        plan.plan_set(engine_for(database))


TAB_VALUE = ('op.execute(sa.text("INSERT INTO settings (key, value) VALUES (\'tab\', :v)").bindparams(v="a\\tb"))\n'
             'op.add_column("tags", sa.Column("color", sa.String(7)))')


def test_a_tab_inside_a_value_stays_a_tab_offline_and_captured(project, tmp_path):
    write_revision(project, "tab0007_tab.py", revision_text("tab0007", "owner0006", TAB_VALUE))
    database = sqlite_database(project, tmp_path / "db.db", "owner0006")
    graph, plan = rendered(project, database, "tab0007")
    assert plan.revisions[0].statements[0] == "INSERT INTO settings (key, value) VALUES ('tab', 'a\tb');"
    write_revision(project, "tab0007_tab.py", revision_text(
        "tab0007", "owner0006", 'op.get_bind().execute(sa.text("SELECT 1")).scalar()\n' + TAB_VALUE))
    graph, plan = rendered(project, database, "tab0007")
    with engine_for(database).rehearsal_copy(workdir=tmp_path, busy_timeout=1.0, say=lambda text: None) as copy:
        captured = capture_plan(project, copy, graph, plan)
    assert captured.revisions[0].statements[0] == "INSERT INTO settings (key, value) VALUES ('tab', 'a\tb');"
    assert "\t" not in captured.revisions[0].statements[1]  # DDL indented as --sql indents it
