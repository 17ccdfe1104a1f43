"""Backup actions shared by the pages, the API and the CLI: each starts a job or calls the core,
and leaves an audit entry."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from app import audit
from app.actions.guards import refuse_outside_open_run, require_capability
from app.core.backup import (
    Backup, find_backup, free_backup_id, list_backups, prune, usable_backup_folders, verify_backup,
)
from app.core.workspace import Environment
from app.extensions import db
from app.jobs.runner import create_job, launch
from app.models import ACTIVE_JOB_STATES, ALL_WORKSPACES, OPEN_RUN, Job, Run


def backups_of(env: Environment) -> list[Backup]:
    """The environment's backups, newest first."""
    require_capability(env, "backup")
    return list_backups(env.backup_dirs, env.target)


def create_default_backup_folder(env: Environment) -> None:
    """The default backups/<name> folder is made on the first backup (owner-only, like the
    copies in it); folders the configuration names must exist already."""
    if not env.backup_dirs_configured:
        for folder in env.backup_dirs:
            Path(folder).mkdir(mode=0o700, parents=True, exist_ok=True)


def start_backup(env: Environment, operator: str, *, run_here: bool = False) -> tuple[str, Job]:
    """Record the backup job with its id fixed now, so the caller can name the backup at once."""
    require_capability(env, "backup")
    create_default_backup_folder(env)
    moment = datetime.now(timezone.utc)
    backup_id = free_backup_id(usable_backup_folders(env.backup_dirs), env.target.backup_name, moment)
    job = create_job("backup", env.name, operator, {"moment": moment.isoformat(), "backup": backup_id})
    return backup_id, job if run_here else launch(job)


def start_restore(env: Environment, backup_id: str, operator: str) -> Job:
    return launch(restore_job(env, backup_id, operator))


def restore_job(env: Environment, backup_id: str, operator: str) -> Job:
    """The restore job, once every refusal has had its say (before any job exists)."""
    require_capability(env, "restore")
    find_backup(env.backup_dirs, env.target, backup_id)  # a bad or unknown id fails here
    refuse_outside_open_run(env.name, "restore", operator)
    return create_job("restore", env.name, operator, {"backup": backup_id})


def verify_now(env: Environment, backup_id: str, operator: str):
    require_capability(env, "backup")
    result = verify_backup(find_backup(env.backup_dirs, env.target, backup_id), target=env.target)
    audit.record(operator, "verify", target=f"{env.name}/{backup_id}", result="ok" if result.verified else "failed")
    return result


def prune_backups(env: Environment, operator: str) -> list:
    require_capability(env, "backup")
    removed = prune(env.backup_dirs, env.target, keep_days=current_app.config["CUTOVER_BACKUP_KEEP_DAYS"],
                    protected_ids=protected_backup_ids(env))
    audit.record(operator, "prune", target=env.name, detail=", ".join(b.id for b in removed))
    return removed


def protected_backup_ids(env: Environment) -> set[str]:
    """Backups that unfinished work relies on: a restore in progress reads its backup, and
    an open checklist run's backup is its way back.

    Looked up in every workspace: the work may be recorded under another identity of this
    workspace (its folder was moved since), and keeping another workspace's namesake backup
    by mistake costs only disk space."""
    active = db.session.scalars(
        select(Job).where(Job.environment == env.name, Job.state.in_(ACTIVE_JOB_STATES), Job.kind == "restore")
        .execution_options(**{ALL_WORKSPACES: True}))
    protected = {json.loads(job.params).get("backup") for job in active}
    run_backups = db.session.scalars(
        select(Job).join(Run, Job.run_id == Run.id).where(
            Run.environment == env.name, Run.status == OPEN_RUN, Job.kind == "backup", Job.state == "passed")
        .execution_options(**{ALL_WORKSPACES: True}))
    return protected | {job.result_document.get("backup") for job in run_backups}
