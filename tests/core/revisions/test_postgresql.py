"""Alembic revisions as plans on a real PostgreSQL database: rendered offline, captured on a clone,
rehearsed on a clone, applied in one transaction under the migration's timeouts and lock."""
from __future__ import annotations

import json

import psycopg
import pytest

from tests.core.revisions.alembic_fixture import alembic_upgrade, copy_project, revision_text, write_revision
from tests.test_cli_alembic import copy_settings as settings_of
from tests.test_cli_alembic import cutover

pytestmark = pytest.mark.slow


def driver_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchall()


@pytest.fixture
def workspace(tmp_path, pg_server, pg_url):
    """production: a PostgreSQL database at merge0004 whose goals have no owner for one row."""
    settings = copy_project(tmp_path / "app")
    alembic_upgrade(settings, driver_url(pg_url), "merge0004")
    with psycopg.connect(pg_url) as connection:
        connection.execute("INSERT INTO goals (title, owner) VALUES ('ship it', 'ana'), ('write docs', NULL)")
    (tmp_path / "cutover.toml").write_text(
        f'[environments.production]\nurl = "{pg_url}"\n\n[migration]\nalembic = "app/alembic.ini"\n')
    return tmp_path


def stamp(url: str) -> list[str]:
    return [row[0] for row in query(url, "SELECT version_num FROM alembic_version")]


def test_envs_and_plan_on_postgresql(workspace, pg_url):
    envs = json.loads(cutover(workspace, "envs", "--json").stdout)["environments"]
    assert envs[0]["alembic"] == {"current": ["merge0004"], "heads": ["owner0006"],
                                  "pending": ["count0005", "owner0006"]}
    done = cutover(workspace, "plan", "production", "--to", "owner0006", "--json")
    revisions = {r["id"]: r for r in json.loads(done.stdout)["revisions"]}
    assert revisions["count0005"]["rendering"] == "reads the database: captured from the rehearsal's copy"
    owner = revisions["owner0006"]
    assert owner["rendering"] == "offline"
    assert owner["statements"][0] == "ALTER TABLE goals ALTER COLUMN owner SET NOT NULL;"
    assert [risk["kind"] for risk in owner["lock_risks"]] == ["not_null_scan"]


def test_a_rehearsal_on_postgresql_fails_on_real_data_and_production_keeps_its_stamp(workspace, pg_url):
    before = query(pg_url, "SELECT id, title, owner FROM goals ORDER BY id")
    done = cutover(workspace, "rehearse", "production", environment={"DATABASE_URL": driver_url(pg_url)})
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'column "owner" of relation "goals" contains null values' in done.stdout + done.stderr
    assert stamp(pg_url) == ["merge0004"]
    assert query(pg_url, "SELECT id, title, owner FROM goals ORDER BY id") == before
    assert query(pg_url, "SELECT count(*) FROM settings") == [(1,)]


def test_migrate_on_postgresql_part_of_the_way_then_on(workspace, pg_url):
    part = cutover(workspace, "migrate", "production", "--to", "count0005", "--yes")
    assert part.returncode == 0, part.stdout + part.stderr
    assert stamp(pg_url) == ["count0005"]
    assert query(pg_url, "SELECT value FROM settings WHERE key = 'goal_count'") == [("2",)]
    blocked = cutover(workspace, "migrate", "production", "--yes")
    assert blocked.returncode == 1 and stamp(pg_url) == ["count0005"]
    with psycopg.connect(pg_url) as connection:
        connection.execute("UPDATE goals SET owner = 'nobody' WHERE owner IS NULL")
    rest = cutover(workspace, "migrate", "production", "--yes")
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert stamp(pg_url) == ["owner0006"]
    assert query(pg_url, "SELECT is_nullable FROM information_schema.columns "
                         "WHERE table_name = 'goals' AND column_name = 'owner'") == [("NO",)]


CONCURRENT_INDEX = ('with op.get_context().autocommit_block():\n'
                    '    op.create_index("ix_goals_owner", "goals", ["owner"], postgresql_concurrently=True)')


def test_a_revision_outside_the_transaction_runs_last_after_the_commit(workspace, pg_url):
    with psycopg.connect(pg_url) as connection:
        connection.execute("UPDATE goals SET owner = 'nobody' WHERE owner IS NULL")
    write_revision(settings_of(workspace), "conc0007_index.py", revision_text("conc0007", "owner0006", CONCURRENT_INDEX))
    plan = json.loads(cutover(workspace, "plan", "production", "--json").stdout)
    index = plan["revisions"][-1]
    assert index["id"] == "conc0007" and index["transactional"] is False
    assert index["statements"][0] == "CREATE INDEX CONCURRENTLY ix_goals_owner ON goals (owner);"
    done = cutover(workspace, "migrate", "production", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "each statement commits on its own; this part is NOT atomic" in done.stdout + done.stderr
    assert stamp(pg_url) == ["conc0007"]
    assert query(pg_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_goals_owner'::regclass") == [(True,)]


def test_a_revision_outside_the_transaction_with_revisions_after_it_is_refused(workspace, pg_url):
    write_revision(settings_of(workspace), "conc0007_index.py", revision_text("conc0007", "owner0006", CONCURRENT_INDEX))
    write_revision(settings_of(workspace), "tail0008_tail.py", revision_text("tail0008", "conc0007", 'op.add_column("tags", sa.Column("color", sa.String(7)))'))
    done = cutover(workspace, "plan", "production")
    assert done.returncode == 2
    assert "conc0007 cannot run inside a transaction, so it would run after the commit of the others, but " \
           "tail0008 come after it" in done.stderr
    assert stamp(pg_url) == ["merge0004"]


def test_the_version_table_and_schema_named_in_alembic_ini_are_honoured_from_an_empty_database(
        tmp_path, pg_server, pg_url):
    settings = copy_project(tmp_path / "app")
    settings.ini.write_text(settings.ini.read_text().replace(
        "[alembic]\n", "[alembic]\nversion_table = app_versions\nversion_table_schema = meta\n"))
    with psycopg.connect(pg_url) as connection:
        connection.execute("CREATE SCHEMA meta")
    (tmp_path / "cutover.toml").write_text(
        f'[environments.production]\nurl = "{pg_url}"\n\n[migration]\nalembic = "app/alembic.ini"\n')
    listed = cutover(tmp_path, "envs", "--json")
    assert listed.returncode == 0, listed.stderr
    envs = json.loads(listed.stdout)["environments"]
    assert envs[0]["alembic"]["current"] == [] and len(envs[0]["alembic"]["pending"]) == 6
    done = cutover(tmp_path, "migrate", "production", "--to", "merge0004", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert query(pg_url, "SELECT version_num FROM meta.app_versions") == [("merge0004",)]
    assert query(pg_url, "SELECT to_regclass('public.alembic_version') IS NULL") == [(True,)]
    envs = json.loads(cutover(tmp_path, "envs", "--json").stdout)["environments"]
    assert envs[0]["alembic"]["current"] == ["merge0004"]
    plan = json.loads(cutover(tmp_path, "plan", "production", "--json").stdout)
    assert plan["stamp"] == {"revision": "merge0004", "matches": True, "differences": []}


def test_an_online_environment_refuses_statements_captured_from_a_copy(workspace, pg_url):
    config = workspace / "cutover.toml"
    config.write_text(config.read_text().replace(f'url = "{pg_url}"\n', f'url = "{pg_url}"\nonline = true\n'))
    done = cutover(workspace, "migrate", "production", "--yes")
    assert done.returncode == 2
    assert "declared online, and revisions count0005 read the database" in done.stderr
    assert stamp(pg_url) == ["merge0004"]


READS_AND_WRITES_VALUES = '''rows = op.get_bind().execute(sa.text("SELECT title FROM goals WHERE title LIKE 'ship%'")).fetchall()
settings = sa.table("settings", sa.column("key"), sa.column("value"))
op.bulk_insert(settings, [{"key": "it's 100%", "value": None}, {"key": "n", "value": str(len(rows))}])
op.execute("UPDATE settings SET value = 'x%' WHERE key = 'n'")'''


def test_captured_values_are_written_as_literals_quotes_and_percent_signs_included(workspace, pg_url, tmp_path):
    from app.core.engines import engine_for
    from app.core.revisions.compiling import capture_plan, render_plan
    from app.core.revisions.graph import read_graph

    settings = settings_of(workspace)
    write_revision(settings, "vals0007_values.py", revision_text("vals0007", "owner0006", READS_AND_WRITES_VALUES))
    with psycopg.connect(pg_url) as connection:
        connection.execute("UPDATE goals SET owner = 'nobody' WHERE owner IS NULL")
    alembic_upgrade(settings, driver_url(pg_url), "owner0006")
    engine, graph = engine_for(pg_url, "postgresql"), read_graph(settings)
    plan = render_plan(settings, engine, graph, ("owner0006",), "vals0007")
    with engine.rehearsal_copy(workdir=tmp_path, busy_timeout=1.0, say=lambda text: None) as copy:
        captured = capture_plan(settings, copy, graph, plan)
    assert captured.revisions[0].statements[:3] == (
        "INSERT INTO settings (key, value) VALUES ('it''s 100%', NULL);",
        "INSERT INTO settings (key, value) VALUES ('n', '1');",
        "UPDATE settings SET value = 'x%' WHERE key = 'n';")
