"""`cutover envs / plan / rehearse / migrate` over the application's Alembic revisions, as real
subprocesses on real SQLite files (the PostgreSQL side: tests/core/revisions/test_postgresql.py)."""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests.core.revisions.alembic_fixture import copy_project, revision_text, sqlite_database, write_revision

PROJECT = Path(__file__).resolve().parents[1]


def cutover(workspace: Path, *args, environment: dict | None = None):
    env = {**os.environ, "CUTOVER_CONFIG": str(workspace / "cutover.toml"),
           "CUTOVER_INSTANCE_DIR": str(workspace / "instance"), "CUTOVER_ADMIN_PASSWORD": "cli-admin-password",
           **(environment or {})}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "run", "cutover", *args],
                          cwd=PROJECT, env=env, capture_output=True, text=True, timeout=240)


@pytest.fixture
def workspace(tmp_path):
    """development at the head; production at merge0004 with a goal that has no owner."""
    settings = copy_project(tmp_path / "app")
    sqlite_database(settings, tmp_path / "dev.db", "owner0006")
    sqlite_database(settings, tmp_path / "prod.db", "merge0004", [("ship it", "ana"), ("write docs", None)])
    (tmp_path / "cutover.toml").write_text(
        '[environments.development]\ndatabase = "dev.db"\nreference = true\n\n'
        '[environments.production]\ndatabase = "prod.db"\n\n'
        '[migration]\nalembic = "app/alembic.ini"\n')
    return tmp_path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stamp(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as connection:
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


def give_every_goal_an_owner(path: Path) -> None:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("UPDATE goals SET owner = 'nobody' WHERE owner IS NULL")
        connection.commit()


def test_envs_json_shows_each_environments_stamp_heads_and_pending(workspace):
    done = cutover(workspace, "envs", "--json")
    assert done.returncode == 0, done.stderr
    envs = {e["name"]: e for e in json.loads(done.stdout)["environments"]}
    assert envs["development"]["alembic"] == {"current": ["owner0006"], "heads": ["owner0006"], "pending": []}
    assert envs["production"]["alembic"] == {"current": ["merge0004"], "heads": ["owner0006"],
                                             "pending": ["count0005", "owner0006"]}


def test_plan_json_lists_each_revision_with_how_its_statements_were_obtained(workspace):
    done = cutover(workspace, "plan", "production", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert [r["id"] for r in document["revisions"]] == ["count0005", "owner0006"]
    first = document["revisions"][0]
    assert set(first) >= {"id", "message", "statements", "rendering", "lock_risks", "data_changes"}
    assert first["rendering"] == "reads the database: captured from the rehearsal's copy"
    assert document["complete"] is False and document["alembic"]["current"] == ["merge0004"]


def test_plan_of_offline_revisions_is_reconciled_and_exits_1_when_a_statement_would_fail(workspace):
    settings = copy_project(workspace / "other")
    sqlite_database(settings, workspace / "early.db", "base0001")
    with closing(sqlite3.connect(workspace / "early.db")) as connection:
        connection.execute("CREATE TABLE tags (id INTEGER PRIMARY KEY, label TEXT)")  # made by hand, differently
    config = workspace / "cutover.toml"
    config.write_text(config.read_text() + '\n[environments.early]\ndatabase = "early.db"\n')
    done = cutover(workspace, "plan", "early", "--to", "merge0004", "--json")
    document = json.loads(done.stdout)
    assert [r["rendering"] for r in document["revisions"]] == ["offline"] * 3
    assert document["revisions"][0]["data_changes"] is True and document["revisions"][1]["data_changes"] is False
    assert done.returncode == 1 and not document["preflight"]["ok"]
    text = cutover(workspace, "plan", "early", "--to", "merge0004")
    assert text.returncode == 1 and "Revision tags0002: tags (one side of a branch) [offline]" in text.stdout
    assert "BLOCKED CREATE TABLE tags" in text.stdout


def test_a_rehearsal_fails_on_real_data_and_never_touches_production_whatever_env_py_reads(workspace):
    production = workspace / "prod.db"
    before = digest(production)
    # The application's env.py connects to DATABASE_URL: here, production itself.
    done = cutover(workspace, "rehearse", "production", environment={"DATABASE_URL": f"sqlite:///{production}"})
    assert done.returncode == 1
    assert "revision owner0006 failed on a copy of the real data: IntegrityError: NOT NULL constraint failed" in done.stderr
    assert "production itself was not touched" in done.stderr
    assert digest(production) == before and stamp(production) == ["merge0004"]


def test_a_passing_rehearsal_leaves_production_byte_identical(workspace):
    production = workspace / "prod.db"
    before = digest(production)
    done = cutover(workspace, "rehearse", "production", "--to", "count0005",
                   environment={"DATABASE_URL": f"sqlite:///{production}"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Rehearsal passed" in done.stdout and digest(production) == before


def test_migrate_part_of_the_way_fix_the_data_then_go_on(workspace):
    production = workspace / "prod.db"
    part = cutover(workspace, "migrate", "production", "--to", "count0005", "--yes")
    assert part.returncode == 0, part.stdout + part.stderr
    assert stamp(production) == ["count0005"]
    with closing(sqlite3.connect(production)) as connection:
        assert connection.execute("SELECT value FROM settings WHERE key = 'goal_count'").fetchone() == ("2",)
    blocked = cutover(workspace, "migrate", "production", "--yes")
    assert blocked.returncode == 1 and stamp(production) == ["count0005"]
    give_every_goal_an_owner(production)
    rest = cutover(workspace, "migrate", "production", "--yes")
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert stamp(production) == ["owner0006"]
    with closing(sqlite3.connect(production)) as connection:
        assert "owner VARCHAR(100) NOT NULL" in connection.execute(
            "SELECT sql FROM sqlite_schema WHERE name = 'goals'").fetchone()[0]
        assert connection.execute("SELECT count(*) FROM goals").fetchone() == (2,)
    again = cutover(workspace, "migrate", "production", "--yes")
    assert again.returncode == 2 and "already at owner0006: there is nothing to migrate" in again.stderr


@pytest.mark.parametrize("args, message", [
    (("--to", "nope"), "Target nope: no revision has that id"),
    (("--to", "base0001"), "already past base0001"),
])
def test_a_bad_target_is_one_message_and_nothing_changes(workspace, args, message):
    production = workspace / "prod.db"
    before = digest(production)
    for command in (("plan", "production"), ("rehearse", "production"), ("migrate", "production", "--yes")):
        done = cutover(workspace, *command, *args)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    assert digest(production) == before


def test_several_heads_are_refused_with_the_way_to_merge(workspace):
    write_revision(copy_settings(workspace), "side0007_side.py", revision_text("side0007", "count0005", "pass"))
    done = cutover(workspace, "migrate", "production", "--yes")
    assert done.returncode == 2 and "alembic merge heads" in done.stderr
    assert stamp(workspace / "prod.db") == ["merge0004"]


def test_a_revision_that_does_not_import_is_one_message_and_nothing_changes(workspace):
    write_revision(copy_settings(workspace), "bad0007_bad.py", "import missing_application_module\n")
    before = digest(workspace / "prod.db")
    done = cutover(workspace, "migrate", "production", "--yes")
    assert done.returncode == 2
    assert "bad0007_bad.py: ModuleNotFoundError: No module named 'missing_application_module'" in done.stderr
    assert digest(workspace / "prod.db") == before


def test_alembic_and_plans_together_are_refused_at_load(workspace):
    config = workspace / "cutover.toml"
    config.write_text(config.read_text() + 'plans = ["x.sql"]\n')
    done = cutover(workspace, "envs")
    assert done.returncode == 2 and "names both 'plans' and 'alembic'" in done.stderr


def copy_settings(workspace: Path):
    from app.core.workspace import AlembicSettings

    return AlembicSettings(workspace / "app" / "alembic.ini", sys.executable)


def test_a_stamp_naming_no_revision_is_explained_and_nothing_changes(workspace):
    production = workspace / "prod.db"
    with closing(sqlite3.connect(production)) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'f00dcafe'")
        connection.commit()
    before = digest(production)
    done = cutover(workspace, "migrate", "production", "--yes")
    assert done.returncode == 2 and "stamped f00dcafe, which names no revision of the project" in done.stderr
    envs = {e["name"]: e for e in json.loads(cutover(workspace, "envs", "--json").stdout)["environments"]}
    assert "names no revision" in envs["production"]["alembic"]["problem"]
    assert digest(production) == before


def test_a_rehearsal_warns_when_the_stamp_lies(workspace):
    path = workspace / "app" / "migrations" / "versions" / "base0001_baseline.py"
    path.write_text(path.read_text().replace('sa.Column("owner", sa.String(100)),',
                                             'sa.Column("owner", sa.String(100)),\n        sa.Column("archived", sa.Boolean),'))
    give_every_goal_an_owner(workspace / "prod.db")
    done = cutover(workspace, "rehearse", "production")
    assert "Not what the stamp merge0004 says: column goals.archived" in done.stdout


def test_after_a_passing_rehearsal_the_plan_shows_the_captured_statements_and_migrate_captures_again(workspace):
    production = workspace / "prod.db"
    assert cutover(workspace, "rehearse", "production", "--to", "count0005").returncode == 0
    document = json.loads(cutover(workspace, "plan", "production", "--to", "count0005", "--json").stdout)
    count = document["revisions"][0]
    assert count["rendering"] == "captured from rehearsal" and document["complete"] is True
    assert count["statements"][0] == "INSERT INTO settings (key, value) VALUES ('goal_count', '2');"
    with closing(sqlite3.connect(production)) as connection:  # the data moves on after the rehearsal
        connection.execute("INSERT INTO goals (title, owner) VALUES ('one more', 'cy')")
        connection.commit()
    done = cutover(workspace, "migrate", "production", "--to", "count0005", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    with closing(sqlite3.connect(production)) as connection:
        assert connection.execute("SELECT value FROM settings WHERE key = 'goal_count'").fetchone() == ("3",)
