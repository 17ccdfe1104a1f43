"""Jobs run in a real child process; one per environment; cancel; interrupted after a restart."""
import os
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import select

from app.core.errors import Conflict
from app.extensions import db
from app.jobs.runner import JobContext, living_group_members, cancel, create_job, launch, log_lines, process_alive, process_start_time, reconcile_jobs, run_job
from app.models import Job


def wait_for(app, job_id, states=("passed", "failed", "cancelled", "interrupted"), timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        if job.state in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job.state}")


def command(argv, **params):
    return {"argv": argv, **params}


def test_a_command_job_runs_in_a_child_and_its_lines_are_kept(app):
    with app.app_context():
        job = launch(create_job("command", "production", "admin",
                                command([sys.executable, "-c", "print('one'); print('two <b>')"])))
        assert job.pid != os.getpid()
        job = wait_for(app, job.id)
        assert job.state == "passed", job.error
        texts = [(line.level, line.text) for line in log_lines(job.id)]
        assert texts == [("info", f"$ {sys.executable} -c print('one'); print('two <b>')"),
                         ("info", "one"), ("info", "two <b>"), ("ok", f"✓ {sys.executable} exited with code 0")]
        ids = [line.id for line in log_lines(job.id)]
        assert ids == sorted(ids) and [line.id for line in log_lines(job.id, after=ids[1])] == ids[2:]


def test_a_failing_command_fails_the_job(app):
    with app.app_context():
        job = launch(create_job("command", "production", "admin", command([sys.executable, "-c", "raise SystemExit(3)"])))
        job = wait_for(app, job.id)
        assert job.state == "failed"
        assert job.error == f"{sys.executable} exited with code 3."


def test_a_command_that_cannot_start(app):
    with app.app_context():
        job = create_job("command", "production", "admin", command(["/nonexistent/x; touch /tmp/pwned"]))
        job = run_job(job.id)
        assert job.state == "failed" and "Cannot start" in job.error
        assert not os.path.exists("/tmp/pwned")


def test_command_timeout(app):
    with app.app_context():
        job = create_job("command", "production", "admin", command(["sleep", "30"], timeout=0.5))
        job = run_job(job.id)
        assert job.state == "failed" and "did not finish within 0.5 s" in job.error


def test_one_active_job_per_environment(app):
    with app.app_context():
        first = launch(create_job("command", "production", "admin", command(["sleep", "30"])))
        with pytest.raises(Conflict) as caught:
            create_job("integrity", "production", "will")
        assert f"command (job {first.id}, started by admin) is already running on production" in caught.value.message
        other = create_job("integrity", "development", "will")  # another environment is free
        assert other.state == "queued"
        cancel(first, "admin")
        run_job(other.id)


def test_concurrent_starts_give_exactly_one_job(app):
    outcomes = []

    def start():
        with app.app_context():
            try:
                outcomes.append(create_job("integrity", "production", "admin").id)
            except Conflict:
                outcomes.append("conflict")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=start) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert outcomes.count("conflict") == 7


def test_cancel_ends_the_process_group(app):
    with app.app_context():
        job = launch(create_job("command", "production", "admin",
                                command(["sh", "-c", "sleep 60 & sleep 60; wait"])))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(log_lines(job.id)) < 1:
            time.sleep(0.05)
        pid, start = job.pid, job.pid_start
        job = cancel(job, "will")
        assert job.state == "cancelled"
        assert not process_alive(pid, start)
        assert living_group_members(pid) == []
        assert "Cancelled" in log_lines(job.id)[-1].text


def test_a_killed_worker_is_interrupted_not_passed(app):
    with app.app_context():
        job = launch(create_job("command", "production", "admin", command(["sleep", "60"])))
        time.sleep(0.3)
        os.killpg(job.pid, 9)
        job = wait_for(app, job.id)
        assert job.state == "interrupted"


def test_restart_reconciles_jobs_whose_process_is_gone(app):
    finished = subprocess.Popen(["true"])
    finished.wait()
    with app.app_context():
        job = create_job("integrity", "production", "admin")
        job.state, job.pid, job.pid_start = "running", finished.pid, "12345"
        db.session.commit()
        assert reconcile_jobs() == [job.id]
        db.session.expire_all()
        job = db.session.get(Job, job.id)
        assert job.state == "interrupted"
        assert "restarted" in log_lines(job.id)[-1].text


def test_integrity_job_on_the_demo(app):
    with app.app_context():
        job = run_job(create_job("integrity", "production", "admin").id)
        assert job.state == "passed"
        assert log_lines(job.id)[-1].text == "✓ integrity_check: ok"


def test_log_injection_is_one_line(app):
    with app.app_context():
        job = create_job("integrity", "production", "admin")
        JobContext(job).emit("info", "name=x\r\n2026-01-01 ok FAKE LINE")
        assert [line.text for line in log_lines(job.id)] == ["name=x\\r\\n2026-01-01 ok FAKE LINE"]


def test_a_job_that_never_got_a_process_is_released_at_restart(app):
    from datetime import timedelta

    with app.app_context():
        fresh = create_job("integrity", "production", "admin")
        assert reconcile_jobs() == []  # its launch may still be on its way
        fresh.created_at -= timedelta(minutes=5)
        db.session.commit()
        assert reconcile_jobs() == [fresh.id]
        assert db.session.get(Job, fresh.id).state == "interrupted"
        create_job("integrity", "production", "admin")  # the environment is free again


def test_a_worker_that_cannot_load_the_configuration_fails_its_job_with_the_reason(app, demo_config):
    with app.app_context():
        job = create_job("command", "production", "admin", command(["true"]))
        demo_config.write_text("[environments.production\n")  # broken after the dashboard started
        job_id = launch(job).id
        job = wait_for(app, job_id)
        assert job.state == "failed"
        assert "could not start" in job.error and "TOML syntax error" in job.error
        assert "TOML syntax error" in log_lines(job_id)[-1].text


def test_a_command_printing_flat_out_keeps_every_line_in_order(app):
    script = "import sys\nfor i in range(5000):\n    sys.stdout.write(f'line {i}\\n')"
    with app.app_context():
        job = run_job(create_job("command", "production", "admin", command([sys.executable, "-c", script])).id)
        texts = [line.text for line in log_lines(job.id)]
        assert job.state == "passed"
        assert [t for t in texts if t.startswith("line ")] == [f"line {i}" for i in range(5000)]


def test_a_command_run_here_as_the_cli_does_is_stopped_with_its_group_at_its_timeout(app, tmp_path):
    """In the CLI's own process (no worker), the command gets a process group of its own:
    its timeout ends that group (a child sleeping on, its output not UTF-8), never the CLI's."""
    child = tmp_path / "child.pid"
    script = f"printf 'caf\\351\\n'; sleep 60 & echo $! > {child}; wait"
    with app.app_context():
        job = run_job(create_job("command", "production", "admin", command(["sh", "-c", script], timeout=1)).id)
        texts = [line.text for line in log_lines(job.id)]
    assert job.state == "failed" and job.error == "sh did not finish within 1 s and was stopped."
    assert "caf\ufffd" in texts
    assert process_start_time(int(child.read_text())) is None  # gone (or a zombie awaiting its reaper)
    assert process_start_time(os.getpid()) is not None  # and this process, the "CLI", lives on
