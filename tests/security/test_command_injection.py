"""Command injection: what cutover.toml gives a command (argv, env, stdin, a start command)
and what a request carries (environment names, step ids, notes, backup ids, a reference, a
user name) is data, never shell text. Each payload would create a marker file if a shell
ever saw it; the marker must never appear. And no shell API may appear in app/ at all."""
import ast
import json
import shutil
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import csrf_token_from, make_app
from tests.security.helpers import wait_for_jobs

SCRIPT = ("import json, os, sys; print(json.dumps({'argv': sys.argv[1:], 'env': os.environ['INJECTED'], "
          "'stdin': sys.stdin.read()}))")
START_SCRIPT = "import json, sys; print(json.dumps(sys.argv[1:]))"
FORBIDDEN_TEXT = ("shell=True", "os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput")
FORBIDDEN_CALLS = {"system", "popen", "getoutput", "getstatusoutput", "spawnl", "spawnlp", "spawnv", "spawnvp"}


def payloads(marker: Path) -> list[str]:
    return [f"x; touch {marker}", f"$(touch {marker})", f"`touch {marker}`", f"x\ntouch {marker}",
            f"--output={marker}", f"x && touch {marker} #", f"| touch {marker}", f"x'; touch {marker}; '"]


def toml_list(values) -> str:
    return json.dumps(list(values))  # JSON strings are TOML basic strings


@pytest.fixture(scope="module")
def armed(tmp_path_factory, demo_template):
    """The demo's databases, a checklist whose configured values all carry payloads."""
    root = tmp_path_factory.mktemp("injection")
    workspace = root / "demo"
    shutil.copytree(demo_template, workspace)
    markers = root / "markers"
    markers.mkdir()
    marker = markers / "MARKER"
    bad = payloads(marker)
    (workspace / "cutover.toml").write_text("\n".join([
        '[environments.development]', 'database = "goals_dev.db"', 'reference = true',
        '[environments.production]', 'database = "goals.db"', 'backup_dirs = ["backups/local"]',
        f'app = {{ start_command = {toml_list([sys.executable, "-c", START_SCRIPT, *bad])} }}',
        '[checklist]', 'order = ["inert", "confirm", "launch", "argv0"]',
        '[checklist.steps.inert]', 'kind = "command"',
        f'argv = {toml_list([sys.executable, "-c", SCRIPT, *bad])}',
        f'env = {{ INJECTED = {json.dumps(bad[1])} }}',
        f'stdin = {json.dumps(bad[0])}',
        '[checklist.steps.confirm]', 'kind = "manual"', 'instructions = "Say what you did."', 'requires = ["inert"]',
        '[checklist.steps.launch]', 'kind = "start-app"', 'requires = ["inert"]',
        '[checklist.steps.argv0]', 'kind = "command"', f'argv = {toml_list([bad[0]])}', 'requires = ["inert"]',
    ]) + "\n")
    app = make_app(root, workspace / "cutover.toml")
    yield app, marker, workspace
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()


def finished_step(client, headers, run_id: int, step_id: str, body: dict | None = None) -> dict:
    response = client.post(f"/api/v1/runs/{run_id}/steps/{step_id}/start", headers=headers, json=body or {})
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["job"]["id"]
    wait_for_jobs(client.application)
    return client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()


def test_configured_values_reach_the_command_verbatim_and_no_shell_runs(armed, api_headers):
    app, marker, workspace = armed
    client = app.test_client()
    run = client.post("/api/v1/runs", headers=api_headers, json={"environment": "production"}).get_json()
    inert = finished_step(client, api_headers, run["id"], "inert")
    assert inert["job"]["state"] == "passed", inert
    printed = json.loads(inert["lines"][1]["text"])
    assert printed == {"argv": payloads(marker), "env": payloads(marker)[1], "stdin": payloads(marker)[0]}

    argv0 = finished_step(client, api_headers, run["id"], "argv0")
    assert argv0["job"]["state"] == "failed" and "Cannot start" in argv0["job"]["error"]

    launch = finished_step(client, api_headers, run["id"], "launch")
    assert launch["job"]["state"] == "failed"  # it printed its argv and exited at once
    started = (workspace / "production-start.log").read_text().splitlines()
    assert json.loads(started[-1]) == payloads(marker)
    assert not marker.exists() and list(marker.parent.iterdir()) == []


def test_request_values_are_inert(armed, api_headers):
    app, marker, _ = armed
    client = app.test_client()
    runs = client.get("/api/v1/runs", headers=api_headers).get_json()["runs"]
    run_id = runs[0]["id"] if runs and runs[0]["status"] == "open" else client.post(
        "/api/v1/runs", headers=api_headers, json={"environment": "production"}).get_json()["id"]
    if client.get(f"/api/v1/runs/{run_id}", headers=api_headers).get_json()["steps"][0]["state"] != "passed":
        assert finished_step(client, api_headers, run_id, "inert")["job"]["state"] == "passed"
    for bad in payloads(marker):
        assert client.post("/api/v1/runs", headers=api_headers, json={"environment": bad}).status_code == 404
        assert client.get("/api/v1/diff", headers=api_headers,
                          query_string={"left": bad, "right": "production"}).status_code == 404
        assert client.post("/api/v1/environments/production/prep", headers=api_headers,
                           query_string={"reference": bad}).status_code == 404
        assert client.post(f"/api/v1/runs/{run_id}/steps/x/start", headers=api_headers,
                           json={"note": bad}).status_code == 404
        for step in (quote(bad, safe=""), quote(bad.replace("/", ""), safe="")):
            for action in ("start", "signoff", "cancel"):
                response = client.post(f"/api/v1/runs/{run_id}/steps/{step}/{action}", headers=api_headers, json={})
                assert response.status_code == 404, (step, action)
        response = client.post("/api/v1/environments/production/restore", headers=api_headers, json={"backup": bad, "confirm": "production"})
        assert response.status_code == 400
        for backup_id in (quote(bad, safe=""), quote(bad.replace("/", ""), safe="")):
            response = client.post(f"/api/v1/environments/production/backups/{backup_id}/verify", headers=api_headers)
            assert response.status_code in (400, 404), backup_id
        page = client.get("/login").get_data(as_text=True)
        response = client.post("/login", data={"username": bad, "password": bad, "csrf_token": csrf_token_from(page)})
        assert response.status_code == 401
    # Notes are kept as text: a manual step confirmed and a sign-off, each with every payload.
    note = " ".join(payloads(marker))
    confirm = finished_step(client, api_headers, run_id, "confirm", {"note": note})
    assert confirm["job"]["state"] == "passed"
    assert client.post(f"/api/v1/runs/{run_id}/steps/inert/signoff", headers=api_headers,
                       json={"note": note}).status_code == 201
    assert client.post(f"/api/v1/runs/{run_id}/abandon", headers=api_headers, json={"reason": note}).status_code == 200
    wait_for_jobs(app)
    assert not marker.exists() and list(marker.parent.iterdir()) == []


# --------------------------------------------------------------------------- the source itself


def shell_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every way of reaching a shell in `source`: the forbidden spellings as text, calls
    with shell= anything but False, and the os/subprocess shell helpers however imported."""
    found = [f"{filename}: {text}" for text in FORBIDDEN_TEXT if text in source]
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                    found.append(f"{filename}:{node.lineno}: shell={ast.unparse(keyword.value)}")
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_CALLS:
            found.append(f"{filename}:{node.lineno}: .{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "subprocess", "commands", "pty"):
            found += [f"{filename}:{node.lineno}: from {node.module} import {alias.name}"
                      for alias in node.names if alias.name in FORBIDDEN_CALLS | {"spawn"}]
    return found


def test_no_shell_anywhere_in_the_application_code():
    sources = sorted(Path("app").rglob("*.py"))
    assert len(sources) > 40
    found = [use for path in sources for use in shell_uses(path.read_text(), str(path))]
    assert found == []


@pytest.mark.parametrize("snippet", [
    "subprocess.run(cmd, shell=True)", "subprocess.Popen(cmd, shell = True)", "subprocess.call(c, shell=flag)",
    "os.system('ls')", "import os as o\no.system('ls')", "from os import system\nsystem('ls')",
    "os.popen('ls')", "subprocess.getoutput('ls')", "from subprocess import getstatusoutput",
    "os.spawnlp(os.P_WAIT, 'sh', 'sh', '-c', 'ls')",
])
def test_the_scan_finds_every_spelling(snippet):
    assert shell_uses(snippet) != []


def test_the_scan_leaves_plain_argv_alone():
    assert shell_uses("subprocess.Popen(['ls', '-l'], shell=False)\nsubprocess.run(argv)") == []
