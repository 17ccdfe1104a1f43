"""Other sessions on a real server: named by application, user, address, state and time."""
import psycopg

from app.core.engines.postgresql.connections import connect
from app.core.engines.postgresql.location import PostgresLocation
from app.core.engines.postgresql.sessions import other_sessions


def test_cutovers_own_sessions_are_not_the_application(pg_url):
    location = PostgresLocation(pg_url)
    with connect(location), connect(location) as connection:
        assert other_sessions(connection) == []


def test_the_application_is_named(pg_url):
    location = PostgresLocation(pg_url)
    with psycopg.connect(pg_url, application_name="shop-web") as app, connect(location) as connection:
        app.execute("SELECT 1")
        found = other_sessions(connection)
    assert [(s.application_name, s.user, s.client_address) for s in found] == [
        ("shop-web", "postgres", "127.0.0.1")]
    assert found[0].state in ("idle", "idle in transaction")
    assert "shop-web as postgres from 127.0.0.1" in found[0].describe()


def test_a_user_without_pg_read_all_stats_still_sees_that_someone_is_connected(pg_server, pg_database, monkeypatch):
    pg_server.psql("DROP ROLE IF EXISTS watcher; CREATE ROLE watcher LOGIN PASSWORD 'w'")
    try:
        monkeypatch.setenv("WATCHER_PW", "w")
        location = PostgresLocation(pg_server.url(pg_database, user="watcher"), password_env="WATCHER_PW")
        with psycopg.connect(pg_server.url(pg_database), application_name="shop-web"), connect(location) as c:
            found = other_sessions(c)
        assert [s.application_name for s in found] == ["shop-web"]
        assert found[0].state is None
        assert "pg_read_all_stats" in found[0].describe()
    finally:
        pg_server.psql("DROP ROLE IF EXISTS watcher")
