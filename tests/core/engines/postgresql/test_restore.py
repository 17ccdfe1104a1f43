"""Restoring a PostgreSQL backup on a real server: all or nothing, a safety backup first."""
import psycopg
import pytest

from app.core.backup import create_backup, list_backups
from app.core.engines import engine_for
from app.core.engines.postgresql import scratch
from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import RestoreRefused
from app.core.processes import application_running
from app.core.restore import restore_backup

SCHEMA = """
CREATE TABLE goals (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text NOT NULL);
CREATE TABLE notes (id serial PRIMARY KEY, goal_id bigint REFERENCES goals (id), body text);
INSERT INTO goals (title) SELECT 'g' || i FROM generate_series(1, 300) i;
INSERT INTO notes (goal_id, body) SELECT (i % 300) + 1, 'n' || i FROM generate_series(1, 900) i;
"""


@pytest.fixture
def target(pg_server, pg_database, pg_url):
    pg_server.psql(SCHEMA, database=pg_database)
    pg_server.psql(f'DROP ROLE IF EXISTS shop_reader; CREATE ROLE shop_reader; '
                   f'GRANT CONNECT ON DATABASE "{pg_database}" TO shop_reader; '
                   f'ALTER DATABASE "{pg_database}" SET work_mem = \'8MB\'')
    yield engine_for(PostgresLocation(pg_url), "postgresql")
    pg_server.drop_database(pg_database)
    pg_server.psql("DROP ROLE IF EXISTS shop_reader")


@pytest.fixture
def folders(tmp_path):
    backups, safety = tmp_path / "backups", tmp_path / "backups" / "safety"
    safety.mkdir(parents=True)
    return backups, safety


def state(pg_server, database) -> str:
    return pg_server.psql("SELECT (SELECT count(*) FROM goals) || '/' || (SELECT count(*) FROM notes) || '/' || "
                          "(SELECT count(*) FROM pg_tables WHERE schemaname = 'public')", database=database).strip()


def restore(target, backup, safety, **options):
    return restore_backup(target, backup, safety_dir=safety,
                          app_running_check=lambda: application_running(target, []), **options)


def leftovers(pg_server, database) -> list[str]:
    return [name for name in pg_server.databases()
            if name.startswith(scratch.PREFIX) or name.startswith(f"{database}_replaced_")]


def test_a_restore_gives_back_exactly_what_was_backed_up(target, folders, pg_server, pg_database):
    backups, safety = folders
    backup = create_backup(target, [backups])
    pg_server.psql("INSERT INTO goals (title) VALUES ('after'); DROP TABLE notes", database=pg_database)
    result = restore(target, backup, safety)
    assert state(pg_server, pg_database) == "300/900/2"
    assert target.snapshot().schema.fingerprint() == backup.manifest.schema_fingerprint
    [kept] = list_backups([safety], target)
    assert kept.status == "verified" and kept.manifest.row_counts == {"goals": 301}
    assert result.safety_copies == tuple(map(str, kept.copies))
    assert leftovers(pg_server, pg_database) == []


def test_the_database_keeps_its_grants_and_settings(target, folders, pg_server, pg_database):
    backups, safety = folders
    restore(target, create_backup(target, [backups]), safety)
    grants = pg_server.psql(f"SELECT has_database_privilege('shop_reader', '{pg_database}', 'CONNECT')")
    settings = pg_server.psql("SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_database d "
                              f"ON d.oid = s.setdatabase WHERE d.datname = '{pg_database}'")
    assert grants.strip() == "t" and settings.strip() == "work_mem=8MB"


def test_a_connected_application_refuses_the_restore_and_changes_nothing(target, folders, pg_server, pg_database):
    backups, safety = folders
    backup = create_backup(target, [backups])
    pg_server.psql("INSERT INTO goals (title) VALUES ('after')", database=pg_database)
    with psycopg.connect(target.location.url, application_name="shop-web"):
        with pytest.raises(RestoreRefused) as caught:
            restore(target, backup, safety)
    assert "shop-web" in caught.value.message and "Nothing was changed" in caught.value.message
    assert state(pg_server, pg_database) == "301/900/2"
    assert list(safety.iterdir()) == [] and leftovers(pg_server, pg_database) == []


def test_a_damaged_backup_is_refused_before_anything(target, folders, pg_server, pg_database):
    backups, safety = folders
    backup = create_backup(target, [backups])
    backup.copies[0].write_bytes(backup.copies[0].read_bytes()[:-100])
    pg_server.psql("INSERT INTO goals (title) VALUES ('after')", database=pg_database)
    with pytest.raises(RestoreRefused, match="verifies now"):
        restore(target, backup, safety)
    assert state(pg_server, pg_database) == "301/900/2"
    assert list(safety.iterdir()) == [] and leftovers(pg_server, pg_database) == []


def test_another_databases_backup_is_refused(target, folders, pg_server, pg_database):
    backups, safety = folders
    other = pg_server.create_database("other")
    try:
        pg_server.psql(SCHEMA, database=other)
        foreign = create_backup(engine_for(PostgresLocation(pg_server.url(other)), "postgresql"), [backups])
        with pytest.raises(RestoreRefused, match="was taken from"):
            restore(target, foreign, safety)
    finally:
        pg_server.drop_database(other)
    assert state(pg_server, pg_database) == "300/900/2"
