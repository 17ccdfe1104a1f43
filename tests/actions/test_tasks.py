"""The migrate job (the page's, the API's and `cutover migrate`'s): a write between its backup and
its apply is refused, never committed into a production the backup no longer matches.

The job runs in this process as the CLI runs it (run_job); the application's late write is made
when the job's own log says the backup is done, or the rehearsal is.
"""
from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from app.actions.planning import start_job
from app.core.backup import list_backups
from app.jobs.runner import run_job
from tests.checklist.test_progress import save_prep_plan, targets_of


def goal_names(path) -> list[str]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return [name for (name,) in connection.execute("SELECT name FROM goals ORDER BY id")]


def write_a_goal(path) -> None:
    """What an application that was not stopped does: one more goal."""
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("INSERT INTO goals (name, type, created_at) VALUES ('written late', 'task', '2026-01-01')")
        connection.commit()


AFTER_THE_BACKUP = "the way back is ready"
AFTER_THE_REHEARSAL = "✓ Rehearsal passed"


@pytest.mark.parametrize("moment", [AFTER_THE_BACKUP, AFTER_THE_REHEARSAL], ids=["after-backup", "after-rehearsal"])
def test_a_row_written_between_the_backup_and_the_apply_refuses_the_migration(app, demo_dir, moment):
    target = demo_dir / "goals.db"
    seen = {}

    def application_writes(level: str, text: str) -> None:
        if moment in text and "bytes" not in seen:
            write_a_goal(target)
            seen["bytes"] = target.read_bytes()

    with app.app_context():
        save_prep_plan(app)
        targets = targets_of(app)
        job = start_job("migrate", targets.environment("production"), "admin", None, targets=targets, run_here=True)
        job = run_job(job.id, echo=application_writes)

        [backup] = list_backups(targets.environment("production").backup_dirs, target)
        assert job.state == "failed", job.error
        assert job.error == (
            f"{target} changed after backup {backup.id} was taken: something wrote to it since, and backup "
            f"{backup.id} does not hold that write, so rolling back to it would lose it. Nothing was migrated; "
            "the write is kept. Stop whatever writes to it, then take a new backup and migrate again.")
    assert target.read_bytes() == seen["bytes"]  # the late row is there, and nothing else changed
    assert "written late" in goal_names(target) and "written late" not in goal_names(backup.copies[0])
