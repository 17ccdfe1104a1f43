"""The migration transaction on a real server: atomic, bounded waits, one migrator at a time."""
import threading

import psycopg
import pytest
from psycopg import errors as pg_errors

from app.core.engines.postgresql.connections import connect
from app.core.engines.postgresql.location import PostgresLocation
from app.core.engines.postgresql.transactions import LockNotGranted, migration_transaction
from app.core.errors import Conflict


@pytest.fixture
def location(pg_server, pg_url):
    pg_server.psql("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a')",
                   database=pg_url.rsplit("/", 1)[1])
    return PostgresLocation(pg_url)


def columns(location) -> list[str]:
    with connect(location) as connection:
        rows = connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'items' "
            "ORDER BY ordinal_position").fetchall()
    return [name for (name,) in rows]


def migrate(location, *statements, lock_timeout=5.0, statement_timeout=None):
    with connect(location) as connection:
        with migration_transaction(connection, location, lock_timeout=lock_timeout,
                                   statement_timeout=statement_timeout):
            for statement in statements:
                connection.execute(statement)


def test_commits_every_statement_together(location):
    migrate(location, "ALTER TABLE items ADD COLUMN price int", "CREATE INDEX items_name ON items (name)")
    assert columns(location) == ["id", "name", "price"]


def test_a_failing_statement_rolls_the_ddl_back(location):
    with pytest.raises(psycopg.Error):
        migrate(location, "ALTER TABLE items ADD COLUMN price int", "ALTER TABLE nope ADD COLUMN x int")
    assert columns(location) == ["id", "name"]


def test_a_second_migrator_is_refused_naming_the_first(location):
    with connect(location) as first:
        first_pid = first.info.backend_pid
        with migration_transaction(first, location, lock_timeout=5, statement_timeout=None):
            with pytest.raises(Conflict) as caught:
                migrate(location, "ALTER TABLE items ADD COLUMN price int")
    assert "Another migration is running" in caught.value.message
    assert f"pid {first_pid}" in caught.value.message
    assert columns(location) == ["id", "name"]


def test_a_lock_held_by_the_application_names_it_and_changes_nothing(location):
    app = psycopg.connect(location.url, application_name="shop-web")
    app.execute("SELECT * FROM items")  # an open transaction holding ACCESS SHARE on items
    try:
        with pytest.raises(LockNotGranted) as caught:
            migrate(location, "ALTER TABLE items ADD COLUMN price int", lock_timeout=0.5)
    finally:
        app.rollback()
        app.close()
    assert "lock timeout" in str(caught.value)
    assert [holder.application_name for holder in caught.value.holders] == ["shop-web"]
    assert columns(location) == ["id", "name"]


def test_readers_wait_no_longer_than_the_lock_timeout(location):
    """A queued ALTER blocks readers arriving after it; the lock timeout bounds that."""
    app = psycopg.connect(location.url, application_name="shop-web")
    app.execute("SELECT * FROM items")
    reader_done = threading.Event()

    def late_reader():
        with psycopg.connect(location.url, application_name="shop-reader") as reader:
            reader.execute("SELECT count(*) FROM items")
        reader_done.set()

    failed = []
    migrator = threading.Thread(target=lambda: _record(failed, migrate, location,
                                                       "ALTER TABLE items ADD COLUMN p int", lock_timeout=1))
    migrator.start()
    threading.Timer(0.3, late_reader).start()
    migrator.join(10)
    assert reader_done.wait(5), "the late reader stayed queued behind the ALTER"
    app.rollback()
    app.close()
    assert failed and isinstance(failed[0], LockNotGranted)


def _record(failures, function, *args, **kwargs):
    try:
        function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        failures.append(exc)


def test_statement_timeout_stops_a_long_statement(location):
    with pytest.raises(pg_errors.QueryCanceled):
        migrate(location, "ALTER TABLE items ADD COLUMN price int", "SELECT pg_sleep(5)",
                statement_timeout=0.2)
    assert columns(location) == ["id", "name"]


def test_the_server_checks_that_the_migrator_is_still_there_while_a_statement_runs(location):
    """So a migrator killed mid-statement is rolled back within a second, not when the statement
    ends (tests/faults/test_postgres_faults.py kills one for real)."""
    with connect(location) as connection:
        with migration_transaction(connection, location, lock_timeout=5, statement_timeout=None):
            inside = connection.execute("SHOW client_connection_check_interval").fetchone()[0]
        after = connection.execute("SHOW client_connection_check_interval").fetchone()[0]
    assert (inside, after) == ("1s", "0")
