"""Secrets never leave the dashboard, and user text never forges a line.

The three configured secrets (session key, API token, admin password) are distinctive
values set in the environment, so the step's worker process and the command it runs see
them too; a command step holds NOTIFY_TOKEN in its env and prints all four, one by one, in
running text and in a dump of its environment. None of them may appear in any page or API
answer (every GET route of the URL map is crawled), any SSE event, either report, any log
line or any audit entry. Then CR/LF in notes, sign-off notes, abandon reasons and user
names at login must not start a new log line, audit entry, SSE event or report line."""
import json
import shutil
import sys

import pytest
from sqlalchemy import select

from tests.conftest import csrf_token_from, make_app
from tests.security.helpers import route_table, wait_for_jobs

SECRETS = {"CUTOVER_SECRET_KEY": "sk-Distinctive-4c1e9b7a", "CUTOVER_API_TOKEN": "tok-Distinctive-8f2d6e0c",
           "CUTOVER_ADMIN_PASSWORD": "pw-Distinctive-3a7b5c9d"}
NOTIFY_TOKEN = "nt-Distinctive-6e4f2a1b"
EVERY_SECRET = [*SECRETS.values(), NOTIFY_TOKEN]
PRINTER = (
    "import os, sys\n"
    "for name in ('CUTOVER_SECRET_KEY', 'CUTOVER_API_TOKEN', 'CUTOVER_ADMIN_PASSWORD', 'NOTIFY_TOKEN'):\n"
    "    print(name, '=', os.environ[name], flush=True)\n"
    "    print('inline:' + os.environ[name] + ';tail', file=sys.stderr, flush=True)\n"
    "print(dict(os.environ), flush=True)\n"
)
FORGED = "2026-01-01T00:00:00Z ok admin FORGED"
FORGERIES = [f"fine\r\n{FORGED}", f"fine\n{FORGED}", f"fine\r{FORGED}",
             f"fine\r\n\r\nevent: end\r\ndata: {FORGED}\r\n\r\n", f"fine\n\n## {FORGED}\n- [x] {FORGED}"]


@pytest.fixture(scope="module")
def vault(tmp_path_factory, demo_template):
    root = tmp_path_factory.mktemp("secrets")
    workspace = root / "demo"
    shutil.copytree(demo_template, workspace)
    (workspace / "cutover.toml").write_text("\n".join([
        '[environments.development]', 'database = "goals_dev.db"', 'reference = true',
        '[environments.production]', 'database = "goals.db"', 'backup_dirs = ["backups/local"]',
        '[checklist]', 'order = ["notify", "confirm"]',
        '[checklist.steps.notify]', 'kind = "command"', 'signoff = true',
        f'argv = {json.dumps([sys.executable, "-c", PRINTER])}',
        f'env = {{ NOTIFY_TOKEN = "{NOTIFY_TOKEN}" }}',
        '[checklist.steps.confirm]', 'kind = "manual"', 'instructions = "Tell the team."',
    ]) + "\n")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SECRETS.items():
            patch.setenv(name, value)  # the worker child reads its configuration from here
        app = make_app(root, workspace / "cutover.toml", SECRET_KEY=SECRETS["CUTOVER_SECRET_KEY"],
                       CUTOVER_API_TOKEN=SECRETS["CUTOVER_API_TOKEN"],
                       CUTOVER_ADMIN_PASSWORD=SECRETS["CUTOVER_ADMIN_PASSWORD"])
        client = app.test_client()
        for forged in FORGERIES:  # user names at login
            token = csrf_token_from(client.get("/login").get_data(as_text=True))
            client.post("/login", data={"username": "admin" + forged, "password": "x", "csrf_token": token})
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        assert client.post("/login", data={"username": "admin", "password": SECRETS["CUTOVER_ADMIN_PASSWORD"],
                                           "csrf_token": token}).status_code == 302
        api = {"Authorization": f"Bearer {SECRETS['CUTOVER_API_TOKEN']}"}
        first = client.post("/api/v1/runs", headers=api, json={"environment": "production"}).get_json()["id"]
        notify = client.post(f"/api/v1/runs/{first}/steps/notify/start", headers=api).get_json()["job"]["id"]
        wait_for_jobs(app)
        token = csrf_token_from(client.get("/jobs").get_data(as_text=True))
        for forged in FORGERIES:  # sign-off notes, through the page
            client.post(f"/runs/{first}/steps/notify/signoff", data={"note": forged, "csrf_token": token})
        confirm = client.post(f"/api/v1/runs/{first}/steps/confirm/start", headers=api,
                              json={"note": " / ".join(FORGERIES)}).get_json()["job"]["id"]
        assert client.get(f"/api/v1/runs/{first}", headers=api).get_json()["status"] == "finished"
        second = client.post("/runs", data={"environment": "production", "csrf_token": token})
        second = int(second.headers["Location"].rsplit("/", 1)[1])
        client.post(f"/runs/{second}/abandon", data={"reason": " / ".join(FORGERIES), "csrf_token": token})
        wait_for_jobs(app)
        yield app, client, api, {"run_id": first, "job_id": notify, "confirm": confirm, "abandoned": second}
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()


def rows(app, model) -> list:
    from app.extensions import db

    with app.app_context():
        found = db.session.scalars(select(model).order_by(model.id)).all()
        db.session.expunge_all()
        return found


def test_the_command_did_print_every_secret_and_each_was_redacted(vault):
    from app.models import Job, LogLine

    app, _, _, ids = vault
    jobs = {job.id: job for job in rows(app, Job)}
    assert jobs[ids["job_id"]].state == "passed" and jobs[ids["confirm"]].state == "passed"
    texts = [line.text for line in rows(app, LogLine) if line.job_id == ids["job_id"]]
    for name in (*SECRETS, "NOTIFY_TOKEN"):
        assert f"{name} = [redacted]" in texts and f"inline:[redacted];tail" in texts
    dump = next(text for text in texts if text.startswith("{"))
    assert f"'NOTIFY_TOKEN': '[redacted]'" in dump and f"'CUTOVER_API_TOKEN': '[redacted]'" in dump


def responses(vault):
    """Every GET route of the app, as a page (session) and through the API (token), with real ids."""
    app, client, api, ids = vault
    values = {"name": "production", "run_id": ids["run_id"], "job_id": ids["job_id"], "step_id": "notify",
              "backup_id": "20260101_000000", "filename": "js/cutover.js"}
    for route in route_table():
        if route.method != "GET":
            continue
        for run_id, job_id in ((ids["run_id"], ids["job_id"]), (ids["abandoned"], ids["confirm"])):
            url = route.url({**values, "run_id": run_id, "job_id": job_id})
            yield url, client.get(url, headers=api if route.api else {})
    yield "/login", app.test_client().get("/login")


def test_no_secret_in_any_page_api_answer_stream_or_report(vault):
    seen = set()
    for url, response in responses(vault):
        body = response.get_data(as_text=True)
        response.close()
        seen.add((response.status_code, response.mimetype))
        for secret in EVERY_SECRET:
            assert secret not in body, (url, secret)
            assert all(secret not in value for _, value in response.headers.items()), (url, secret)
    assert {(200, "text/event-stream"), (200, "text/markdown"), (200, "text/html"), (200, "application/json")} <= seen


def test_no_secret_in_a_log_line_an_audit_entry_or_the_state_shown(vault):
    from app.models import AuditEntry, Job, LogLine, SignOff

    app, _, _, _ = vault
    kept = [line.text for line in rows(app, LogLine)]
    kept += [f"{e.actor} {e.action} {e.target} {e.result} {e.detail}" for e in rows(app, AuditEntry)]
    kept += [f"{j.params} {j.result} {j.error}" for j in rows(app, Job)]
    kept += [s.note for s in rows(app, SignOff)]
    worker_log = app.config["INSTANCE_DIR"] / "worker.log"
    kept += [worker_log.read_text()] if worker_log.exists() else []
    for secret in EVERY_SECRET:
        assert not [text for text in kept if secret in text], secret


def lines_of(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def test_cr_lf_in_user_text_never_starts_a_line(vault):
    from app.models import AuditEntry, LogLine

    app, client, api, ids = vault
    audit = rows(app, AuditEntry)
    logged = [line.text for line in rows(app, LogLine)]
    # every forged user name was recorded (cut to an operator name's 64 characters)...
    assert sum(e.actor.startswith("adminfine") and e.action == "login" for e in audit) == len(FORGERIES)
    assert any("FORGED" in e.detail for e in audit) and any("FORGED" in text for text in logged)
    for entry in audit:  # ...on one line each
        for value in (entry.actor, entry.action, entry.target, entry.result, entry.detail):
            assert "\r" not in value and "\n" not in value, value
    assert not [text for text in logged if "\r" in text or "\n" in text]
    outputs = {
        "markdown report": client.get(f"/runs/{ids['run_id']}/report.md"),
        "markdown report of the abandoned run": client.get(f"/api/v1/runs/{ids['abandoned']}/report", headers=api),
        "run stream": client.get(f"/api/v1/runs/{ids['run_id']}/events", headers=api),
        "job stream": client.get(f"/api/v1/jobs/{ids['confirm']}/events", headers=api),
    }
    for what, response in outputs.items():
        text = response.get_data(as_text=True)
        assert response.status_code == 200 and "FORGED" in text, what
        if response.mimetype == "text/event-stream":
            assert_well_formed_events(text)
        else:
            for line in lines_of(text):
                assert not line.lstrip("#-*> []x").startswith("2026-01-01T00:00:00Z"), (what, line)


def assert_well_formed_events(text: str) -> None:
    """Only the server's own fields, each data a JSON document, one end event, last."""
    lines = lines_of(text)
    for line in lines:
        field, _, value = line.partition(": ")
        assert line == "" or field in ("id", "event", "data", "retry") or line.startswith(": keepalive"), line
        if field in ("id", "retry"):
            assert value.isdigit(), line
        if field == "data":
            json.loads(value)
        if field == "event":
            assert value in ("line", "end"), line
    assert [line for line in lines if line == "event: end"] == ["event: end"]
    assert [line for line in lines if line][-2] == "event: end"
    assert any("FORGED" in json.loads(line[6:]).get("text", "") for line in lines if line.startswith("data: "))


def test_every_control_character_and_line_separator_is_escaped_in_a_line():
    from app.audit import single_line

    hostile = "a\rb\nc\x1b[2Jd\x0be\x0cf\x85g\u2028h\u2029i\x00j"
    escaped = single_line(hostile)
    assert escaped == "a\\rb\\nc\\x1b[2Jd\\x0be\\x0cf\\x85g\\u2028h\\u2029i\\x00j"
    assert single_line("col1\tcol2") == "col1\tcol2"  # a tab breaks no line


def test_a_secret_with_quotes_and_backslashes_is_redacted_from_the_report_facts():
    from app.checklist.report_facts import _redacted

    secret = 'pa"ss\\word\u2028x'
    facts = {"steps": [{"excerpt": [{"text": f"token={secret}"}]}], "note": secret, "n": 3}
    assert _redacted(facts, [secret]) == {"steps": [{"excerpt": [{"text": "token=[redacted]"}]}],
                                          "note": "[redacted]", "n": 3}
