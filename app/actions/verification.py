"""Verification and health checks of one environment: the inputs come from the dashboard's
records (the pre-migration backup, the plan set, the reference), the checks from the core."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import select

from app import audit
from app.actions.guards import require_capability
from app.actions.planning import load_plans, plan_paths
from app.core.backup import Backup, find_backup
from app.core.checks import CheckResult, foreign_key_violations_of, run_checks
from app.core.errors import CutoverError
from app.core.liveness import liveness_checks
from app.core.migrate import Violations
from app.core.newrows import new_rows_check
from app.core.workspace import Environment
from app.extensions import db
from app.models import Job
from app.targets import Targets

WAL_RESET_FIXED = (3, 51, 3)


@dataclass
class Baseline:
    """What the environment looked like before its last migration, when we know."""

    backup: Backup | None = None
    violations: Violations | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def row_counts(self) -> dict | None:
        return dict(self.backup.manifest.row_counts) if self.backup and self.backup.manifest else None


def pre_migration_baseline(env: Environment, busy_timeout: float) -> Baseline:
    """The backup the last successful migration took first, and its foreign-key state."""
    job = db.session.scalars(select(Job).where(Job.environment == env.name, Job.kind == "migrate",
                                               Job.state == "passed").order_by(Job.id.desc()).limit(1)).first()
    if job is None:
        return Baseline(notes=["no migration recorded: foreign-key violations fail, no row-count ledger"])
    backup_id = json.loads(job.result or "{}").get("backup")
    try:
        backup = find_backup(env.backup_dirs, env.target, backup_id)
    except CutoverError as error:
        return Baseline(notes=[f"pre-migration backup {backup_id} unavailable: {error.message}"])
    return Baseline(backup, _violations_of(backup, busy_timeout), [f"baseline: backup {backup.id} (job {job.id})"])


def _violations_of(backup: Backup, busy_timeout: float) -> Violations | None:
    for copy in backup.copies:
        try:
            return foreign_key_violations_of(copy, busy_timeout=busy_timeout)
        except CutoverError:
            continue
    return None


def required_index_names(targets: Targets, env: Environment) -> list[str]:
    """Every index the plan set creates must exist afterwards."""
    paths = plan_paths(targets, env)
    if not paths:
        return []
    dialect = env.target.dialect
    names = [dialect.created_index(statement.sql) for statement in load_plans(paths, dialect).statements()]
    return [name for name in names if name]


def verify_environment(targets: Targets, env: Environment, *,
                       include_smoke: bool = True) -> tuple[list[CheckResult], Baseline]:
    """Everything `cutover verify` runs: integrity, foreign keys against the pre-migration
    state, the operator's assertions, schema against the reference, the row-count ledger,
    the plan's indexes and the smoke test (always rolled back; the checklist runs it as its own step)."""
    require_capability(env, "verify")
    settings = targets.workspace.verification
    baseline = pre_migration_baseline(env, targets.cache.busy_timeout)
    reference = targets.workspace.reference
    results = run_checks(
        env.target,
        assertions=targets.workspace.checks,
        fk_baseline=baseline.violations,
        reference_path=reference.target if reference and reference.name != env.name else None,
        accepted=settings.accepted_differences,
        manifest_row_counts=baseline.row_counts,
        declared=dict(settings.declared_row_changes),
        indexes=required_index_names(targets, env),
        smoke_statements=list(settings.smoke) if include_smoke else None,
        time_limit=settings.check_time_limit,
        busy_timeout=targets.cache.busy_timeout,
    )
    return results, baseline


def verify_and_record(targets: Targets, env: Environment, operator: str) -> tuple[list[CheckResult], Baseline]:
    """Verification asked for by an operator: the same checks, and an audit entry."""
    results, baseline = verify_environment(targets, env)
    audit.record(operator, "verify-environment", target=env.name,
                 result="ok" if all(r.passed for r in results) else "failed")
    return results, baseline


def tick_checks(targets: Targets, env: Environment, new_rows_baseline: dict, log_offset: int,
                fk_baseline: Violations | int | None) -> tuple[list[CheckResult], dict]:
    """One monitoring tick: integrity, foreign keys, assertions, new rows, the application."""
    settings = targets.workspace.verification
    results = run_checks(env.target, assertions=targets.workspace.checks, fk_baseline=fk_baseline,
                         time_limit=settings.check_time_limit, busy_timeout=targets.cache.busy_timeout)
    results.append(new_rows_check(env.target, new_rows_baseline, busy_timeout=targets.cache.busy_timeout))
    live, measurements = liveness_checks(env.app, env.target, log_offset=log_offset)
    return results + list(live), measurements


def sqlite_warnings(sqlite_version: str, journal_mode: str | None) -> list[str]:
    """Known SQLite bugs that apply to this library and this database."""
    version = tuple(int(part) for part in sqlite_version.split(".")[:3])
    if journal_mode == "wal" and version < WAL_RESET_FIXED:
        return [f"SQLite {sqlite_version} has the WAL-reset bug fixed in 3.51.3: a WAL database written "
                "by several connections at once can be corrupted. Keep one writer, or upgrade SQLite."]
    return []
