"""The checklist-run API under /api/v1/runs: every route's status codes, shapes and refusals."""
import json
import sys
import threading
import time

import pytest
from sqlalchemy import create_engine, select

from app.extensions import db
from app.models import AuditEntry, Job, Run
from tests.conftest import log_in, make_app

DEFAULT_STEPS = ["verify-target", "app-stopped", "data-volume", "backup", "integrity", "rehearse", "migrate",
                 "hotfix", "verify", "start-app", "smoke", "monitor"]
# What clients rely on; documents may grow more keys.
STEP_KEYS = {"id", "title", "kind", "state", "reason", "manual", "startable", "requires", "needs_signoff", "job",
             "attempts", "signoffs"}
RUN_KEYS = {"id", "environment", "status", "status_note", "created_by", "created_at", "finished_at", "complete",
            "steps"}
SUMMARY_KEYS = {"id", "environment", "status", "created_by", "created_at", "finished_at"}


def command(script: str, **settings) -> dict:
    return {"kind": "command", "argv": [sys.executable, "-c", script], **settings}


def write_config(demo_dir, steps: dict, extra: str = ""):
    """The demo's databases with a checklist of our own steps, in this order (extra: more TOML)."""
    lines = ['[environments.development]', 'database = "goals_dev.db"', 'reference = true',
             '[environments.production]', 'database = "goals.db"', 'backup_dirs = ["backups/local"]', extra,
             '[checklist]', f'order = {json.dumps(list(steps))}']
    for step_id, body in steps.items():
        lines.append(f'[checklist.steps.{step_id}]')
        lines += [f'{key} = {json.dumps(value)}' for key, value in body.items()]
    config = demo_dir / "cutover.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


@pytest.fixture
def checklist_app(tmp_path, demo_dir):
    """Build an app over the demo's databases whose checklist is the given steps."""
    apps = []

    def build(steps: dict):
        apps.append(make_app(tmp_path, write_config(demo_dir, steps)))
        return apps[-1]

    yield build
    for app in apps:
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()


@pytest.fixture
def custom_app(checklist_app):
    """A quick command, then a long silent one."""
    return checklist_app({"hello": command("print('hello', flush=True)"),
                          "wait": command("import time\nprint('waiting', flush=True)\ntime.sleep(60)")})


def create(client, headers, environment="production"):
    response = client.post("/api/v1/runs", headers=headers, json={"environment": environment})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def step_of(document: dict, step_id: str) -> dict:
    return next(step for step in document["steps"] if step["id"] == step_id)


def wait_until_not_running(client, headers, run_id: int, step_id: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        step = step_of(client.get(f"/api/v1/runs/{run_id}", headers=headers).get_json(), step_id)
        if step["state"] != "running":
            return step
        assert time.monotonic() < deadline, f"{step_id} still running after {timeout} s"
        time.sleep(0.05)


def wait_for_line(app, job_id: int, text: str, timeout: float = 30.0) -> None:
    from app.jobs.runner import log_lines

    deadline = time.monotonic() + timeout
    while True:
        with app.app_context():
            if text in [line.text for line in log_lines(job_id)]:
                return
        assert time.monotonic() < deadline, f"job {job_id} never printed {text!r}"
        time.sleep(0.05)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert body["error"] == code and body["message"]
    return body


# --------------------------------------------------------------------------- creating and listing


def test_create_get_and_list_newest_first(client, api_headers):
    assert client.get("/api/v1/runs", headers=api_headers).get_json() == {"runs": []}

    first = create(client, api_headers)
    assert RUN_KEYS <= set(first)
    assert first["environment"] == "production" and first["status"] == "open" and first["complete"] is False
    assert first["created_by"] == "api-token" and first["finished_at"] is None and first["status_note"] is None
    assert first["created_at"].endswith("Z")
    assert [step["id"] for step in first["steps"]] == DEFAULT_STEPS
    assert all(STEP_KEYS <= set(step) and isinstance(step["title"], str) and step["title"] for step in first["steps"])
    states = {step["id"]: step["state"] for step in first["steps"]}
    assert states["verify-target"] == "ready" and step_of(first, "verify-target")["startable"] is True
    assert {states[s] for s in DEFAULT_STEPS[1:]} == {"blocked"}
    assert step_of(first, "backup")["reason"].startswith("Waits for: Verify the target")
    assert step_of(first, "start-app")["manual"] is True  # the demo has no start_command

    fetched = client.get(f"/api/v1/runs/{first['id']}", headers=api_headers)
    assert fetched.status_code == 200 and fetched.get_json() == first

    abandoned = client.post(f"/api/v1/runs/{first['id']}/abandon", headers=api_headers, json={"reason": "dry run"})
    assert abandoned.status_code == 200
    second = create(client, api_headers)
    assert second["id"] > first["id"]

    runs = client.get("/api/v1/runs", headers=api_headers).get_json()["runs"]
    assert [run["id"] for run in runs] == [second["id"], first["id"]]
    assert all(SUMMARY_KEYS <= set(run) and "steps" not in run for run in runs)
    assert [run["status"] for run in runs] == ["open", "abandoned"]
    assert runs[1]["finished_at"] is not None and runs[0]["finished_at"] is None


@pytest.mark.parametrize("body", [
    {},                                                               # no body at all
    {"data": "environment=production", "content_type": "text/plain"},  # not JSON
    {"data": "environment=production", "content_type": "application/x-www-form-urlencoded"},
    {"data": "{not json", "content_type": "application/json"},       # broken JSON
    {"json": ["production"]},                                          # JSON, not an object
    {"json": "production"},
    {"data": "null", "content_type": "application/json"},
    {"json": {}},
    {"json": {"env": "production"}},
    {"json": {"environment": ""}},
    {"json": {"environment": None}},
    {"json": {"environment": 1}},
    {"json": {"environment": ["production"]}},
    {"json": {"environment": {"name": "production"}}},
], ids=lambda body: json.dumps(body))
def test_create_refuses_a_bad_body(client, api_headers, body):
    assert_error(client.post("/api/v1/runs", headers=api_headers, **body), 400, "usage_error")
    assert client.get("/api/v1/runs", headers=api_headers).get_json() == {"runs": []}


def test_create_on_an_unknown_or_the_reference_environment(client, api_headers):
    unknown = assert_error(client.post("/api/v1/runs", headers=api_headers, json={"environment": "staging"}),
                           404, "not_found")
    assert "development, production" in unknown["message"]
    reference = assert_error(client.post("/api/v1/runs", headers=api_headers, json={"environment": "development"}),
                             400, "usage_error")
    assert "reference" in reference["message"]
    assert client.get("/api/v1/runs", headers=api_headers).get_json() == {"runs": []}


def test_a_second_open_run_on_the_same_environment_is_409(client, api_headers):
    run = create(client, api_headers)
    again = assert_error(client.post("/api/v1/runs", headers=api_headers, json={"environment": "production"}),
                         409, "conflict")
    assert again["run"] == run["id"] and f"Run {run['id']}" in again["message"]
    assert len(client.get("/api/v1/runs", headers=api_headers).get_json()["runs"]) == 1


def test_concurrent_creates_give_exactly_one_run(app, api_headers):
    statuses = []

    def post():
        response = app.test_client().post("/api/v1/runs", headers=api_headers, json={"environment": "production"})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] + [409] * 5


# --------------------------------------------------------------------------- unknown things


def test_unknown_run_is_404_on_every_route(client, api_headers):
    for method, path in [("get", "/api/v1/runs/4242"), ("post", "/api/v1/runs/4242/steps/verify-target/start"),
                         ("post", "/api/v1/runs/4242/steps/verify-target/cancel"),
                         ("post", "/api/v1/runs/4242/steps/verify-target/signoff"),
                         ("post", "/api/v1/runs/4242/abandon"), ("get", "/api/v1/runs/4242/events"),
                         ("get", "/api/v1/runs/4242/report")]:
        response = getattr(client, method)(path, headers=api_headers, json={"reason": "x", "note": "x"})
        body = assert_error(response, 404, "not_found")
        assert "4242" in body["message"], path
    assert client.get("/api/v1/runs/abc", headers=api_headers).status_code == 404
    assert client.get("/api/v1/runs/-1", headers=api_headers).status_code == 404


def test_unknown_step_is_404(client, api_headers):
    run = create(client, api_headers)
    for action in ("start", "cancel", "signoff"):
        response = client.post(f"/api/v1/runs/{run['id']}/steps/no-such-step/{action}", headers=api_headers)
        assert "no-such-step" in assert_error(response, 404, "not_found")["message"]
    assert client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json() == run  # nothing started


# --------------------------------------------------------------------------- starting, gates, cancelling


def test_a_step_behind_a_closed_gate_is_409(client, api_headers):
    run = create(client, api_headers)
    body = assert_error(client.post(f"/api/v1/runs/{run['id']}/steps/backup/start", headers=api_headers),
                        409, "conflict")
    assert body["step"] == "backup" and body["state"] == "blocked"
    assert "Verify the target" in body["message"]
    assert step_of(client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json(), "backup")["job"] is None


@pytest.mark.parametrize("body", [
    {"data": "note", "content_type": "text/plain"}, {"data": "{", "content_type": "application/json"},
    {"json": ["note"]}, {"json": 3},
], ids=lambda body: json.dumps(body))
def test_start_refuses_a_body_that_is_not_a_json_object(client, api_headers, body):
    run = create(client, api_headers)
    assert_error(client.post(f"/api/v1/runs/{run['id']}/steps/verify-target/start", headers=api_headers, **body),
                 400, "usage_error")
    assert step_of(client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json(),
                   "verify-target")["state"] == "ready"


def test_start_runs_then_sign_off_opens_the_next_gate(client, api_headers):
    run = create(client, api_headers)
    started = client.post(f"/api/v1/runs/{run['id']}/steps/verify-target/start", headers=api_headers)
    assert started.status_code == 202
    job = started.get_json()["job"]
    assert job["run"] == run["id"] and job["step"] == "verify-target" and job["kind"] == "verify-target"
    assert job["state"] in ("queued", "running") and job["operator"] == "api-token"

    step = wait_until_not_running(client, api_headers, run["id"], "verify-target")
    assert step["state"] == "passed" and step["needs_signoff"] is True and step["job"]["id"] == job["id"]
    assert step["attempts"] == [job["id"]]
    assert step_of(client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json(),
                   "app-stopped")["state"] == "blocked"  # the sign-off is part of the gate

    url = f"/api/v1/runs/{run['id']}/steps/verify-target/signoff"
    assert_error(client.post(url, headers=api_headers, json={"note": 5}), 400, "usage_error")
    assert_error(client.post(url, headers=api_headers, json=[]), 400, "usage_error")
    assert_error(client.post(url, headers=api_headers, data="ok", content_type="text/plain"), 400, "usage_error")
    assert_error(client.post(url, headers=api_headers, json={"note": "x" * 2001}), 400, "usage_error")
    assert step_of(client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json(),
                   "verify-target")["signoffs"] == []

    signed = client.post(url, headers=api_headers, json={"note": "the right file"})
    assert signed.status_code == 201
    signature = signed.get_json()["signoff"]
    assert {"id", "kind", "step", "operator", "log_sha256", "subject", "subject_sha256"} <= set(signature)
    assert signature["kind"] == "signoff" and signature["step"] == "verify-target"
    assert signature["operator"] == "api-token" and signature["subject"] == f"the result of job {job['id']}"
    assert len(signature["log_sha256"]) == 64 and len(signature["subject_sha256"]) == 64

    document = client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json()
    assert step_of(document, "verify-target")["state"] == "signed_off"
    assert step_of(document, "verify-target")["signoffs"][0]["note"] == "the right file"
    assert step_of(document, "app-stopped")["state"] == "ready"
    # Signing a step that has not run is refused.
    assert_error(client.post(f"/api/v1/runs/{run['id']}/steps/app-stopped/signoff", headers=api_headers),
                 409, "conflict")


def test_a_running_step_holds_the_target_until_cancelled(custom_app, api_headers):
    client = custom_app.test_client()
    run = create(client, api_headers)
    assert client.post(f"/api/v1/runs/{run['id']}/steps/hello/start", headers=api_headers).status_code == 202
    assert wait_until_not_running(client, api_headers, run["id"], "hello")["state"] == "passed"
    # Cancelling a step that is not running is refused.
    assert_error(client.post(f"/api/v1/runs/{run['id']}/steps/hello/cancel", headers=api_headers), 409, "conflict")

    started = client.post(f"/api/v1/runs/{run['id']}/steps/wait/start", headers=api_headers)
    assert started.status_code == 202
    job_id = started.get_json()["job"]["id"]
    try:
        wait_for_line(custom_app, job_id, "waiting")
        again = assert_error(client.post(f"/api/v1/runs/{run['id']}/steps/wait/start", headers=api_headers),
                             409, "conflict")
        assert again["job"] == job_id
        # Any other step of the run, and any other job on that target, waits too.
        assert_error(client.post(f"/api/v1/runs/{run['id']}/steps/hello/start", headers=api_headers), 409, "conflict")
        assert_error(client.post("/api/v1/environments/production/backups", headers=api_headers), 409, "conflict")
        # A run with a running step cannot be abandoned.
        assert_error(client.post(f"/api/v1/runs/{run['id']}/abandon", headers=api_headers, json={"reason": "stop"}),
                     409, "conflict")
        assert step_of(client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json(),
                       "wait")["state"] == "running"
    finally:
        cancelled = client.post(f"/api/v1/runs/{run['id']}/steps/wait/cancel", headers=api_headers)
    assert cancelled.status_code == 200
    job = cancelled.get_json()["job"]
    assert job["id"] == job_id and job["state"] == "cancelled" and job["step"] == "wait"
    step = step_of(client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json(), "wait")
    assert step["state"] == "cancelled" and step["startable"] is True  # it can be retried
    assert_error(client.post(f"/api/v1/runs/{run['id']}/steps/wait/cancel", headers=api_headers), 409, "conflict")


def test_a_step_cancelled_as_soon_as_it_started_is_cancelled_not_interrupted(custom_app, api_headers):
    client = custom_app.test_client()
    run = create(client, api_headers)
    client.post(f"/api/v1/runs/{run['id']}/steps/hello/start", headers=api_headers)
    wait_until_not_running(client, api_headers, run["id"], "hello")
    job_id = client.post(f"/api/v1/runs/{run['id']}/steps/wait/start", headers=api_headers).get_json()["job"]["id"]
    cancelled = client.post(f"/api/v1/runs/{run['id']}/steps/wait/cancel", headers=api_headers)
    assert cancelled.status_code == 200
    job = cancelled.get_json()["job"]
    # The operator cancelled it: not "the worker process ended without reporting".
    assert (job["id"], job["state"], job["error"]) == (job_id, "cancelled", "Cancelled by api-token.")
    assert step_of(client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json(),
                   "wait")["state"] == "cancelled"


def test_concurrent_starts_of_one_step_run_it_once(custom_app, api_headers):
    client = custom_app.test_client()
    run = create(client, api_headers)
    statuses = []

    def post():
        response = custom_app.test_client().post(f"/api/v1/runs/{run['id']}/steps/hello/start", headers=api_headers)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202] + [409] * 4
    step = wait_until_not_running(client, api_headers, run["id"], "hello")
    assert step["state"] == "passed" and len(step["attempts"]) == 1


class StateWrites:
    """Counts the commits made to the dashboard's state database while it is watched: SQLite's
    data_version, seen from a connection of its own, moves with every other connection's commit."""

    def __init__(self, app):
        self.engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        self.connection = self.engine.connect()
        self.first = self.data_version()

    def data_version(self) -> int:
        return self.connection.exec_driver_sql("PRAGMA data_version").scalar()

    def rows(self) -> dict[str, int]:
        tables = [name for (name,) in self.connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {name: self.connection.exec_driver_sql(f'SELECT count(*) FROM "{name}"').scalar() for name in tables}

    def close(self) -> int:
        commits = self.data_version() - self.first
        self.connection.close()
        self.engine.dispose()
        return commits


def test_a_run_is_settled_where_its_last_step_ends_and_reading_it_writes_nothing(checklist_app, api_headers):
    """The last step's job closes the run; every page and document of the run then only reads."""
    app = checklist_app({"by-hand": {"kind": "manual", "instructions": "Tell the team."}})
    client = app.test_client()
    log_in(client)
    run = create(client, api_headers)
    started = client.post(f"/api/v1/runs/{run['id']}/steps/by-hand/start", headers=api_headers,
                          json={"note": "told the team"})
    assert started.status_code == 202
    with app.app_context():
        assert db.session.get(Run, run["id"]).status == "finished"  # before anybody looked at it
        db.session.remove()

    watch = StateWrites(app)
    rows = watch.rows()
    pages = ["/runs", f"/runs/{run['id']}", f"/runs/{run['id']}/state", f"/runs/{run['id']}/report",
             f"/runs/{run['id']}/report.md", "/jobs", "/"]
    documents = ["/api/v1/runs", f"/api/v1/runs/{run['id']}", f"/api/v1/runs/{run['id']}/report"]
    for url in pages + documents:
        response = client.get(url, headers=api_headers if url.startswith("/api/") else {})
        assert response.status_code == 200, (url, response.status_code)
    assert watch.rows() == rows
    assert watch.close() == 0
    assert client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json()["status"] == "finished"


def test_a_step_the_worker_runs_settles_its_run_in_the_worker(checklist_app, api_headers):
    """Nobody opens the run: the worker that ends its last step closes it, and records that once."""
    app = checklist_app({"hello": command("print('hello', flush=True)")})
    client = app.test_client()
    run = create(client, api_headers)
    assert client.post(f"/api/v1/runs/{run['id']}/steps/hello/start", headers=api_headers).status_code == 202
    deadline = time.monotonic() + 60
    while True:
        with app.app_context():
            status = db.session.get(Run, run["id"]).status
            finished = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "run-finished")).all()
            db.session.remove()
        if status != "open":
            break
        assert time.monotonic() < deadline, "the run was never settled"
        time.sleep(0.05)
    assert status == "finished" and [entry.detail for entry in finished] == [f"run {run['id']}"]


def test_a_manual_step_is_confirmed_with_a_note_as_text(checklist_app, api_headers):
    client = checklist_app({"by-hand": {"kind": "manual", "instructions": "Tell the team."}}).test_client()
    run = create(client, api_headers)
    assert step_of(run, "by-hand")["manual"] is True and step_of(run, "by-hand")["instructions"] == "Tell the team."
    url = f"/api/v1/runs/{run['id']}/steps/by-hand/start"
    for body in ({}, {"json": {}}, {"json": {"note": "   "}}, {"json": {"note": 7}}, {"json": {"note": ["x"]}},
                 {"json": {"note": None}}, {"json": {"note": "x" * 2001}}):
        assert_error(client.post(url, headers=api_headers, **body), 400, "usage_error")
    assert step_of(client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json(), "by-hand")["job"] is None

    confirmed = client.post(url, headers=api_headers, json={"note": "told the team on #ops"})
    assert confirmed.status_code == 202
    job = confirmed.get_json()["job"]
    assert job["kind"] == "manual" and job["state"] == "passed" and job["params"] == {"note": "told the team on #ops"}
    document = client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json()
    assert step_of(document, "by-hand")["state"] == "passed"
    assert document["status"] == "finished" and document["complete"] is True and document["finished_at"]
    # A finished run takes no more starts, sign-offs or abandons.
    assert_error(client.post(url, headers=api_headers, json={"note": "again"}), 409, "conflict")
    assert_error(client.post(f"/api/v1/runs/{run['id']}/steps/by-hand/signoff", headers=api_headers), 409, "conflict")
    assert_error(client.post(f"/api/v1/runs/{run['id']}/abandon", headers=api_headers, json={"reason": "x"}),
                 409, "conflict")


# --------------------------------------------------------------------------- abandoning and the report


def test_abandon(client, api_headers):
    run = create(client, api_headers)
    url = f"/api/v1/runs/{run['id']}/abandon"
    for body in ({}, {"json": {}}, {"json": {"reason": ""}}, {"json": {"reason": 3}}, {"json": ["why"]},
                 {"data": "why", "content_type": "text/plain"}):
        assert_error(client.post(url, headers=api_headers, **body), 400, "usage_error")
    assert client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json()["status"] == "open"

    response = client.post(url, headers=api_headers, json={"reason": "wrong maintenance window"})
    assert response.status_code == 200
    summary = response.get_json()
    assert SUMMARY_KEYS <= set(summary) and summary["status"] == "abandoned" and summary["finished_at"]
    document = client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json()
    assert document["status"] == "abandoned" and document["status_note"] == "wrong maintenance window"
    assert not any(step["startable"] for step in document["steps"])

    assert_error(client.post(url, headers=api_headers, json={"reason": "again"}), 409, "conflict")
    assert_error(client.post(f"/api/v1/runs/{run['id']}/steps/verify-target/start", headers=api_headers),
                 409, "conflict")
    assert_error(client.post(f"/api/v1/runs/{run['id']}/steps/verify-target/signoff", headers=api_headers),
                 409, "conflict")
    assert create(client, api_headers)["id"] != run["id"]  # the environment is free again


def test_report_is_markdown(client, api_headers):
    run = create(client, api_headers)
    response = client.get(f"/api/v1/runs/{run['id']}/report", headers=api_headers)
    assert response.status_code == 200 and response.mimetype == "text/markdown"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="cutover-run-{run["id"]}-production.md"')
    text = response.get_data(as_text=True)
    assert text.startswith(f"# Cutover completion report: run {run['id']} on production\n")
    assert "**Not complete yet:** 0 of 12 steps are done" in text


# --------------------------------------------------------------------------- authentication


RUN_ROUTES = [("get", "/api/v1/runs"), ("post", "/api/v1/runs"), ("get", "/api/v1/runs/{id}"),
              ("post", "/api/v1/runs/{id}/steps/verify-target/start"),
              ("post", "/api/v1/runs/{id}/steps/verify-target/cancel"),
              ("post", "/api/v1/runs/{id}/steps/verify-target/signoff"),
              ("post", "/api/v1/runs/{id}/abandon"), ("get", "/api/v1/runs/{id}/events"),
              ("get", "/api/v1/runs/{id}/report")]


@pytest.mark.parametrize("method,path", RUN_ROUTES, ids=[f"{m} {p}" for m, p in RUN_ROUTES])
def test_every_run_route_needs_authentication(client, api_headers, method, path):
    run = create(client, api_headers)
    url = path.format(id=run["id"])
    body = {"environment": "production", "note": "x", "reason": "x"}
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "test-api-token"},
                    {"Accept": "text/event-stream"}):
        response = getattr(client, method)(url, headers=headers, json=body)
        assert response.status_code == 401, (headers, response.status_code)
        assert response.get_json()["error"] == "unauthorized"
    document = client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json()
    assert document["status"] == "open" and all(step["job"] is None for step in document["steps"])
    assert len(client.get("/api/v1/runs", headers=api_headers).get_json()["runs"]) == 1


def test_a_logged_in_operator_uses_the_api_with_the_session_and_a_csrf_token(client):
    assert log_in(client).status_code == 302
    assert client.get("/api/v1/runs").status_code == 200
    # A cookie-authenticated change without the CSRF token is refused.
    refused = client.post("/api/v1/runs", json={"environment": "production"})
    assert refused.status_code == 400 and refused.get_json()["error"] == "csrf_failed"
    assert client.get("/api/v1/runs").get_json() == {"runs": []}


def test_a_start_with_a_bad_note_is_refused_before_any_job(app, client, api_headers):
    run = client.post("/api/v1/runs", headers=api_headers, json={"environment": "production"}).get_json()
    url = f"/api/v1/runs/{run['id']}/steps/verify-target/start"
    for note in (5, ["x"], "x" * 2001):
        assert_error(client.post(url, headers=api_headers, json={"note": note}), 400, "usage_error")
    with app.app_context():
        assert db.session.query(Job).count() == 0
    assert step_of(client.get(f"/api/v1/runs/{run['id']}", headers=api_headers).get_json(),
                   "verify-target")["state"] == "ready"
