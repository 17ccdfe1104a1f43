"""kill -9 of a real move in the middle of its COPY: the target is left as empty as it was."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.core.move.conftest import make_source

PROJECT = Path(__file__).resolve().parents[3]
MOVER = """
import sys
from pathlib import Path
from app.core.engines import engine_for
from app.core.move import move
move(engine_for(Path(sys.argv[1])), engine_for(sys.argv[2], kind="postgresql"), say=lambda line: print(line, flush=True))
"""
ROWS = 400_000


def copying_now(url: str, pid: int) -> bool:
    """Is the mover's COPY running on the server, with rows already in it?"""
    with psycopg.connect(url, autocommit=True) as watch:
        row = watch.execute(
            "SELECT p.tuples_processed FROM pg_stat_progress_copy p JOIN pg_stat_activity a USING (pid) "
            "WHERE a.application_name = 'cutover' AND a.query LIKE 'COPY%%'").fetchone()
    return row is not None and row[0] > 0


def wait_until(condition, what: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.mark.slow
def test_kill_9_in_the_middle_of_the_copy_leaves_the_target_empty(tmp_path, pg_server, pg_database, pg_url):
    pg_server.psql("CREATE TABLE kinds (id integer PRIMARY KEY, name text NOT NULL);"
                   "CREATE TABLE events (id bigint PRIMARY KEY, kind integer NOT NULL REFERENCES kinds(id),"
                   " happened timestamp NOT NULL, payload jsonb, ok boolean NOT NULL)", database=pg_database)
    source = make_source(tmp_path / "big.db", f"""
        INSERT INTO kinds VALUES (1, 'a'), (2, 'b');
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
        INSERT INTO events SELECT i, 1 + i % 2, '2026-01-01 00:00:00', '{{"i": ' || i || '}}', i % 2 FROM n;""",
        "CREATE TABLE kinds (id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE events (id INTEGER PRIMARY KEY, kind INTEGER, happened TEXT, payload TEXT, ok INTEGER);")
    mover = subprocess.Popen([sys.executable, "-c", MOVER, str(source), pg_url], cwd=PROJECT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: mover.poll() is not None or copying_now(pg_url, mover.pid), "the COPY to start")
        assert mover.poll() is None, mover.communicate()
        os.kill(mover.pid, signal.SIGKILL)
        mover.wait()
    finally:
        if mover.poll() is None:
            mover.kill()
        mover.communicate()
    assert mover.returncode == -signal.SIGKILL
    # The server notices the vanished client (client_connection_check_interval) and rolls back.
    wait_until(lambda: pg_server.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cutover'",
                                      database=pg_database).strip() == "0", "the mover's session to end")
    counts = pg_server.psql("SELECT (SELECT count(*) FROM kinds) || ',' || (SELECT count(*) FROM events)",
                            database=pg_database).strip()
    assert counts == "0,0"
    # The foreign key the move set aside inside its transaction is back with the rollback.
    assert pg_server.psql("SELECT conname FROM pg_constraint WHERE contype = 'f'", database=pg_database).split() == [
        "events_kind_fkey"]
    # And a second move, from the same untouched source, then succeeds.
    from app.core.engines import engine_for
    from app.core.move import move

    report = move(engine_for(source), engine_for(pg_url, kind="postgresql"))
    assert report.passed and report.moved == ROWS + 2
