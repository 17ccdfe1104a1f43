"""The revision graph, the stamp and the target, read in the application's interpreter."""
from __future__ import annotations

import sqlite3
import sys
from contextlib import closing

import pytest

from app.core.engines import engine_for
from app.core.errors import AlembicError
from app.core.revisions.graph import alembic_status, read_graph, read_stamp
from app.core.workspace import AlembicSettings
from tests.core.revisions.alembic_fixture import copy_project, revision_text, sqlite_database, write_revision

CHAIN = ["base0001", "prio0003", "tags0002", "merge0004", "count0005", "owner0006"]


@pytest.fixture
def project(tmp_path):
    return copy_project(tmp_path / "app")


def test_the_graph_has_its_branch_point_merge_head_and_messages(project):
    graph = read_graph(project)
    assert {r.id for r in graph.revisions} == set(CHAIN)
    assert graph.heads == ("owner0006",) and graph.single_head() == "owner0006"
    assert graph.get("base0001").branch_point and graph.get("merge0004").merge
    assert graph.get("merge0004").down_revisions == ("tags0002", "prio0003")
    assert graph.get("base0001").message == "baseline: goals"
    assert graph.get("count0005").file.endswith("count0005_count.py")
    order = [r.id for r in graph.revisions]
    assert order.index("base0001") < order.index("tags0002") < order.index("merge0004") < order.index("owner0006")
    assert graph.version_table == "alembic_version" and graph.version_table_schema is None


def test_pending_is_the_path_from_the_stamp_to_the_target_oldest_first(project):
    graph = read_graph(project)
    assert graph.pending((), "owner0006")[0] == "base0001" and len(graph.pending((), "owner0006")) == 6
    assert graph.pending(("tags0002",), "merge0004") == ["prio0003", "merge0004"]
    assert graph.pending(("merge0004",), "owner0006") == ["count0005", "owner0006"]
    assert graph.pending(("owner0006",), "owner0006") == []


def test_the_stamp_is_read_from_the_version_table_and_the_status_lists_what_is_pending(project, tmp_path):
    database = sqlite_database(project, tmp_path / "prod.db", "merge0004")
    engine = engine_for(database)
    graph = read_graph(project)
    assert read_stamp(engine, graph) == ("merge0004",)
    assert alembic_status(project, engine, graph) == {
        "current": ["merge0004"], "heads": ["owner0006"], "pending": ["count0005", "owner0006"]}


def test_a_database_without_a_version_table_has_no_stamp(project, tmp_path):
    path = tmp_path / "empty.db"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE t (x)")
    assert read_stamp(engine_for(path), read_graph(project)) == ()


def test_the_version_table_named_in_alembic_ini_is_the_one_read(project, tmp_path):
    project.ini.write_text(project.ini.read_text().replace("[alembic]\n", "[alembic]\nversion_table = app_versions\n"))
    path = tmp_path / "db.db"
    with closing(sqlite3.connect(path)) as connection:
        connection.executescript("CREATE TABLE app_versions (version_num VARCHAR(32));"
                                 "INSERT INTO app_versions VALUES ('tags0002');")
    graph = read_graph(project)
    assert graph.version_table == "app_versions"
    assert read_stamp(engine_for(path), graph) == ("tags0002",)


def test_several_heads_are_refused_saying_how_to_merge_them(project):
    write_revision(project, "side0007_side.py", revision_text("side0007", "count0005", "pass"))
    graph = read_graph(project)
    with pytest.raises(AlembicError) as refused:
        graph.single_head()
    assert "2 heads" in refused.value.message and "alembic merge heads" in refused.value.message
    assert graph.resolve_target("side0007", ("count0005",), "production") == "side0007"


def test_a_stamp_naming_no_revision_is_explained(project):
    graph = read_graph(project)
    with pytest.raises(AlembicError, match="stamped 9f9f9f9f, which names no revision"):
        graph.check_stamp(("9f9f9f9f",), "production")


def test_several_version_rows_are_explained(project):
    with pytest.raises(AlembicError, match=r"version table holds 2 rows \(tags0002, prio0003\)"):
        read_graph(project).check_stamp(("tags0002", "prio0003"), "production")


def test_an_unknown_target_or_one_behind_the_stamp_is_refused(project):
    graph = read_graph(project)
    with pytest.raises(AlembicError, match="Target nope: no revision has that id"):
        graph.resolve_target("nope", ("merge0004",), "production")
    with pytest.raises(AlembicError, match="already past base0001"):
        graph.resolve_target("base0001", ("merge0004",), "production")
    assert graph.resolve_target("count", ("merge0004",), "production") == "count0005"  # a unique prefix
    assert graph.resolve_target(None, ("merge0004",), "production") == "owner0006"


# --------------------------------------------------------------------------- bad input


def test_a_missing_alembic_ini_is_named(tmp_path):
    with pytest.raises(AlembicError, match=r"alembic.ini does not exist: set \[migration\] alembic"):
        read_graph(AlembicSettings(tmp_path / "alembic.ini", sys.executable))


def test_a_broken_alembic_ini_is_named(project):
    project.ini.write_text("this is not an ini file\n[alembic\n")
    with pytest.raises(AlembicError, match="cannot be read as an alembic.ini file"):
        read_graph(project)


def test_an_ini_without_script_location_is_named(project):
    project.ini.write_text("[alembic]\nsqlalchemy.url = sqlite://\n")
    with pytest.raises(AlembicError, match="names no script_location"):
        read_graph(project)


def test_a_revision_that_does_not_import_names_its_file_and_the_error(project):
    write_revision(project, "bad0007_bad.py", "import application_module_that_is_missing\nrevision = 'bad0007'\n")
    with pytest.raises(AlembicError) as refused:
        read_graph(project)
    assert "bad0007_bad.py" in refused.value.message
    assert "No module named 'application_module_that_is_missing'" in refused.value.message
    assert refused.value.details["file"].endswith("bad0007_bad.py")


def test_a_revision_with_a_syntax_error_names_its_file(project):
    write_revision(project, "bad0007_bad.py", "revision = 'bad0007'\ndef upgrade(:\n")
    with pytest.raises(AlembicError, match=r"bad0007_bad.py: SyntaxError"):
        read_graph(project)


def test_an_alembic_python_that_does_not_exist_is_named(project):
    missing = AlembicSettings(project.ini, str(project.ini.parent / "venv" / "bin" / "python"))
    with pytest.raises(AlembicError, match=r"alembic_python = '.*venv/bin/python' cannot be started"):
        read_graph(missing)


def test_an_alembic_python_that_is_not_an_interpreter_is_named(project, tmp_path):
    fake = tmp_path / "not-python"
    fake.write_text("#!/bin/sh\necho 'I am a shell script'\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(AlembicError, match="is not a Python interpreter that can read the revisions "
                                           r"\(exit code 3: I am a shell script\)"):
        read_graph(AlembicSettings(project.ini, str(fake)))


def test_an_alembic_python_without_alembic_is_named(project, tmp_path):
    bare = tmp_path / "bare-python"  # the same interpreter without its site-packages
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")
    bare.chmod(0o755)
    with pytest.raises(AlembicError, match="cannot import Alembic .*No module named 'alembic'.*install alembic"):
        read_graph(AlembicSettings(project.ini, str(bare)))
