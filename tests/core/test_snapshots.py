"""The snapshot cache: reuse while the file is unchanged, re-read when it changes."""
import os
import sqlite3
import time

import pytest

from app.core.engines.sqlite.stamps import file_signature
import app.core.snapshots as snapshots
from app.core.snapshots import SnapshotCache


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE goals (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO goals (name) VALUES (?)", [("a",), ("b",)])
    conn.commit()
    conn.close()
    return path


def add_goal(path, name="c"):
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO goals (name) VALUES (?)", (name,))
    conn.commit()
    conn.close()


def test_unchanged_file_is_not_read_again(database):
    cache = SnapshotCache()
    first = cache.inspect(database)
    assert cache.inspect(database) is first
    assert first.checks_are_current and first.snapshot.facts.quick_check == "ok"


def test_a_write_is_seen(database):
    cache = SnapshotCache()
    cache.inspect(database)
    add_goal(database)
    assert cache.inspect(database).snapshot.row_counts() == {"goals": 3}


def test_changed_file_keeps_recent_checks_with_their_time(database):
    cache = SnapshotCache(deep_interval=3600)
    first = cache.inspect(database)
    time.sleep(1.1)  # inspected_at has one-second resolution
    add_goal(database)
    second = cache.inspect(database)
    assert second.snapshot.row_counts() == {"goals": 3}
    assert second.snapshot.facts.quick_check == "ok"
    assert second.checked_at == first.checked_at
    assert not second.checks_are_current


def test_old_checks_and_refresh_run_them_again(database):
    cache = SnapshotCache(deep_interval=0)
    cache.inspect(database)
    add_goal(database)
    assert cache.inspect(database).checks_are_current
    cache = SnapshotCache(deep_interval=3600)
    cache.inspect(database)
    add_goal(database, "d")
    assert cache.inspect(database, refresh=True).checks_are_current


def test_a_file_that_breaks_is_reported_and_forgotten(database):
    cache = SnapshotCache()
    assert cache.inspect(database).ok
    os.remove(database)
    gone = cache.inspect(database)
    assert not gone.ok and gone.error.reason == "missing"
    assert not database.exists()


def test_signature_covers_the_wal_file(database):
    before = file_signature(database)
    (database.parent / "app.db-wal").write_bytes(b"")
    assert file_signature(database) != before


def test_a_page_need_not_wait_for_the_whole_file_checks(database):
    cache = SnapshotCache()
    first = cache.inspect(database, wait_for_checks=False)
    assert first.checks_pending and first.snapshot.row_counts() == {"goals": 2}
    assert first.snapshot.facts.quick_check is None
    deadline = time.monotonic() + 30
    while cache.inspect(database, wait_for_checks=False).checks_pending:
        assert time.monotonic() < deadline, "the background checks never landed"
        time.sleep(0.02)
    done = cache.inspect(database, wait_for_checks=False)
    assert done.checks_are_current and done.snapshot.facts.quick_check == "ok"


def test_waiting_callers_always_get_the_checks(database):
    cache = SnapshotCache()
    cache.inspect(database, wait_for_checks=False)
    complete = cache.inspect(database, refresh=True)
    assert complete.checks_are_current and complete.snapshot.facts.foreign_key_violations == 0


def test_a_caller_can_skip_the_whole_file_checks(database, monkeypatch):
    cache = SnapshotCache()
    deep_reads = []

    def recording(engine, *, deep, busy_timeout):
        deep_reads.append(deep)
        return real(engine, deep=deep, busy_timeout=busy_timeout)

    real = snapshots.inspect_database
    monkeypatch.setattr(snapshots, "inspect_database", recording)
    quick = cache.inspect(database, run_checks=False)
    assert quick.ok and quick.checks_not_run and not quick.checks_pending and quick.checks_state == "not_run"
    assert quick.snapshot.facts.quick_check is None and quick.snapshot.row_counts() == {"goals": 2}
    assert deep_reads == [False] and not cache._checking  # nothing started in the background either
    checked = cache.inspect(database)  # not remembered: a caller that waits gets the checks
    assert checked.checks_state == "done" and checked.snapshot.facts.quick_check == "ok"
    assert cache.inspect(database, run_checks=False) is checked  # and real results are reused
    assert deep_reads == [False, True]


def test_skipping_carries_recent_checks_forward(database):
    cache = SnapshotCache(deep_interval=3600)
    first = cache.inspect(database)
    add_goal(database)
    second = cache.inspect(database, run_checks=False)
    assert second.snapshot.row_counts() == {"goals": 3} and second.checked_at == first.checked_at
    assert second.checks_state == "done" and second.snapshot.facts.quick_check == "ok"


def test_stamps_held_read_each_target_once_per_thread(tmp_path, monkeypatch):
    import sqlite3
    from contextlib import closing

    from app.core.engines import engine_for
    from app.core.snapshots import SnapshotCache

    path = tmp_path / "t.db"
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("CREATE TABLE t (x)")
    engine = engine_for(path)
    cache = SnapshotCache()
    cache.inspect(engine)
    calls = []
    real = type(engine).stamp
    monkeypatch.setattr(type(engine), "stamp", lambda self: calls.append(1) or real(self))
    with cache.stamps_held():
        for _ in range(3):
            cache.inspect(engine)
    assert len(calls) == 1
    cache.inspect(engine)
    assert len(calls) == 2  # outside, every ask reads the stamp again
