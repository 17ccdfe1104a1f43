"""How a job executes: in a child process, with its lines persisted as it goes.

The request that starts a job only records it and launches `python -m app.jobs.worker JOB_ID`
(own session, so cancelling ends the whole process group). The child runs the task its kind
registered (app.jobs.registry), writing log lines and progress to the dashboard's database,
which every viewer reads. If the dashboard restarts, a job whose process is gone becomes "interrupted", never
"passed". The CLI runs the same tasks in its own process through `run_job`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Callable

from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.audit import single_line
from app.core.errors import Conflict, CutoverError, NotFound
from app.extensions import db
from app.jobs import registry
from app.models import ACTIVE_JOB_STATES, Job, LogLine, utcnow

PROJECT_DIR = Path(__file__).resolve().parents[2]
CANCEL_GRACE_SECONDS = 5.0
PROGRESS_INTERVAL = 0.25


# Jobs this process is cancelling, and by whom. A worker killed before it could record the
# cancel (still starting up, or deaf to SIGTERM) is seen first by its reaper thread, which
# must then say "cancelled", not "interrupted": the operator asked for it.
_cancelling: dict[int, str] = {}


class TaskFailed(CutoverError):
    """A task's failure that still has a result worth keeping (a rehearsal's report, say)."""

    code = "task_failed"

    def __init__(self, message: str, document: dict):
        super().__init__(message)
        self.document = document


class JobCancelled(BaseException):
    """Raised in the child by SIGTERM; a BaseException so no `except Exception` swallows it."""


def create_job(kind: str, environment: str, operator: str, params: dict | None = None, *,
               run_id: int | None = None, step: str | None = None) -> Job:
    job = Job(kind=kind, environment=environment, operator=operator, params=json.dumps(params or {}),
              run_id=run_id, step=step)
    db.session.add(job)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        error = _busy_error(environment)
        audit.record(operator, kind, target=environment, result="refused", detail=error.message)
        raise error from None
    audit.record(operator, kind, target=environment, result="started", detail=job_label(job))
    return job


def job_label(job: Job) -> str:
    return f"job {job.id}" + (f" (run {job.run_id}, step {job.step})" if job.run_id else "")


def _busy_error(environment: str) -> Conflict:
    running = db.session.scalar(
        select(Job).where(Job.environment == environment, Job.state.in_(ACTIVE_JOB_STATES))
    )
    what = f"{running.kind} (job {running.id}, started by {running.operator})" if running else "another job"
    return Conflict(f"{what} is already running on {environment}. Wait for it to finish or cancel it.",
                    environment=environment, job=running.id if running else None)


def launch(job: Job) -> Job:
    """Start the job in a child process and return at once."""
    app = current_app._get_current_object()
    with _worker_log(app) as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.jobs.worker", str(job.id)],
            cwd=PROJECT_DIR, env=_child_environment(app), start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
        )
    job.pid, job.pid_start = process.pid, process_start_time(process.pid)
    db.session.commit()
    threading.Thread(target=_reap, args=(app, job.id, process), daemon=True).start()
    return job


def _child_environment(app: Flask) -> dict:
    targets = app.extensions["cutover.targets"]
    return {
        **os.environ,
        "CUTOVER_CONFIG": str(targets.workspace.config_path),
        "CUTOVER_STATE_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "CUTOVER_INSTANCE_DIR": str(app.config["INSTANCE_DIR"]),
        "CUTOVER_BUSY_TIMEOUT": str(app.config["CUTOVER_BUSY_TIMEOUT"]),
        "CUTOVER_WORKER": "1",
    }


def _worker_log(app: Flask):
    # A crash in the child leaves its traceback here rather than nowhere.
    return open(Path(app.config["INSTANCE_DIR"]) / "worker.log", "ab")


def _reap(app: Flask, job_id: int, process: subprocess.Popen) -> None:
    """Wait for the child (no zombies) and catch a child that died without reporting."""
    process.wait()
    with app.app_context():
        job = db.session.get(Job, job_id)
        if job is not None and job.active and job_id in _cancelling:
            _finish(job, "cancelled", f"Cancelled by {_cancelling[job_id]}.")
        elif job is not None and job.active:
            _finish(job, "interrupted", f"The worker process ended (exit code {process.returncode}) without reporting.")
        db.session.remove()


def process_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else fields[19]


def process_alive(pid: int | None, start: str | None) -> bool:
    return bool(pid) and process_start_time(pid) is not None and process_start_time(pid) == start


def cancel(job: Job, operator: str) -> Job:
    if not job.active:
        raise Conflict(f"Job {job.id} is {job.state}; only a running job can be cancelled.")
    # The worker records the outcome under the job's operator; who cancelled it is said here.
    audit.record(operator, "cancel", target=job.environment, detail=job_label(job))
    _cancelling[job.id] = operator
    try:
        if process_alive(job.pid, job.pid_start):
            _end_process_group(job.pid, job.pid_start)
        db.session.refresh(job)
        if job.active:
            _finish(job, "cancelled", f"Cancelled by {operator}.")
    finally:
        _cancelling.pop(job.id, None)
    return job


def living_group_members(pgid: int) -> list[int]:
    """Processes of a process group that still run (zombies only wait to be reaped)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _end_process_group(pid: int, start: str | None) -> None:
    """SIGTERM lets the worker roll back and record the cancel; what lingers gets SIGKILL.

    A worker leads its own process group; a job run by the CLI does not (its group is the
    operator's shell pipeline), so only that one process is signalled."""
    leader = os.getpgid(pid) == pid
    send = os.killpg if leader else os.kill
    send(pid, signal.SIGTERM)
    deadline = time.monotonic() + CANCEL_GRACE_SECONDS
    while time.monotonic() < deadline and _still_running(pid, leader):
        time.sleep(0.05)
    if _still_running(pid, leader):
        # A killed writer is safe: SQLite's journal is rolled back by the next opener, and
        # PostgreSQL rolls back the transaction of a connection that closes.
        send(pid, signal.SIGKILL)


def commands_join_the_job_group() -> bool:
    """Whether a command a job starts joins this process's group. In a worker, yes: it leads
    a group of its own, which cancelling or killing the job ends as a whole. Anywhere else
    (the CLI), the group is the operator's shell pipeline: a command gets a group of its own."""
    return bool(current_app.config.get("CUTOVER_IS_WORKER")) and os.getpgrp() == os.getpid()


def kill_group_except_self(pgid: int, attempts: int = 100) -> None:
    """SIGKILL every process of the group but this one, again while any is left (a process
    may fork meanwhile). In a worker, a command's group is the worker's own: the worker must
    live on to record why the step ended."""
    me = os.getpid()
    for _ in range(attempts):
        others = [pid for pid in living_group_members(pgid) if pid != me]
        if not others:
            return
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def _still_running(pid: int, leader: bool) -> bool:
    return bool(living_group_members(pid)) if leader else process_start_time(pid) is not None


NEVER_LAUNCHED_SECONDS = 60.0


def reconcile_jobs() -> list[int]:
    """After a restart: a job whose process is gone did not pass; say so. A job recorded but
    never given a process (the dashboard died in between) would otherwise hold its
    environment's lock for ever."""
    interrupted = []
    stale = utcnow() - timedelta(seconds=NEVER_LAUNCHED_SECONDS)
    for job in db.session.scalars(select(Job).where(Job.state.in_(ACTIVE_JOB_STATES))):
        if job.pid is not None and not process_alive(job.pid, job.pid_start):
            _finish(job, "interrupted", "The dashboard restarted or the worker was killed while this job ran.")
            interrupted.append(job.id)
        elif job.pid is None and job.created_at < stale:
            _finish(job, "interrupted", "The job was recorded but its process never started (the dashboard stopped).")
            interrupted.append(job.id)
    return interrupted


def _finish(job: Job, state: str, message: str = "") -> None:
    job.state, job.finished_at = state, utcnow()
    if message:
        job.error = job.error or message
        db.session.add(new_line(job, "error" if state != "passed" else "ok", message))
    db.session.commit()
    audit.record(job.operator, job.kind, target=job.environment, result=state,
                 detail=f"{job_label(job)} {job.error or ''}".strip())
    _tell_job_ended(job)


def _tell_job_ended(job: Job) -> None:
    # The outcome is recorded already: a listener that fails must not change it, only be told.
    try:
        registry.job_ended(job)
    except Exception:
        db.session.rollback()
        traceback.print_exc(file=sys.stderr)


def new_line(job: Job, level: str, text: str) -> LogLine:
    return LogLine(job_id=job.id, run_id=job.run_id, step=job.step, level=level, text=text)


class JobContext:
    """What a task sees: its environment, parameters, and how to report."""

    def __init__(self, job: Job, echo: Callable[[str, str], None] | None = None):
        self.job = job
        self.params = json.loads(job.params or "{}")
        self.targets = current_app.extensions["cutover.targets"]
        self.environment = self.targets.environment(job.environment)
        self._echo = echo
        self._last_progress = 0.0
        self._secrets = configured_secrets(current_app.config)

    def emit(self, level: str, text: str) -> None:
        self.emit_lines(level, [text])

    def emit_lines(self, level: str, texts: list[str]) -> None:
        """Several lines in one commit: a command printing flat out would otherwise be held
        to the rate of one commit per line."""
        texts = [redact(single_line(text), self._secrets) for text in texts]
        db.session.add_all([new_line(self.job, level, text) for text in texts])
        db.session.commit()
        for text in texts if self._echo else ():
            self._echo(level, text)

    def add_secrets(self, values) -> None:
        """Values a step handles that must not reach its log (a command's token, say)."""
        self._secrets += [value for value in values if len(value) >= 6]

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        self.job.progress_done, self.job.progress_total = done, total
        db.session.commit()


def configured_secrets(config) -> list[str]:
    names = ("SECRET_KEY", "CUTOVER_API_TOKEN", "CUTOVER_ADMIN_PASSWORD")
    return [config[name] for name in names if config.get(name) and len(config[name]) >= 6]


def redact(text: str, secrets: list[str]) -> str:
    """No secret reaches a log line, a stream, a report or the audit log."""
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text


def run_job(job_id: int, echo: Callable[[str, str], None] | None = None) -> Job:
    """Execute a recorded job in this process (the worker child, or the CLI)."""
    job = db.session.get(Job, job_id)
    if job is None:
        raise NotFound(f"No job {job_id}.")
    job.state, job.started_at = "running", utcnow()
    if job.pid is None:  # run here (the CLI): a restart must still find out if we die
        job.pid, job.pid_start = os.getpid(), process_start_time(os.getpid())
    db.session.commit()
    context = JobContext(job, echo)
    try:
        result = registry.task_for(job)(context)
    except CutoverError as error:
        context.emit("error", f"✗ {error.message}")
        job.error = error.message
        job.result = json.dumps(getattr(error, "document", None) or {})
        _finish(job, "failed")
        return job
    except JobCancelled:
        db.session.rollback()
        _finish(job, "cancelled", "Cancelled; every change in progress was rolled back.")
        return job
    except Exception as error:  # a bug must still end the job as failed, with the cause kept
        db.session.rollback()
        traceback.print_exc(file=sys.stderr)
        _finish(job, "failed", f"Internal error: {type(error).__name__}: {error}")
        return job
    job.result = json.dumps(result or {})
    _finish(job, "passed")
    return job


def log_lines(job_id: int, after: int = 0) -> list[LogLine]:
    return list(db.session.scalars(select(LogLine).where(LogLine.job_id == job_id, LogLine.id > after).order_by(LogLine.id)))
