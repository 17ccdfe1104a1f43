"""Is the database what its stamp says? The stamped revision built from the files, compared."""
from __future__ import annotations

import hashlib
import json

import psycopg
import pytest

from app.core.engines import engine_for
from app.core.revisions.graph import read_graph
from app.core.revisions.stamps import check_stamp
from tests.core.revisions.alembic_fixture import VERSIONS, alembic_upgrade, copy_project, sqlite_database
from tests.test_cli_alembic import cutover


def edit_the_baseline(settings) -> None:
    """The baseline rewritten months later, under the same id: goals gained a column."""
    path = settings.ini.parent / VERSIONS / "base0001_baseline.py"
    text = path.read_text()
    edited = text.replace('sa.Column("owner", sa.String(100)),',
                          'sa.Column("owner", sa.String(100)),\n        sa.Column("archived", sa.Boolean),')
    assert edited != text
    path.write_text(edited)


@pytest.fixture
def project(tmp_path):
    return copy_project(tmp_path / "app")


def test_a_database_made_by_its_revisions_matches_its_stamp(project, tmp_path):
    database = sqlite_database(project, tmp_path / "prod.db", "merge0004", [("a", None)])
    check = check_stamp(project, engine_for(database), read_graph(project), ("merge0004",))
    assert check.matches and check.revision == "merge0004"


def test_an_edited_baseline_under_the_same_id_is_named(project, tmp_path):
    database = sqlite_database(project, tmp_path / "prod.db", "merge0004")
    edit_the_baseline(project)
    check = check_stamp(project, engine_for(database), read_graph(project), ("merge0004",))
    assert not check.matches
    assert [(d["object"], d["table"], d["name"]) for d in check.differences] == [("column", "goals", "archived")]
    assert check.lines()[0].startswith("column goals.archived: ")


def test_nothing_stamped_is_nothing_to_check(project, tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    assert check_stamp(project, engine_for(empty), read_graph(project), ()).matches


def sqlite_workspace(tmp_path, project):
    sqlite_database(project, tmp_path / "prod.db", "merge0004", [("a", "x")])
    (tmp_path / "cutover.toml").write_text('[environments.production]\ndatabase = "prod.db"\n\n'
                                           '[migration]\nalembic = "app/alembic.ini"\n')
    return tmp_path


def test_plan_exits_1_and_migrate_refuses_when_the_stamp_lies(project, tmp_path):
    workspace = sqlite_workspace(tmp_path, project)
    edit_the_baseline(project)
    before = hashlib.sha256((workspace / "prod.db").read_bytes()).hexdigest()
    done = cutover(workspace, "plan", "production", "--json")
    assert done.returncode == 1
    stamp = json.loads(done.stdout)["stamp"]
    assert stamp["revision"] == "merge0004" and not stamp["matches"]
    text = cutover(workspace, "plan", "production")
    assert text.returncode == 1 and "NOT WHAT THE STAMP SAYS: column goals.archived" in text.stdout
    migrate = cutover(workspace, "migrate", "production", "--yes")
    assert migrate.returncode == 1 and "is not what its stamp merge0004 says" in migrate.stderr
    assert hashlib.sha256((workspace / "prod.db").read_bytes()).hexdigest() == before


@pytest.mark.slow
def test_an_edited_baseline_is_named_on_postgresql(project, pg_server, pg_url):
    alembic_upgrade(project, pg_url.replace("postgresql://", "postgresql+psycopg://", 1), "merge0004")
    engine, graph = engine_for(pg_url, "postgresql"), read_graph(project)
    assert check_stamp(project, engine, graph, ("merge0004",)).matches
    edit_the_baseline(project)
    check = check_stamp(project, engine, read_graph(project), ("merge0004",))
    assert [(d["object"], d["name"]) for d in check.differences] == [("column", "archived")]
    with psycopg.connect(pg_url) as connection:  # the check only read production
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("merge0004",)]


def test_a_chain_that_cannot_build_the_stamp_on_an_empty_database_says_so(project, tmp_path):
    from app.core.errors import AlembicError
    from tests.core.revisions.alembic_fixture import revision_text, write_revision

    database = sqlite_database(project, tmp_path / "prod.db", "owner0006")
    write_revision(project, "need0007_rows.py", revision_text(
        "need0007", "owner0006", 'assert op.get_bind().execute(sa.text("SELECT count(*) FROM goals")).scalar(), "no goals"'))
    with pytest.raises(AlembicError, match="revision need0007 failed while the files built the schema of stamp "
                                           "need0007 in an empty scratch database, so the stamp cannot be checked"):
        check_stamp(project, engine_for(database), read_graph(project), ("need0007",))
