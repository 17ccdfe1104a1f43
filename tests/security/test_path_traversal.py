"""Path traversal: every URL argument and request value that names a file (environment names
map to databases, backup folders and prep plans; backup ids to backup copies; step, job
and run ids to rows and logs) refuses `..`, encoded slashes, absolute paths and NUL bytes
with 400/404, reads nothing outside (a canary outside the workspace never shows up) and
writes nothing anywhere (folder snapshots before and after). The routes come from the URL
map, so a new route with such an argument is attacked too."""
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.security.conftest import build_site
from tests.security.helpers import file_state, protected_routes, snapshot, wait_for_jobs

PROJECT = Path(__file__).resolve().parents[2]
CANARY = "CANARY-outside-the-workspace-7d1f"
FILE_ARGUMENTS = ("name", "backup_id", "step_id", "job_id", "run_id")
# As they go on the wire: the client sends them as given, the server decodes once.
SEGMENT_PAYLOADS = [
    "..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%252f..%252fetc%252fpasswd",
    "..%5c..%5cetc%5cpasswd", "....%2f%2f....%2f%2fetc%2fpasswd", "%2Fetc%2Fpasswd", "..", "%2e%2e", "%00",
    "{plausible}%00", "{plausible}%00..%2f..%2fetc%2fpasswd", "{outside}", "..%2f..%2foutside%2fcanary.txt",
    "{plausible}%2f..%2f..%2f..%2foutside",
]
VALUE_PAYLOADS = ["../../etc/passwd", "..\\..\\etc\\passwd", "/etc/passwd", "{outside}", "production\x00",
                  "production/../production", "../outside/canary.txt", "%2e%2e%2fetc%2fpasswd"]
POST_FORM = {"confirm": "production", "note": "n", "reason": "r", "save": "1"}


@pytest.fixture(scope="module")
def target(site):
    """The site, with a canary folder beside its workspace."""
    outside = site.root / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "canary.txt").write_text(CANARY + "\n")
    return site


def everything(site) -> dict:
    """Every file of the test's folder except the dashboard's own state (its database and instance/)."""
    return {"files": snapshot(site.root, exclude=("instance", "state.db", "state.db-wal", "state.db-shm")),
            "rows": site.evidence()["rows"]}


def on_the_wire(payload: str, site, argument: str) -> str:
    plausible = str(site.values[argument])
    outside = quote(str(site.root / "outside" / "canary.txt"), safe="")
    return payload.replace("{plausible}", plausible).replace("{outside}", outside)


def send(site, client, route, url: str, **extra):
    if route.method == "GET":
        return client.get(url, **extra)
    headers = {"X-CSRFToken": site.token(client)}
    if route.api:
        return client.open(url, method=route.method, headers=headers, json={}, **extra)
    return client.open(url, method=route.method, headers=headers, data=POST_FORM, **extra)


def assert_refused(response, what) -> None:
    assert response.status_code in (400, 404), (what, response.status_code)
    body = response.get_data(as_text=True)
    assert CANARY not in body and "root:x:0:0" not in body, what


ATTACKED = [route for route in protected_routes() if any(a in FILE_ARGUMENTS for a, _ in route.arguments)]
# Stopping a watch looks the window up by the name without checking it names a configured
# environment, and redirects (302) instead of answering 404; nothing is read or written.
# See test_stopping_a_watch_checks_the_environment_name below.
KNOWN_GAPS = {("health.monitor_stop", "name")}


def test_every_route_with_a_file_argument_is_attacked():
    assert len(ATTACKED) >= 40
    assert {argument for route in ATTACKED for argument, _ in route.arguments} >= set(FILE_ARGUMENTS)


@pytest.mark.parametrize("payload", SEGMENT_PAYLOADS)
def test_url_arguments_refuse_traversal(target, payload):
    site, client = target, target.operator()
    before = everything(site)
    wrong = []
    for route in ATTACKED:
        for argument, _ in route.arguments:
            if argument not in FILE_ARGUMENTS or (route.endpoint, argument) in KNOWN_GAPS:
                continue
            url = route.url(site.values, **{argument: on_the_wire(payload, site, argument)})
            response = send(site, client, route, url)
            body = response.get_data(as_text=True)
            if response.status_code not in (400, 404) or CANARY in body or "root:x:0:0" in body:
                wrong.append((str(route), argument, url, response.status_code))
    assert wrong == []
    wait_for_jobs(site.app)
    assert everything(site) == before


def test_stopping_a_watch_checks_the_environment_name(target):
    client = target.operator()
    response = client.post("/environments/production%00/health/monitor/stop", data={"csrf_token": target.token(client)})
    assert response.status_code == 404


@pytest.mark.parametrize("payload", VALUE_PAYLOADS)
def test_names_in_query_strings_and_bodies_refuse_traversal(target, payload, api_headers):
    site, client = target, target.operator()
    bad = payload.replace("{outside}", str(site.root / "outside" / "canary.txt"))
    token = site.token(client)
    before = everything(site)
    attempts = {
        "dashboard left": client.get("/", query_string={"left": bad, "right": "production"}),
        "dashboard right": client.get("/", query_string={"left": "development", "right": bad}),
        "api diff": client.get("/api/v1/diff", headers=api_headers, query_string={"left": "development", "right": bad}),
        "api prep reference": client.post("/api/v1/environments/production/prep", headers=api_headers,
                                          query_string={"reference": bad, "save": "1"}),
        "prep page reference": client.post("/environments/production/migration/prep",
                                           data={"reference": bad, "save": "1", "csrf_token": token}),
        "api run environment": client.post("/api/v1/runs", headers=api_headers, json={"environment": bad}),
        "run page environment": client.post("/runs", data={"environment": bad, "csrf_token": token}),
    }
    for what, response in attempts.items():
        assert_refused(response, what)
    wait_for_jobs(site.app)
    assert everything(site) == before


def test_a_symlink_planted_in_a_backup_folder_is_never_followed(tmp_path, demo_template, api_headers):
    """A perfect copy outside the backup folders, linked in with a genuine manifest beside
    the link: following the link would make it verify, so refusals prove it was not followed."""
    from datetime import datetime, timezone

    from app.core.backup import create_backup
    from app.targets import current_targets

    site = build_site(tmp_path, demo_template)
    outside = tmp_path / "outside"
    outside.mkdir()
    with site.app.app_context():
        env = current_targets().environment("production")
        genuine = create_backup(env.target, [outside], now=datetime(2020, 2, 2, 12, tzinfo=timezone.utc))
        folders = env.backup_dirs
    name = genuine.copies[0].name
    for folder in folders:
        (folder / name).symlink_to(outside / name)
        shutil.copyfile(outside / (name + ".json"), folder / (name + ".json"))
    client = site.operator()
    before_outside, target_before = snapshot(outside), file_state(site.production)

    listed = client.get("/api/v1/environments/production/backups", headers=api_headers).get_json()["backups"]
    planted = next(b for b in listed if b["id"] == genuine.id)
    assert planted["status"] != "verified" and planted["copies"] == []
    assert any("symbolic link" in problem for problem in planted["problems"])
    page = client.get("/environments/production/backups").get_data(as_text=True)
    assert f'action="/environments/production/backups/{genuine.id}/restore"' not in page

    verified = client.post(f"/api/v1/environments/production/backups/{genuine.id}/verify", headers=api_headers)
    assert verified.status_code == 200 and verified.get_json()["verified"] is False
    page = client.post(f"/environments/production/backups/{genuine.id}/verify", data={"csrf_token": site.token(client)},
                       follow_redirects=True).get_data(as_text=True)
    assert f"Backup {genuine.id} did NOT verify" in page
    assert client.post(f"/api/v1/runs/{site.run_id}/abandon", headers=api_headers,
                       json={"reason": "restoring by hand"}).status_code == 200  # an open run refuses any restore
    restore = client.post("/api/v1/environments/production/restore", headers=api_headers,
                          json={"backup": genuine.id, "confirm": "production"})
    assert restore.status_code == 202  # the id is well formed and listed: the job itself must refuse
    wait_for_jobs(site.app)
    from app.extensions import db
    from app.models import Job

    with site.app.app_context():
        restore_job = db.session.get(Job, restore.get_json()["job"]["id"])
        assert restore_job.state == "failed" and "No copy of backup" in restore_job.error, restore_job.error
        db.engine.dispose()
    assert file_state(site.production) == target_before
    assert snapshot(outside) == before_outside


# --- one file under two names: the reference and the target are never the same file ---------

def _alias_by_hard_link(demo_dir):
    (demo_dir / "goals.db").unlink()
    (demo_dir / "goals.db").hardlink_to(demo_dir / "goals_dev.db")


def _alias_by_symlinked_folder(demo_dir):
    (demo_dir / "live").symlink_to(demo_dir)
    config = demo_dir / "cutover.toml"
    text = config.read_text()
    assert text.count('database = "goals.db"') == 1
    config.write_text(text.replace('database = "goals.db"', 'database = "live/goals_dev.db"'))


@pytest.mark.parametrize("make_alias", [_alias_by_hard_link, _alias_by_symlinked_folder])
def test_a_target_that_is_the_reference_file_is_refused_before_any_command(tmp_path, demo_dir, make_alias):
    make_alias(demo_dir)
    before = snapshot(demo_dir)
    env = {**os.environ, "CUTOVER_CONFIG": str(demo_dir / "cutover.toml"),
           "CUTOVER_INSTANCE_DIR": str(tmp_path / "instance"), "CUTOVER_ADMIN_PASSWORD": "alias-admin-password"}
    for command in (["diff", "development", "production"], ["migrate", "production", "--yes"]):
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "run", "cutover", *command], cwd=PROJECT,
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert result.stdout == "" and "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "'environments.production.database' names the same file as environment " \
                                   "'development'" in lines[0], result.stderr
    assert snapshot(demo_dir) == before
