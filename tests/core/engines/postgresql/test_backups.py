"""Verified PostgreSQL backups on a real server, through the same catalogue as SQLite's."""
import json
import threading

import psycopg
import pytest

from app.core.backup import create_backup, find_backup, list_backups, verify_backup
from app.core.engines import engine_for
from app.core.engines.postgresql import scratch
from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import BackupError

SCHEMA = """
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TABLE goals (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text NOT NULL,
                    price numeric CHECK (price > 0), mood mood);
CREATE TABLE notes (id serial PRIMARY KEY, goal_id bigint REFERENCES goals (id) ON DELETE CASCADE, body text);
CREATE INDEX notes_goal ON notes (goal_id);
CREATE VIEW busy_goals AS SELECT * FROM goals WHERE mood = 'busy';
INSERT INTO goals (title, price, mood) SELECT 'g' || i, i, 'calm' FROM generate_series(1, 500) i;
INSERT INTO notes (goal_id, body) SELECT (i % 500) + 1, 'n' || i FROM generate_series(1, 2000) i;
"""


@pytest.fixture
def target(pg_server, pg_database, pg_url):
    pg_server.psql(SCHEMA, database=pg_database)
    return engine_for(PostgresLocation(pg_url), "postgresql")


def scratch_left(pg_server) -> list[str]:
    return [name for name in pg_server.databases() if name.startswith(scratch.PREFIX)]


def test_a_backup_is_a_verified_dump_with_a_manifest_in_every_folder(target, tmp_path, pg_server):
    folders = [tmp_path / "local", tmp_path / "offsite"]
    for folder in folders:
        folder.mkdir()
    backup = create_backup(target, folders)
    assert backup.status == "verified"
    assert [path.name for path in backup.copies] == [f"{target.backup_name}.backup_{backup.id}"] * 2
    manifest = json.loads(backup.manifest_paths[0].read_text())
    assert manifest["engine"] == "postgresql" and manifest["method"] == "pg_dump"
    assert manifest["row_counts"] == {"goals": 500, "notes": 2000}
    assert manifest["source"] == target.label and "sqlite_version" not in manifest
    assert manifest["engine_facts"]["wal_lsn"] and manifest["verification"]["verified"]
    assert backup.copies[0].read_bytes()[:5] == b"PGDMP"
    assert not scratch_left(pg_server)


def test_creating_a_backup_restores_every_copy_before_calling_it_verified(target, tmp_path, pg_server, monkeypatch):
    from app.core.engines.postgresql import backups

    restored = []
    real = backups.restored
    monkeypatch.setattr(backups, "restored", lambda location, path: restored.append(path) or real(location, path))
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    backup = create_backup(target, folders)
    assert backup.status == "verified"
    assert sorted(path.parent for path in restored) == folders  # each hidden copy, before publishing


def test_listed_and_found_as_the_targets_own(target, tmp_path):
    backup = create_backup(target, [tmp_path])
    assert [b.id for b in list_backups([tmp_path], target)] == [backup.id]
    assert find_backup([tmp_path], target, backup.id).status == "verified"


def test_a_database_of_the_same_name_on_another_server_does_not_see_it(target, tmp_path, pg_server):
    create_backup(target, [tmp_path])
    elsewhere = engine_for(PostgresLocation(target.location.url.replace(str(pg_server.port), "1")), "postgresql")
    assert elsewhere.backup_name == target.backup_name
    assert list_backups([tmp_path], elsewhere) == []


def test_verify_again_restores_the_copy(target, tmp_path, pg_server):
    backup = create_backup(target, [tmp_path])
    result = verify_backup(backup, target=target)
    assert result.verified and result.copies[0].reason == "ok"
    assert not scratch_left(pg_server)


def test_a_damaged_copy_fails_verification_and_says_why(target, tmp_path, pg_server):
    backup = create_backup(target, [tmp_path])
    data = bytearray(backup.copies[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup.copies[0].write_bytes(bytes(data))
    result = verify_backup(backup, target=target)
    assert not result.verified
    assert "SHA-256" in result.copies[0].reason
    assert not scratch_left(pg_server)


def test_rows_written_while_the_dump_runs_are_not_in_it_and_the_counts_agree(target, tmp_path, pg_server,
                                                                              pg_database):
    stop = threading.Event()

    def keep_writing():
        with psycopg.connect(target.location.url, autocommit=True, application_name="shop-web") as app:
            while not stop.is_set():
                app.execute("INSERT INTO goals (title, price) VALUES ('live', 1)")

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        backup = create_backup(target, [tmp_path])
    finally:
        stop.set()
        writer.join()
    assert backup.status == "verified"  # the restored copy's counts equal the snapshot's
    assert backup.manifest.row_counts["goals"] >= 500


def test_a_missing_database_leaves_no_file(tmp_path, pg_server):
    missing = engine_for(PostgresLocation(pg_server.url("no_such_db")), "postgresql")
    with pytest.raises(Exception) as caught:
        create_backup(missing, [tmp_path])
    assert "does not exist" in str(getattr(caught.value, "message", caught.value))
    assert list(tmp_path.iterdir()) == []


def test_a_pg_dump_failure_leaves_nothing(target, tmp_path, pg_server, monkeypatch):
    from app.core.engines.postgresql import dumps

    def failing(*args, **kwargs):
        raise BackupError("pg_dump could not dump it: disk full. No backup was kept.", reason="dump_failed")

    monkeypatch.setattr(dumps, "dump", failing)
    with pytest.raises(BackupError, match="disk full"):
        create_backup(target, [tmp_path])
    assert list(tmp_path.iterdir()) == []
