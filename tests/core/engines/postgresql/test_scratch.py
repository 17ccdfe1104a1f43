"""Scratch databases on a real server: made, always dropped, and never left behind by the dead."""
import subprocess
import sys

import psycopg
import pytest

from app.core.engines.postgresql import scratch
from app.core.engines.postgresql.location import PostgresLocation


def scratch_databases(pg_server) -> list[str]:
    return [name for name in pg_server.databases() if name.startswith(scratch.PREFIX)]


def test_a_scratch_database_is_dropped_after_use(pg_server, pg_url):
    with scratch.scratch_database(PostgresLocation(pg_url)) as name:
        assert name in scratch_databases(pg_server)
    assert name not in scratch_databases(pg_server)


def test_it_is_dropped_when_the_work_fails_and_while_connected(pg_server, pg_url):
    left_open = []
    with pytest.raises(RuntimeError):
        with scratch.scratch_database(PostgresLocation(pg_url)) as name:
            left_open.append(psycopg.connect(pg_server.url(name)))  # does not keep it alive
            raise RuntimeError("rehearsal failed")
    left_open[0].close()
    assert name not in scratch_databases(pg_server)


def test_a_copy_of_a_template_holds_its_rows(pg_server, pg_database, pg_url):
    pg_server.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)", database=pg_database)
    with scratch.scratch_database(PostgresLocation(pg_url), template=pg_database) as name:
        assert pg_server.psql("SELECT count(*) FROM t", database=name).strip() == "2"


def test_one_left_by_a_killed_process_is_dropped_next_time(pg_server, pg_url):
    code = ("import os, sys; from app.core.engines.postgresql import scratch;"
            "from app.core.engines.postgresql.location import PostgresLocation;"
            "cm = scratch.scratch_database(PostgresLocation(sys.argv[1])); print(cm.__enter__(), flush=True);"
            "os.kill(os.getpid(), 9)")
    child = subprocess.run([sys.executable, "-c", code, pg_url], capture_output=True, text=True, timeout=60)
    left = child.stdout.strip()
    assert child.returncode == -9 and left in scratch_databases(pg_server)
    with scratch.scratch_database(PostgresLocation(pg_url)):
        assert left not in scratch_databases(pg_server)


def test_another_hosts_scratch_database_is_left_alone(pg_server, pg_url):
    foreign = f"{scratch.PREFIX}00000000_1_abcd"
    pg_server.psql(f'CREATE DATABASE "{foreign}"')
    try:
        with scratch.scratch_database(PostgresLocation(pg_url)):
            pass
        assert foreign in scratch_databases(pg_server)
    finally:
        pg_server.drop_database(foreign)


def test_a_user_who_may_not_create_databases_is_told_so(pg_server, pg_database, monkeypatch):
    pg_server.psql("DROP ROLE IF EXISTS plain; CREATE ROLE plain LOGIN PASSWORD 'p'")
    monkeypatch.setenv("PLAIN_PW", "p")
    before = pg_server.databases()
    try:
        with pytest.raises(scratch.ScratchRefused, match="may not create databases"):
            with scratch.scratch_database(PostgresLocation(pg_server.url(pg_database, user="plain"),
                                                           password_env="PLAIN_PW")):
                pass
    finally:
        pg_server.psql("DROP ROLE IF EXISTS plain")
    assert pg_server.databases() == before
