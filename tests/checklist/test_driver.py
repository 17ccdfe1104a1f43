"""`flask --app run cutover run-checklist ENV [--yes]`: the checklist headless, in the dashboard's database.

Real processes write the same state database the API reads: a run the command drives shows
in GET /api/v1/runs, and every line it prints is a line of the run's log.
"""
import getpass
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import LogLine
from tests.conftest import make_app
from tests.web.test_runs_api import checklist_app, command, write_config  # noqa: F401

PROJECT = Path(__file__).resolve().parents[2]
OPERATOR = f"cli:{getpass.getuser()}"
pytestmark = pytest.mark.timeout(120)


def cli_env(tmp_path, config) -> dict:
    return {**os.environ, "CUTOVER_CONFIG": str(config), "CUTOVER_INSTANCE_DIR": str(tmp_path / "instance"),
            "CUTOVER_ADMIN_PASSWORD": "cli-admin-password"}


def cli(tmp_path, config, *args, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "flask", "--app", "run", "cutover", *args], cwd=PROJECT,
                          env=cli_env(tmp_path, config), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def dashboard(tmp_path):
    """Build the dashboard over the state database the command uses (instance/cutover.db)."""
    apps = []

    def build(config):
        instance = tmp_path / "instance"
        apps.append(make_app(tmp_path, config, INSTANCE_DIR=instance,
                             SQLALCHEMY_DATABASE_URI=f"sqlite:///{instance / 'cutover.db'}"))
        return apps[-1]

    yield build
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def api(app, path: str):
    response = app.test_client().get(path, headers={"Authorization": "Bearer test-api-token"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def states(document: dict) -> dict:
    return {step["id"]: step["state"] for step in document["steps"]}


def run_lines(app, run_id: int) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(LogLine.text).where(LogLine.run_id == run_id).order_by(LogLine.id)))


def printed_in_order(lines: list[str], output: str) -> None:
    """Every line of the log was printed, as a whole line, in the log's order."""
    printed = output.splitlines()
    position = 0
    for line in lines:
        assert line in printed[position:], f"not printed (in order): {line!r}"
        position = printed.index(line, position) + 1


TINY_WINDOW = "[verification]\nmonitor_hours = 0.0005\nmonitor_interval_minutes = 0.005\n"


# --------------------------------------------------------------------------- through Click's runner


def test_without_yes_it_stops_at_the_first_signoff_and_the_run_shows_in_the_api(app, runner):
    result = runner.invoke(args=["cutover", "run-checklist", "production"])
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("Run 1 created on production.\n== [1/12] Verify the target\n")
    assert "[1/12] Verify the target passed and waits for a sign-off" in result.stderr
    assert "[2/12]" not in result.output  # nothing after the sign-off ran

    runs = api(app, "/api/v1/runs")["runs"]
    assert [(r["id"], r["environment"], r["status"], r["created_by"]) for r in runs] == [
        (1, "production", "open", OPERATOR)]
    document = api(app, "/api/v1/runs/1")
    step = document["steps"][0]
    assert (step["id"], step["state"], step["needs_signoff"], step["signoffs"]) == ("verify-target", "passed", True, [])
    assert set(states(document).values()) - {"passed"} == {"blocked"}
    lines = run_lines(app, 1)
    assert len(lines) >= 4 and lines[-1].startswith("✓ production is ")
    printed_in_order(lines, result.stdout)


def test_manual_steps_need_yes_and_approvals_are_never_faked(checklist_app):
    app = checklist_app({
        "hello": command("print('hello from a step', flush=True)"),
        "tell": {"kind": "manual", "instructions": "Tell the team the database is down."},
        "guarded": command("print('guarded ran')", approval=True),
    })
    runner = app.test_cli_runner()

    stopped = runner.invoke(args=["cutover", "run-checklist", "production"])
    assert stopped.exit_code == 1
    assert "hello from a step" in stopped.stdout
    assert "[2/3] Tell is done by hand: Tell the team the database is down." in stopped.stderr
    assert states(api(app, "/api/v1/runs/1")) == {"hello": "passed", "tell": "ready", "guarded": "blocked"}

    confirmed = runner.invoke(args=["cutover", "run-checklist", "production", "--yes"])
    assert confirmed.exit_code == 1
    assert confirmed.stdout.startswith("Resuming run 1 on production")
    assert "hello from a step" not in confirmed.stdout  # a passed step is not run again
    assert f"✓ Confirmed by {OPERATOR}: confirmed headless (run-checklist --yes)" in confirmed.stdout.splitlines()
    assert "needs a second operator's approval" in confirmed.stderr
    document = api(app, "/api/v1/runs/1")
    assert states(document) == {"hello": "passed", "tell": "passed", "guarded": "ready"}
    assert document["steps"][2]["job"] is None and document["status"] == "open"
    printed_in_order(run_lines(app, 1), stopped.stdout + confirmed.stdout)


def test_a_failing_step_exits_1_and_a_rerun_retries_it(checklist_app):
    app = checklist_app({"ok": command("print('fine')"),
                         "broken": command("import sys\nprint('about to fail', flush=True)\nsys.exit(3)"),
                         "after": command("print('never')")})
    runner = app.test_cli_runner()
    first = runner.invoke(args=["cutover", "run-checklist", "production", "--yes"])
    assert first.exit_code == 1
    assert "about to fail" in first.stdout and "[2/3] Broken failed:" in first.stderr
    assert "exited with code 3" in first.stderr and "never" not in first.output

    again = runner.invoke(args=["cutover", "run-checklist", "production", "--yes"])
    assert again.exit_code == 1
    assert "[2/3] Broken: retrying after failed." in again.stdout
    document = api(app, "/api/v1/runs/1")
    assert states(document) == {"ok": "passed", "broken": "failed", "after": "blocked"}
    assert len(document["steps"][0]["attempts"]) == 1 and len(document["steps"][1]["attempts"]) == 2
    assert document["status"] == "open"


def test_usage_errors_exit_2(app, runner):
    for args, message in ((["staging"], "No environment named 'staging'"),
                          (["development"], "development is the reference environment"),
                          ([], "Missing argument")):
        result = runner.invoke(args=["cutover", "run-checklist", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output
    assert api(app, "/api/v1/runs") == {"runs": []}


# --------------------------------------------------------------------------- as real processes


def test_yes_runs_the_whole_demo_checklist_resuming_the_open_run(tmp_path, demo_dir, dashboard):
    config = demo_dir / "cutover.toml"
    text = config.read_text()
    config.write_text(text.replace("monitor_hours = 24", "monitor_hours = 0.0005")
                      .replace("monitor_interval_minutes = 15", "monitor_interval_minutes = 0.005"))
    prep = cli(tmp_path, config, "prep", "production", "--reference", "development",
               "--output", str(demo_dir / "plans" / "prep_production.sql"))
    assert prep.returncode == 0, prep.stderr

    stopped = cli(tmp_path, config, "run-checklist", "production")
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    app = dashboard(config)
    assert [(r["id"], r["status"]) for r in api(app, "/api/v1/runs")["runs"]] == [(1, "open")]
    verify_job = api(app, "/api/v1/runs/1")["steps"][0]["job"]["id"]

    done = cli(tmp_path, config, "run-checklist", "production", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Resuming run 1 on production")
    assert "== [1/12]" not in done.stdout  # the passed step was signed, not run again
    assert done.stdout.rstrip().endswith("Run 1 finished: every step passed.")

    runs = api(app, "/api/v1/runs")["runs"]
    assert [(r["id"], r["status"]) for r in runs] == [(1, "finished")] and runs[0]["finished_at"]
    document = api(app, "/api/v1/runs/1")
    assert document["complete"] is True
    assert states(document) == {
        "verify-target": "signed_off", "app-stopped": "passed", "data-volume": "passed", "backup": "passed",
        "integrity": "passed", "rehearse": "signed_off", "migrate": "passed", "hotfix": "passed",
        "verify": "passed", "start-app": "passed", "smoke": "signed_off", "monitor": "passed"}
    assert document["steps"][0]["attempts"] == [verify_job]
    assert all(len(step["attempts"]) == 1 for step in document["steps"])
    printed_in_order(run_lines(app, 1), stopped.stdout + stopped.stderr + done.stdout + done.stderr)
    # The production database now matches development.
    assert cli(tmp_path, config, "diff", "development", "production").returncode == 0


def test_unknown_environment_and_bad_config_exit_2(tmp_path, demo_config, dashboard):
    unknown = cli(tmp_path, demo_config, "run-checklist", "staging", "--yes")
    assert unknown.returncode == 2, unknown.stderr
    assert "Error: No environment named 'staging'" in unknown.stderr
    reference = cli(tmp_path, demo_config, "run-checklist", "development")
    assert reference.returncode == 2 and "reference environment" in reference.stderr
    app = dashboard(demo_config)
    assert api(app, "/api/v1/runs") == {"runs": []}

    broken = demo_config.parent / "broken.toml"
    broken.write_text(demo_config.read_text() + '\n[checklist]\norder = ["no-such-step"]\n')
    bad = cli(tmp_path, broken, "run-checklist", "production")
    assert bad.returncode == 2 and "no-such-step" in bad.stderr and "Traceback" not in bad.stderr


def test_a_monitoring_window_that_fails_stops_with_1_instead_of_retrying(tmp_path, demo_dir, dashboard):
    config = write_config(demo_dir, {"monitor": {"kind": "monitor"}},
                          extra=TINY_WINDOW + '[checks]\nalways_fails = "SELECT 1"\n')
    result = cli(tmp_path, config, "run-checklist", "production", "--yes", timeout=30)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "tick 0: failed" in result.stderr
    assert "retrying" not in result.stdout
    document = api(dashboard(config), "/api/v1/runs/1")
    assert states(document) == {"monitor": "failed"} and len(document["steps"][0]["attempts"]) == 1


def test_a_run_abandoned_while_the_command_waits_exits_1(tmp_path, demo_dir, dashboard):
    config = write_config(demo_dir, {"monitor": {"kind": "monitor"}},
                          extra="[verification]\nmonitor_hours = 0.01\nmonitor_interval_minutes = 0.005\n")
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "run", "cutover", "run-checklist",
                                "production", "--yes"], cwd=PROJECT, env=cli_env(tmp_path, config),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Once it has created the run, the command is past creating the state database.
        assert process.stdout.readline() == "Run 1 created on production.\n"
        deadline = time.monotonic() + 30
        app = dashboard(config)
        client = app.test_client()
        headers = {"Authorization": "Bearer test-api-token"}
        while True:
            response = client.get("/api/v1/runs/1", headers=headers)
            if response.status_code == 200 and states(response.get_json()) == {"monitor": "monitoring"}:
                break
            assert time.monotonic() < deadline, "the command never started watching"
            time.sleep(0.05)
        abandoned = client.post("/api/v1/runs/1/abandon", headers=headers, json={"reason": "rolled back by hand"})
        assert abandoned.status_code == 200, abandoned.get_json()
        stdout, stderr = process.communicate(timeout=30)  # well before the 36 s window ends
        stdout = "Run 1 created on production.\n" + stdout
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 1, stdout + stderr
    assert "every step passed" not in stdout
    assert "Run 1 was abandoned by an operator: rolled back by hand." in stderr
