"""`cutover move` as a real subprocess against real SQLite files and a real PostgreSQL server: its
contracts (exit codes, JSON keys), its refusals (each leaves both sides as they were) and the
January 2026 story replayed."""
import hashlib
import json
import sqlite3
from contextlib import closing

import psycopg
import pytest

from tests.core.move.conftest import POSTGRES_SCHEMA, count_all, make_source, move_workspace
from tests.test_cli import cli

EMPTY = {"users": 0, "goals": 0, "notes": 0}


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def setup(tmp_path, pg_server, pg_database):
    return move_workspace(tmp_path, pg_server, pg_database)


def test_preflight_json_names_every_reject_and_exits_1(tmp_path, setup, pg_server, pg_database):
    config, source = setup
    before = sha(source)
    result = cli(tmp_path, config, "move", "production", "postgres", "--preflight", "--json")
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert {"tables", "unmapped_columns", "missing_tables"} <= set(document)
    goals = next(table for table in document["tables"] if table["name"] == "goals")
    assert goals["rows"] == 9
    orphan = next(r for r in goals["rejects"] if r["reason"] == "foreign_key_orphan")
    assert orphan["count"] == 1 and orphan["examples"][0]["key"] == {"id": 10}
    assert set(orphan) >= {"reason", "count", "examples"}
    assert sha(source) == before and count_all(pg_server, pg_database) == EMPTY


def test_preflight_text_exits_0_on_clean_data(tmp_path, pg_server, pg_database):
    pg_server.psql(POSTGRES_SCHEMA, database=pg_database)
    source = make_source(tmp_path / "clean.db")
    config = tmp_path / "cutover.toml"
    config.write_text(f'[environments.app]\ndatabase = "{source}"\nreference = true\n')
    result = cli(tmp_path, config, "move", str(source), pg_server.url(pg_database), "--preflight")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every row can be moved" in result.stdout and "integers 0/1 to boolean" in result.stdout


def test_preflight_text_names_what_only_the_server_checks(tmp_path, pg_server, pg_database):
    pg_server.psql(POSTGRES_SCHEMA + "ALTER TABLE notes ADD CONSTRAINT notes_body_short CHECK (length(body) < 100);",
                   database=pg_database)
    source = make_source(tmp_path / "clean.db")
    config = tmp_path / "cutover.toml"
    config.write_text(f'[environments.app]\ndatabase = "{source}"\nreference = true\n')
    result = cli(tmp_path, config, "move", str(source), pg_server.url(pg_database), "--preflight")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked by the server, not by preflight: notes.notes_body_short CHECK ((length(body) < 100))" \
        in result.stdout


def test_yes_refuses_while_rows_would_be_rejected(tmp_path, setup, pg_server, pg_database):
    config, source = setup
    before = sha(source)
    result = cli(tmp_path, config, "move", "production", "postgres", "--yes")
    assert result.returncode == 1
    assert "12 rows cannot be moved" in result.stderr and "--quarantine FILE" in result.stderr
    assert sha(source) == before and count_all(pg_server, pg_database) == EMPTY


def test_yes_with_a_quarantine_moves_the_rest_and_reconciles(tmp_path, setup, pg_server, pg_database):
    config, source = setup
    quarantine = tmp_path / "rejected.db"
    result = cli(tmp_path, config, "move", "production", "postgres", "--yes", "--quarantine", str(quarantine),
                 "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["moved"] == 7 and report["quarantined"] == 12
    assert count_all(pg_server, pg_database) == {"users": 2, "goals": 3, "notes": 2}
    with closing(sqlite3.connect(quarantine)) as connection:
        assert connection.execute("SELECT count(*) FROM rejected_rows").fetchone()[0] == 12


def test_a_quarantine_that_exists_is_refused(tmp_path, setup, pg_server, pg_database):
    config, source = setup
    quarantine = tmp_path / "old.db"
    quarantine.write_bytes(b"earlier rejects")
    result = cli(tmp_path, config, "move", "production", "postgres", "--yes", "--quarantine", str(quarantine))
    assert result.returncode == 1 and "already exists" in result.stderr
    assert quarantine.read_bytes() == b"earlier rejects" and count_all(pg_server, pg_database) == EMPTY


def test_a_target_that_is_not_empty_is_refused(tmp_path, setup, pg_server, pg_database):
    config, _ = setup
    pg_server.psql("INSERT INTO users (email, active, created_at) VALUES ('x@x', true, now())", database=pg_database)
    result = cli(tmp_path, config, "move", "production", "postgres", "--yes", "--quarantine", str(tmp_path / "q.db"))
    assert result.returncode == 1 and "target table users is not empty" in result.stderr
    assert count_all(pg_server, pg_database) == {"users": 1, "goals": 0, "notes": 0}
    assert not (tmp_path / "q.db").exists()


def test_a_schema_mismatch_is_named_column_by_column(tmp_path, pg_server, pg_database):
    pg_server.psql(POSTGRES_SCHEMA + "ALTER TABLE goals ADD COLUMN owner text NOT NULL;", database=pg_database)
    source = make_source(tmp_path / "app.db")
    config = tmp_path / "cutover.toml"
    config.write_text(f'[environments.app]\ndatabase = "{source}"\nreference = true\n')
    result = cli(tmp_path, config, "move", "app", pg_server.url(pg_database), "--yes")
    assert result.returncode == 1
    assert "goals.owner: the target requires a value (text NOT NULL, no default)" in result.stderr
    assert count_all(pg_server, pg_database) == EMPTY


def test_a_source_that_is_not_sqlite_is_refused(tmp_path, setup, pg_server, pg_database):
    config, _ = setup
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 20)
    result = cli(tmp_path, config, "move", str(text), "postgres", "--preflight")
    assert result.returncode == 1 and "not a SQLite database" in result.stderr
    assert text.read_text() == "not a database\n" * 20 and count_all(pg_server, pg_database) == EMPTY
    both_postgres = cli(tmp_path, config, "move", "postgres", "postgres", "--preflight")
    assert both_postgres.returncode == 2 and "The source must be a SQLite database" in both_postgres.stderr


def test_a_target_that_is_not_postgresql_is_refused(tmp_path, setup):
    config, source = setup
    before = sha(source)
    result = cli(tmp_path, config, "move", "production", "production", "--yes")
    assert result.returncode == 2 and "The target must be a PostgreSQL database" in result.stderr
    assert sha(source) == before


def test_neither_preflight_nor_yes_is_a_usage_error(tmp_path, setup):
    config, _ = setup
    result = cli(tmp_path, config, "move", "production", "postgres")
    assert result.returncode == 2 and "--preflight" in result.stderr


def naive_script(source, url) -> tuple[int, int]:
    """What the application did in January 2026: each row inserted and committed alone, failures skipped."""
    inserted = failed = 0
    with closing(sqlite3.connect(source)) as lite, psycopg.connect(url, autocommit=True) as pg:
        for table in ("users", "goals", "notes"):
            cursor = lite.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cursor.description]
            for row in cursor:
                try:
                    pg.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})",
                               [bool(v) if n in ("active", "done") and v in (0, 1) else v for n, v in zip(names, row)])
                    inserted += 1
                except psycopg.Error:
                    failed += 1
    return inserted, failed


def test_the_story_a_naive_script_loses_rows_cutover_names_each_one(tmp_path, setup, pg_server, pg_database):
    config, source = setup
    scratch = pg_server.create_database("naive")
    try:
        pg_server.psql(POSTGRES_SCHEMA, database=scratch)
        inserted, failed = naive_script(source, pg_server.url(scratch))
        assert (inserted, failed) == (7, 12)  # 12 rows silently gone, the target half-filled
        again = naive_script(source, pg_server.url(scratch))
        assert again == (0, 19)  # a re-run: "0 inserted, 19 failed"
    finally:
        pg_server.drop_database(scratch)
    refused = cli(tmp_path, config, "move", "production", "postgres", "--yes")
    assert refused.returncode == 1 and count_all(pg_server, pg_database) == EMPTY
    preflight = json.loads(cli(tmp_path, config, "move", "production", "postgres", "--preflight", "--json").stdout)
    assert sum(r["count"] for t in preflight["tables"] for r in t["rejects"]) == 12
    moved = cli(tmp_path, config, "move", "production", "postgres", "--yes", "--quarantine", str(tmp_path / "q.db"))
    assert moved.returncode == 0, moved.stderr
    assert "7 rows" in moved.stdout.replace(",", "") and "12 rows quarantined" in moved.stdout


def test_a_column_the_target_lacks_needs_a_decision_then_moves(tmp_path, pg_server, pg_database):
    pg_server.psql(POSTGRES_SCHEMA, database=pg_database)
    schema = ("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, active INTEGER, created_at TEXT, legacy TEXT);"
              "CREATE TABLE scratch (id INTEGER PRIMARY KEY);")
    source = make_source(tmp_path / "app.db", "INSERT INTO users VALUES (1, 'a@a', 1, '2026-01-01', 'old');", schema)
    config = tmp_path / "cutover.toml"
    config.write_text(f'[environments.app]\ndatabase = "{source}"\nreference = true\n')
    url = pg_server.url(pg_database)
    refused = cli(tmp_path, config, "move", "app", url, "--yes")
    assert refused.returncode == 1
    assert "source column users.legacy has no column in the target" in refused.stderr
    assert "source table scratch has no table in the target (add it, or --drop scratch)" in refused.stderr
    assert count_all(pg_server, pg_database) == EMPTY
    moved = cli(tmp_path, config, "move", "app", url, "--yes", "--drop", "users.legacy", "--drop", "scratch")
    assert moved.returncode == 0, moved.stderr
    assert count_all(pg_server, pg_database) == {"users": 1, "goals": 0, "notes": 0}


def test_a_row_the_server_refuses_mid_copy_is_one_clear_error_and_nothing_is_left(tmp_path, pg_server, pg_database):
    pg_server.psql(POSTGRES_SCHEMA + "ALTER TABLE goals ADD CONSTRAINT title_not_blank CHECK (title <> '');",
                   database=pg_database)
    source = make_source(tmp_path / "app.db", "INSERT INTO users VALUES (1, 'a@a', 1, '2026-01-01');"
                                              "INSERT INTO goals VALUES (1, 1, NULL, '', 0, NULL, NULL);")
    config = tmp_path / "cutover.toml"
    config.write_text(f'[environments.app]\ndatabase = "{source}"\nreference = true\n')
    result = cli(tmp_path, config, "move", "app", pg_server.url(pg_database), "--yes")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "title_not_blank" in result.stderr and "rolled back" in result.stderr
    assert count_all(pg_server, pg_database) == EMPTY
