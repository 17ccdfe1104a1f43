"""Backups of one environment: list, back up now (live progress), verify again, restore, prune."""
from __future__ import annotations

import json

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from app.actions.backup_jobs import backups_of, prune_backups, start_backup, start_restore, verify_now
from app.actions.guards import require_typed_name
from app.core.errors import UsageError
from app.extensions import db
from app.jobs.runner import log_lines
from app.models import Job
from app.targets import current_targets
from app.web.operator import acting_operator

bp = Blueprint("backups", __name__, url_prefix="/environments/<name>/backups")


@bp.get("")
def index(name: str):
    env = current_targets().environment(name)
    job_id = request.args.get("job", type=int)
    job = db.session.get(Job, job_id) if job_id else None
    job = job if job and job.environment == env.name else None
    return render_template(
        "backups/index.html", env=env, backups=backups_of(env),
        job=job, lines=log_lines(job.id) if job else [],
        keep_days=current_app.config["CUTOVER_BACKUP_KEEP_DAYS"], origins=backup_origins(env.name),
    )


def backup_origins(environment: str) -> dict[str, Job]:
    """Which job took each backup, so a row can say the checklist run it belongs to."""
    jobs = db.session.scalars(select(Job).where(Job.environment == environment, Job.kind == "backup",
                                                Job.state == "passed"))
    origins = {}
    for job in jobs:
        backup_id = job.result_document.get("id") or json.loads(job.params or "{}").get("backup")
        if backup_id:
            origins[backup_id] = job
    return origins


@bp.post("")
def create(name: str):
    backup_id, job = start_backup(current_targets().environment(name), acting_operator())
    flash(f"Backup {backup_id} started.", "success")
    return redirect(url_for("backups.index", name=name, job=job.id))


@bp.post("/<backup_id>/verify")
def verify(name: str, backup_id: str):
    result = verify_now(current_targets().environment(name), backup_id, acting_operator())
    if result.verified:
        flash(f"Backup {backup_id} verified: every copy checks out.", "success")
    else:
        flash(f"Backup {backup_id} did NOT verify.", "failure")
    return redirect(url_for("backups.index", name=name))


@bp.post("/<backup_id>/restore")
def restore(name: str, backup_id: str):
    env = current_targets().environment(name)
    try:
        require_typed_name(env, request.form.get("confirm", ""), "Restore")
    except UsageError as refusal:
        flash(refusal.message, "refusal")
        return redirect(url_for("backups.index", name=name))
    job = start_restore(env, backup_id, acting_operator())
    return redirect(url_for("backups.index", name=name, job=job.id))


@bp.post("/prune")
def prune(name: str):
    removed = prune_backups(current_targets().environment(name), acting_operator())
    flash(f"Pruned {len(removed)} backup(s): {', '.join(b.id for b in removed) or 'nothing was old enough'}.", "success")
    return redirect(url_for("backups.index", name=name))
