"""What each kind of job does. A task takes a JobContext, calls the core, reports through
`context.emit` / `context.progress`, returns a JSON-ready result, and raises a CutoverError
to fail. Tasks run in the worker child (or the CLI); they never see request data."""
from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.actions.backup_jobs import create_default_backup_folder
from app.actions.guards import refuse_outside_open_run
from app.actions.monitoring import end_watch_after_restore
from app.actions.planning import load_plans, matching_rehearsal, plan_view, reference_schema
from app.actions.revisions import (alembic_plan, alembic_view, compiled_plan_set, refuse_captured_online,
                                   refuse_stamp_that_lies)
from app.core.backup import create_backup, find_backup, verify_backup
from app.core.baseline import Baseline
from app.core.checks import integrity_check
from app.core.errors import AlembicError, CutoverError, MigrationFailed
from app.core.migrate import apply_plan, rehearse
from app.core.processes import application_running
from app.core.restore import restore_backup
from app.core.revisions.files import project_digest
from app.core.revisions.graph import RevisionGraph
from app.core.revisions.stamps import check_stamp
from app.jobs.runner import JobCancelled, JobContext, TaskFailed, commands_join_the_job_group, kill_group_except_self


class CommandFailed(CutoverError):
    code = "command_failed"


def integrity_task(context: JobContext) -> dict:
    target = context.environment.target
    context.emit("info", f"Running PRAGMA integrity_check on {target.label} (reads every page).")
    return check_integrity(context, target, failure=f"{{summary}} in {target.label}.")


def check_integrity(context: JobContext, target, *, failure: str):
    """integrity_check of `target` (an engine, or a copy's path), every problem a line;
    `failure` ({summary}) fails the job."""
    result = integrity_check(target, busy_timeout=context.targets.cache.busy_timeout)
    for problem in result.evidence:
        context.emit("error", problem)
    if not result.passed:
        raise CutoverError(failure.format(summary=result.summary))
    context.emit("ok", f"✓ {result.summary}")
    return result.to_dict()


def command_task(context: JobContext) -> dict:
    """Run a configured argv (never a shell), streaming its output line by line.

    Its output is decoded as UTF-8, a byte that is not UTF-8 becoming U+FFFD. The timeout
    holds whatever the output does: when it passes, the command's whole process group is
    killed and the step ends, even if something that escaped the group still holds the
    output open (its reader thread is then left behind)."""
    argv, timeout = list(context.params["argv"]), context.params.get("timeout")
    context.emit("info", "$ " + " ".join(argv))
    env = {**os.environ, **context.params.get("env", {})}
    own_group = not commands_join_the_job_group()
    try:
        process = subprocess.Popen(argv, cwd=context.params.get("cwd"), env=env, encoding="utf-8", errors="replace",
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   process_group=0 if own_group else None)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte or a bad variable name
        raise CommandFailed(f"Cannot start {argv[0]!r}: {getattr(exc, 'strerror', None) or exc}.") from None
    group = process.pid if own_group else os.getpgrp()
    deadline = time.monotonic() + timeout if timeout else None
    output = _Output(process)
    try:
        finished = _follow(context, process, output, context.params.get("stdin", ""), deadline)
    except JobCancelled:
        if own_group:  # in a worker, the canceller ends the whole group itself, after a grace period
            kill_group_except_self(group)
        raise
    except BaseException:  # interrupted, or the log could not be stored: the command goes too
        kill_group_except_self(group)
        raise
    if not finished:
        _stop(process, group)
        _store_waiting(context, output)
        raise CommandFailed(f"{argv[0]} did not finish within {timeout:g} s and was stopped.")
    if finished.error is not None:
        _stop(process, group)
        raise CommandFailed(f"The output of {argv[0]} could not be read ({finished.error}); it was stopped.")
    if process.returncode != 0:
        raise CommandFailed(f"{argv[0]} exited with code {process.returncode}.")
    context.emit("ok", f"✓ {argv[0]} exited with code 0")
    return {"exit_code": 0}


OUTPUT_BATCH = 1000  # lines stored in one commit at most
MAX_LINE_CHARS = 65_536  # a longer line is stored in pieces of this size
REAP_SECONDS = 5.0  # how long a killed command is waited for before the step ends anyway


@dataclass
class _OutputEnd:
    """The reader's last word: the output ended (error None), or reading it failed."""

    error: Exception | None = None


class _Output:
    """A command's output, read line by line by a thread of its own into a queue."""

    def __init__(self, process: subprocess.Popen):
        self.stream, self.lines = process.stdout, queue.SimpleQueue()
        self.reader = threading.Thread(target=_read_output, args=(self.stream, self.lines), daemon=True)
        self.reader.start()

    def close_when_read(self, wait: float = 0.0) -> None:
        """Close the pipe once its reader is done; a reader still blocked (something outside
        the killed group holds the pipe open) keeps it, as closing under it would block."""
        self.reader.join(wait)
        if not self.reader.is_alive():
            self.stream.close()


def _follow(context: JobContext, process: subprocess.Popen, output: _Output, stdin_text: str,
            deadline: float | None) -> _OutputEnd | None:
    """Feed stdin and store the output until the command ends; None if the deadline came first."""
    threading.Thread(target=_feed, args=(process.stdin, stdin_text), daemon=True).start()
    while True:
        batch = _next_batch(output.lines, deadline)
        if batch is None:
            return None
        lines = [item for item in batch if isinstance(item, str)]
        if lines:
            context.emit_lines("info", lines)
        if isinstance(batch[-1], _OutputEnd):
            break
    end = batch[-1]
    output.close_when_read()
    if end.error is None:
        try:
            process.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:  # it closed its output but runs on
            return None
    return end


def _feed(stdin, text: str) -> None:
    try:
        stdin.write(text)
    except (OSError, ValueError):
        pass  # the command does not read its input (or was stopped): that is its business
    finally:
        try:
            stdin.close()
        except (OSError, ValueError):
            pass


def _read_output(stream, output: queue.SimpleQueue) -> None:
    error = None
    try:
        for piece in iter(lambda: stream.readline(MAX_LINE_CHARS), ""):
            output.put(piece.rstrip("\n"))
    except Exception as exc:  # whatever happens here, the step hears of it and ends
        error = exc
    finally:
        output.put(_OutputEnd(error))


def _next_batch(output: queue.SimpleQueue, deadline: float | None) -> list | None:
    """Lines as they come: one at a time when the command trickles (each is seen at once),
    together when it floods (one commit for all that is waiting). None once the deadline passed."""
    try:
        batch = [output.get(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))]
    except queue.Empty:
        return None
    while not isinstance(batch[-1], _OutputEnd) and len(batch) < OUTPUT_BATCH:
        try:
            batch.append(output.get_nowait())
        except queue.Empty:
            break
    return batch


def _store_waiting(context: JobContext, output: _Output) -> None:
    """What the command printed before it was stopped is kept (as far as its reader got)."""
    output.close_when_read(REAP_SECONDS)
    lines = []
    while True:
        try:
            item = output.lines.get_nowait()
        except queue.Empty:
            break
        if isinstance(item, str):
            lines.append(item)
    for start in range(0, len(lines), OUTPUT_BATCH):
        context.emit_lines("info", lines[start:start + OUTPUT_BATCH])


def _stop(process: subprocess.Popen, group: int) -> None:
    """Kill the command's whole process group and reap the command (waiting a bounded time)."""
    kill_group_except_self(group)
    try:
        process.wait(timeout=REAP_SECONDS)
    except subprocess.TimeoutExpired:
        pass  # unkillable for now (a disk that does not answer): the step ends regardless


def backup_task(context: JobContext) -> dict:
    moment = datetime.fromisoformat(context.params["moment"]) if "moment" in context.params else None
    return take_backup(context, moment).to_dict()


def take_backup(context: JobContext, moment: datetime | None = None):
    """A verified backup of the job's environment into every folder, its copies logged."""
    env = context.environment
    create_default_backup_folder(env)
    backup = create_backup(
        env.target, env.backup_dirs, now=moment, busy_timeout=context.targets.cache.busy_timeout,
        progress=context.progress, log=lambda line: context.emit("info", line),
    )
    manifest = backup.manifest
    for copy in backup.copies:
        context.emit("info", f"  copy {copy}")
    context.emit("ok", f"✓ Backup {backup.id} verified: {len(backup.copies)} copies, "
                       f"{manifest.size_bytes:,} bytes, sha256 {manifest.sha256}")
    return backup


def verify_task(context: JobContext) -> dict:
    env = context.environment
    backup = find_backup(env.backup_dirs, env.target, context.params["backup"])
    result = verify_backup(backup, target=env.target)
    for check in result.copies:
        context.emit("ok" if check.ok else "error", f"{'✓' if check.ok else '✗'} {check.path}: {check.reason}")
    if not result.verified:
        raise CutoverError(f"Backup {backup.id} did not verify: see the copies above.", backup_id=backup.id)
    context.emit("ok", f"✓ Backup {backup.id} verified")
    return result.to_dict()


def safety_folder(env) -> Path:
    """Where a restore keeps the database it replaces: beside the backups, outside their listing."""
    folder = Path(env.backup_dirs[0]) / "safety"
    if Path(env.backup_dirs[0]).is_dir():
        folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def restore_task(context: JobContext) -> dict:
    env = context.environment
    refuse_outside_open_run(env.name, "restore", context.job.operator)  # a run opened after this job was recorded
    backup = find_backup(env.backup_dirs, env.target, context.params["backup"])
    context.emit("info", f"Restoring {env.label} from backup {backup.id}.")
    result = restore_backup(
        env.target, backup, safety_dir=safety_folder(env),
        app_running_check=lambda: application_running(env.target, list(env.app.process_patterns)),
        busy_timeout=context.targets.cache.busy_timeout, log=lambda line: context.emit("info", line),
    )
    for note in result.notes:
        context.emit("warning", note)
    ended = end_watch_after_restore(env, context.job.operator, backup.id)
    if ended is not None:
        context.emit("warning", f"Monitoring window {ended.id} stopped: {ended.end_reason}")
    context.emit("ok", f"✓ {env.name} restored from {backup.id}; safety copy kept: {', '.join(result.safety_copies) or 'none'}")
    return {**result.to_dict(), "monitoring_stopped": ended.id if ended else None}


def _plans(context: JobContext):
    return load_plans([Path(p) for p in context.params["plans"]], context.environment.target.dialect)


def rehearse_task(context: JobContext) -> dict:
    if context.params.get("alembic"):
        return _rehearse_revisions(context)[0]
    env, plan_set = context.environment, _plans(context)
    return _rehearse_plan_set(context, env, plan_set)


def _rehearse_plan_set(context: JobContext, env, plan_set, extra: dict | None = None) -> dict:
    _, reference = reference_schema(context.targets, env)
    context.emit("info", f"Rehearsing plan {plan_set.hash[:12]} on a snapshot of {env.label}; the target is only read.")
    result = rehearse(env.target, plan_set, reference_schema=reference, emit=context.emit,
                      busy_timeout=context.targets.cache.busy_timeout, workdir=_scratch_folder(env))
    document = {**result.to_dict(), **(extra or {})}
    if not result.passed:
        raise TaskFailed(f"Rehearsal failed: {result.failure.get('message') if result.failure else 'see the log'}", document)
    context.emit("ok", f"✓ Rehearsal passed: plan {plan_set.hash[:12]} on schema {result.target_fingerprint[:12]}")
    return document


def _scratch_folder(env) -> Path | None:
    """Rehearsal snapshots go beside the backups: that disk was chosen to hold database copies."""
    folder = Path(env.backup_dirs[0])
    return folder if folder.is_dir() else None


def _rehearse_revisions(context: JobContext, stamp_checked: RevisionGraph | None = None):
    """(rehearsal document, PlanSet): the Alembic revisions compiled (those that read the database
    captured on a copy of the target), then rehearsed as any plan is. `stamp_checked`: the graph a
    migrate job read when it proved the stamp true before its backup (neither is done again)."""
    env = context.environment
    digest = project_digest(context.targets.workspace.alembic)  # what a sign-off of this rehearsal pins
    graph, plan = alembic_plan(context.targets, env, context.params.get("to"), graph=stamp_checked)
    context.emit("info", f"Alembic: {env.name} is at {', '.join(plan.current) or 'no revision'}; "
                         f"{len(plan.revisions)} revisions to {plan.target}")
    if stamp_checked is None:
        stamp = check_stamp(context.targets.workspace.alembic, env.target, graph, plan.current)
        for line in stamp.lines():  # the rehearsal runs on a copy of what is there; migrate refuses this
            context.emit("warning", f"Not what the stamp {stamp.revision} says: {line}")
    try:
        plan, plan_set = compiled_plan_set(context.targets, env, graph, plan, context.emit, _scratch_folder(env))
    except AlembicError as failure:
        if failure.details.get("kind") != "capture":
            raise
        context.emit("error", f"✗ {failure.message}")
        raise TaskFailed(f"Rehearsal failed: {failure.message}; {env.name} itself was not touched.",
                         {"passed": False, "alembic": plan.to_dict(), "failure": {"check": "apply", "message": failure.message}}) from None
    return _rehearse_plan_set(context, env, plan_set, {"alembic": plan.to_dict(), "revisions_digest": digest}), plan_set


def migrate_task(context: JobContext) -> dict:
    """Safe by default: refuse drift, back up and verify, require a matching rehearsal, then apply."""
    if context.params.get("alembic"):
        return _migrate_revisions(context)
    env, plan_set = context.environment, _plans(context)
    _refuse_known_failures(context, env, plan_set)
    return _back_up_and_apply(context, env, plan_set)


def _migrate_revisions(context: JobContext) -> dict:
    """As migrate_task, for Alembic revisions. Statements captured from a copy hold only for the data
    they were captured from: they are captured again after this job's backup (the rehearsal of this
    job), and the baseline proves the target unchanged since before that copy when the plan commits."""
    env = context.environment
    view = alembic_view(context.targets, env, context.params.get("to"))
    for line in view.stamp.lines():
        context.emit("error", f"✗ Not what the stamp says: {line}")
    refuse_stamp_that_lies(env, view.stamp)
    context.emit("ok", f"✓ {env.name} has the schema its stamp {view.stamp.revision or '(none)'} stands for")
    refuse_captured_online(env, view.plan)
    if not view.plan.revisions:
        raise CutoverError(f"{env.name} is already at {view.plan.target}: nothing to migrate.")
    if view.plan.needs_capture or view.plan.captured:
        # Never the statements an earlier rehearsal captured: they are captured again after the backup.
        return _back_up_and_apply(context, env, None, graph=view.graph)
    _refuse_predicted_failures(context, view)
    return _back_up_and_apply(context, env, view.plan_set, {"alembic": view.plan.to_dict()})


def _refuse_predicted_failures(context: JobContext, view) -> None:
    for problem in view.preflight.problems:
        context.emit("error", f"✗ {problem.outcome.statement.description}: {problem.error}. Fix: {problem.fix}")
    if not view.ok:
        raise TaskFailed(f"Preflight found {len(view.preflight.problems)} statement(s) that would fail; "
                         "nothing was changed.", view.to_dict())
    context.emit("ok", f"✓ Preflight: {view.reconciliation.summary()}")


def _back_up_and_apply(context: JobContext, env, plan_set, extra: dict | None = None, *, graph=None) -> dict:
    """Back up, rehearse (unless a matching rehearsal exists) and apply. `plan_set` None: Alembic
    revisions (of `graph`, whose stamp was proven true) that read the database, compiled by the
    rehearsal this job runs after its backup."""
    refuse_if_application_runs(env)
    stamp = env.target.stamp()  # before the backup: a write landing during it counts as a change
    create_default_backup_folder(env)
    backup = create_backup(env.target, env.backup_dirs, busy_timeout=context.targets.cache.busy_timeout,
                           progress=context.progress, log=lambda line: context.emit("info", line))
    context.emit("ok", f"✓ Backup {backup.id} verified ({len(backup.copies)} copies): the way back is ready")
    if plan_set is None:
        context.emit("info", "Rehearsing now, on a copy taken after the backup: the captured statements must come "
                             "from the data this migration changes.")
        rehearsal, plan_set = _rehearse_revisions(context, stamp_checked=graph)
        extra = {"alembic": rehearsal["alembic"]}
    else:
        rehearsal = _rehearsal_for(context, env, plan_set, backup.manifest.schema_fingerprint)
    try:
        applied = apply_plan(env.target, plan_set, emit=context.emit,
                             busy_timeout=context.targets.cache.busy_timeout, rehearsal=rehearsal,
                             baseline=_baseline(context, env, backup, stamp),
                             # A run opened while this job backed up and rehearsed owns the target now.
                             precondition=lambda: refuse_outside_open_run(env.name, "migrate", context.job.operator))
    except MigrationFailed as failure:
        document = {"backup": backup.id, "apply": failure.result.to_dict() if failure.result else None}
        raise TaskFailed(f"{failure.message} The database is unchanged; backup {backup.id} is verified.", document) from None
    context.emit("ok", f"✓ Migration of {env.name} committed: plan {plan_set.hash[:12]}")
    return {"backup": backup.id, "plan_hash": plan_set.hash, "apply": applied.to_dict(), **(extra or {})}


def _baseline(context: JobContext, env, backup, stamp: list) -> Baseline | None:
    """The backup the migration must still match, unless the application is declared online."""
    if not env.online:
        return Baseline.of_backup(backup, stamp)
    context.emit("warning", f"{env.name} is declared online: the application stays connected, so rows it "
                            f"writes after backup {backup.id} are not in that backup. Restoring it would lose them.")
    return None


def _refuse_known_failures(context: JobContext, env, plan_set) -> None:
    view = plan_view(context.targets, env, context.params["plans"])
    for problem in view.preflight.problems:
        context.emit("error", f"✗ {problem.outcome.statement.description}: {problem.error}. Fix: {problem.fix}")
    if not view.preflight.ok:
        raise TaskFailed(f"Preflight found {len(view.preflight.problems)} statement(s) that would fail; "
                         "nothing was changed.", view.to_dict())
    context.emit("ok", f"✓ Preflight: {view.reconciliation.summary()}")


def refuse_if_application_runs(env) -> None:
    if env.online:
        return  # declared: the application stays connected during the migration
    running = application_running(env.target, list(env.app.process_patterns))
    if running:
        names = "; ".join(f"pid {p.pid}: {p.cmdline[:80]}" for p in running)
        raise CutoverError(f"The application is still running ({names}). Stop it, then migrate.")


def _rehearsal_for(context: JobContext, env, plan_set, fingerprint: str) -> dict | None:
    if env.reference:
        return None  # the reference is where plans are developed; it needs no rehearsal
    record = matching_rehearsal(env, plan_set.hash, fingerprint)
    if record:
        context.emit("ok", f"✓ Using the passing rehearsal of {record.get('rehearsed_at')} (same plan, same schema)")
        return record
    context.emit("info", "No passing rehearsal of this plan on this schema yet: rehearsing now.")
    return rehearse_task(context)


TASKS = {
    "rehearse": rehearse_task,
    "migrate": migrate_task,
    "integrity": integrity_task,
    "command": command_task,
    "backup": backup_task,
    "verify": verify_task,
    "restore": restore_task,
}
