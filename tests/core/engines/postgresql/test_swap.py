"""Swapping a restored database in on a real server: all at once, or not at all."""
import psycopg
import pytest

from app.core.engines.postgresql.swap import swap_in
from app.core.errors import RestoreRefused


@pytest.fixture
def pair(pg_server, pg_database):
    replacement = pg_server.create_database("replacement")
    pg_server.psql("CREATE TABLE which (side text); INSERT INTO which VALUES ('old')", database=pg_database)
    pg_server.psql("CREATE TABLE which (side text); INSERT INTO which VALUES ('restored')", database=replacement)
    yield pg_database, replacement
    for name in pg_server.databases():
        if name.startswith(pg_database) or name == replacement:
            pg_server.drop_database(name)


def side(pg_server, database) -> str:
    return pg_server.psql("SELECT side FROM which", database=database).strip()


def test_the_restored_database_takes_the_targets_name(pg_server, pair):
    target, replacement = pair
    with psycopg.connect(pg_server.url(), autocommit=True) as admin:
        old_name = swap_in(admin, target, replacement)
    assert side(pg_server, target) == "restored"
    assert side(pg_server, old_name) == "old"
    assert replacement not in pg_server.databases()


def test_a_session_on_the_target_stops_the_swap_and_is_named(pg_server, pair):
    target, replacement = pair
    app = psycopg.connect(pg_server.url(target), application_name="shop-web")
    try:
        with psycopg.connect(pg_server.url(), autocommit=True) as admin:
            with pytest.raises(RestoreRefused) as caught:
                swap_in(admin, target, replacement)
    finally:
        app.close()
    assert "shop-web" in caught.value.message and "unchanged" in caught.value.message
    assert side(pg_server, target) == "old"
    assert side(pg_server, replacement) == "restored"
