"""app.core.engines.sqlite.building: a new file is built under a temporary name, or not at all."""

import sqlite3
from contextlib import closing

import pytest

from app.core.engines.sqlite.building import build_database_file, remove_database_files


def test_the_file_is_built_beside_its_final_name_and_left_for_the_caller_to_rename(tmp_path):
    final = tmp_path / "goals.db"

    def build(connection):
        assert connection.execute("PRAGMA foreign_keys").fetchone() == (0,)
        connection.execute("CREATE TABLE t (x)")
        connection.execute("INSERT INTO t VALUES (1)")

    built = build_database_file(final, build, foreign_keys=False)
    assert built == tmp_path / ".goals.db.partial" and not final.exists()
    with closing(sqlite3.connect(built)) as connection:
        assert connection.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_a_failing_build_leaves_nothing_behind_not_even_a_leftover_from_before(tmp_path):
    (tmp_path / ".goals.db.partial-journal").write_bytes(b"left by an interrupted build")

    def build(connection):
        assert connection.execute("PRAGMA foreign_keys").fetchone() == (1,)
        connection.execute("CREATE TABLE t (x)")
        raise RuntimeError("the builder failed")

    with pytest.raises(RuntimeError, match="the builder failed"):
        build_database_file(tmp_path / "goals.db", build, foreign_keys=True)
    assert list(tmp_path.iterdir()) == []


def test_removing_takes_the_side_files_too(tmp_path):
    for suffix in ("", "-journal", "-wal", "-shm"):
        (tmp_path / f"a.db{suffix}").write_bytes(b"x")
    (tmp_path / "b.db").write_bytes(b"kept")
    remove_database_files(tmp_path / "a.db")
    assert [p.name for p in tmp_path.iterdir()] == ["b.db"]
