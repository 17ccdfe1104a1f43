"""JSON API under /api/v1 (session cookie or bearer token; see app.security)."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from app.actions.backup_jobs import backups_of, start_backup, start_restore, verify_now
from app.actions.documents import comparison_document, environment_document
from app.actions.guards import require_typed_name
from app.actions.planning import make_prep, save_prep
from app.actions.revisions import migration_plan, start_migration_job, with_alembic_status
from app.actions.verification import verify_and_record
from app.checklist.progress import (abandon_run, cancel_step, create_run, get_run, list_runs, run_document,
                                    run_summary, sign_off, start_step)
from app.core.checks import report
from app.core.errors import UsageError
from app.jobs.runner import cancel, log_lines
from app.targets import current_targets
from app.web.health import health_document
from app.web.jobs import get_job
from app.web.operator import acting_operator
from app.web.streams import job_event_stream, run_event_stream

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/environments")
def environments():
    # As the dashboard: never waits for the whole-file checks. Until they land (in the
    # background) an environment's status is "checking" and their facts are null.
    targets = current_targets()
    docs = [environment_document(env, targets.inspect(env, wait_for_checks=False))
            for env in targets.workspace.environments]
    return jsonify(environments=with_alembic_status(targets, docs))


@bp.get("/environments/<name>/schema")
def environment_schema(name: str):
    targets = current_targets()
    env = targets.environment(name)
    inspection = targets.inspect(env)
    if not inspection.ok:
        raise inspection.error
    return jsonify(environment=env.name, **inspection.snapshot.to_dict())


@bp.get("/diff")
def diff():
    left, right = request.args.get("left"), request.args.get("right")
    if not left or not right:
        raise UsageError("Give both environments to compare: /api/v1/diff?left=NAME&right=NAME.")
    targets = current_targets()
    for name in (left, right):
        targets.environment(name)  # the API compares configured environments only: 404 otherwise
    return jsonify(comparison_document(targets.compared(left, right, wait_for_checks=False)))


# --- backups ---------------------------------------------------------------------------

@bp.post("/environments/<name>/backups")
def start_backup_route(name: str):
    backup_id, job = start_backup(current_targets().environment(name), acting_operator())
    return jsonify(backup=backup_id, job=job.to_dict()), 202


@bp.get("/environments/<name>/backups")
def backups_route(name: str):
    env = current_targets().environment(name)
    return jsonify(environment=env.name, backups=[b.to_dict() for b in backups_of(env)])


@bp.post("/environments/<name>/backups/<backup_id>/verify")
def verify_backup_route(name: str, backup_id: str):
    result = verify_now(current_targets().environment(name), backup_id, acting_operator())
    return jsonify(result.to_dict())


@bp.post("/environments/<name>/restore")
def restore_route(name: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("backup"), str):
        raise UsageError('Send {"backup": "<backup id>", "confirm": "<environment name>"} as JSON; ids are '
                         'listed by GET .../backups.')
    env = current_targets().environment(name)
    require_typed_name(env, body.get("confirm"), "Restore", confirm_as_json(env))
    job = start_restore(env, body["backup"], acting_operator())
    return jsonify(job=job.to_dict()), 202


def confirm_as_json(env) -> str:
    """How the API is told what the pages ask for: the environment's name, typed."""
    return f' (send {{"confirm": "{env.name}"}} in the JSON body)'


# --- jobs ------------------------------------------------------------------------------

@bp.get("/jobs/<int:job_id>")
def job_route(job_id: int):
    job = get_job(job_id)
    after = request.args.get("after", 0, type=int)
    return jsonify(job=job.to_dict(), lines=[line.to_dict() for line in log_lines(job.id, after=after)])


@bp.post("/jobs/<int:job_id>/cancel")
def cancel_job_route(job_id: int):
    return jsonify(job=cancel(get_job(job_id), acting_operator()).to_dict())


# --- migration -------------------------------------------------------------------------

@bp.get("/environments/<name>/plan")
def plan_route(name: str):
    targets = current_targets()
    return jsonify(migration_plan(targets, targets.environment(name), request.args.get("to")).to_dict())


@bp.post("/environments/<name>/prep")
def prep_route(name: str):
    targets = current_targets()
    env = targets.environment(name)
    reference = request.args.get("reference") or (targets.workspace.reference.name if targets.workspace.reference else None)
    if not reference:
        raise UsageError("Say which environment to bring over: ?reference=NAME.")
    prep = make_prep(targets, env, reference)
    saved = save_prep(targets, env, prep, acting_operator()) if request.args.get("save") == "1" else None
    return jsonify(prep=prep.to_dict(), saved=str(saved) if saved else None)


@bp.post("/environments/<name>/rehearse")
def rehearse_route(name: str):
    targets = current_targets()
    job = start_migration_job("rehearse", targets.environment(name), acting_operator(), _revision_to(),
                              targets=targets)
    return jsonify(job=job.to_dict()), 202


@bp.post("/environments/<name>/migrate")
def migrate_route(name: str):
    targets = current_targets()
    env = targets.environment(name)
    require_typed_name(env, json_body().get("confirm"), "Migration", confirm_as_json(env))
    job = start_migration_job("migrate", env, acting_operator(), _revision_to(), targets=targets)
    return jsonify(job=job.to_dict()), 202


def _revision_to() -> str | None:
    """`{"to": REV}`: the Alembic revision to go to (default: the single head)."""
    body = request.get_json(silent=True)
    to = body.get("to") if isinstance(body, dict) else None
    if to is not None and (not isinstance(to, str) or not to.strip()):
        raise UsageError('"to" must be a revision id (a non-empty string).')
    return to


# --- verification and health -----------------------------------------------------------

@bp.post("/environments/<name>/verify")
def verify_route(name: str):
    targets = current_targets()
    env = targets.environment(name)
    results, baseline = verify_and_record(targets, env, acting_operator())
    return jsonify(environment=env.name, **report(results), baseline=baseline.notes)


@bp.get("/environments/<name>/health")
def health_route(name: str):
    targets = current_targets()
    return jsonify(health_document(targets, targets.environment(name)))


@bp.get("/jobs/<int:job_id>/events")
def job_events_route(job_id: int):
    return job_event_stream(job_id)


# --- checklist runs --------------------------------------------------------------------

def json_body() -> dict:
    body = request.get_json(silent=True)
    if body is None and not request.data:
        return {}
    if not isinstance(body, dict):
        raise UsageError("Send a JSON object as the request body.")
    return body


@bp.get("/runs")
def runs_route():
    return jsonify(runs=[run_summary(run) for run in list_runs()])


@bp.post("/runs")
def create_run_route():
    name = json_body().get("environment")
    if not isinstance(name, str) or not name:
        raise UsageError('Send {"environment": NAME} to start a checklist run on that environment.')
    targets = current_targets()
    run = create_run(targets, targets.environment(name), acting_operator())
    return jsonify(run_document(targets, run)), 201


@bp.get("/runs/<int:run_id>")
def run_route(run_id: int):
    targets = current_targets()
    run = get_run(run_id)
    return jsonify(run_document(targets, run))


@bp.post("/runs/<int:run_id>/steps/<step_id>/start")
def start_step_route(run_id: int, step_id: str):
    targets = current_targets()
    job = start_step(targets, get_run(run_id), step_id, acting_operator(), note=json_body().get("note", ""))
    return jsonify(job=job.to_dict()), 202


@bp.post("/runs/<int:run_id>/steps/<step_id>/cancel")
def cancel_step_route(run_id: int, step_id: str):
    job = cancel_step(current_targets(), get_run(run_id), step_id, acting_operator())
    return jsonify(job=job.to_dict())


@bp.post("/runs/<int:run_id>/steps/<step_id>/signoff")
def signoff_route(run_id: int, step_id: str):
    targets = current_targets()
    signature = sign_off(targets, get_run(run_id), step_id, acting_operator(), json_body().get("note", ""))
    return jsonify(signoff={"id": signature.id, "kind": signature.kind, "step": signature.step,
                            "operator": signature.operator, "log_sha256": signature.log_sha256,
                            "subject": signature.subject, "subject_sha256": signature.subject_sha256}), 201


@bp.post("/runs/<int:run_id>/abandon")
def abandon_run_route(run_id: int):
    run = abandon_run(get_run(run_id), acting_operator(), json_body().get("reason", ""))
    return jsonify(run_summary(run))


@bp.get("/runs/<int:run_id>/events")
def run_events_route(run_id: int):
    return run_event_stream(run_id)


@bp.get("/runs/<int:run_id>/report")
def run_report_route(run_id: int):
    from app.web.runs import markdown_download

    return markdown_download(get_run(run_id))
