"""What the checklist's step kinds do on the demo workspace, above all what the mutating
ones refuse: migrate and hotfix re-check their gates when they execute, and every refusal
or failure leaves the target database byte-for-byte as it was.

Real files, real SQLite locks; the steps run in this process (run_here) as the CLI runs them.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from contextlib import closing
from pathlib import Path

from sqlalchemy import select

from app.actions.planning import start_job
from app.checklist.progress import abandon_run, create_run, get_run
from app.core.backup import find_backup
from app.extensions import db
from app.jobs.runner import create_job, log_lines, run_job
from app.models import Job
from tests.checklist.test_progress import build_app, passes, run_step, save_prep_plan, targets_of, views_of  # noqa: F401

BACKUP_REHEARSE_MIGRATE = """
[checklist]
order = ["backup", "rehearse", "migrate"]
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def production(demo_dir: Path) -> Path:
    return demo_dir / "goals.db"


def write_a_row(path: Path) -> None:
    """What an application left running does: one more goal."""
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("INSERT INTO goals (name, type, created_at) VALUES ('written late', 'task', '2026-01-01')")
        connection.commit()


def new_run(app):
    targets = targets_of(app)
    return create_run(targets, targets.environment("production"), "admin")


def migrate_jobs(run) -> list[Job]:
    return list(db.session.scalars(select(Job).where(Job.run_id == run.id, Job.step == "migrate")))


# --------------------------------------------------------------------------- migrate's own gates


def test_migrate_needs_this_runs_backup(build_app, demo_dir):
    """A verified backup taken outside the run does not count: the run needs its own."""
    app = build_app("""
    [checklist]
    order = ["verify-target", "backup", "rehearse", "migrate"]
    [checklist.steps.rehearse]
    requires = ["verify-target"]
    [checklist.steps.migrate]
    requires = ["rehearse"]
    """)
    with app.app_context():
        outside = run_job(create_job("backup", "production", "admin").id)
        assert outside.state == "passed", outside.error
        save_prep_plan(app)
        run = new_run(app)
        passes(app, run, "verify-target")
        passes(app, run, "rehearse")
        assert views_of(app, run)["backup"].state == "ready"  # never run in this run
        before = digest(production(demo_dir))
        job = run_step(app, run, "migrate")
        assert job.state == "failed" and job.error == "This run has no passed backup step."
        assert digest(production(demo_dir)) == before
        assert views_of(app, run)["migrate"].state == "failed"


def test_migrate_needs_this_runs_passing_rehearsal(build_app, demo_dir):
    app = build_app("""
    [checklist]
    order = ["backup", "rehearse", "migrate"]
    [checklist.steps.migrate]
    requires = ["backup"]
    """)
    with app.app_context():
        targets = targets_of(app)
        env = targets.environment("production")
        run = new_run(app)
        passes(app, run, "backup")
        before = digest(production(demo_dir))

        job = run_step(app, run, "migrate")  # nothing rehearsed at all
        assert job.state == "failed" and job.error == "This run has no passing rehearsal."
        assert run_step(app, run, "rehearse").state == "failed"  # the drift
        job = run_step(app, run, "migrate")
        assert job.state == "failed" and job.error == "This run has no passing rehearsal."

        save_prep_plan(app)  # a passing rehearsal outside the run does not count either
        outside = start_job("rehearse", env, "admin", None, targets=targets, run_here=True)
        assert run_job(outside.id).state == "passed"
        job = run_step(app, run, "migrate")
        assert job.state == "failed" and job.error == "This run has no passing rehearsal."
        assert digest(production(demo_dir)) == before

        passes(app, run, "rehearse")
        job = run_step(app, run, "migrate")
        assert job.state == "passed", job.error
        assert digest(production(demo_dir)) != before
        assert [j.state for j in migrate_jobs(run)] == ["failed", "failed", "failed", "passed"]


def test_migrate_refuses_a_backup_that_no_longer_verifies(build_app, demo_dir):
    app = build_app(BACKUP_REHEARSE_MIGRATE)
    with app.app_context():
        save_prep_plan(app)
        run = new_run(app)
        backup_id = passes(app, run, "backup").result_document["backup"]
        passes(app, run, "rehearse")
        env = targets_of(app).environment("production")
        copy = find_backup(env.backup_dirs, env.target, backup_id).copies[-1]
        data = bytearray(copy.read_bytes())
        data[len(data) // 2] ^= 0xFF
        copy.write_bytes(bytes(data))

        before = digest(production(demo_dir))
        job = run_step(app, run, "migrate")
        assert job.state == "failed"
        assert job.error == (f"Backup {backup_id} no longer verifies: without a sound way back nothing is migrated.")
        assert any(line.level == "error" and str(copy) in line.text for line in log_lines(job.id))
        assert digest(production(demo_dir)) == before


# --------------------------------------------------------------------------- data safety


def test_migrate_refuses_a_target_written_after_the_backup(build_app, demo_dir):
    app = build_app(BACKUP_REHEARSE_MIGRATE)
    with app.app_context():
        save_prep_plan(app)
        run = new_run(app)
        backup_id = passes(app, run, "backup").result_document["backup"]
        passes(app, run, "rehearse")
        write_a_row(production(demo_dir))
        before = production(demo_dir).read_bytes()

        job = run_step(app, run, "migrate")
        assert job.state == "failed"
        assert job.error == (f"{production(demo_dir)} changed after backup {backup_id} was taken: something wrote "
                             f"to it since, and backup {backup_id} does not hold that write, so rolling back to it "
                             "would lose it. Nothing was migrated; the write is kept. This run's backup and "
                             "rehearsal no longer describe it: abandon this run and start a new one.")
        assert production(demo_dir).read_bytes() == before
        assert not Path(f"{production(demo_dir)}-journal").exists()
        assert run_step(app, run, "migrate").error == job.error  # a retry cannot get round it
        assert production(demo_dir).read_bytes() == before

        abandon_run(run, "admin", "production was written to after the backup")
        assert get_run(run.id).status == "abandoned"


def test_a_failing_migration_leaves_the_target_byte_identical(build_app, demo_dir):
    """The statements run, then COMMIT cannot get the lock (a reader holds the file): all rolled back."""
    app = build_app(BACKUP_REHEARSE_MIGRATE)
    with app.app_context():
        save_prep_plan(app)
        run = new_run(app)
        backup_id = passes(app, run, "backup").result_document["backup"]
        passes(app, run, "rehearse")
        before = production(demo_dir).read_bytes()
        with closing(sqlite3.connect(production(demo_dir), isolation_level=None)) as reader:
            reader.execute("BEGIN")
            assert reader.execute("SELECT COUNT(*) FROM goals").fetchone()[0] > 0  # holds a shared lock
            job = run_step(app, run, "migrate")
            assert job.state == "failed"
            assert "kept the migration from committing" in job.error and job.error.endswith(
                f"The database is unchanged; backup {backup_id} is verified.")
            reader.execute("ROLLBACK")
        assert production(demo_dir).read_bytes() == before
        assert not Path(f"{production(demo_dir)}-journal").exists()
        view = views_of(app, run)["migrate"]
        assert view.state == "failed" and view.startable

        job = run_step(app, run, "migrate")  # nothing changed, so the retry is allowed and commits
        assert job.state == "passed", job.error
        assert production(demo_dir).read_bytes() != before


def test_hotfix_refuses_a_plan_changed_since_the_rehearsal(build_app, demo_dir):
    """Even when the gate is configured open, the hotfix applies only the plan that was rehearsed."""
    app = build_app("""
    [checklist]
    order = ["backup", "rehearse", "migrate", "hotfix"]
    [checklist.steps.rehearse]
    signoff = false
    [checklist.steps.hotfix]
    plans = ["plans/hotfix_activity_instances.sql"]
    requires = ["migrate"]
    """)
    with app.app_context():
        save_prep_plan(app)
        run = new_run(app)
        for step in ("backup", "rehearse", "migrate"):
            passes(app, run, step)
        plan = demo_dir / "plans" / "hotfix_activity_instances.sql"
        plan.write_text(plan.read_text() + "\nCREATE INDEX cutover_unrehearsed ON goals (name);\n")
        before = production(demo_dir).read_bytes()

        job = run_step(app, run, "hotfix")
        assert job.state == "failed"
        assert "changed since this run's rehearsal" in job.error
        assert production(demo_dir).read_bytes() == before
        with closing(sqlite3.connect(production(demo_dir))) as connection:
            index = connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'cutover_unrehearsed'").fetchone()
        assert index is None


# --------------------------------------------------------------------------- before


def test_verify_target_refuses_production_pointing_at_developments_file(build_app, demo_dir):
    app = build_app()
    with app.app_context():
        run = new_run(app)
        development = demo_dir / "goals_dev.db"
        dev_before = digest(development)
        production(demo_dir).unlink()  # someone "fixed" production with a symlink after start-up
        os.symlink(development, production(demo_dir))

        job = run_step(app, run, "verify-target")
        assert job.state == "failed"
        assert job.error == (f"production's path {production(demo_dir)} is the same file as development's "
                             f"({development}). Fix environments.production.database before migrating.")
        assert digest(development) == dev_before
        views = views_of(app, run)
        assert views["verify-target"].state == "failed" and views["app-stopped"].state == "blocked"


def test_verify_target_records_what_it_checked(build_app, demo_dir):
    app = build_app()
    with app.app_context():
        run = new_run(app)
        job = run_step(app, run, "verify-target")
        assert job.state == "passed", job.error
        result = job.result_document
        assert result["resolved"] == str(production(demo_dir).resolve())
        assert result["size_bytes"] == production(demo_dir).stat().st_size and len(result["fingerprint"]) == 64
        texts = [line.text for line in log_lines(job.id)]
        assert f"✓ not development's database ({demo_dir / 'goals_dev.db'})" in texts
