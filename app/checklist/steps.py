"""What each checklist step does. Like app.actions.tasks, a step takes a JobContext, calls the core,
reports every line through `context.emit`, returns a JSON-ready result and raises a
CutoverError to fail. Steps read their definition from the run (copied from cutover.toml
when the run was created), never from a request.

The mutating steps (migrate, hotfix) re-check their gates when they execute, not only when
the button was pressed: this run's backup must still verify, the target must be exactly the
file that was backed up and rehearsed, and the application must be stopped.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from app.actions.planning import load_plans
from app.actions.revisions import refuse_captured_online, rehearsed_plan_set, require_true_stamp, uses_alembic
from app.actions.tasks import check_integrity, command_task, refuse_if_application_runs, rehearse_task, take_backup
from app.actions.verification import verify_environment
from app.checklist.progress import checklist_of, passed_result, step_plan_paths
from app.core.backup import find_backup, verify_backup
from app.core.baseline import Baseline, accept_current_state
from app.core.checks import smoke_test
from app.core.errors import CutoverError, MigrationFailed, RehearsalMismatch
from app.core.inspect import inspect_database
from app.core.liveness import health_url_check, port_check
from app.core.migrate import apply_plan, check_rehearsal
from app.core.processes import application_running
from app.core.workspace import Environment
from app.extensions import db
from app.jobs.runner import JobContext, TaskFailed
from app.models import Run

START_WAIT_SECONDS = 30.0
EVIDENCE_LINES = 20
SECRET_NAME_PARTS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "KEY")
# What to do when the target changed after this run's backup: the run cannot go on.
ABANDON = "This run's backup and rehearsal no longer describe it: abandon this run and start a new one."


class StepRefused(CutoverError):
    """A step's gate was closed when it came to execute; nothing was changed."""

    code = "step_refused"


def definition(context: JobContext):
    run = db.session.get(Run, context.job.run_id)
    checklist = checklist_of(run)
    return checklist, checklist.step(context.job.step)


# --------------------------------------------------------------------------- before


def verify_target_step(context: JobContext) -> dict:
    env = context.environment
    if not env.target.target_is_file:
        return _verify_database_target(context, env)
    path = env.location  # this step checks the configured SQLite file itself
    resolved = path.resolve()
    context.emit("info", f"{env.name} is configured as {path}")
    context.emit("info", f"which resolves to {resolved}")
    if not resolved.is_file():
        raise StepRefused(f"{resolved} is not a file: check environments.{env.name}.database in cutover.toml.")
    _refuse_other_environments_file(context, env, resolved)
    before = env.target.stamp()
    snapshot = inspect_database(env.target, deep=False, busy_timeout=context.targets.cache.busy_timeout)
    if env.target.stamp() != before:
        raise StepRefused(f"{path} changed while it was being inspected: something is writing to it. Stop it and retry.")
    facts = snapshot.facts
    context.emit("info", f"size {facts.size_bytes:,} bytes, journal {facts.journal_mode}, "
                         f"user_version {facts.user_version}, {len(snapshot.schema.tables)} tables")
    context.emit("ok", f"✓ {env.name} is {resolved}; schema fingerprint {snapshot.schema.fingerprint()}")
    return {"path": str(path), "resolved": str(resolved), "stamp": before, "size_bytes": facts.size_bytes,
            "journal_mode": facts.journal_mode, "fingerprint": snapshot.schema.fingerprint(),
            "tables": len(snapshot.schema.tables)}


def _verify_database_target(context: JobContext, env: Environment) -> dict:
    """A target on a server: it answers, it is no other environment's database, and it holds still."""
    context.emit("info", f"{env.name} is configured as {env.label}")
    for other in context.targets.workspace.environments:
        if other.name != env.name and other.engine_name == env.engine_name and other.target.identity() == env.target.identity():
            raise StepRefused(f"{env.name}'s database {env.label} is {other.name}'s too ({other.label}). Fix "
                              f"environments.{env.name} in cutover.toml before migrating.")
        if other.name != env.name:
            context.emit("ok", f"✓ not {other.name}'s database ({other.label})")
    before = env.target.stamp()
    snapshot = inspect_database(env.target, deep=False, busy_timeout=context.targets.cache.busy_timeout)
    if env.target.stamp() != before:
        raise StepRefused(f"{env.label} changed while it was being inspected: something is writing to it. Stop it and retry.")
    fingerprint = snapshot.schema.fingerprint()
    context.emit("info", f"{env.target.title} {snapshot.facts.server_version}, {snapshot.facts.size_bytes:,} bytes, "
                         f"{len(snapshot.schema.tables)} tables")
    context.emit("ok", f"✓ {env.name} is {env.label}; schema fingerprint {fingerprint}")
    return {"url": env.label, "stamp": before, "size_bytes": snapshot.facts.size_bytes,
            "fingerprint": fingerprint, "tables": len(snapshot.schema.tables)}


def _refuse_other_environments_file(context: JobContext, env: Environment, resolved: Path) -> None:
    mine = os.stat(resolved)
    for other in context.targets.workspace.environments:
        if other.name == env.name:
            continue
        try:
            theirs = os.stat(other.location)
        except OSError:
            continue
        if (theirs.st_dev, theirs.st_ino) == (mine.st_dev, mine.st_ino):
            raise StepRefused(f"{env.name}'s path {env.label} is the same file as {other.name}'s "
                              f"({other.label}). Fix environments.{env.name}.database before migrating.")
        context.emit("ok", f"✓ not {other.name}'s database ({other.label})")


def app_stopped_step(context: JobContext) -> dict:
    env = context.environment
    patterns = list(env.app.process_patterns)
    if not patterns:
        context.emit("warning", "No process_patterns configured: only open handles on the database are checked.")
    running = application_running(env.target, patterns)
    for process in running:
        context.emit("error", f"✗ pid {process.pid}: {process.cmdline[:120]}")
    if running:
        raise StepRefused(f"The application is running ({len(running)} process(es) above). Stop it, then retry.")
    context.emit("ok", f"✓ No process matches {', '.join(patterns) or '(no patterns)'} and none holds {env.target.backup_name} open")
    if env.app.port:
        listening = port_check(env.app.port)
        if listening.passed:
            raise StepRefused(f"Something still listens on port {env.app.port} (the application?). Stop it, then retry.")
        context.emit("ok", f"✓ Nothing listens on port {env.app.port}")
    return {"processes": [], "patterns": patterns}


def data_volume_step(context: JobContext) -> dict:
    env = context.environment
    snapshot = inspect_database(env.target, deep=False, busy_timeout=context.targets.cache.busy_timeout)
    counts = snapshot.row_counts()
    for table, count in counts.items():
        context.emit("info", f"{table:<40} {count:>12,}" if count is not None else f"{table:<40} (not counted)")
    context.emit("ok", f"✓ {sum(c or 0 for c in counts.values()):,} rows in {len(counts)} tables recorded")
    return {"row_counts": counts, "fingerprint": snapshot.schema.fingerprint()}


def backup_step(context: JobContext) -> dict:
    env = context.environment
    if len(env.backup_dirs) < 2:
        context.emit("warning", "Only one backup folder is configured: the runbook asks for copies in two places.")
    stamp = env.target.stamp()  # before the backup: a write landing during it counts as a change
    backup = take_backup(context)
    return {**backup.to_dict(), "backup": backup.id, "stamp": stamp}


def run_backup(context: JobContext):
    record = passed_result(context.job.run_id, "backup")
    if not record:
        raise StepRefused("This run has no passed backup step.")
    env = context.environment
    return find_backup(env.backup_dirs, env.target, record["backup"]), record


def integrity_step(context: JobContext) -> dict:
    backup, _ = run_backup(context)
    if not context.environment.target.target_is_file:
        return _database_integrity(context, backup)
    copy = backup.copies[0]
    context.emit("info", f"PRAGMA integrity_check on backup {backup.id}: {copy} (reads every page; every copy "
                         f"has sha256 {backup.manifest.sha256[:16]}…)")
    result = check_integrity(context, copy, failure="The backup copy is damaged: {summary}. Do not migrate; "
                                                    "take a new backup.")
    return {"backup": backup.id, "copy": str(copy), **result}


def _database_integrity(context: JobContext, backup) -> dict:
    """A dump was proven by restoring it when it was taken; here the database itself is checked."""
    target = context.environment.target
    context.emit("info", f"Backup {backup.id} was verified by restoring it into a scratch database; checking "
                         f"{target.label} itself before it is migrated")
    result = check_integrity(context, target, failure=f"{{summary}} in {target.label}. Do not migrate it as it is.")
    return {"backup": backup.id, **result}


def rehearse_step(context: JobContext) -> dict:
    checklist, step = definition(context)
    if uses_alembic(context.targets):  # the application's revisions, to the single head
        context.params.update(alembic=True, to=None)
        return rehearse_task(context)
    context.params["plans"] = [str(p) for p in step_plan_paths(context.targets, context.environment, checklist, step)]
    return rehearse_task(context)


# --------------------------------------------------------------------------- mutating


def migrate_step(context: JobContext) -> dict:
    env = context.environment
    checklist, step = definition(context)
    if uses_alembic(context.targets):
        return _migrate_revisions_step(context, env)
    plan_set = load_plans(step_plan_paths(context.targets, env, checklist, step), env.target.dialect)
    backup, backup_record = _verified_run_backup(context)
    baseline = _run_baseline(context, Baseline.of_backup(backup, backup_record["stamp"], remedy=ABANDON))
    _refuse_if_application_runs(context, env)
    _check_run_rehearsal(context, checklist, env)
    return _apply(context, env, plan_set, baseline)


def _migrate_revisions_step(context: JobContext, env: Environment) -> dict:
    """The Alembic revisions exactly as this run's rehearsal ran them. Statements captured on its
    copy hold because the rehearsal came after the run's backup and the baseline proves the target
    unchanged since that backup, under the write lock."""
    backup, backup_record = _verified_run_backup(context)
    baseline = _run_baseline(context, Baseline.of_backup(backup, backup_record["stamp"], remedy=ABANDON))
    _refuse_if_application_runs(context, env)
    rehearsal = passed_result(context.job.run_id, "rehearse")
    if not rehearsal:
        raise StepRefused("This run has no passing rehearsal.")
    plan, plan_set = rehearsed_plan_set(context.targets, env, rehearsal)
    require_true_stamp(context.targets, env, plan.current, context.emit)
    refuse_captured_online(env, plan)
    fingerprint = _matching_rehearsal(context, env, rehearsal, plan_set)
    context.emit("ok", f"✓ This run's rehearsal passed for revisions {', '.join(r.revision.id for r in plan.revisions)} "
                       f"(plan {plan_set.hash[:12]}) on schema {fingerprint[:12]}")
    return {**_apply(context, env, plan_set, baseline), "alembic": plan.to_dict()}


def hotfix_step(context: JobContext) -> dict:
    env = context.environment
    checklist, step = definition(context)
    plan_set = load_plans(step_plan_paths(context.targets, env, checklist, step), env.target.dialect)
    backup, _ = run_backup(context)
    if not backup.verified:
        raise StepRefused(f"Backup {backup.id} is {backup.status} now; the way back must be verified first.")
    migrated = passed_result(context.job.run_id, "migrate")
    if not migrated:
        raise StepRefused("The migrate step of this run has not passed: the hotfix comes right after it.")
    # The way back is still this run's backup; the file must be as the migration left it.
    baseline = _run_baseline(context, Baseline(migrated["stamp"], backup.id, since="the migration committed",
                                               remedy=ABANDON))
    _check_rehearsed_plans(context, checklist, env)
    _refuse_if_application_runs(context, env)
    return _apply(context, env, plan_set, baseline)


def _run_baseline(context: JobContext, baseline: Baseline) -> Baseline:
    """Refused at once when the target changed (the apply checks again under the write lock)."""
    return accept_current_state(context.environment.target, baseline, emit=context.emit,
                                busy_timeout=context.targets.cache.busy_timeout)


def _verified_run_backup(context: JobContext):
    backup, record = run_backup(context)
    context.emit("info", f"Verifying backup {backup.id} again (every copy's hash and quick_check)")
    result = verify_backup(backup, target=context.environment.target)
    for check in result.copies:
        context.emit("ok" if check.ok else "error", f"{'✓' if check.ok else '✗'} {check.path}: {check.reason}")
    if not result.verified:
        raise StepRefused(f"Backup {backup.id} no longer verifies: without a sound way back nothing is migrated.")
    return backup, record


def _refuse_if_application_runs(context: JobContext, env: Environment) -> None:
    refuse_if_application_runs(env)
    context.emit("ok", "✓ The application is stopped")


def _run_rehearsal(context: JobContext, checklist, env: Environment):
    """This run's newest passing rehearsal, and the plan set a rehearsal runs now (every plan)."""
    rehearsal = passed_result(context.job.run_id, "rehearse")
    rehearse = next((s for s in checklist.steps if s.kind == "rehearse"), None)
    if not rehearsal or rehearse is None:
        raise StepRefused("This run has no passing rehearsal.")
    return rehearsal, load_plans(step_plan_paths(context.targets, env, checklist, rehearse), env.target.dialect)


def _check_run_rehearsal(context: JobContext, checklist, env: Environment) -> None:
    rehearsal, every = _run_rehearsal(context, checklist, env)
    fingerprint = _matching_rehearsal(context, env, rehearsal, every)
    context.emit("ok", f"✓ This run's rehearsal passed for plan {every.hash[:12]} on schema {fingerprint[:12]}")


def _matching_rehearsal(context: JobContext, env: Environment, rehearsal: dict, plan_set) -> str:
    """The target's schema fingerprint now, once the run's rehearsal is proven to be of this plan set on it."""
    fingerprint = inspect_database(env.target, deep=False,
                                   busy_timeout=context.targets.cache.busy_timeout).schema.fingerprint()
    try:
        check_rehearsal(rehearsal, plan_set, fingerprint)
    except RehearsalMismatch as mismatch:
        raise StepRefused(mismatch.message) from None
    return fingerprint


def _check_rehearsed_plans(context: JobContext, checklist, env: Environment) -> None:
    """The hotfix must apply what was rehearsed. The migration changed the schema, so the
    rehearsal's fingerprint no longer matches by design; its plan hash still must, or an
    edit made after the rehearsal would reach production unrehearsed."""
    rehearsal, every = _run_rehearsal(context, checklist, env)
    rehearsed = str(rehearsal.get("plan_hash"))
    if rehearsed != every.hash:
        raise StepRefused(f"The plans changed since this run's rehearsal (rehearsed {rehearsed[:12]}, now "
                          f"{every.hash[:12]}): rehearse them again before the hotfix.")
    context.emit("ok", f"✓ This run's rehearsal passed for plan {every.hash[:12]}, the hotfix included")


def _apply(context: JobContext, env: Environment, plan_set, baseline: Baseline) -> dict:
    backup_id = baseline.backup_id
    try:
        applied = apply_plan(env.target, plan_set, emit=context.emit, busy_timeout=context.targets.cache.busy_timeout,
                             baseline=baseline)
    except MigrationFailed as failure:
        document = {"backup": backup_id, "apply": failure.result.to_dict() if failure.result else None}
        raise TaskFailed(f"{failure.message} The database is unchanged; backup {backup_id} is verified.", document) from None
    context.emit("ok", f"✓ {context.job.step} committed on {env.name}: plan {plan_set.hash[:12]}")
    return {"backup": backup_id, "plan_hash": plan_set.hash, "apply": applied.to_dict(), "stamp": env.target.stamp()}


# --------------------------------------------------------------------------- after


def verify_step(context: JobContext) -> dict:
    env = context.environment
    results, baseline = verify_environment(context.targets, env, include_smoke=False)
    for note in baseline.notes:
        context.emit("info", note)
    _emit_checks(context, results)
    failed = [r.name for r in results if not r.passed]
    document = {"passed": not failed, "checks": [r.to_dict() for r in results], "baseline": baseline.notes}
    if failed:
        raise TaskFailed(f"Verification failed: {', '.join(failed)}.", document)
    return document


def _emit_checks(context: JobContext, results) -> None:
    """A line per check, then its evidence (a failing check's as errors)."""
    for result in results:
        context.emit("ok" if result.passed else "error", result.line())
        for line in result.evidence[:EVIDENCE_LINES]:
            context.emit("info" if result.passed else "error", f"    {line}")


def start_app_step(context: JobContext) -> dict:
    env = context.environment
    argv = list(env.app.start_command)
    context.emit("info", "$ " + " ".join(argv))
    log_path = Path(context.targets.workspace.config_path.parent) / f"{env.name}-start.log"
    with open(log_path, "ab") as log:
        try:
            # A new session: the application outlives this step's process group.
            process = subprocess.Popen(argv, cwd=context.targets.workspace.config_path.parent, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise CutoverError(f"Cannot start {argv[0]!r}: {exc.strerror}.") from None
    context.emit("info", f"Started pid {process.pid}; its output goes to {log_path}")
    answered = _wait_until_up(context, env, process)
    return {"pid": process.pid, "log": str(log_path), "answered": answered}


def _wait_until_up(context: JobContext, env: Environment, process: subprocess.Popen) -> str:
    started = time.monotonic()
    while time.monotonic() < started + START_WAIT_SECONDS:
        if process.poll() is not None:
            raise CutoverError(f"The application exited at once with code {process.returncode}: see its log.")
        answer = _liveness(env, time.monotonic() - started)
        if answer:
            context.emit("ok", f"✓ The application is up: {answer}")
            return answer
        time.sleep(0.5)
    raise CutoverError(f"The application did not answer within {START_WAIT_SECONDS:.0f} s.")


def _liveness(env: Environment, running_for: float) -> str | None:
    if env.app.health_url:
        check = health_url_check(env.app.health_url, timeout=2.0)
        return check.summary if check.passed else None
    if env.app.port:
        check = port_check(env.app.port)
        return check.summary if check.passed else None
    if env.app.process_patterns:
        return "process running" if application_running(env.target, list(env.app.process_patterns)) else None
    # Nothing to ask: a process still running after a few seconds is the best evidence there is.
    return "still running after 2 s (no health_url, port or process pattern to ask)" if running_for >= 2.0 else None


def smoke_step(context: JobContext) -> dict:
    env = context.environment
    statements = list(context.targets.workspace.verification.smoke)
    results = []
    if statements:
        context.emit("info", f"Writing {len(statements)} statement(s) in a transaction that is always rolled back")
        results.append(smoke_test(env.target, statements, busy_timeout=context.targets.cache.busy_timeout,
                                  time_limit=context.targets.workspace.verification.check_time_limit))
    if env.app.health_url:
        results.append(health_url_check(env.app.health_url))
    _emit_checks(context, results)
    document = {"passed": all(r.passed for r in results), "checks": [r.to_dict() for r in results]}
    if not document["passed"]:
        raise TaskFailed("The smoke test failed: see the log.", document)
    return document


def monitor_step(context: JobContext) -> dict:
    from app.actions.monitoring import start_window

    env = context.environment
    window = start_window(context.targets, env, context.job.operator, reason=f"run {context.job.run_id}")
    context.emit("ok", f"✓ Watching {env.name} until {window.ends_at:%Y-%m-%d %H:%M} UTC, a tick every "
                       f"{window.interval_seconds} s (window {window.id}); the step passes when it ends clean")
    return {"window": window.id}


# --------------------------------------------------------------------------- by hand and configured


def manual_step(context: JobContext) -> dict:
    _, step = definition(context)
    note = context.params["note"]
    context.emit("ok", f"✓ Confirmed by {context.job.operator}: {note}")
    return {"confirmed_by": context.job.operator, "note": note, "instructions": step.instructions}


def command_step(context: JobContext) -> dict:
    _, step = definition(context)
    environment = dict(step.env)
    context.add_secrets(value for name, value in environment.items()
                        if any(part in name.upper() for part in SECRET_NAME_PARTS))
    context.params.update(argv=list(step.argv), env=environment, cwd=step.cwd, stdin=step.stdin, timeout=step.timeout)
    return command_task(context)


# --------------------------------------------------------------------------- a move (SQLite to PostgreSQL)
# The run is on the PostgreSQL environment; [checklist] source names the SQLite one (cutover.toml's,
# read when the step runs: a move checklist is configured there, never by a request).


def _move_sides(context: JobContext):
    settings = context.targets.workspace.checklist.move
    if settings is None:
        raise StepRefused('This step belongs to a move checklist: set [checklist] kind = "move" and source = "ENV".')
    source = context.targets.workspace.environment(settings.source)
    if source is None:
        raise StepRefused(f"[checklist] source names '{settings.source}', which is not a configured environment.")
    return source, context.environment, settings


def move_targets_step(context: JobContext) -> dict:
    from app.core import move

    source, target, _ = _move_sides(context)
    if source.target.identity() == target.target.identity():
        raise StepRefused(f"The source {source.label} and the target {target.label} are the same database.")
    found = move.sides(source.target, target.target)
    context.emit("ok", f"✓ source {source.name}: {source.label}, {len(found['source_tables'])} tables, "
                       f"{sum(found['source_tables'].values()):,} rows")
    context.emit("ok", f"✓ target {target.name}: {target.label}, {len(found['target_tables'])} tables")
    if found["target_not_empty"]:
        raise StepRefused(f"The target's tables {', '.join(found['target_not_empty'])} already hold rows: a move "
                          "goes into empty tables only. Empty them (or name another database) and retry.")
    context.emit("ok", "✓ every target table is empty")
    return {"source": source.label, "target": target.label, **found}


def move_backup_step(context: JobContext) -> dict:
    from app.actions.backup_jobs import create_default_backup_folder
    from app.core.backup import create_backup

    source, _, _ = _move_sides(context)
    create_default_backup_folder(source)
    stamp = source.target.stamp()  # before the backup: a write landing during it counts as a change
    backup = create_backup(source.target, source.backup_dirs, busy_timeout=context.targets.cache.busy_timeout,
                           progress=context.progress, log=lambda line: context.emit("info", line))
    context.emit("ok", f"✓ Backup {backup.id} of {source.name} verified: {len(backup.copies)} copies, "
                       f"sha256 {backup.manifest.sha256}")
    return {"backup": backup.id, "sha256": backup.manifest.sha256, "stamp": stamp}


def move_preflight_step(context: JobContext) -> dict:
    from app.core import move
    from app.core.engines import engine_for

    source, target, settings = _move_sides(context)
    checked = move.preflight(source.target, target.target, drop=settings.drop)
    for table in checked.tables:
        context.emit("info", f"{table.name:<32} {table.rows:>10,} rows {len(table.rejected):>8,} rejected")
        for group in table.groups.values():
            context.emit("warning", f"    {group.count:,} {group.reason}: " + "; ".join(
                f"{example['key']} {example['detail']}" for example in group.examples))
    document = {**checked.to_dict(), "quarantine": settings.quarantine}
    if checked.blocking_problems():
        raise TaskFailed("The move cannot start: " + "; ".join(checked.blocking_problems()) + ".", document)
    if checked.rejected_rows and not settings.quarantine:
        raise TaskFailed(f"{checked.rejected_rows} rows cannot be moved: fix them in the source, or set "
                         "[checklist] quarantine = \"FILE\" to set them aside with their reasons.", document)
    if checked.rejected_rows:
        engine_for(Path(settings.quarantine)).check_new_quarantine()
        context.emit("warning", f"{checked.rejected_rows:,} rows will go to the quarantine {settings.quarantine}")
    context.emit("ok", f"✓ {sum(t.rows - len(t.rejected) for t in checked.tables):,} rows can be moved")
    return document


def move_copy_step(context: JobContext) -> dict:
    from app.core import move

    source, target, settings = _move_sides(context)
    backup_record = passed_result(context.job.run_id, "move-backup")
    if not backup_record or not passed_result(context.job.run_id, "move-preflight"):
        raise StepRefused("This run has no passed backup of the source and preflight: they come first.")
    backup = find_backup(source.backup_dirs, source.target, backup_record["backup"])
    if not verify_backup(backup, target=source.target).verified:
        raise StepRefused(f"Backup {backup.id} of {source.name} no longer verifies: nothing is moved without a way back.")
    if not source.target.unchanged_since(backup_record["stamp"]):
        raise StepRefused(f"{source.label} changed since this run's backup: {ABANDON}")
    refuse_if_application_runs(source)
    context.emit("ok", f"✓ Backup {backup.id} verifies, the source is unchanged since, the application is stopped")
    quarantine = Path(settings.quarantine) if settings.quarantine else None
    try:
        report = move.move(source.target, target.target, quarantine=quarantine, drop=settings.drop,
                           say=lambda line: context.emit("info", line))
    except CutoverError as error:
        raise TaskFailed(f"{error.message} The target is as it was; backup {backup.id} is verified.",
                         {"error": error.to_dict()}) from None
    for line in report.lines():
        context.emit("ok" if report.passed else "error", line)
    if not report.passed:
        raise TaskFailed("The move committed but a check after COMMIT failed: see the log.", report.to_dict())
    return report.to_dict()


def move_verify_step(context: JobContext) -> dict:
    from app.core import move

    source, target, _ = _move_sides(context)
    copied = passed_result(context.job.run_id, "move-copy")
    if not copied:
        raise StepRefused("This run's copy has not passed.")
    checks = move.verify_moved(source.target, target.target, copied)
    for name, passed, evidence in checks:
        context.emit("ok" if passed else "error", f"{'✓' if passed else '✗'} {name}: {evidence}")
    document = {"passed": all(passed for _, passed, _ in checks),
                "checks": [{"name": name, "passed": passed, "evidence": evidence} for name, passed, evidence in checks]}
    if not document["passed"]:
        raise TaskFailed("The move does not verify: see the log.", document)
    return document


STEP_TASKS = {
    "verify-target": verify_target_step,
    "app-stopped": app_stopped_step,
    "data-volume": data_volume_step,
    "backup": backup_step,
    "integrity": integrity_step,
    "rehearse": rehearse_step,
    "migrate": migrate_step,
    "hotfix": hotfix_step,
    "verify": verify_step,
    "start-app": start_app_step,
    "smoke": smoke_step,
    "monitor": monitor_step,
    "manual": manual_step,
    "command": command_step,
    "move-targets": move_targets_step,
    "move-backup": move_backup_step,
    "move-preflight": move_preflight_step,
    "move-copy": move_copy_step,
    "move-verify": move_verify_step,
}
