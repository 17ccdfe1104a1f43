"""Checklist runs on the demo workspace: gates, sign-offs, approvals, one active step,
cancel, restart, the audit chain, and the whole demo checklist end to end.

Real SQLite files in tmp_path, real worker processes, real signals; no mocks. The demo's
production is drifted, so its rehearsal fails until the prep plan is saved.
"""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app.actions.monitoring import tick_window
from app.actions.planning import make_prep, save_prep
from app.audit import verify_chain
from app.auth_setup import create_operator
from app.checklist.progress import create_run, get_run, settle, sign_off, start_step, step_views
from app.checklist.report_facts import markdown_report, report_facts
from app.core.errors import Conflict
from app.extensions import db
from app.jobs.runner import living_group_members, log_lines, process_alive
from app.models import OPEN_RUN, AuditEntry, Job, Run
from tests.conftest import make_app

REPO = Path(__file__).resolve().parents[2]
DEMO_CHECKLIST = '[checklist.steps.hotfix]\nplans = ["plans/hotfix_activity_instances.sql"]\n'
FINAL = ("passed", "failed", "cancelled", "interrupted")


# --------------------------------------------------------------------------- helpers


def configure(config: Path, checklist: str | None = None, *, fast_monitor: bool = False) -> Path:
    """Replace the demo's [checklist] with `checklist`; shrink the monitoring window to seconds."""
    text = config.read_text()
    if checklist is not None:
        assert DEMO_CHECKLIST in text
        text = text.replace(DEMO_CHECKLIST, "") + "\n" + textwrap.dedent(checklist)
    if fast_monitor:
        text = (text.replace("monitor_hours = 24", "monitor_hours = 0.0005")
                .replace("monitor_interval_minutes = 15", "monitor_interval_minutes = 0.005"))
        assert "monitor_hours = 0.0005" in text and "monitor_interval_minutes = 0.005" in text
    config.write_text(text)
    return config


@pytest.fixture
def build_app(tmp_path, demo_config):
    """Configure the copied demo, then create the app (again, for a restart) on the same state."""
    apps = []

    def build(checklist: str | None = None, *, fast_monitor: bool = False, reconfigure: bool = True):
        if reconfigure:
            configure(demo_config, checklist, fast_monitor=fast_monitor)
        app = make_app(tmp_path, demo_config)
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def targets_of(app):
    return app.extensions["cutover.targets"]


def views_of(app, run) -> dict:
    db.session.expire_all()
    return {view.id: view for view in step_views(targets_of(app), run)}


def run_step(app, run, step_id: str, operator: str = "admin", note: str = "done by hand"):
    """Start a step in this process (run_here, as the CLI does) and return its finished job."""
    return start_step(targets_of(app), run, step_id, operator, note=note, run_here=True)


def passes(app, run, step_id: str, operator: str = "admin") -> Job:
    job = run_step(app, run, step_id, operator)
    assert job.state == "passed", f"{step_id}: {job.error}"
    if views_of(app, run)[step_id].needs_signoff:
        sign_off(targets_of(app), run, step_id, operator, "checked the log")
    return job


def save_prep_plan(app) -> Path:
    targets = targets_of(app)
    production = targets.environment("production")
    return save_prep(targets, production, make_prep(targets, production, "development"), "admin")


def wait_for_job(job_id: int, states=FINAL, timeout: float = 30) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        if job.state in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is still {job.state}")


def wait_until(predicate, timeout: float = 15, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def state_db(tmp_path: Path) -> sqlite3.Connection:
    """The dashboard's own database, edited behind its back the way an intruder would."""
    return closing(sqlite3.connect(tmp_path / "state.db", isolation_level=None))


def slow_step(marker: Path, step_id: str = "slow") -> str:
    """A command step that sleeps a minute until `marker` exists, then passes at once."""
    return f"""
    [checklist.steps.{step_id}]
    kind = "command"
    argv = ["sh", "-c", "test -f '{marker}' || exec sleep 60"]
    """


# --------------------------------------------------------------------------- gates


def test_every_gate_of_the_default_checklist(build_app, client, api_headers):
    """Each step waits, with a reason naming what it waits for, until the step before it is done."""
    app = build_app()
    with app.app_context():
        targets = targets_of(app)
        run = create_run(targets, targets.environment("production"), "admin")
        order = [step.id for step in targets.workspace.checklist.steps]
        assert order == ["verify-target", "app-stopped", "data-volume", "backup", "integrity", "rehearse",
                         "migrate", "hotfix", "verify", "start-app", "smoke", "monitor"]
        first = views_of(app, run)["verify-target"]
        assert first.state == "ready" and first.startable
        for index, step_id in enumerate(order[:-1]):
            following = order[index + 1:]
            title = views_of(app, run)[step_id].definition.title
            before = views_of(app, run)
            for later in following:  # nothing after an unfinished step can start
                assert before[later].state == "blocked" and not before[later].startable
                assert before[later].reason.startswith("Waits for: ") and f"{title} (ready)" in before[later].reason
            nxt = before[following[0]]
            assert nxt.reason == f"Waits for: {title} (ready)"
            with pytest.raises(Conflict, match=re.escape(f"{nxt.definition.title} cannot start: Waits for: {title}")):
                run_step(app, run, nxt.id)
            if step_id == "migrate":  # the same refusal through the API
                response = client.post(f"/api/v1/runs/{run.id}/steps/hotfix/start", headers=api_headers)
                assert response.status_code == 409, response.get_json()
                assert response.get_json()["error"] == "conflict"
                assert "Waits for: Migrate (ready)" in response.get_json()["message"]

            job = run_step(app, run, step_id)
            if step_id == "rehearse":  # the drift: the rehearsal fails, the next step says so
                assert job.state == "failed" and "no such column: group_id" in job.error
                after = views_of(app, run)
                assert after["rehearse"].state == "failed" and after["rehearse"].startable
                assert after["migrate"].reason == "Waits for: Rehearse on a snapshot (failed)"
                with pytest.raises(Conflict, match="Migrate cannot start"):
                    run_step(app, run, "migrate")
                save_prep_plan(app)
                job = run_step(app, run, step_id)
            assert job.state == "passed", f"{step_id}: {job.error}"

            after = views_of(app, run)
            if after[step_id].definition.signoff:  # passed is not enough: it waits for a signature
                assert after[step_id].state == "passed" and after[step_id].needs_signoff
                assert after[nxt.id].state == "blocked"
                assert after[nxt.id].reason == f"Waits for: {title} (waiting for a sign-off)"
                with pytest.raises(Conflict, match="waiting for a sign-off"):
                    run_step(app, run, nxt.id)
                sign_off(targets, run, step_id, "admin", "looked at it")
                after = views_of(app, run)
                assert after[step_id].state == "signed_off"
            assert after[nxt.id].state == "ready" and after[nxt.id].startable, after[nxt.id].reason
            with pytest.raises(Conflict, match="cannot start: it is"):  # a passed step is not run twice
                run_step(app, run, step_id)


def test_migrate_needs_a_second_operators_approval(build_app):
    app = build_app("""
    [checklist]
    order = ["backup", "rehearse", "migrate"]
    [checklist.steps.migrate]
    approval = true
    """)
    with app.app_context():
        targets = targets_of(app)
        create_operator("will", "will-password")
        save_prep_plan(app)
        run = create_run(targets, targets.environment("production"), "admin")
        passes(app, run, "backup")
        passes(app, run, "rehearse")
        migrate = views_of(app, run)["migrate"]
        assert migrate.state == "ready" and migrate.needs_approval
        with pytest.raises(Conflict, match="needs a second operator's approval"):
            run_step(app, run, "migrate", "admin")
        assert not db.session.scalars(select(Job).where(Job.step == "migrate")).all()

        approval = sign_off(targets, run, "migrate", "will", "plan reviewed")
        assert approval.kind == "approval" and approval.subject.startswith("plan ")
        assert not views_of(app, run)["migrate"].needs_approval
        with pytest.raises(Conflict, match="will approved Migrate; a different operator must start it"):
            run_step(app, run, "migrate", "will")
        assert not db.session.scalars(select(Job).where(Job.step == "migrate")).all()

        job = run_step(app, run, "migrate", "admin")
        assert job.state == "passed", job.error
        assert settle(targets, run) and run.status == "finished"
        actions = [(e.actor, e.action) for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        assert ("will", "approve") in actions and ("admin", "migrate") in actions


# --------------------------------------------------------------------------- one active step


def test_concurrent_starts_of_a_step_give_exactly_one_job(build_app, api_headers):
    app = build_app("""
    [checklist]
    order = ["slow"]
    [checklist.steps.slow]
    kind = "command"
    argv = ["sleep", "30"]
    """)
    created = app.test_client().post("/api/v1/runs", json={"environment": "production"}, headers=api_headers)
    assert created.status_code == 201, created.get_json()
    run_id = created.get_json()["id"]
    attempts = 12
    barrier = threading.Barrier(attempts)
    answers = []

    def start():
        client = app.test_client()
        barrier.wait()
        response = client.post(f"/api/v1/runs/{run_id}/steps/slow/start", headers=api_headers)
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=start) for _ in range(attempts)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    codes = sorted(code for code, _ in answers)
    assert codes == [202] + [409] * (attempts - 1), answers
    assert all(body["error"] == "conflict" for code, body in answers if code == 409)
    with app.app_context():
        jobs = db.session.scalars(select(Job).where(Job.run_id == run_id)).all()
        assert len(jobs) == 1 and jobs[0].state in ("queued", "running")
        assert len(db.session.scalars(select(Job)).all()) == 1
        stopped = app.test_client().post(f"/api/v1/runs/{run_id}/steps/slow/cancel", headers=api_headers)
        assert stopped.status_code == 200 and stopped.get_json()["job"]["state"] == "cancelled"


# --------------------------------------------------------------------------- cancel


def test_cancel_a_running_step_then_retry_it(build_app, api_headers, tmp_path):
    marker = tmp_path / "may-pass"
    app = build_app(f"""
    [checklist]
    order = ["slow", "after"]
    {slow_step(marker)}
    [checklist.steps.after]
    kind = "command"
    argv = ["true"]
    """)
    client = app.test_client()
    run_id = client.post("/api/v1/runs", json={"environment": "production"}, headers=api_headers).get_json()["id"]
    started = client.post(f"/api/v1/runs/{run_id}/steps/slow/start", headers=api_headers)
    assert started.status_code == 202, started.get_json()
    job_id = started.get_json()["job"]["id"]
    with app.app_context():
        job = wait_for_job(job_id, states=("running",))
        pid, pid_start = job.pid, job.pid_start
        wait_until(lambda: len(living_group_members(pid)) >= 2, what="the worker and its sleep")
        assert views_of(app, get_run(run_id))["slow"].state == "running"

    cancelled = client.post(f"/api/v1/runs/{run_id}/steps/slow/cancel", headers=api_headers)
    assert cancelled.status_code == 200, cancelled.get_json()
    assert cancelled.get_json()["job"]["state"] == "cancelled"
    assert not process_alive(pid, pid_start)
    assert living_group_members(pid) == []  # the worker and the sleep it started
    again = client.post(f"/api/v1/runs/{run_id}/steps/slow/cancel", headers=api_headers)
    assert again.status_code == 409

    with app.app_context():
        run = get_run(run_id)
        views = views_of(app, run)
        assert views["slow"].state == "cancelled" and views["slow"].startable
        assert views["after"].state == "blocked" and views["after"].reason == "Waits for: Slow (cancelled)"
        assert "Cancel" in log_lines(job_id)[-1].text

    marker.touch()
    retried = client.post(f"/api/v1/runs/{run_id}/steps/slow/start", headers=api_headers)
    assert retried.status_code == 202, retried.get_json()
    with app.app_context():
        retry = wait_for_job(retried.get_json()["job"]["id"])
        assert retry.state == "passed", retry.error
        run = get_run(run_id)
        views = views_of(app, run)
        assert views["slow"].state == "passed" and [j.id for j in views["slow"].attempts] == [job_id, retry.id]
        assert views["after"].state == "ready"


def test_a_step_cancelled_while_its_worker_starts_is_cancelled(build_app, api_headers):
    """The worker dies of the SIGTERM before it can record anything: still "cancelled"."""
    app = build_app("""
    [checklist]
    order = ["slow"]
    [checklist.steps.slow]
    kind = "command"
    argv = ["sleep", "60"]
    """)
    with app.app_context():
        run = create_run(targets_of(app), targets_of(app).environment("production"), "admin")
        job = start_step(targets_of(app), run, "slow", "admin")
        assert job.state == "queued"  # the worker is still importing
        cancelled = app.test_client().post(f"/api/v1/runs/{run.id}/steps/slow/cancel", headers=api_headers)
        assert cancelled.status_code == 200, cancelled.get_json()
        assert cancelled.get_json()["job"]["state"] == "cancelled", cancelled.get_json()["job"]["error"]
        assert cancelled.get_json()["job"]["error"] == "Cancelled by api-token."
        assert living_group_members(job.pid) == []
        time.sleep(0.3)  # the reaper thread has long seen the worker die: nothing rewrites the outcome
        db.session.expire_all()
        assert db.session.get(Job, job.id).state == "cancelled"
        assert views_of(app, run)["slow"].state == "cancelled"


# --------------------------------------------------------------------------- restart

DASHBOARD = """
import os, sys
from pathlib import Path
from tests.conftest import make_app
from app.checklist.progress import get_run, start_step

app = make_app(Path(sys.argv[1]), Path(sys.argv[2]))
with app.app_context():
    job = start_step(app.extensions["cutover.targets"], get_run(int(sys.argv[3])), sys.argv[4], "admin")
    print(job.id, job.pid, flush=True)
os._exit(0)  # the dashboard goes away at once: its reaper thread never sees the worker end
"""


def test_a_killed_worker_is_interrupted_after_a_restart_and_the_run_resumes(build_app, tmp_path, demo_config):
    marker = tmp_path / "may-pass"
    app = build_app(f"""
    [checklist]
    order = ["verify-target", "slow", "after"]
    {slow_step(marker)}
    [checklist.steps.after]
    kind = "command"
    argv = ["true"]
    """)
    with app.app_context():
        run = create_run(targets_of(app), targets_of(app).environment("production"), "admin")
        run_id = run.id
        verified = passes(app, run, "verify-target")
        signatures = [s.signature.id for s in views_of(app, run)["verify-target"].signatures]

    # Another dashboard process starts the step in a worker, then dies.
    dashboard = subprocess.run([sys.executable, "-c", DASHBOARD, str(tmp_path), str(demo_config), str(run_id), "slow"],
                               cwd=REPO, capture_output=True, text=True, timeout=60)
    assert dashboard.returncode == 0, dashboard.stderr
    job_id, worker = map(int, dashboard.stdout.split())
    with app.app_context():
        wait_for_job(job_id, states=("running",))
        wait_until(lambda: len(living_group_members(worker)) >= 2, what="the worker and its sleep")
    os.killpg(worker, signal.SIGKILL)
    wait_until(lambda: living_group_members(worker) == [], what="the killed worker to be gone")
    with app.app_context():
        assert db.session.get(Job, job_id).state == "running"  # nobody has looked yet

    restarted = build_app(reconfigure=False)  # create_app runs reconcile_jobs
    with restarted.app_context():
        run = get_run(run_id)
        views = views_of(restarted, run)
        assert views["slow"].state == "interrupted", views["slow"].state
        assert "restarted or the worker was killed" in views["slow"].reason
        assert views["slow"].startable and not views["slow"].satisfied
        assert views["after"].state == "blocked" and views["after"].reason == "Waits for: Slow (interrupted)"
        assert db.session.get(Job, job_id).state == "interrupted"

        marker.touch()
        retry = run_step(restarted, run, "slow")
        assert retry.state == "passed", retry.error
        passes(restarted, run, "after")
        views = views_of(restarted, run)
        assert [j.id for j in views["verify-target"].attempts] == [verified.id]  # not run again
        assert [s.signature.id for s in views["verify-target"].signatures] == signatures
        assert [j.id for j in views["slow"].attempts] == [job_id, retry.id]
        assert [j.state for j in views["slow"].attempts] == ["interrupted", "passed"]
        settle(targets_of(restarted), run)
        assert run.status == "finished"


# --------------------------------------------------------------------------- sign-offs


def test_an_edited_log_line_voids_the_sign_off(build_app, tmp_path):
    app = build_app()
    with app.app_context():
        targets = targets_of(app)
        run = create_run(targets, targets.environment("production"), "admin")
        job = passes(app, run, "verify-target")
        views = views_of(app, run)
        assert views["verify-target"].state == "signed_off" and views["app-stopped"].state == "ready"
        line = log_lines(job.id)[1]

    with state_db(tmp_path) as connection:  # one word of one line of the signed log
        changed = connection.execute("UPDATE log_line SET text = replace(text, 'resolves', 'RESOLVES') WHERE id = ?",
                                     (line.id,)).rowcount
        assert changed == 1

    with app.app_context():
        run = get_run(run.id)
        views = views_of(app, run)
        target = views["verify-target"]
        assert target.state == "passed" and target.needs_signoff and not target.satisfied
        assert [s.why_not for s in target.signatures] == ["the step's log changed after it was signed"]
        assert "The sign-off by admin no longer counts" in target.reason
        assert views["app-stopped"].state == "blocked"
        assert views["app-stopped"].reason == "Waits for: Verify the target (waiting for a sign-off)"
        with pytest.raises(Conflict, match="waiting for a sign-off"):
            run_step(app, run, "app-stopped")

        sign_off(targets, run, "verify-target", "admin", "read the log again")  # a new signature counts
        views = views_of(app, run)
        assert views["verify-target"].state == "signed_off" and views["app-stopped"].state == "ready"


def test_an_edited_plan_voids_the_rehearsal_sign_off(build_app, demo_dir):
    app = build_app("""
    [checklist]
    order = ["backup", "rehearse", "migrate"]
    """)
    with app.app_context():
        targets = targets_of(app)
        save_prep_plan(app)
        run = create_run(targets, targets.environment("production"), "admin")
        passes(app, run, "backup")
        rehearsal = passes(app, run, "rehearse")
        views = views_of(app, run)
        assert views["rehearse"].state == "signed_off" and views["migrate"].state == "ready"

        plan = demo_dir / "plans" / "hotfix_activity_instances.sql"
        plan.write_text(plan.read_text() + "\nCREATE INDEX cutover_unrehearsed ON goals (name);\n")
        views = views_of(app, run)
        rehearse = views["rehearse"]
        assert not rehearse.satisfied and rehearse.state != "signed_off"
        assert [s.why_not for s in rehearse.signatures] == ["what was signed (the plan or result) changed since"]
        assert views["migrate"].state == "blocked" and "Rehearse on a snapshot" in views["migrate"].reason
        with pytest.raises(Conflict, match="Migrate cannot start"):
            run_step(app, run, "migrate")

        # The rehearsal ran the old plan: it is rehearsed again, not merely signed again.
        assert rehearse.startable and "plan changed" in rehearse.reason
        with pytest.raises(Conflict):
            sign_off(targets, run, "rehearse", "admin", "sign the unrehearsed plan")
        again = passes(app, run, "rehearse")
        assert again.id != rehearsal.id
        assert views_of(app, run)["migrate"].state == "ready"


def test_changing_the_case_of_a_double_quoted_string_voids_the_rehearsal_sign_off(build_app, demo_dir):
    """`"Archived"` names no column, so SQLite reads it as a string: the edit changes which rows
    the statement touches, and the signed rehearsal no longer covers the plan."""
    plan = demo_dir / "plans" / "hotfix_activity_instances.sql"
    plan.write_text(plan.read_text() + '\nDELETE FROM goals WHERE type = "Archived";\n')
    app = build_app("""
    [checklist]
    order = ["backup", "rehearse", "migrate"]
    """)
    with app.app_context():
        targets = targets_of(app)
        save_prep_plan(app)
        run = create_run(targets, targets.environment("production"), "admin")
        passes(app, run, "backup")
        passes(app, run, "rehearse")
        assert views_of(app, run)["migrate"].state == "ready"

        before = (demo_dir / "goals.db").read_bytes()
        plan.write_text(plan.read_text().replace('"Archived"', '"archived"'))
        views = views_of(app, run)
        assert views["rehearse"].state != "signed_off" and "plan changed" in views["rehearse"].reason
        assert views["migrate"].state == "blocked"
        with pytest.raises(Conflict, match="Migrate cannot start"):
            run_step(app, run, "migrate")
        assert (demo_dir / "goals.db").read_bytes() == before


# --------------------------------------------------------------------------- audit


def test_the_audit_chain_covers_a_run_and_shows_an_edit(build_app, tmp_path, api_headers):
    marker = tmp_path / "never"
    app = build_app(f"""
    [checklist]
    order = ["verify-target", "slow"]
    {slow_step(marker)}
    """)
    with app.app_context():
        targets = targets_of(app)
        run = create_run(targets, targets.environment("production"), "admin")
        verified = passes(app, run, "verify-target")
        slow = start_step(targets, run, "slow", "admin")
        wait_for_job(slow.id, states=("running",))
        client = app.test_client()
        assert client.post(f"/api/v1/runs/{run.id}/steps/slow/cancel", headers=api_headers).status_code == 200
        db.session.expire_all()

        assert verify_chain() is None
        rows = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        entries = [(e.actor, e.action, e.result, e.detail) for e in rows]
        expected = [
            ("admin", "run-created", "ok", f"run {run.id}"),
            ("admin", "verify-target", "started", f"job {verified.id} (run {run.id}, step verify-target)"),
            ("admin", "verify-target", "passed", f"job {verified.id} (run {run.id}, step verify-target)"),
            ("admin", "sign-off", "ok", f"run {run.id} step verify-target: the result of job {verified.id}"),
            ("admin", "command", "started", f"job {slow.id} (run {run.id}, step slow)"),
        ]
        assert entries[:5] == expected
        assert entries[5] == ("api-token", "cancel", "ok", f"job {slow.id} (run {run.id}, step slow)")  # who cancelled
        assert entries[6][:3] == ("admin", "command", "cancelled")
        assert entries[6][3].startswith(f"job {slow.id} (run {run.id}, step slow)")
        assert len(entries) == 7
        tampered = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "sign-off")).one().id

    with state_db(tmp_path) as connection:
        connection.execute("UPDATE audit_entry SET actor = 'will' WHERE id = ?", (tampered,))
    with app.app_context():
        db.session.expire_all()
        assert verify_chain() == tampered


def reopen(run_id: int) -> None:
    """Complete and open again: how a run stands before anything settles it."""
    db.session.execute(update(Run).where(Run.id == run_id).values(status=OPEN_RUN, finished_at=None))
    db.session.commit()


def test_a_run_finishes_once_however_many_settle_it_at_once(build_app):
    """A job's end, a sign-off, a window's end and a restart may settle one run at the same
    moment: one finish is recorded."""
    app = build_app("""
    [checklist]
    order = ["data-volume"]
    """)
    with app.app_context():
        run = create_run(targets_of(app), targets_of(app).environment("production"), "admin")
        run_id = run.id
        passes(app, run, "data-volume")
        assert get_run(run_id).status == "finished"  # where its last job ended
        reopen(run_id)
    viewers = 8
    barrier = threading.Barrier(viewers)

    def poll():
        with app.app_context():
            targets, run = targets_of(app), get_run(run_id)
            views = step_views(targets, run)  # every one sees a complete, still open run
            barrier.wait()
            settle(targets, run, views)
            db.session.remove()

    threads = [threading.Thread(target=poll) for _ in range(viewers)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    with app.app_context():
        assert get_run(run_id).status == "finished"
        finished = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "run-finished")).all()
        assert [e.detail for e in finished] == [f"run {run_id}"] * 2  # the job's end, then one of eight
        assert verify_chain() is None


def test_a_restart_settles_a_run_that_became_complete_while_nothing_settled_it(build_app):
    """A state database from before runs were settled where their jobs end may hold a complete,
    open run: no page closes it any more, so the restarted dashboard does."""
    app = build_app("""
    [checklist]
    order = ["data-volume"]
    """)
    with app.app_context():
        run = create_run(targets_of(app), targets_of(app).environment("production"), "admin")
        run_id = run.id
        passes(app, run, "data-volume")
        reopen(run_id)
        db.session.remove()
    restarted = build_app(reconfigure=False)
    with restarted.app_context():
        assert get_run(run_id).status == "finished"


# --------------------------------------------------------------------------- end to end


def test_the_demo_checklist_end_to_end(build_app):
    """Every step of the demo run, headless, to a finished run and its report.

    Not measurable in the demo, so not asserted as met: "No user issues" (the demo
    configures no application log_file, so no tick scans one: the criterion stays None).
    Not met on purpose: "24 hours stable" needs a window of 24 hours, and this one lasts 1.8
    seconds (the evidence says so). Never measured: "Performance improved" (Cutover takes no
    query timings; the evidence names the index check it did run).
    """
    app = build_app(fast_monitor=True)
    with app.app_context():
        targets = targets_of(app)
        run = create_run(targets, targets.environment("production"), "admin")
        for step in targets.workspace.checklist.steps:
            job = run_step(app, run, step.id, note="started with ./start-all.sh production")
            if step.id == "rehearse" and job.state == "failed":
                assert "no such column: group_id" in job.error
                save_prep_plan(app)
                job = run_step(app, run, step.id)
            assert job.state == "passed", f"{step.id}: {job.error}"
            if views_of(app, run)[step.id].needs_signoff:
                sign_off(targets, run, step.id, "admin", "checked")

        monitor = views_of(app, run)["monitor"]
        assert monitor.state == "monitoring" and run.status == "open"
        window = monitor.window
        deadline = time.monotonic() + 30
        while window.state == "active" and time.monotonic() < deadline:
            tick_window(targets, window)
            time.sleep(0.1)
            db.session.refresh(window)
        assert window.state == "finished"
        db.session.refresh(run)
        assert run.status == "finished" and run.finished_at is not None  # the window's end settled it

        views = step_views(targets, run)
        assert {v.id: v.state for v in views} == {
            "verify-target": "signed_off", "app-stopped": "passed", "data-volume": "passed", "backup": "passed",
            "integrity": "passed", "rehearse": "signed_off", "migrate": "passed", "hotfix": "passed",
            "verify": "passed", "start-app": "passed", "smoke": "signed_off", "monitor": "passed"}

        facts = report_facts(targets, run)
        criteria = {c["name"]: c["met"] for c in facts["criteria"]}
        not_measurable = {"No user issues", "Performance improved"}
        assert {name: met for name, met in criteria.items() if name not in not_measurable} == {
            "Migration completed": True, "Hotfix applied": True, "All tests passed": True, "No data loss": True,
            "24 hours stable": False, "Production verified": True}
        assert criteria["No user issues"] is None and criteria["Performance improved"] is None
        stable = next(c for c in facts["criteria"] if c["name"] == "24 hours stable")
        assert "ended" not in stable["evidence"] and "shorter than 24" in stable["evidence"]
        assert facts["schema"]["after"] == [] and facts["schema"]["before"]
        assert [f["resolution"].startswith("passed on retry") for f in facts["failures"]] == [True]
        assert f"Run {run.id}" in markdown_report(targets, run)
        assert verify_chain() is None
