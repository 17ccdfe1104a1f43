"""pg_dump and pg_restore on a real server: a dump restores to the same rows; failures say why."""
import pytest

from app.core.engines.postgresql import dumps
from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import BackupError, CutoverError


def test_a_dump_restores_into_another_database(pg_server, pg_database, pg_url, tmp_path):
    pg_server.psql("CREATE TABLE t (id int PRIMARY KEY, name text); INSERT INTO t VALUES (1, 'a'), (2, 'b')",
                   database=pg_database)
    dumped = tmp_path / "app.dump"
    dumps.dump(PostgresLocation(pg_url), dumped, server_major=15)
    copy = pg_server.create_database("copy")
    try:
        dumps.restore(PostgresLocation(pg_url), dumped, copy, server_major=15)
        assert pg_server.psql("SELECT string_agg(name, ',' ORDER BY id) FROM t", database=copy).strip() == "a,b"
    finally:
        pg_server.drop_database(copy)


def test_the_password_never_appears_on_a_command_line(pg_server, pg_database, tmp_path, monkeypatch):
    pg_server.psql("DROP ROLE IF EXISTS dumper; CREATE ROLE dumper LOGIN PASSWORD 'pw-XYZ'")
    monkeypatch.setenv("DUMPER_PW", "pw-XYZ")
    seen = []
    real_run = dumps.subprocess.run
    monkeypatch.setattr(dumps.subprocess, "run", lambda command, **kw: seen.append(command) or real_run(command, **kw))
    try:
        location = PostgresLocation(pg_server.url(pg_database, user="dumper"), password_env="DUMPER_PW")
        dumps.dump(location, tmp_path / "x.dump", server_major=15)
    finally:
        pg_server.psql("DROP ROLE IF EXISTS dumper")
    assert seen and all("pw-XYZ" not in " ".join(command) for command in seen)


def test_a_failing_dump_says_what_pg_dump_said(pg_server, tmp_path):
    with pytest.raises(BackupError) as caught:
        dumps.dump(PostgresLocation(pg_server.url("missing_db")), tmp_path / "x.dump", server_major=15)
    assert 'database "missing_db" does not exist' in caught.value.message
    assert not (tmp_path / "x.dump").exists() or (tmp_path / "x.dump").stat().st_size == 0


def test_a_failing_restore_leaves_the_database_as_it_was(pg_server, pg_database, pg_url, tmp_path):
    pg_server.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)", database=pg_database)
    dumped = tmp_path / "app.dump"
    dumps.dump(PostgresLocation(pg_url), dumped, server_major=15)
    occupied = pg_server.create_database("occupied")
    pg_server.psql("CREATE TABLE other (x int); CREATE TABLE t (id int)", database=occupied)
    try:
        with pytest.raises(CutoverError, match="pg_restore could not restore"):
            dumps.restore(PostgresLocation(pg_url), dumped, occupied, server_major=15)
        tables = pg_server.psql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
                                "WHERE schemaname = 'public'", database=occupied).strip()
        assert tables == "other,t"
        assert pg_server.psql("SELECT count(*) FROM t", database=occupied).strip() == "0"
    finally:
        pg_server.drop_database(occupied)


def test_a_scratch_restore_loads_every_table_on_several_connections(pg_server, pg_database, pg_url, tmp_path):
    pg_server.psql("CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY, "
                   "parent_id int REFERENCES parent); INSERT INTO parent SELECT generate_series(1, 500); "
                   "INSERT INTO child SELECT n, n FROM generate_series(1, 500) n", database=pg_database)
    dumped = tmp_path / "app.dump"
    dumps.dump(PostgresLocation(pg_url), dumped, server_major=15)
    copy = pg_server.create_database("scratch_copy")
    try:
        dumps.restore(PostgresLocation(pg_url), dumped, copy, server_major=15, scratch=True)
        assert pg_server.psql("SELECT (SELECT count(*) FROM parent) || ',' || (SELECT count(*) FROM child) || ',' "
                              "|| (SELECT count(*) FROM pg_constraint WHERE contype = 'f')", database=copy).strip() == "500,500,1"
    finally:
        pg_server.drop_database(copy)


def test_a_scratch_restore_that_fails_still_says_so(pg_server, pg_database, pg_url, tmp_path):
    """Several connections give up all-or-nothing, never the error: the copy is not verified."""
    pg_server.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)", database=pg_database)
    dumped = tmp_path / "app.dump"
    dumps.dump(PostgresLocation(pg_url), dumped, server_major=15)
    occupied = pg_server.create_database("occupied_scratch")
    pg_server.psql("CREATE TABLE t (id int)", database=occupied)
    try:
        with pytest.raises(CutoverError, match="pg_restore could not restore"):
            dumps.restore(PostgresLocation(pg_url), dumped, occupied, server_major=15, scratch=True)
    finally:
        pg_server.drop_database(occupied)
