"""Alembic's version table in a move: a stamp on both sides, never copied, and both must agree."""
import hashlib

import pytest

from app.core.engines import engine_for
from app.core.errors import MoveRefused
from app.core.move import move, preflight
from tests.core.move.conftest import CLEAN_ROWS, count_all, make_source

VERSION_TABLE = "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);"


@pytest.fixture
def stamped_target(target, pg_server, pg_database):
    """The target as the application's own revisions leave it: every table empty, the stamp at r7."""
    pg_server.psql(VERSION_TABLE + "INSERT INTO alembic_version VALUES ('r7')", database=pg_database)
    return target


def stamped_source(tmp_path, revision: str | None):
    rows = CLEAN_ROWS + (VERSION_TABLE + f"INSERT INTO alembic_version VALUES ('{revision}');" if revision else "")
    return engine_for(make_source(tmp_path / "app.db", rows))


def test_a_target_made_by_the_revisions_moves_with_its_stamp_left_as_it_is(tmp_path, stamped_target, pg_server,
                                                                            pg_database):
    source = stamped_source(tmp_path, "r7")
    checked = preflight(source, stamped_target)
    assert checked.movable, checked.blocking_problems()
    assert checked.to_dict()["version_stamp"] == {"table": "alembic_version", "source": ["r7"], "target": ["r7"]}
    assert "alembic_version" not in [table.name for table in checked.tables]
    report = move(source, stamped_target)
    assert report.passed, report.lines()
    assert count_all(pg_server, pg_database) == {"users": 2, "goals": 3, "notes": 2}
    assert pg_server.psql("SELECT string_agg(version_num, ',') FROM alembic_version", database=pg_database).strip() == "r7"


def test_a_source_at_another_revision_is_refused_and_nothing_is_written(tmp_path, stamped_target, pg_server,
                                                                        pg_database):
    source = stamped_source(tmp_path, "r5")
    before = hashlib.sha256((tmp_path / "app.db").read_bytes()).hexdigest()
    assert any("source is at Alembic revision r5 and the target at r7" in problem
               for problem in preflight(source, stamped_target).blocking_problems())
    with pytest.raises(MoveRefused) as refused:
        move(source, stamped_target)
    assert "--to REV" in refused.value.message
    assert count_all(pg_server, pg_database) == {"users": 0, "goals": 0, "notes": 0}
    assert pg_server.psql("SELECT string_agg(version_num, ',') FROM alembic_version", database=pg_database).strip() == "r7"
    assert hashlib.sha256((tmp_path / "app.db").read_bytes()).hexdigest() == before


def test_a_source_not_kept_by_alembic_is_compared_column_by_column_only(tmp_path, stamped_target):
    checked = preflight(stamped_source(tmp_path, None), stamped_target)
    assert checked.movable, checked.blocking_problems()
    assert checked.to_dict()["version_stamp"]["source"] is None
