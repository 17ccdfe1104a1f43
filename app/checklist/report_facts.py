"""The completion report's facts, gathered from a run: its jobs, sign-offs, backup, the
schema before and after against the reference, the row-count ledger, verification, the
monitoring window. Rendered as Markdown by app.core.report and as HTML by a template;
both read the same dictionary, so they cannot disagree."""
from __future__ import annotations

import json
from contextlib import closing
from datetime import datetime

from sqlalchemy import select

from app.checklist.progress import StepView, passed_result, run_is_complete, step_views
from app.core.backup import find_backup
from app.core.errors import CutoverError
from app.core.engines import engine_for
from app.core.engines.base import compare_schemas
from app.core.inspect import inspect_database
from app.core.report import render_markdown
from app.extensions import db
from app.jobs.runner import configured_secrets, redact
from app.models import Job, LogLine, Run, iso_time
from app.targets import Targets

EXCERPT_HEAD, EXCERPT_TAIL = 3, 6


def markdown_report(targets: Targets, run: Run) -> str:
    return render_markdown(report_facts(targets, run))


def report_facts(targets: Targets, run: Run) -> dict:
    from flask import current_app

    views = step_views(targets, run)
    env = targets.environment(run.environment)
    jobs = list(db.session.scalars(select(Job).where(Job.run_id == run.id).order_by(Job.id)))
    facts = {
        "run": {"id": run.id, "environment": run.environment, "database": env.label, "status": run.status,
                "status_note": run.status_note, "created_by": run.created_by, "created_at": iso_time(run.created_at),
                "finished_at": iso_time(run.finished_at), "complete": run_is_complete(views),
                "steps_done": sum(view.satisfied for view in views), "steps_total": len(views)},
        "steps": [_step_facts(view, run) for view in views],
        "timeline": _timeline(run, jobs, views),
        "failures": _failures(views),
        "backup": _backup_facts(env, run),
        "schema": _schema_facts(targets, env, run),
        "ledger": _ledger(targets, env, run),
        "verification": passed_result(run.id, "verify") or _latest_result(jobs, "verify"),
        "smoke": passed_result(run.id, "smoke") or _latest_result(jobs, "smoke"),
        "monitoring": _monitoring(views, run),
        "revisions": (passed_result(run.id, "migrate") or {}).get("alembic"),  # Alembic plans only
    }
    if any(view.definition.kind == "move-copy" for view in views):
        facts.update(_move_facts(targets, run, env))
        facts["criteria"] = move_criteria(facts, views)
    else:
        facts["criteria"] = success_criteria(facts, views)
    # The report leaves the dashboard (a download, an e-mail): no secret goes with it.
    return _redacted(facts, configured_secrets(current_app.config))


def _redacted(value, secrets: list[str]):
    """Every string in the facts, redacted as it is (not as JSON, where a secret with a quote
    or a backslash would be spelled differently and slip through)."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {key: _redacted(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item, secrets) for item in value]
    return value


def _step_facts(view: StepView, run: Run) -> dict:
    job = view.job
    state, reason = _state_in_run(view, run)
    return {"id": view.id, "title": view.definition.title, "kind": view.definition.kind, "state": state,
            "reason": reason, "attempts": len(view.attempts), "operator": job.operator if job else None,
            "started_at": iso_time(job.started_at) if job else None,
            "finished_at": iso_time(job.finished_at) if job else None, "duration_seconds": view.duration_seconds(),
            "excerpt": _excerpt(job), "signatures": [s.to_dict() for s in view.signatures]}


def _state_in_run(view: StepView, run: Run) -> tuple[str, str]:
    """A step of an abandoned run that was waiting, or still watching, did not finish in it:
    "ready" would invite a click the run no longer takes, and how a window ends after the run
    was abandoned is not this run's monitor step passing or failing."""
    if run.status != "abandoned":
        return view.state, view.reason
    if view.window is not None and _outlived(view.window, run):
        return "abandoned", f"The run was abandoned while window {view.window.id} was watching."
    if view.state in ("blocked", "ready"):
        return "abandoned", "Never ran: the run was abandoned."
    return view.state, view.reason


def _outlived(window, run: Run) -> bool:
    """The monitoring window was still watching when the run was abandoned."""
    return run.status == "abandoned" and (window.state == "active" or (
        window.state == "finished" and run.finished_at is not None and window.ends_at > run.finished_at))


def _excerpt(job: Job | None) -> list[dict]:
    """The first lines, every error, and the last lines of the step's latest attempt."""
    if job is None:
        return []
    lines = list(db.session.scalars(select(LogLine).where(LogLine.job_id == job.id).order_by(LogLine.id)))
    keep = set(range(min(EXCERPT_HEAD, len(lines)))) | set(range(max(len(lines) - EXCERPT_TAIL, 0), len(lines)))
    keep |= {i for i, line in enumerate(lines) if line.level == "error"}
    excerpt, previous = [], -1
    for i in sorted(keep):
        if i != previous + 1:
            excerpt.append({"level": "gap", "text": f"… {i - previous - 1} line(s) …"})
        excerpt.append({"level": lines[i].level, "text": lines[i].text})
        previous = i
    return excerpt


def _timeline(run: Run, jobs: list[Job], views: list[StepView]) -> list[dict]:
    events = [{"time": iso_time(run.created_at), "text": f"Run {run.id} created by {run.created_by}"}]
    titles = {view.id: view.definition.title for view in views}
    for job in jobs:
        title = titles.get(job.step, job.step)
        if job.started_at:
            events.append({"time": iso_time(job.started_at), "text": f"{title} started by {job.operator} (job {job.id})"})
        if job.finished_at:
            events.append({"time": iso_time(job.finished_at), "text": _job_outcome(title, job)})
    events += _window_end(views)
    for view in views:
        for signature in view.signatures:
            s = signature.signature
            verb = "approved" if s.kind == "approval" else "signed off"
            events.append({"time": iso_time(s.time), "text": f"{view.definition.title} {verb} by {s.operator}"
                           + ("" if signature.valid else f" (no longer counts: {signature.why_not})")})
    if run.finished_at:
        events.append({"time": iso_time(run.finished_at), "text": f"Run {run.status}" + (f": {run.status_note}" if run.status_note else "")})
    return sorted(events, key=lambda event: event["time"])


def _job_outcome(title: str, job: Job) -> str:
    """What a finished job did. The monitor step's job only starts its window: it passes when
    the window ends clean, hours later, so its job's end is no pass."""
    window = job.result_document.get("window") if job.kind == "monitor" and job.state == "passed" else None
    if window is not None:
        return f"{title}: window {window} started"
    return f"{title} {job.state}" + (f": {job.error}" if job.error else "")


def _window_end(views: list[StepView]) -> list[dict]:
    from app.actions.monitoring import window_summary

    window = next((v.window for v in views if v.definition.kind == "monitor" and v.window is not None), None)
    if window is None or window.state != "finished":
        return []
    failed = window_summary(window)["counts"]["failed"]
    outcome = "clean" if window_summary(window)["clean"] else f"not clean ({failed} tick(s) failed)"
    return [{"time": iso_time(window.ends_at), "text": f"Monitoring window {window.id} ended {outcome}"}]


def _failures(views: list[StepView]) -> list[dict]:
    """Every attempt that did not pass, and what came of the step afterwards."""
    failures = []
    for view in views:
        for index, job in enumerate(view.attempts):
            if job.state in ("failed", "cancelled", "interrupted"):
                later = view.attempts[index + 1:]
                resolved = next((j for j in later if j.state == "passed"), None)
                failures.append({"step": view.definition.title, "job": job.id, "state": job.state, "error": job.error,
                                 "time": iso_time(job.finished_at),
                                 "resolution": f"passed on retry (job {resolved.id}, {iso_time(resolved.finished_at)}, by {resolved.operator})"
                                 if resolved else "not resolved in this run"})
    return failures


def _backup_facts(env, run: Run, step: str = "backup") -> dict | None:
    record = passed_result(run.id, step)
    if not record:
        return None
    manifest = record.get("manifest")
    try:
        backup = find_backup(env.backup_dirs, env.target, record["backup"])
        status_now = backup.status
        # A step that recorded only the id (a move's backup of its source): the manifest says the rest.
        manifest = manifest or (backup.manifest.to_dict() if backup.manifest else None)
        copies = record.get("copies") or [str(copy) for copy in backup.copies]
    except CutoverError as error:
        status_now, copies = f"unavailable: {error.message}", record.get("copies", [])
    manifest = manifest or {}
    return {"id": record["backup"], "sha256": manifest.get("sha256") or record.get("sha256"),
            "size_bytes": manifest.get("size_bytes"), "created_at": manifest.get("created_at"),
            "method": manifest.get("method"), "copies": copies, "status_now": status_now}


# --------------------------------------------------------------------------- a move's run

def _move_facts(targets: Targets, run: Run, target_env) -> dict:
    """What differs in a move's report: the backup is the source's, the schemas of two engines are
    compared column by column by the preflight, and the ledger is source rows against target rows."""
    settings = targets.workspace.checklist.move
    source_env = targets.workspace.environment(settings.source) if settings else None
    copied = passed_result(run.id, "move-copy") or {}
    return {
        "backup": _backup_facts(source_env, run, "move-backup") if source_env else None,
        "schema": {"reference": None, "move": (
            f"A move from {source_env.name if source_env else 'the source'} (SQLite) into {run.environment} "
            "(PostgreSQL): the schemas of two engines are not compared as such; the preflight matched them "
            "column by column (see its log).")},
        "ledger": _move_ledger(copied, target_env),
        "move": {"moved": copied["moved"], "quarantined": copied["quarantined"]} if copied else None,
    }


def _move_ledger(copied: dict, target_env) -> list[dict]:
    """Per table: the source's rows, the target's now, and the quarantined rows as the declared change."""
    try:
        now = inspect_database(target_env.target, deep=False).row_counts()
    except CutoverError:
        now = {}
    rows = []
    for table in copied.get("tables", []):
        before, after = table.get("source_rows"), now.get(table["name"])
        delta = after - before if isinstance(after, int) and isinstance(before, int) else None
        rows.append({"table": table["name"], "before": before, "after": after, "delta": delta,
                     "declared": -table["quarantined"] if table.get("quarantined") else None})
    return rows


def move_criteria(facts: dict, views: list[StepView]) -> list[dict]:
    """A move's success, each ticked from what its steps recorded."""
    state = {view.definition.kind: view.state for view in views}
    verification = passed_result(facts["run"]["id"], "move-verify")
    checks = {c["name"]: c for c in (verification or {}).get("checks", [])}
    monitoring, move = facts["monitoring"], facts.get("move")

    def verified(prefix: str) -> tuple[bool | None, str]:
        check = next((c for name, c in checks.items() if name.startswith(prefix)), None)
        return (check["passed"], check["evidence"]) if check else (None, "not run yet (verify step)")

    moved = (f"{move['moved']:,} rows moved, {move['quarantined']:,} quarantined" if move else
             "the copy step has not passed")
    criteria = [
        _criterion("Every row moved or quarantined", *verified("moved + quarantined")),
        _criterion("Rows equal their source", *verified("content fingerprints")),
        _criterion("Target constraints valid", *verified("target constraints")),
        _criterion("Source unchanged", *verified("source byte-identical")),
        _criterion("Move committed", _done(state.get("move-copy")), moved),
        _criterion("Application switched", _done(state.get("command")), _step_evidence("command", state, False)),
        _criterion("All tests passed", *_tests_passed(verification, facts["smoke"] or {}, state.get("smoke"))),
        _criterion("24 hours stable", _stable_for_a_day(monitoring), _monitoring_evidence(monitoring),
                   unmeasured=_unjudged(monitoring)),
    ]
    return criteria


def _schema_facts(targets: Targets, env, run: Run) -> dict:
    """Differences from the reference before (the run's backup) and now (the target)."""
    reference = targets.workspace.reference
    if reference is None:
        return {"reference": None}
    try:
        reference_schema = inspect_database(reference.target, deep=False).schema
    except CutoverError as error:
        return {"reference": reference.name, "error": error.message}
    facts = {"reference": reference.name, "before": None, "after": None}
    backup = _backup_copy(env, run)
    if backup is not None and env.target.target_is_file:
        try:
            facts["before"] = _differences(reference, reference_schema, env, _schema_at(backup, env))
        except CutoverError as error:
            facts["before_error"] = error.message
    elif backup is not None:
        # Reading a dump's schema means restoring it: not done to draw a page.
        facts["before_error"] = "the backup is a dump; its schema is read only by restoring it"
    try:
        facts["after"] = _differences(reference, reference_schema, env,
                                      inspect_database(env.target, deep=False).schema)
    except CutoverError as error:
        facts["after_error"] = error.message
    return facts


def _backup_copy(env, run: Run):
    record = passed_result(run.id, "backup")
    if not record:
        return None
    try:
        backup = find_backup(env.backup_dirs, env.target, record["backup"])
    except CutoverError:
        return None
    return backup.copies[0] if backup.copies else None


def _schema_at(copy_path, env):
    """The schema a backup copy holds, read by the engine of the environment it was taken from."""
    engine = engine_for(copy_path, env.target.name)
    with closing(engine.open_readonly()) as connection:
        return engine.read_schema(connection)


def _differences(reference, reference_schema, env, schema) -> list[dict]:
    """Raises DifferentEngines (a CutoverError) when the two cannot be compared."""
    differences = compare_schemas(reference.target, env.target, reference_schema, schema,
                                  left_label=reference.name, right_label="target")
    return [{"object": d.object, "table": d.table, "name": d.name, "fix": d.fix, "explanation": d.explanation}
            for d in differences]


def _ledger(targets: Targets, env, run: Run) -> list[dict]:
    """Rows per table: recorded before (data-volume step), now, and the difference."""
    before = (passed_result(run.id, "data-volume") or {}).get("row_counts") or {}
    try:
        now = inspect_database(env.target, deep=False).row_counts()
    except CutoverError:
        now = {}
    declared = dict(targets.workspace.verification.declared_row_changes)
    rows = []
    for table in sorted(set(before) | set(now)):
        b, a = before.get(table), now.get(table)
        delta = a - b if isinstance(a, int) and isinstance(b, int) else None
        rows.append({"table": table, "before": b, "after": a, "delta": delta, "declared": declared.get(table)})
    return rows


def _latest_result(jobs: list[Job], kind: str) -> dict | None:
    attempts = [job for job in jobs if job.kind == kind and not job.active]
    return attempts[-1].result_document if attempts else None


def _monitoring(views: list[StepView], run: Run) -> dict | None:
    """The run's window; `outlived_run` says why its outcome is not this run's (None: it is)."""
    from app.actions.monitoring import window_summary

    view = next((v for v in views if v.definition.kind == "monitor"), None)
    if view is None or view.window is None:
        return None
    summary = window_summary(view.window)
    summary["outlived_run"] = (f"the run was abandoned at {iso_time(run.finished_at)} while window {view.window.id} "
                               "was still watching; what it saw later belongs to no run"
                               if _outlived(view.window, run) else None)
    return summary


def success_criteria(facts: dict, views: list[StepView]) -> list[dict]:
    """The runbook's "Production Success" list, each ticked from what was measured."""
    state = {view.definition.kind: view.state for view in views}
    checks = {c["name"]: c for c in (facts["verification"] or {}).get("checks", [])}
    smoke = facts["smoke"] or {}
    monitoring = facts["monitoring"]
    ledger_check = checks.get("row_count_ledger")
    index_check = checks.get("required_indexes")
    after = facts["schema"].get("after")
    abandoned = facts["run"]["status"] == "abandoned"
    criteria = [
        _criterion("Migration completed", _done(state.get("migrate")), _step_evidence("migrate", state, abandoned)),
        _criterion("Hotfix applied", _done(state.get("hotfix")), _step_evidence("hotfix", state, abandoned)),
        _criterion("All tests passed", *_tests_passed(facts["verification"], smoke, state.get("smoke"))),
        _criterion("No data loss", ledger_check["passed"] if ledger_check else None,
                   ledger_check["summary"] if ledger_check else "no row-count ledger yet (verify step)"),
        _criterion("Performance improved", None,
                   "Cutover does not time queries" + (f"; what it checked: {index_check['summary']}" if index_check
                                                      else ""), unmeasured="not measured"),
        _criterion("24 hours stable", _stable_for_a_day(monitoring), _monitoring_evidence(monitoring),
                   unmeasured=_unjudged(monitoring)),
        _criterion("No user issues", *_user_issues(monitoring), unmeasured=_unjudged(monitoring)),
        _criterion("Production verified", (after == [] and _done(state.get("verify"))) if after is not None else None,
                   _verified_evidence(after, _done(state.get("verify")))),
    ]
    if abandoned:  # nothing more will be measured in this run
        for criterion in criteria:
            if criterion["unmeasured"] == "not measured yet":
                criterion["unmeasured"] = "not measured: the run was abandoned"
    return criteria


def _criterion(name: str, met: bool | None, evidence: str, *, unmeasured: str | None = None) -> dict:
    """`unmeasured` says why `met` is None when "not measured yet" would be untrue."""
    return {"name": name, "met": met, "evidence": evidence,
            "unmeasured": (unmeasured or "not measured yet") if met is None else None}


def _step_evidence(kind: str, state: dict, abandoned: bool) -> str:
    """What the migrate or hotfix step did, in words that match its tick."""
    now = state.get(kind)
    if now is None:
        return f"this run's checklist has no {kind} step"
    if now in ("passed", "signed_off"):
        return f"the {kind} step committed"
    if now == "skipped":
        return f"no {kind} configured"
    if now in ("blocked", "ready"):
        return f"the {kind} step never ran" if abandoned else f"the {kind} step has not run yet"
    return f"the {kind} step is {now.replace('_', ' ')}"


def _tests_passed(verification: dict | None, smoke: dict, smoke_state: str | None) -> tuple[bool | None, str]:
    if verification is None:
        return None, "not run yet (verify step)"
    if not verification.get("passed"):
        return False, "a verification check failed (see Verification)"
    if smoke_state in ("skipped", None):
        return True, "every verification check passed; " + (
            "no smoke test is configured" if smoke_state else "this run's checklist has no smoke test")
    if "passed" not in smoke:
        return None, "verification passed; the smoke test has not run"
    if not smoke["passed"]:
        return False, "the smoke test failed (see Verification)"
    return True, "every verification check and the smoke test passed"


def _verified_evidence(after: list | None, verified: bool | None) -> str:
    if after is None:
        return "not measured"
    if after:
        return f"{len(after)} difference(s) from the reference remain"
    return ("schema matches the reference and verification passed" if verified
            else "schema matches the reference; verification has not passed")


def _unjudged(monitoring: dict | None) -> str | None:
    if monitoring and monitoring.get("outlived_run"):
        return "not judged in this run"
    if monitoring and monitoring["state"] == "active":
        return "judged when the window ends"
    return None


def _done(state: str | None) -> bool | None:
    return None if state is None else state in ("passed", "signed_off")


STABLE_HOURS = 24.0


def _window_hours(monitoring: dict) -> float:
    started, ends = (datetime.fromisoformat(monitoring[key].rstrip("Z")) for key in ("started_at", "ends_at"))
    return (ends - started).total_seconds() / 3600


def _stable_for_a_day(monitoring: dict | None) -> bool | None:
    """A clean window proves "24 hours stable" only if it lasted 24 hours."""
    if monitoring is None or monitoring["state"] == "active" or monitoring.get("outlived_run"):
        return None
    return monitoring["clean"] and _window_hours(monitoring) >= STABLE_HOURS


def _monitoring_evidence(monitoring: dict | None) -> str:
    if monitoring is None:
        return "the monitoring window has not started"
    if monitoring.get("outlived_run"):
        return monitoring["outlived_run"]
    counts, hours = monitoring["counts"], _window_hours(monitoring)
    if monitoring["state"] == "active":
        return (f"window {monitoring['id']} is still watching until {monitoring['ends_at']}: so far {counts['passed']} "
                f"tick(s) passed, {counts['failed']} failed, {counts['missed']} missed")
    short = f"; the window lasted {hours:g} h, shorter than {STABLE_HOURS:g}" if hours < STABLE_HOURS else ""
    return (f"window {monitoring['id']} ({monitoring['state']}, {hours:g} h): {counts['passed']} tick(s) passed, "
            f"{counts['failed']} failed, {counts['missed']} missed{short}")


def _user_issues(monitoring: dict | None) -> tuple[bool | None, str]:
    """Users' trouble shows as errors in the application's log, scanned on every tick."""
    from app.models import HealthSample

    if monitoring is None:
        return None, "the monitoring window has not started"
    if monitoring.get("outlived_run"):
        return None, monitoring["outlived_run"]
    if monitoring["state"] == "active":
        return None, "judged when the monitoring window ends"
    samples = db.session.scalars(select(HealthSample).where(HealthSample.window_id == monitoring["id"]))
    log_results = [r for s in samples for r in json.loads(s.results or "[]") if r["name"] == "application_log"]
    if not log_results:
        return None, "no application log_file is configured, so nothing could show user issues"
    failed = [r for r in log_results if not r["passed"]]
    return not failed, (f"{len(failed)} tick(s) found errors in the application log" if failed
                        else f"no error lines in the application log over {len(log_results)} tick(s)")
