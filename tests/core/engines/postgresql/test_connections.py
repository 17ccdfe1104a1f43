"""Connecting to a real PostgreSQL server: every refusal is one clear message naming the fix."""
import socket

import pytest

from app.core.engines.postgresql.connections import connect
from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import TargetUnavailable


@pytest.fixture
def app_user(pg_server, pg_database):
    pg_server.psql("DROP ROLE IF EXISTS app_user; CREATE ROLE app_user LOGIN PASSWORD 's3cret'")
    yield "app_user"
    pg_server.psql("DROP ROLE IF EXISTS app_user")


def refusal(location: PostgresLocation) -> TargetUnavailable:
    with pytest.raises(TargetUnavailable) as caught:
        connect(location)
    return caught.value


def test_connects_as_cutover(pg_url):
    with connect(PostgresLocation(pg_url)) as connection:
        name = connection.execute("SELECT current_setting('application_name')").fetchone()[0]
    assert name == "cutover"


def test_the_password_comes_from_password_env(pg_server, pg_database, app_user, monkeypatch):
    monkeypatch.setenv("APP_DB_PASSWORD", "s3cret")
    location = PostgresLocation(pg_server.url(pg_database, user=app_user), password_env="APP_DB_PASSWORD")
    with connect(location) as connection:
        assert connection.execute("SELECT current_user").fetchone()[0] == "app_user"


def test_a_wrong_password_names_where_passwords_come_from(pg_server, pg_database, app_user, monkeypatch):
    monkeypatch.setenv("APP_DB_PASSWORD", "wrong")
    problem = refusal(PostgresLocation(pg_server.url(pg_database, user=app_user), password_env="APP_DB_PASSWORD"))
    assert problem.reason == "wrong_password"
    assert "password authentication failed" in problem.message
    assert "password_env" in problem.message and "wrong" not in problem.message.replace("wrong_", "")


def test_no_password_at_all(pg_server, pg_database, app_user, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")
    problem = refusal(PostgresLocation(pg_server.url(pg_database, user=app_user)))
    assert problem.reason == "no_password"
    assert 'password_env = "VAR"' in problem.message


def test_password_env_not_set_is_a_config_error(pg_server, pg_database, monkeypatch):
    from app.core.errors import ConfigError

    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        connect(PostgresLocation(pg_server.url(pg_database), password_env="NOT_SET_ANYWHERE"))


def test_a_missing_database(pg_server):
    problem = refusal(PostgresLocation(pg_server.url("no_such_database")))
    assert problem.reason == "missing"
    assert 'database "no_such_database" does not exist' in problem.message
    assert "createdb" in problem.message


def test_a_server_that_is_down():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    problem = refusal(PostgresLocation(f"postgresql://app@127.0.0.1:{port}/app"))
    assert problem.reason == "unreachable"
    assert f"postgresql://app@127.0.0.1:{port}/app" in problem.message
    assert "Is the server running" in problem.message
