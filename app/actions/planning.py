"""Migration actions shared by the page, the API and the CLI.

An environment's plan set is its saved prep plan (plans/prep_NAME.sql beside cutover.toml,
when one was generated and saved) followed by the configured plans; `--plan` replaces both.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from app import audit
from app.actions.guards import refuse_outside_open_run, refuse_unapproved_migration, require_capability
from app.core.engines import Dialect
from app.core.errors import UsageError
from app.core.plans import PlanSet, load_plan_set
from app.core.prep import PrepPlan, generate_prep
from app.core.reconcile import PhaseReconciliation, Preflight, Reconciliation, number_ranges, preflight, reconcile
from app.core.workspace import Environment
from app.extensions import db
from app.jobs.runner import create_job, launch
from app.models import Job
from app.targets import Targets


def prep_path(targets: Targets, env: Environment) -> Path:
    return targets.workspace.config_path.parent / "plans" / f"prep_{env.name}.sql"


def plan_paths(targets: Targets, env: Environment, explicit: list[str] | None = None) -> list[Path]:
    if explicit:
        return [Path(p).absolute() for p in explicit]
    prep = prep_path(targets, env)
    return ([prep] if prep.is_file() else []) + list(targets.workspace.plans)


def load_plans(paths: list[Path], dialect: Dialect) -> PlanSet:
    """The plan set as the target's dialect (`env.target.dialect`) splits and checks it."""
    if not paths:
        raise UsageError("No migration plans: add [migration] plans = [...] to cutover.toml, or give --plan FILE.")
    return load_plan_set(paths, dialect=dialect)


@dataclass(frozen=True)
class PlanView:
    paths: list[Path]
    plan_set: PlanSet
    reconciliation: Reconciliation
    preflight: Preflight
    prep_file: Path | None = None  # the saved prep plan, when it is part of the set

    def is_prep(self, phase: PhaseReconciliation) -> bool:
        return self.prep_file is not None and Path(phase.file) == self.prep_file

    def phase_labels(self) -> dict[int, str]:
        """Prep phases count on their own ("Prep 1"), so the migration plan's phases keep the
        numbers they had before a prep plan was saved in front of them."""
        labels, counts = {}, {True: 0, False: 0}
        for phase in self.reconciliation.phases:
            prep = self.is_prep(phase)
            counts[prep] += 1
            labels[phase.number] = f"{'Prep' if prep else 'Phase'} {counts[prep]}"
        return labels

    def summary(self) -> str:
        """The reconciliation's sentence in the page's phase labels."""
        labels, parts = self.phase_labels(), []
        for status, words in _STATUS_WORDS:
            named = [labels[p.number] for p in self.reconciliation.phases if p.status == status]
            if named:
                parts.append(f"{_label_list(named)} {words}")
        # The core's sentence is "<state>: <phases>; <phases>; <verdict>": its state and verdict
        # are kept as they are (its blockers are joined by commas), only the phases are renamed.
        sentence = self.reconciliation.summary()
        state, verdict = sentence.split(":", 1)[0], sentence.rsplit("; ", 1)[-1]
        return f"{state}: {'; '.join(parts)}; {verdict}"

    def to_dict(self) -> dict:
        return {"plans": [str(p) for p in self.paths], "plan_hash": self.plan_set.hash,
                "reconciliation": self.reconciliation.to_dict(), "preflight": self.preflight.to_dict()}


def reference_schema(targets: Targets, env: Environment):
    reference = targets.workspace.reference
    if reference is None or reference.name == env.name:
        return None, None
    inspection = targets.inspect(reference)
    return reference, inspection.snapshot.schema if inspection.ok else None


def plan_view(targets: Targets, env: Environment, explicit: list[str] | None = None) -> PlanView:
    require_capability(env, "plan")
    paths = plan_paths(targets, env, explicit)
    plan_set = load_plans(paths, env.target.dialect)
    reconciliation = reconcile(env.target, plan_set, busy_timeout=targets.cache.busy_timeout)
    reference, schema = reference_schema(targets, env)
    checked = preflight(reconciliation, schema, target_label=env.name,
                        reference_label=reference.name if reference else "the reference")
    prep = prep_path(targets, env)
    return PlanView(paths, plan_set, reconciliation, checked, prep.absolute() if prep in paths else None)


_STATUS_WORDS = (("applied", "applied"), ("partly_applied", "partly applied"),
                 ("pending", "not started"), ("data_only", "data only"))


def _label_list(labels: list[str]) -> str:
    """['Prep 1', 'Prep 2', 'Phase 1', 'Phase 3'] -> 'prep 1-2, phases 1, 3'."""
    groups: dict[str, list[int]] = {}
    for label in labels:
        kind, number = label.split()
        groups.setdefault(kind, []).append(int(number))
    return ", ".join(_numbers(kind.lower(), numbers) for kind, numbers in groups.items())


def _numbers(kind: str, numbers: list[int]) -> str:
    text = number_ranges(numbers)
    plural = len(numbers) > 1 and kind == "phase"
    return f"{kind}{'s' if plural else ''} {text}"


def make_prep(targets: Targets, env: Environment, reference_name: str) -> PrepPlan:
    require_capability(env, "prep")
    reference = targets.environment(reference_name)
    if reference.name == env.name:
        raise UsageError(f"Prep brings {env.name} to another environment; choose a different reference.")
    snapshots = []
    for side in (env, reference):
        inspection = targets.inspect(side)
        if not inspection.ok:
            raise inspection.error
        snapshots.append(inspection.snapshot)
    configured = (load_plan_set(targets.workspace.plans, dialect=env.target.dialect)
                  if targets.workspace.plans else None)
    return generate_prep(snapshots[0].schema, snapshots[1].schema, engine=env.target,
                         plan_set=configured, target_label=env.name, reference_label=reference.name)


def save_prep(targets: Targets, env: Environment, prep: PrepPlan, operator: str) -> Path:
    path = prep_path(targets, env)
    path.parent.mkdir(parents=True, exist_ok=True)
    prep.save(path, overwrite=True)
    audit.record(operator, "save-prep", target=env.name, detail=str(path))
    return path


def latest_rehearsal(env: Environment) -> Job | None:
    return db.session.scalars(
        select(Job).where(Job.environment == env.name, Job.kind == "rehearse",
                          Job.state.in_(("passed", "failed"))).order_by(Job.id.desc()).limit(1)
    ).first()


def matching_rehearsal(env: Environment, plan_hash: str, fingerprint: str) -> dict | None:
    """The newest passing rehearsal of exactly this plan on exactly this schema."""
    for job in db.session.scalars(select(Job).where(Job.environment == env.name, Job.kind == "rehearse",
                                                    Job.state == "passed").order_by(Job.id.desc())):
        record = json.loads(job.result or "{}")
        if record.get("plan_hash") == plan_hash and record.get("target_fingerprint") == fingerprint:
            return record
    return None


def start_job(kind: str, env: Environment, operator: str, explicit: list[str] | None, *,
              targets: Targets, run_here: bool = False) -> Job:
    require_capability(env, kind)
    paths = plan_paths(targets, env, explicit)
    load_plans(paths, env.target.dialect)  # a bad plan is refused here, before a job exists
    if kind == "migrate":
        refuse_outside_open_run(env.name, "migrate", operator)
        refuse_unapproved_migration(targets.workspace, env, operator)
    job = create_job(kind, env.name, operator, {"plans": [str(p) for p in paths]})
    return job if run_here else launch(job)
