"""kill -9 of a checklist migrate step's worker (its whole process group) at ten points of
the migration of a ~50 MB database, chosen by watching the step's persisted log lines and
by time.

After each kill: the database is entirely the old one (SQLite's hot journal rolled back by
the next opener leaves it byte-identical, integrity ok); after a dashboard restart (a new
create_app) the step is "interrupted", never "passed"; and it can be retried to pass.

The step is launched by a dashboard process that exits at once, so no reaper thread sees
the worker die: only the restart's reconcile_jobs can tell what became of it.

Once the killed transaction had written to the file (a spilled page; the rollback then puts
the old pages back), the file is byte-identical to the run's backup but has a new mtime: the
retry proves it by SHA-256 against the backup and goes on (app/checklist/steps.py).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from app.checklist.progress import get_run, passed_result, settle
from app.core.backup import find_backup
from app.extensions import db
from app.jobs.runner import log_lines
from app.models import Job
from tests.faults.run_helpers import (
    ITEMS_PLAN,
    ITEMS_PLAN_STATEMENTS,
    Apps,
    LineWatcher,
    at_line,
    kill_group,
    launch_from_a_dashboard_that_dies,
    make_items_database,
    new_run,
    open_read_write,
    prepared_run,
    run_here,
    schema_rows,
    sha256,
    side_files,
    statements_done,
    targets_of,
    views_of,
    write_workspace,
)

ROWS, PAD_BYTES = 150_000, 300  # about 53 MB: each backfill rewrites every page

# The refusal a retry meets today when the killed attempt's rollback rewrote the file's pages
# (same bytes, new mtime): see the module docstring.


@pytest.fixture(scope="session")
def big_template(tmp_path_factory) -> tuple[Path, str, list]:
    """The old database, built once: (path, SHA-256, schema)."""
    path = make_items_database(tmp_path_factory.mktemp("step-kills") / "big.db", rows=ROWS, pad_bytes=PAD_BYTES)
    assert path.stat().st_size > 50_000_000
    return path, sha256(path), schema_rows(path)


@pytest.fixture(scope="session")
def migrated_schema(tmp_path_factory) -> list:
    """What the plan makes of the schema, from the plan applied to a small copy."""
    from app.core.migrate import apply_plan
    from app.core.plans import make_plan_set, parse_plan_text

    path = make_items_database(tmp_path_factory.mktemp("migrated") / "big.db", rows=10, pad_bytes=1)
    apply_plan(path, make_plan_set([parse_plan_text(ITEMS_PLAN, file="plan.sql")]))
    return schema_rows(path)


def after_statements(count: int):
    return lambda text, lines: statements_done(lines) == count and " … " in text


# (name, how to find the moment). A predicate watches the persisted log lines; a float is a
# fraction of the transaction's expected length (the rehearsal's apply time on a copy of the
# same file), counted from "Write lock taken".
KILL_POINTS = [
    ("write-lock-taken", at_line("Write lock taken")),
    ("integrity-before", at_line("Integrity before: quick_check ok")),
    ("after-1-statement", after_statements(1)),
    ("after-3-statements", after_statements(3)),  # the first backfill committed to the journal
    ("phase-3-header", at_line("Phase 3: Rewrite")),
    ("phase-4-header", at_line("Phase 4: Index")),
    ("integrity-after", at_line("Integrity after: quick_check ok")),
    ("just-before-commit", at_line("Foreign keys after: no new violations")),  # next: COMMIT, then "Committed"
    ("time-30%", 0.30),
    ("time-65%", 0.65),
]


def kill_at(watcher: LineWatcher, pgid: int, point, transaction_ms: float, target: Path) -> dict:
    """Wait for the point, stop the whole group there (so what is on disk at that moment can be
    looked at), then kill -9 it. Returns what was seen."""
    if isinstance(point, float):
        locked = watcher.wait_for(at_line("Write lock taken"))
        assert locked is not None, watcher.lines
        time.sleep(point * transaction_ms / 1000)
    else:
        seen = watcher.wait_for(point)
        assert seen is not None, f"the step ended ({watcher.state()}) before the point: {[r[2] for r in watcher.lines]}"
    os.killpg(pgid, signal.SIGSTOP)
    journal = Path(f"{target}-journal")
    facts = {"journal_at_kill": journal.exists(), "journal_bytes": journal.stat().st_size if journal.exists() else 0}
    kill_group(pgid)
    watcher.read_all()  # everything the worker committed before it stopped
    facts["line"] = watcher.lines[-1][2]
    return facts


@pytest.mark.slow
@pytest.mark.parametrize("name, point", KILL_POINTS, ids=[name for name, _ in KILL_POINTS])
def test_kill_9_of_the_migrate_step_leaves_the_old_database_and_an_interrupted_step(
        tmp_path, big_template, migrated_schema, name, point):
    template, old_sha, old_schema = big_template
    target = tmp_path / "big.db"
    shutil.copyfile(template, target)
    config = write_workspace(tmp_path / "workspace", target)
    apps = Apps(tmp_path, config)
    try:
        app = apps.start()
        with app.app_context():
            run = prepared_run(app)
            run_id = run.id
            transaction_ms = passed_result(run_id, "rehearse")["apply"]["duration_ms"]
            backup = find_backup(targets_of(app).environment("production").backup_dirs, target,
                                 passed_result(run_id, "backup")["backup"])
        assert sha256(target) == old_sha == backup.manifest.sha256

        job_id, pgid = launch_from_a_dashboard_that_dies(tmp_path, config, run_id, "migrate")
        watcher = LineWatcher(tmp_path / "state.db", job_id)
        try:
            facts = kill_at(watcher, pgid, point, transaction_ms, target)
            texts = [text for _, _, text in watcher.lines]
            assert watcher.state() == "running"  # nobody has looked yet: the dashboard is gone too
        finally:
            watcher.close()
        print(f"{name}: killed after {facts['line']!r}; journal then: {facts['journal_bytes']:,} bytes; "
              f"{statements_done(watcher.lines)} of {ITEMS_PLAN_STATEMENTS} statements logged")
        assert not any(text.startswith("Committed") for text in texts), texts
        if statements_done(watcher.lines) >= 1:  # the transaction had changed pages: its journal was there
            assert facts["journal_at_kill"], (
                f"no journal when the worker was stopped: COMMIT had already finished (the test reacted more "
                f"slowly than the last checks and COMMIT take on this machine): {facts}")

        # The database: the next opener rolls the hot journal back; it is the old file, byte for byte.
        assert open_read_write(target) == "ok"
        assert_no_hot_journal(target)
        assert sha256(target) == old_sha
        assert schema_rows(target) == old_schema

        # A dashboard restart: the step is interrupted, never passed, and can be started again.
        restarted = apps.start()
        with restarted.app_context():
            run = get_run(run_id)
            job = db.session.get(Job, job_id)
            assert job.state == "interrupted", job.state
            assert job.error == "The dashboard restarted or the worker was killed while this job ran."
            assert json.loads(job.result or "{}") == {}
            migrate = views_of(restarted, run)["migrate"]
            assert migrate.state == "interrupted" and migrate.startable and not migrate.satisfied
            assert run.status == "open"

            retry = run_here(restarted, run, "migrate")
            assert retry.state == "passed", retry.error
            assert_migrated(target, migrated_schema)
            views = views_of(restarted, run)
            assert views["migrate"].state == "passed"
            assert [j.state for j in views["migrate"].attempts] == ["interrupted", "passed"]
            settle(targets_of(restarted), run)
            assert run.status == "finished"
    finally:
        apps.close()


def assert_no_hot_journal(target: Path) -> None:
    """The rollback removed the hot journal. A journal whose header was never written (killed
    before its first sync: the file itself was not touched yet) is not hot: SQLite ignores it
    and the next write transaction reuses it."""
    journal = Path(f"{target}-journal")
    assert side_files(target) in ([], [journal.name])
    if journal.exists():
        assert journal.read_bytes()[:8] == bytes(8), "a hot journal (its magic number written) was left behind"


def assert_migrated(target: Path, migrated_schema: list) -> None:
    assert open_read_write(target) == "ok"
    assert schema_rows(target) == migrated_schema
    with closing(sqlite3.connect(f"file:{target}?mode=ro", uri=True)) as connection:
        total, right = connection.execute(
            "SELECT count(*), sum(doubled = n * 2 AND label = 'item ' || id AND tag = upper(tag)) FROM items").fetchone()
    assert total == right == ROWS


@pytest.mark.slow
def test_after_a_kill_mid_backfill_a_new_run_migrates(tmp_path, big_template, migrated_schema):
    """The way out the refusal above names works: abandon the run, start a new one (new
    backup, new rehearsal), and its migrate step passes on the rolled-back file."""
    template, old_sha, _ = big_template
    target = tmp_path / "big.db"
    shutil.copyfile(template, target)
    config = write_workspace(tmp_path / "workspace", target)
    apps = Apps(tmp_path, config)
    try:
        app = apps.start()
        with app.app_context():
            run_id = prepared_run(app).id
        job_id, pgid = launch_from_a_dashboard_that_dies(tmp_path, config, run_id, "migrate")
        watcher = LineWatcher(tmp_path / "state.db", job_id)
        try:
            kill_at(watcher, pgid, after_statements(3), 0, target)
        finally:
            watcher.close()
        assert open_read_write(target) == "ok" and sha256(target) == old_sha
        assert_no_hot_journal(target)

        restarted = apps.start()
        with restarted.app_context():
            from app.checklist.progress import abandon_run

            old = get_run(run_id)
            assert views_of(restarted, old)["migrate"].state == "interrupted"
            abandon_run(old, "admin", "the migrate step was killed; starting over")
            run = new_run(restarted)
            for step_id in ("backup", "rehearse", "migrate"):
                job = run_here(restarted, run, step_id)
                assert job.state == "passed", f"{step_id}: {job.error}"
            assert_migrated(target, migrated_schema)
    finally:
        apps.close()


@pytest.mark.slow
def test_a_migrate_step_cancelled_mid_backfill_rolls_back_and_can_be_retried(tmp_path, big_template, migrated_schema):
    """Cancel (SIGTERM to the group, then SIGKILL for what lingers) in the middle of the first
    backfill: the worker rolls back and records "cancelled"; the file is byte-identical; the
    step can be retried."""
    from app.checklist.progress import cancel_step, start_step

    template, old_sha, old_schema = big_template
    target = tmp_path / "big.db"
    shutil.copyfile(template, target)
    config = write_workspace(tmp_path / "workspace", target)
    apps = Apps(tmp_path, config)
    try:
        app = apps.start()
        with app.app_context():
            run = prepared_run(app)
            job = start_step(targets_of(app), run, "migrate", "admin")
            watcher = LineWatcher(tmp_path / "state.db", job.id)
            try:
                assert watcher.wait_for(at_line("Phase 2: Backfill")) is not None
            finally:
                watcher.close()
            cancelled = cancel_step(targets_of(app), run, "migrate", "admin")
            assert cancelled.state == "cancelled", cancelled.error
            texts = [line.text for line in log_lines(job.id)]
            assert not any(text.startswith("Committed") for text in texts)
            assert_no_hot_journal(target)
            assert sha256(target) == old_sha and schema_rows(target) == old_schema
            assert views_of(app, run)["migrate"].state == "cancelled"

            retry = run_here(app, run, "migrate")
            assert retry.state == "passed", retry.error
            assert_migrated(target, migrated_schema)
    finally:
        apps.close()
