"""Backups through the API and the page: start, list, verify, restore, prune; bad ids."""
import pathlib
import re
import sqlite3
import sys
import time

import pytest

from app.extensions import db
from app.models import AuditEntry, Job
from tests.conftest import csrf_token_from


def wait_for_job(client, headers, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
        if body["job"]["state"] not in ("queued", "running"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def take_backup(client, headers):
    response = client.post("/api/v1/environments/production/backups", headers=headers)
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    done = wait_for_job(client, headers, body["job"]["id"])
    assert done["job"]["state"] == "passed", done
    return body["backup"], done


def row_count(path, table="goals"):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def test_backup_through_the_api_is_verified_in_both_folders(client, api_headers, demo_dir):
    backup_id, done = take_backup(client, api_headers)
    texts = [line["text"] for line in done["lines"]]
    assert texts[-1].startswith(f"✓ Backup {backup_id} verified: 2 copies")
    listing = client.get("/api/v1/environments/production/backups", headers=api_headers).get_json()
    [backup] = listing["backups"]
    assert backup["id"] == backup_id and backup["status"] == "verified"
    folders = sorted(str(p) for p in [demo_dir / "backups/local", demo_dir / "backups/offsite"])
    assert sorted(str(pathlib.Path(c).parent) for c in backup["copies"]) == folders
    assert all(c.endswith(f"goals.db.backup_{backup_id}") for c in backup["copies"])


def test_a_second_start_while_one_runs_is_409(app, client, api_headers):
    with app.app_context():
        from app.jobs.runner import create_job

        create_job("integrity", "production", "someone")
    response = client.post("/api/v1/environments/production/backups", headers=api_headers)
    assert response.status_code == 409
    assert response.get_json()["error"] == "conflict"


def test_verify_again_detects_a_flipped_byte(client, api_headers):
    backup_id, done = take_backup(client, api_headers)
    ok = client.post(f"/api/v1/environments/production/backups/{backup_id}/verify", headers=api_headers)
    assert ok.status_code == 200 and ok.get_json()["verified"] is True
    copy = done["job"]["result"]["copies"][0]
    data = bytearray(pathlib.Path(copy).read_bytes())
    data[len(data) // 2] ^= 0xFF
    pathlib.Path(copy).write_bytes(bytes(data))
    bad = client.post(f"/api/v1/environments/production/backups/{backup_id}/verify", headers=api_headers).get_json()
    assert bad["verified"] is False
    reasons = {c["path"]: c["ok"] for c in bad["copies"]}
    assert reasons[copy] is False and list(reasons.values()).count(True) == 1


def test_restore_through_the_api_brings_production_back(client, api_headers, demo_dir):
    production = demo_dir / "goals.db"
    backup_id, _ = take_backup(client, api_headers)
    before = row_count(production)
    conn = sqlite3.connect(production)
    conn.execute("DELETE FROM metric_values")
    conn.commit()
    conn.close()
    response = client.post("/api/v1/environments/production/restore", json={"backup": backup_id, "confirm": "production"}, headers=api_headers)
    assert response.status_code == 202
    done = wait_for_job(client, api_headers, response.get_json()["job"]["id"])
    assert done["job"]["state"] == "passed", done
    assert row_count(production) == before and row_count(production, "metric_values") == 1100
    safety = done["job"]["result"]["safety_copies"]
    assert safety and all("safety" in path for path in safety)


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "/etc/passwd", "20260101_000000/../x", "x\x00y", "..\\..\\x"])
def test_restore_with_a_bad_id_is_refused_before_any_job(app, client, api_headers, bad_id, demo_dir):
    before = (demo_dir / "goals.db").read_bytes()
    response = client.post("/api/v1/environments/production/restore", json={"backup": bad_id, "confirm": "production"}, headers=api_headers)
    assert response.status_code in (400, 404)
    assert (demo_dir / "goals.db").read_bytes() == before
    with app.app_context():
        assert db.session.query(Job).count() == 0


def test_restore_needs_a_json_body(client, api_headers):
    response = client.post("/api/v1/environments/production/restore", data="backup=x", headers=api_headers)
    assert response.status_code == 400 and "Send {" in response.get_json()["message"]


def test_restore_is_refused_while_the_application_runs(tmp_path, demo_dir):
    import subprocess

    from tests.conftest import make_app

    config = demo_dir / "cutover.toml"
    config.write_text(config.read_text().replace(
        '[environments.production]\n', '[environments.production]\n').replace(
        'backup_dirs = ["backups/local", "backups/offsite"]',
        'backup_dirs = ["backups/local", "backups/offsite"]\napp = { process_patterns = ["fractal-goals-backend-marker"] }'))
    app = make_app(tmp_path, config)
    client, headers = app.test_client(), {"Authorization": "Bearer test-api-token"}
    backup_id, _ = take_backup(client, headers)
    before = (demo_dir / "goals.db").read_bytes()
    fake_app = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "fractal-goals-backend-marker"])
    try:
        response = client.post("/api/v1/environments/production/restore", json={"backup": backup_id, "confirm": "production"}, headers=headers)
        done = wait_for_job(client, headers, response.get_json()["job"]["id"])
    finally:
        fake_app.kill()
        fake_app.wait()
    assert done["job"]["state"] == "failed"
    assert "running" in done["job"]["error"]
    assert (demo_dir / "goals.db").read_bytes() == before
    with app.app_context():
        db.engine.dispose()


def test_the_page_starts_a_backup_and_shows_its_panel(logged_in):
    page = logged_in.get("/environments/production/backups")
    assert page.status_code == 200 and "No backups yet." in page.get_data(as_text=True)
    token = csrf_token_from(page.get_data(as_text=True))
    started = logged_in.post("/environments/production/backups", data={"csrf_token": token})
    assert started.status_code == 302 and "job=" in started.headers["Location"]
    job_id = int(started.headers["Location"].split("job=")[1])
    wait_for_job(logged_in, {}, job_id)
    html = logged_in.get(started.headers["Location"]).get_data(as_text=True)
    assert 'class="card job job-passed' in html and "Backup · production" in html
    assert "Backing up" in html  # the job's lines are on the page, not only in the polled panel
    assert 'data-backup="' in html
    # The log and the table print the size the same way.
    size = re.search(r'data-label="Size">([^<]+)</td>', html).group(1)
    assert f"written: {size}, sha256" in html
    # A backup taken by hand names its job; no checklist run claims it.
    assert re.search(rf'<a href="/jobs/{job_id}">job {job_id}</a> <span class="muted small">by hand, admin', html)


def test_the_page_refuses_a_restore_without_the_typed_name(app, logged_in, client, api_headers):
    backup_id, _ = take_backup(client, api_headers)
    token = csrf_token_from(logged_in.get("/environments/production/backups").get_data(as_text=True))
    response = logged_in.post(f"/environments/production/backups/{backup_id}/restore",
                              data={"csrf_token": token, "confirm": "prod"}, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "type the environment name (production) to confirm" in html
    assert '<p class="flash msg msg-refusal" data-outcome="refusal" role="alert">Restore not started' in html
    with app.app_context():
        assert db.session.query(Job).filter_by(kind="restore").count() == 0


def test_a_backup_that_does_not_verify_is_flashed_as_a_failure(logged_in, client, api_headers):
    backup_id, done = take_backup(client, api_headers)
    copy = pathlib.Path(done["job"]["result"]["copies"][0])
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    token = csrf_token_from(logged_in.get("/environments/production/backups").get_data(as_text=True))
    html = logged_in.post(f"/environments/production/backups/{backup_id}/verify", data={"csrf_token": token},
                          follow_redirects=True).get_data(as_text=True)
    assert f'<p class="flash msg msg-failure" data-outcome="failure" role="alert">Backup {backup_id} did NOT verify.' in html


def test_every_flash_names_its_outcome():
    """A message without a category would render as a success, however it reads."""
    outcomes = {"success", "refusal", "failure", "warning"}
    exempt = {"dashboard.py"}  # its one message ("inspected again") is a success, the default's style
    for path in pathlib.Path("app/web").glob("*.py"):
        for call in re.findall(r"\bflash\((.*)\)\s*$", path.read_text(), re.MULTILINE):
            category = re.search(r',\s*("?)(\w+)\1$', call)
            assert category or path.name in exempt, f"{path}: flash({call}) names no outcome"
            if category and category.group(1):
                assert category.group(2) in outcomes, (path, call)


def test_actions_are_audited(app, client, api_headers):
    backup_id, _ = take_backup(client, api_headers)
    client.post(f"/api/v1/environments/production/backups/{backup_id}/verify", headers=api_headers)
    with app.app_context():
        rows = [(r.actor, r.action, r.target, r.result) for r in db.session.query(AuditEntry).order_by(AuditEntry.id)]
        assert rows == [("api-token", "backup", "production", "started"), ("api-token", "backup", "production", "passed"),
                        ("api-token", "verify", f"production/{backup_id}", "ok")]


def test_history_lists_every_job_newest_first(client, api_headers, logged_in):
    assert "Nothing has run yet." in logged_in.get("/jobs").get_data(as_text=True)
    take_backup(client, api_headers)
    rehearsal = client.post("/api/v1/environments/production/rehearse", headers=api_headers).get_json()
    wait_for_job(client, api_headers, rehearsal["job"]["id"])
    html = logged_in.get("/jobs").get_data(as_text=True)
    assert html.index('data-job="2"') < html.index('data-job="1"')
    assert "rehearse" in html and "backup" in html and "api-token" in html
    assert logged_in.get("/jobs?page=99").status_code == 200


def test_an_open_runs_backup_is_protected_from_pruning(app):
    from app.actions.backup_jobs import protected_backup_ids
    from app.checklist.progress import abandon_run, create_run, sign_off, start_step
    from app.targets import current_targets

    with app.app_context():
        targets = current_targets()
        env = targets.environment("production")
        run = create_run(targets, env, "admin")
        for step in ("verify-target", "app-stopped", "data-volume", "backup"):
            assert start_step(targets, run, step, "admin", run_here=True).state == "passed"
            if step == "verify-target":
                sign_off(targets, run, step, "admin", "right file")
        backup_id = db.session.scalars(db.select(Job).where(Job.run_id == run.id, Job.kind == "backup")).one().result_document["backup"]
        assert backup_id in protected_backup_ids(env)
        abandon_run(run, "admin", "test over")
        assert backup_id not in protected_backup_ids(env)


def namesakes_workspace(tmp_path):
    """Environments a and b: two databases called app.db, one shared backup folder."""
    from datetime import datetime, timedelta, timezone

    from app.core.backup import create_backup
    from tests.faults.helpers import make_database

    folder = tmp_path / "workspace"
    for part in ("a", "b", "shared"):
        (folder / part).mkdir(parents=True)
    a, b = make_database(folder / "a" / "app.db"), make_database(folder / "b" / "app.db", rows=50)
    config = folder / "cutover.toml"
    config.write_text('[environments.a]\ndatabase = "a/app.db"\nreference = true\nbackup_dirs = ["shared"]\n\n'
                      '[environments.b]\ndatabase = "b/app.db"\nbackup_dirs = ["shared"]\n')
    now = datetime.now(timezone.utc)
    made = {name: [create_backup(path, [folder / "shared"], now=now - timedelta(days=days)).id for days in ages]
            for name, path, ages in (("a", a, (1, 60)), ("b", b, (40, 50)))}
    return config, folder / "shared", made


def test_namesake_environments_sharing_a_folder_see_and_prune_only_their_own(tmp_path, api_headers):
    import json

    from tests.conftest import log_in, make_app
    from tests.faults.helpers import file_state

    config, shared, made = namesakes_workspace(tmp_path)
    app = make_app(tmp_path, config)
    client = app.test_client()
    a_files = {path: file_state(path) for path in shared.iterdir() if any(i in path.name for i in made["a"])}

    listed = client.get("/api/v1/environments/b/backups", headers=api_headers).get_json()["backups"]
    assert [backup["id"] for backup in listed] == made["b"]
    cli = app.test_cli_runner().invoke(args=["cutover", "backups", "b", "--json"])
    assert [backup["id"] for backup in json.loads(cli.output)["backups"]] == made["b"]
    restore = client.post("/api/v1/environments/b/restore", json={"backup": made["a"][0], "confirm": "b"}, headers=api_headers)
    assert restore.status_code == 404 and f"No backup {made['a'][0]} of" in restore.get_json()["message"]

    log_in(client)
    page = client.get("/environments/b/backups").get_data(as_text=True)
    assert all(f'data-backup="{backup_id}"' not in page for backup_id in made["a"])
    pruned = client.post("/environments/b/backups/prune", data={"csrf_token": csrf_token_from(page)},
                         follow_redirects=True).get_data(as_text=True)

    assert f"Pruned 1 backup(s): {made['b'][1]}." in pruned
    assert {path: file_state(path) for path in a_files} == a_files
    listed = client.get("/api/v1/environments/b/backups", headers=api_headers).get_json()["backups"]
    assert [backup["id"] for backup in listed] == made["b"][:1]
    with app.app_context():
        db.engine.dispose()


def test_work_recorded_under_another_workspace_identity_still_protects_its_backup(tmp_path, demo_dir):
    """The same workspace after its folder moved has another identity: the open run it left
    must still keep its backup from being pruned (keeping too much only costs disk space)."""
    import json
    import shutil

    from app.actions.backup_jobs import protected_backup_ids
    from app.models import Run
    from app.targets import current_targets
    from tests.conftest import make_app

    before = make_app(tmp_path, demo_dir / "cutover.toml")
    with before.app_context():
        run = Run(environment="production", created_by="admin", checklist="[]")
        db.session.add(run)
        db.session.commit()
        db.session.add(Job(kind="backup", environment="production", operator="admin", state="passed",
                           run_id=run.id, step="backup", result=json.dumps({"backup": "20260101_000000"})))
        db.session.commit()
    shutil.copytree(demo_dir, tmp_path / "moved")
    moved = make_app(tmp_path, tmp_path / "moved" / "cutover.toml")
    with moved.app_context():
        assert db.session.query(Run).count() == 0  # the moved workspace's own history is empty
        assert "20260101_000000" in protected_backup_ids(current_targets().environment("production"))
        assert protected_backup_ids(current_targets().environment("development")) == set()
    for app in (before, moved):
        with app.app_context():
            db.engine.dispose()


def test_a_form_posted_in_the_background_gets_its_redirect_as_a_header_and_keeps_its_message(logged_in):
    token = csrf_token_from(logged_in.get("/environments/production/backups").get_data(as_text=True))
    answer = logged_in.post("/environments/production/backups/prune", data={"csrf_token": token},
                            headers={"X-Cutover-Stay": "1"})
    assert answer.status_code == 204 and "Location" not in answer.headers
    assert answer.headers["X-Cutover-Go"] == "/environments/production/backups"
    # Nothing followed the redirect, so the message waits for the page the operator opens next.
    assert "Pruned 0 backup(s)" in logged_in.get(answer.headers["X-Cutover-Go"]).get_data(as_text=True)
