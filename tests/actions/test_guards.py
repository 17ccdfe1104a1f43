"""The guards in front of every change to a target, on every path: the pages, the API and the CLI.

The scene: a checklist run is open on production and its migrate step needs a second operator's
approval. Nobody gets round it by migrating or restoring production directly: each path answers
409 (the CLI: one line and exit 1) naming the run, and production's file, its mtime and the job
list stay exactly as they were. Real app, real state database, the CLI as a real subprocess.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.actions.planning import start_job
from app.auth_setup import create_operator
from app.checklist.progress import abandon_run, create_run
from app.extensions import db
from app.jobs.runner import create_job, run_job
from app.models import AuditEntry, Job, Run
from tests.conftest import csrf_token_from, log_in
from tests.test_cli import PROJECT
from tests.web.test_backups import wait_for_job
from tests.checklist.test_progress import build_app, save_prep_plan, targets_of  # noqa: F401  (build_app: a fixture)

MIGRATE_NEEDS_APPROVAL = """
[checklist.steps.migrate]
approval = true
"""
TOKEN = {"Authorization": "Bearer test-api-token"}
CONFIRMED = {"confirm": "production"}


def file_state(path: Path) -> tuple[str, int, list[str]]:
    """Bytes, mtime and side files: proof that nothing touched the database."""
    side = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name + "-"))
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns, side


def job_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(Job.id)))


class Scene:
    def __init__(self, app, demo_dir: Path, run_id: int, backup_id: str):
        self.app, self.target, self.run_id, self.backup_id = app, demo_dir / "goals.db", run_id, backup_id
        with app.app_context():
            self.jobs = job_count()
        self.before = file_state(self.target)

    def message(self, action: str) -> str:
        return (f"Refused to {action} production: checklist run {self.run_id}, opened by alice at "
                f"{self.opened_at} UTC, is open on production, and while it is open production changes only "
                f"through its steps. Continue the run on its page (/runs/{self.run_id}) or with "
                "`flask --app run cutover run-checklist production`, or abandon it there (with a reason) first.")

    @property
    def opened_at(self) -> str:
        from app.checklist.progress import get_run

        with self.app.app_context():
            return f"{get_run(self.run_id).created_at:%Y-%m-%d %H:%M}"

    def assert_untouched(self) -> None:
        assert file_state(self.target) == self.before
        with self.app.app_context():
            assert job_count() == self.jobs  # refused before any job existed

    def refusals(self, action: str) -> list[str]:
        with self.app.app_context():
            db.session.expire_all()
            return list(db.session.scalars(select(AuditEntry.detail).where(
                AuditEntry.action == action, AuditEntry.result == "refused")))


@pytest.fixture
def scene(build_app, demo_dir):
    """Production with a verified backup taken earlier and run 1 opened by alice; the migrate step
    needs an approval nobody gave. The plans would migrate production cleanly."""
    app = build_app(MIGRATE_NEEDS_APPROVAL)
    with app.app_context():
        save_prep_plan(app)
        backup = run_job(create_job("backup", "production", "admin").id)
        assert backup.state == "passed", backup.error
        create_operator("alice", "alice-password")
        targets = targets_of(app)
        run = create_run(targets, targets.environment("production"), "alice")
        return Scene(app, demo_dir, run.id, backup.result_document["id"])


def test_the_api_refuses_migrate_and_restore_while_a_run_is_open(scene):
    client = scene.app.test_client()
    for action, path, body in (("migrate", "/api/v1/environments/production/migrate", CONFIRMED),
                               ("restore", "/api/v1/environments/production/restore",
                                {"backup": scene.backup_id, **CONFIRMED})):
        response = client.post(path, json=body, headers=TOKEN)
        assert response.status_code == 409, response.get_json()
        assert response.get_json() == {"error": "run_open", "message": scene.message(action),
                                       "environment": "production", "run": scene.run_id, "opened_by": "alice"}
        assert scene.refusals(action) == [scene.message(action)]
    scene.assert_untouched()


def test_the_pages_refuse_migrate_and_restore_while_a_run_is_open(scene):
    client = scene.app.test_client()
    assert log_in(client).status_code == 302
    page = client.get("/environments/production/migration").get_data(as_text=True)
    assert f"Checklist run {scene.run_id}, opened by alice," in page
    assert f'href="/runs/{scene.run_id}"' in page and 'class="stack migrate-form"' not in page
    token = csrf_token_from(page)
    for action, path in (("migrate", "/environments/production/migration/migrate"),
                         ("restore", f"/environments/production/backups/{scene.backup_id}/restore")):
        response = client.post(path, data={"csrf_token": token, "confirm": "production"})
        assert response.status_code == 409
        assert scene.message(action) in response.get_data(as_text=True)
    scene.assert_untouched()


def cli(tmp_path: Path, config: Path, *args):
    import subprocess
    import sys

    env = {**os.environ, "CUTOVER_CONFIG": str(config), "CUTOVER_INSTANCE_DIR": str(tmp_path / "instance"),
           "CUTOVER_STATE_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "run", "cutover", *args],
                          cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120)


def test_the_cli_refuses_migrate_and_restore_while_a_run_is_open(scene, tmp_path, demo_config):
    for action, args in (("migrate", ["migrate", "production", "--yes"]),
                         ("restore", ["restore", "production", scene.backup_id, "--yes"])):
        result = cli(tmp_path, demo_config, *args)
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr == f"Error: {scene.message(action)}\n"
        assert result.stdout == ""
    scene.assert_untouched()


def test_a_run_opened_while_a_job_waited_stops_it_before_it_changes_anything(scene):
    """Jobs recorded before the run was opened check again when they execute (the migration under
    its write lock): the run owns production now."""
    with scene.app.app_context():
        targets = targets_of(scene.app)
        abandon_run(db.session.get(Run, scene.run_id), "alice", "started over")
        restore = create_job("restore", "production", "admin", {"backup": scene.backup_id})
        run = create_run(targets, targets.environment("production"), "alice")
        scene.run_id = run.id
        restore = run_job(restore.id)
        assert restore.state == "failed" and restore.error == scene.message("restore")
    assert file_state(scene.target) == scene.before


def test_the_migrate_job_checks_again_under_the_write_lock(build_app, demo_dir):
    app = build_app()  # no approval: production may be migrated without a run
    with app.app_context():
        save_prep_plan(app)
        create_operator("alice", "alice-password")
        targets = targets_of(app)
        production = targets.environment("production")
        job = start_job("migrate", production, "admin", None, targets=targets, run_here=True)
        run = create_run(targets, production, "alice")  # opened while the job was queued
        scene = Scene(app, demo_dir, run.id, "")
        job = run_job(job.id)
        assert job.state == "failed" and job.error == scene.message("migrate")
    assert file_state(scene.target) == scene.before  # the job's backup only read it


def test_the_api_wants_the_typed_name_as_the_pages_do(build_app, demo_dir):
    app = build_app()
    client = app.test_client()
    target = demo_dir / "goals.db"
    before = file_state(target)
    with app.app_context():
        jobs = job_count()
    for body in (None, {}, {"confirm": "yes"}, {"confirm": "Production"}, {"confirm": ["production"]}):
        response = client.post("/api/v1/environments/production/migrate", json=body, headers=TOKEN)
        assert response.status_code == 400, body
        assert response.get_json()["message"] == ("Migration not started: type the environment name (production) "
                                                  'to confirm (send {"confirm": "production"} in the JSON body).')
        response = client.post("/api/v1/environments/production/restore", json={"backup": "20260101_000000", **(body or {})},
                               headers=TOKEN)
        assert response.status_code == 400, body
        assert response.get_json()["message"] == ("Restore not started: type the environment name (production) "
                                                  'to confirm (send {"confirm": "production"} in the JSON body).')
    assert file_state(target) == before
    with app.app_context():
        assert job_count() == jobs


def test_an_approval_the_checklist_wants_cannot_be_skipped_by_migrating_without_a_run(scene, tmp_path, demo_config):
    with scene.app.app_context():
        abandon_run(db.session.get(Run, scene.run_id), "alice", "the backup is enough for now")
    message = ("Refused to migrate production outside a checklist run: the checklist requires a second operator's "
               "approval for 'Migrate', which only a run can give. Start a checklist run on production (Runs page, "
               "POST /api/v1/runs, or `flask --app run cutover run-checklist production`).")
    response = scene.app.test_client().post("/api/v1/environments/production/migrate", json=CONFIRMED, headers=TOKEN)
    assert response.status_code == 409
    assert response.get_json() == {"error": "run_required", "message": message, "environment": "production"}
    result = cli(tmp_path, demo_config, "migrate", "production", "--yes")
    assert result.returncode == 1 and result.stderr == f"Error: {message}\n"
    scene.assert_untouched()
    # Restoring needs no approval: with the run closed, the way back is open again.
    client = scene.app.test_client()
    response = client.post("/api/v1/environments/production/restore", json={"backup": scene.backup_id, **CONFIRMED},
                           headers=TOKEN)
    assert response.status_code == 202
    assert wait_for_job(client, TOKEN, response.get_json()["job"]["id"])["job"]["state"] == "passed"
