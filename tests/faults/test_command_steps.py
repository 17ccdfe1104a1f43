"""A checklist `command` step, run by the real runner (a worker process launched as the
dashboard does), whose output is hostile: bytes that are not UTF-8, or a pipe held open by a
process that escaped the step's process group. The step always ends, by its timeout at the
latest, with its process group gone and the environment free for the next job."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from app.checklist.progress import start_step
from app.extensions import db
from app.jobs.runner import create_job, living_group_members, log_lines
from app.models import Job
from tests.faults.run_helpers import Apps, new_run, targets_of, write_workspace

FINAL = ("passed", "failed", "cancelled", "interrupted")
ENDS_WITHIN = 40.0  # far beyond each step's timeout; before the fix these steps never ended


def command_checklist(argv: list[str], timeout: float) -> str:
    return f"""
    [checklist]
    order = ["cmd"]
    [checklist.steps.cmd]
    kind = "command"
    argv = {json.dumps(argv)}
    timeout = {timeout}
    """


@pytest.fixture
def command_app(tmp_path):
    made = []

    def build(argv: list[str], timeout: float):
        database = tmp_path / "production.db"
        database.touch()
        apps = Apps(tmp_path, write_workspace(tmp_path / "workspace", database,
                                              checklist=command_checklist(argv, timeout)))
        made.append(apps)
        return apps.start()

    yield build
    for apps in made:
        apps.close()


def run_the_step(app) -> Job:
    """Start the step in a worker, as the dashboard's button does, and wait for its end."""
    with app.app_context():
        run = new_run(app)
        job = start_step(targets_of(app), run, "cmd", "admin")
        assert job.pid and job.pid != os.getpid()
        deadline = time.monotonic() + ENDS_WITHIN
        while time.monotonic() < deadline:
            db.session.expire_all()
            job = db.session.get(Job, job.id)
            if job.state in FINAL:
                break
            time.sleep(0.05)
        else:
            os.killpg(job.pid, 9)  # leave nothing behind, then fail
            raise AssertionError(f"the step is still {job.state} {ENDS_WITHIN:.0f} s after it started, "
                                 f"holding the environment; its log: {[l.text for l in log_lines(job.id)]}")
        db.session.expunge(job)
        return job


def group_gone(pgid: int) -> bool:
    """The worker records the step's end, then exits: wait for that, then look."""
    deadline = time.monotonic() + ENDS_WITHIN
    while living_group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return living_group_members(pgid) == []


def assert_the_environment_is_free(app) -> None:
    with app.app_context():
        job = create_job("integrity", "production", "admin")  # a Conflict if the step still held it
        assert job.state == "queued"


def test_output_that_is_not_utf8_is_kept_with_replacement_characters(command_app):
    app = command_app(["printf", "caf\\351\\nna\\357ve\\n\\377\\376 end"], timeout=5)
    job = run_the_step(app)
    with app.app_context():
        texts = [line.text for line in log_lines(job.id)]
    assert job.state == "passed", (job.error, texts)
    assert texts[1:4] == ["caf\ufffd", "na\ufffdve", "\ufffd\ufffd end"]
    assert texts[-1] == "✓ printf exited with code 0"
    assert_the_environment_is_free(app)


def test_the_timeout_ends_the_step_when_its_output_is_not_utf8_and_it_never_exits(command_app):
    app = command_app(["sh", "-c", "printf 'caf\\351\\n'; exec sleep 60"], timeout=1)
    job = run_the_step(app)
    with app.app_context():
        texts = [line.text for line in log_lines(job.id)]
    assert job.state == "failed", texts
    assert job.error == "sh did not finish within 1 s and was stopped."
    assert "caf\ufffd" in texts
    assert group_gone(job.pid)
    assert_the_environment_is_free(app)


def test_the_timeout_kills_the_group_and_ends_the_step_while_an_escaped_process_holds_its_output(
        command_app, tmp_path):
    """The reader thread stays blocked on the pipe the escaped process keeps open; the step
    ends anyway, and every process of its group is gone."""
    pids = tmp_path / "pids"
    script = (f"setsid sh -c 'echo $$ > {pids}.escaped; exec sleep 60' & "
              f"sleep 60 & echo $! > {pids}.child; echo started; wait")
    app = command_app(["sh", "-c", script], timeout=1)
    try:
        job = run_the_step(app)
        with app.app_context():
            texts = [line.text for line in log_lines(job.id)]
        assert job.state == "failed", texts
        assert job.error == "sh did not finish within 1 s and was stopped."
        assert "started" in texts
        child = int(Path(f"{pids}.child").read_text())
        assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split(")")[1][:3]
        assert group_gone(job.pid)
        assert_the_environment_is_free(app)
    finally:
        escaped = Path(f"{pids}.escaped")
        if escaped.exists():
            os.kill(int(escaped.read_text()), 9)
