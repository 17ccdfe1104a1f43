"""The move checklist ([checklist] kind = "move"): parsed from cutover.toml, run headless end to end on
a real SQLite file and a real PostgreSQL database, shown on the run's page."""
import sqlite3
from contextlib import closing

import pytest

from app.core.checklist import MOVE_STEPS, parse_checklist
from app.core.errors import ConfigError
from tests.conftest import log_in, make_app
from tests.core.move.conftest import count_all, move_workspace
from tests.test_cli import cli

MOVE_CHECKLIST = """
[verification]
monitor_hours = 0.0005
monitor_interval_minutes = 0.005

[checklist]
kind = "move"
source = "production"
quarantine = "rejected.db"

[checklist.steps.switch-url]
argv = ["/bin/sh", "-c", "echo DATABASE_URL=postgresql://app/db > app.env"]
cwd = "."
"""


def parse(raw):
    return parse_checklist("cutover.toml", raw, (), lambda p: p)


def test_a_move_checklist_has_the_move_steps_in_order():
    checklist = parse({"kind": "move", "source": "production", "quarantine": "q.db",
                       "steps": {"switch-url": {"argv": ["/bin/true"]}}})
    assert checklist.ids() == ["move-targets", "app-stopped", "move-backup", "move-preflight", "move-copy",
                               "move-verify", "switch-url", "start-app", "smoke", "monitor"]
    assert checklist.move.source == "production" and checklist.move.quarantine == "q.db"
    assert checklist.step("switch-url").kind == "command" and checklist.step("move-preflight").signoff
    assert [step.id for step in MOVE_STEPS] == checklist.ids()


@pytest.mark.parametrize("raw, words", [
    ({"kind": "move"}, "needs 'checklist.source'"),
    ({"kind": "move", "source": "p"}, "'checklist.steps.switch-url.argv' must be a non-empty list"),
    ({"kind": "moving"}, "'checklist.kind' must be one of production, move"),
    ({"source": "p"}, "'checklist.source' is only for kind = \"move\""),
    ({"kind": "move", "source": "p", "order": ["move-copy"]}, "needs a move-backup step before it"),
])
def test_mistakes_in_a_move_checklist_are_named(raw, words):
    with pytest.raises(ConfigError) as refused:
        parse(raw)
    assert words in refused.value.message


@pytest.fixture
def move_config(tmp_path, pg_server, pg_database):
    return move_workspace(tmp_path, pg_server, pg_database, MOVE_CHECKLIST)


def test_the_move_checklist_runs_headless_end_to_end(tmp_path, move_config, pg_server, pg_database):
    config, source = move_config
    done = cli(tmp_path, config, "run-checklist", "postgres", "--yes")
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "every target table is empty" in said and "12 rows will go to the quarantine" in said
    assert "✓ moved + quarantined = source rows" in said
    assert count_all(pg_server, pg_database) == {"users": 2, "goals": 3, "notes": 2}
    with closing(sqlite3.connect(tmp_path / "rejected.db")) as connection:
        assert connection.execute("SELECT count(*) FROM rejected_rows").fetchone()[0] == 12
    assert (tmp_path / "app.env").read_text() == "DATABASE_URL=postgresql://app/db\n"
    app = make_app(tmp_path, config, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'instance' / 'cutover.db'}")
    client = app.test_client()
    log_in(client, password="cli-admin-password")
    page = client.get("/runs/1")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Preflight every row" in text and "Copy in one transaction" in text
    report = client.get("/runs/1/report").get_data(as_text=True)
    for criterion in ("Every row moved or quarantined", "Rows equal their source", "Source unchanged",
                      "Application switched"):
        assert criterion in report
    assert "Migration completed" not in report and "No backup was taken" not in report
    backup_id = next(line for line in said.splitlines() if "✓ Backup" in line).split()[2]
    backup_sha256 = next(line for line in said.splitlines() if "✓ Backup" in line).split("sha256 ")[1].strip()
    assert backup_id in report and backup_sha256 in report  # the source's backup, with its manifest's facts
    assert "matched them column by column" in report
    markdown = client.get("/runs/1/report.md").get_data(as_text=True)
    assert "| Table | Source | Target | Change | Quarantined |" in markdown and "| `users` | 6 | 2 | -4 | -4 |" in markdown
    from app.extensions import db
    with app.app_context():
        db.engine.dispose()


def test_without_a_quarantine_the_preflight_stops_the_run_before_anything_is_written(tmp_path, move_config,
                                                                                      pg_server, pg_database):
    config, source = move_config
    config.write_text(config.read_text().replace('quarantine = "rejected.db"\n', ""))
    stopped = cli(tmp_path, config, "run-checklist", "postgres", "--yes")
    assert stopped.returncode == 1
    assert "12 rows cannot be moved" in stopped.stdout + stopped.stderr
    assert count_all(pg_server, pg_database) == {"users": 0, "goals": 0, "notes": 0}


def test_the_dashboard_sends_the_empty_target_to_the_move_then_has_nothing_to_move(tmp_path, move_config,
                                                                                 pg_server, pg_database):
    config, source = move_config
    app = make_app(tmp_path, config, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'instance' / 'cutover.db'}")
    client = app.test_client()
    log_in(client)
    before = client.get("/").get_data(as_text=True)
    assert "Start the move" in before and "Compare it first" not in before
    moved = cli(tmp_path, config, "move", "production", "postgres", "--yes", "--quarantine", str(tmp_path / "q.db"))
    assert moved.returncode == 0, moved.stdout + moved.stderr
    after = client.get("/?refresh=1").get_data(as_text=True)
    assert "Nothing to move" in after and "Start the move" not in after
    from app.extensions import db
    with app.app_context():
        db.engine.dispose()
