"""The migration page of one environment: predicted outcomes, preflight, prep, rehearse, migrate."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from app.actions.guards import open_run, require_typed_name
from app.actions.next_action import environment_facts, next_action
from app.actions.planning import latest_rehearsal, make_prep, plan_view, prep_path, save_prep
from app.actions.revisions import alembic_view, start_migration_job, uses_alembic
from app.core.errors import CutoverError, UsageError
from app.extensions import db
from app.jobs.runner import log_lines
from app.models import Job
from app.targets import current_targets
from app.web.operator import acting_operator

bp = Blueprint("migration", __name__, url_prefix="/environments/<name>/migration")


@bp.get("")
def index(name: str):
    targets = current_targets()
    env = targets.environment(name)
    if uses_alembic(targets):
        return _alembic_index(targets, env)
    view, plan_error = None, None
    try:
        view = plan_view(targets, env)
    except CutoverError as error:  # a missing or refused plan is shown, not a dead page
        plan_error = error.message
    job = _requested_job(env.name)
    return render_template(
        "migration/index.html", env=env, view=view, plan_error=plan_error, job=job,
        lines=log_lines(job.id) if job else [], rehearsal=latest_rehearsal(env),
        prep_file=prep_path(targets, env), reference=targets.workspace.reference, open_run=open_run(env.name),
        action=next_action(environment_facts(targets, env)),
    )


def _alembic_index(targets, env):
    """The revisions up to `?to=REV` (default: the single head), and every pending one to choose from."""
    view, plan_error, to = None, None, request.args.get("to") or None
    try:
        view = alembic_view(targets, env, to)
    except CutoverError as error:  # an unreadable project or stamp, an unknown target: shown, not a dead page
        plan_error = error.message
    job = _requested_job(env.name)
    return render_template("migration/alembic.html", env=env, view=view, plan_error=plan_error, job=job, to=to,
                           choices=_pending_revisions(view) if view else [],
                           lines=log_lines(job.id) if job else [], open_run=open_run(env.name))


def _pending_revisions(view) -> list:
    """Every revision above the stamp, oldest first: the targets an operator may stop at."""
    graph, current = view.graph, view.plan.current
    pending = set().union(*(graph.pending(current, head) for head in graph.heads))
    return [revision for revision in graph.revisions if revision.id in pending]


def _requested_job(environment: str) -> Job | None:
    job_id = request.args.get("job", type=int)
    job = db.session.get(Job, job_id) if job_id else None
    return job if job and job.environment == environment else None


@bp.get("/prep")
@bp.post("/prep")
def prep(name: str):
    """Show the generated prep plan (a GET, so it survives a reload); a POST with save=1
    writes it into the plan set."""
    targets = current_targets()
    env = targets.environment(name)
    reference = targets.workspace.reference
    prep_plan = make_prep(targets, env, request.values.get("reference") or (reference.name if reference else ""))
    if request.method == "POST" and request.form.get("save") == "1":
        path = save_prep(targets, env, prep_plan, acting_operator())
        flash(f"Prep plan saved as {path}; it now runs first in {env.name}'s plan set.", "success")
        return redirect(url_for("migration.index", name=name))
    return render_template("migration/prep.html", env=env, prep=prep_plan, prep_file=prep_path(targets, env))


@bp.post("/rehearse")
def rehearse(name: str):
    targets = current_targets()
    to = request.form.get("to") or None
    job = start_migration_job("rehearse", targets.environment(name), acting_operator(), to, targets=targets)
    return redirect(url_for("migration.index", name=name, job=job.id, to=to))


@bp.post("/migrate")
def migrate(name: str):
    targets = current_targets()
    env = targets.environment(name)
    try:
        require_typed_name(env, request.form.get("confirm", ""), "Migration")
    except UsageError as refusal:
        flash(refusal.message, "refusal")
        return redirect(url_for("migration.index", name=name, to=request.form.get("to") or None))
    to = request.form.get("to") or None
    job = start_migration_job("migrate", env, acting_operator(), to, targets=targets)
    return redirect(url_for("migration.index", name=name, job=job.id, to=to))
