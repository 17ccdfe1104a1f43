"""The application's Alembic revisions as the migration plan ([migration] alembic in cutover.toml).

The page, the API, the CLI and the tasks ask here for the plan of an environment: its stamp,
the target (`--to REV`, the single head by default), each pending revision's statements and
the PlanSet the existing machinery rehearses and applies.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.actions.guards import refuse_outside_open_run, refuse_unapproved_migration, require_capability
from app.core.errors import AlembicError, CutoverError, UsageError
from app.core.events import Emit
from app.core.plans import PlanSet
from app.core.reconcile import Preflight, Reconciliation, preflight, reconcile
from app.actions.planning import latest_rehearsal, plan_view, start_job
from app.core.revisions.compiling import AlembicPlan, capture_plan, render_plan, with_recorded
from app.core.revisions.graph import RevisionGraph, alembic_status, read_graph, read_stamp
from app.core.revisions.stamps import StampCheck, check_stamp
from app.core.workspace import AlembicSettings, Environment
from app.jobs.runner import create_job, launch
from app.models import Job
from app.targets import Targets


def alembic_settings(targets: Targets) -> AlembicSettings:
    settings = targets.workspace.alembic
    if settings is None:
        raise UsageError("--to REV is for Alembic revisions: add [migration] alembic = \"path/to/alembic.ini\" "
                         "to cutover.toml.")
    return settings


def uses_alembic(targets: Targets) -> bool:
    return targets.workspace.alembic is not None


def environment_alembic(targets: Targets, graph: RevisionGraph | None = None) -> dict:
    """Each environment's `{"current", "heads", "pending"}`, the graph read once."""
    settings = alembic_settings(targets)
    graph = graph or read_graph(settings)
    statuses = {}
    for env in targets.workspace.environments:
        try:
            statuses[env.name] = alembic_status(settings, env.target, graph)
        except Exception as exc:  # an unreachable environment says so where its status would be
            statuses[env.name] = {"current": [], "heads": list(graph.heads), "pending": [],
                                  "problem": getattr(exc, "message", str(exc))}
    return statuses


def with_alembic_status(targets: Targets, docs: list[dict]) -> list[dict]:
    """Environment documents, each with `"alembic": {"current", "heads", "pending"}` when configured."""
    if not uses_alembic(targets):
        return docs
    try:
        statuses = environment_alembic(targets)
    except CutoverError as problem:  # the project cannot be read: every environment says why
        statuses = {doc["name"]: {"current": [], "heads": [], "pending": [], "problem": problem.message}
                    for doc in docs}
    return [{**doc, "alembic": statuses[doc["name"]]} for doc in docs]


@dataclass(frozen=True)
class AlembicView:
    graph: RevisionGraph
    plan: AlembicPlan
    plan_set: PlanSet | None  # None while a revision that reads the database awaits its rehearsal
    reconciliation: Reconciliation | None
    preflight: Preflight | None
    stamp: StampCheck

    @property
    def ok(self) -> bool:
        return (self.preflight is None or self.preflight.ok) and self.stamp.matches

    def to_dict(self) -> dict:
        return {
            "alembic": {"current": list(self.plan.current), "target": self.plan.target,
                        "heads": list(self.graph.heads)},
            "stamp": self.stamp.to_dict(),
            "revisions": [r.to_dict() for r in self.plan.revisions],
            "plan_hash": self.plan_set.hash if self.plan_set else None,
            "complete": self.plan_set is not None,
            "reconciliation": self.reconciliation.to_dict() if self.reconciliation else None,
            "preflight": self.preflight.to_dict() if self.preflight else None,
        }


def alembic_plan(targets: Targets, env: Environment, to: str | None,
                 graph: RevisionGraph | None = None) -> tuple[RevisionGraph, AlembicPlan]:
    """Graph (read now unless given), stamp and target checked, every pending revision rendered
    offline where it can be."""
    settings = alembic_settings(targets)
    graph = graph or read_graph(settings)
    current = read_stamp(env.target, graph, busy_timeout=targets.cache.busy_timeout)
    graph.check_stamp(current, env.name)
    target = graph.resolve_target(to, current, env.name)
    plan = render_plan(settings, env.target, graph, current, target)
    plan.refuse_misplaced_outside(env.target)
    return graph, plan


def alembic_view(targets: Targets, env: Environment, to: str | None = None) -> AlembicView:
    require_capability(env, "plan")
    graph, plan = alembic_plan(targets, env, to)
    stamp = check_stamp(alembic_settings(targets), env.target, graph, plan.current)
    if plan.needs_capture:
        plan = _as_last_rehearsed(env, graph, plan)
    if plan.needs_capture or not plan.revisions:
        return AlembicView(graph, plan, None, None, None, stamp)
    plan_set = plan.plan_set(env.target)
    reconciliation = reconcile(env.target, plan_set, busy_timeout=targets.cache.busy_timeout)
    return AlembicView(graph, plan, plan_set, reconciliation, preflight(reconciliation, target_label=env.name), stamp)


def require_true_stamp(targets: Targets, env: Environment, current: tuple[str, ...], emit: Emit) -> None:
    """Refuse (naming each difference) when `env` is not the schema its stamp's revision files build."""
    settings = alembic_settings(targets)
    stamp = check_stamp(settings, env.target, read_graph(settings), current)
    for line in stamp.lines():
        emit("error", f"✗ Not what the stamp says: {line}")
    refuse_stamp_that_lies(env, stamp)
    emit("ok", f"✓ {env.name} has the schema its stamp {stamp.revision or '(none)'} stands for")


def refuse_stamp_that_lies(env: Environment, stamp: StampCheck) -> None:
    if stamp.matches:
        return
    raise AlembicError(
        f"{env.name} is not what its stamp {stamp.revision} says: the revision files build a different schema "
        f"({'; '.join(stamp.lines()[:5])}{' ...' if len(stamp.differences) > 5 else ''}). A revision was "
        "probably edited after it ran. Make the database and the files agree (or stamp the revision it really "
        "is at) before migrating; nothing was changed.", differences=list(stamp.differences))


def _as_last_rehearsed(env: Environment, graph: RevisionGraph, plan: AlembicPlan) -> AlembicPlan:
    """The preview of revisions that read the database: their statements as the latest passing
    rehearsal of this very path captured them, when there is one (else they stay to be captured)."""
    job = latest_rehearsal(env)
    record = job.result_document if job is not None and job.state == "passed" else {}
    recorded = record.get("alembic") or {}
    if recorded.get("current") != list(plan.current) or recorded.get("target") != plan.target:
        return plan
    try:
        return with_recorded(plan, recorded, env.target, graph)
    except AlembicError:  # a revision file changed since: the preview waits for the next rehearsal
        return plan


def refuse_captured_online(env: Environment, plan: AlembicPlan) -> None:
    """Captured statements hold for the data they were captured from; an online environment's data moves."""
    if env.online and (plan.needs_capture or plan.captured):
        names = ", ".join(r.revision.id for r in plan.revisions if r.offline_error)
        raise AlembicError(
            f"{env.name} is declared online, and revisions {names} read the database: the statements captured "
            "from a copy would be replayed on data the application keeps changing. Stop the application and "
            "set online = false for this migration, or migrate --to the revision before them.")


def compiled_plan_set(targets: Targets, env: Environment, graph: RevisionGraph, plan: AlembicPlan,
                      emit: Emit, workdir) -> tuple[AlembicPlan, PlanSet]:
    """The PlanSet of `plan`; revisions that read the database are captured on a fresh copy of the target."""
    if plan.needs_capture:
        emit("info", "Revisions " + ", ".join(r.revision.id for r in plan.revisions if r.offline_error)
             + " read the database: capturing their statements on a private copy of " + env.label)
        with env.target.rehearsal_copy(workdir=workdir, busy_timeout=targets.cache.busy_timeout,
                                       say=lambda text: emit("info", f"Capture copy: {text}")) as copy:
            plan = capture_plan(alembic_settings(targets), copy, graph, plan)
    for revision in plan.revisions:
        emit("info", f"Revision {revision.revision.id} ({revision.rendering}): {len(revision.statements)} "
                     f"statements{', changes data' if revision.data_changes else ''}"
                     f"{'' if revision.transactional else ', runs outside the transaction (not atomic)'}")
    return plan, plan.plan_set(env.target)


def start_revisions_job(kind: str, env: Environment, operator: str, to: str | None, *, targets: Targets,
                        run_here: bool = False) -> Job:
    """A rehearse or migrate job over the Alembic revisions; bad input is refused before a job exists."""
    require_capability(env, kind)
    _, plan = alembic_plan(targets, env, to)
    if not plan.revisions:
        raise AlembicError(f"{env.name} is already at {plan.target}: there is nothing to {kind}.")
    if kind == "migrate":
        refuse_captured_online(env, plan)
        refuse_outside_open_run(env.name, "migrate", operator)
        refuse_unapproved_migration(targets.workspace, env, operator)
    job = create_job(kind, env.name, operator, {"alembic": True, "to": plan.target})
    return job if run_here else launch(job)


def migration_plan(targets: Targets, env: Environment, to: str | None = None):
    """The environment's plan as the page, the API and the CLI show it: its Alembic revisions when
    [migration] alembic is configured, else its .sql plan set."""
    if uses_alembic(targets):
        return alembic_view(targets, env, to)
    if to:
        alembic_settings(targets)  # says how to configure Alembic
    return plan_view(targets, env)


def start_migration_job(kind: str, env: Environment, operator: str, to: str | None, *, targets: Targets) -> Job:
    if uses_alembic(targets):
        return start_revisions_job(kind, env, operator, to, targets=targets)
    if to:
        alembic_settings(targets)
    return start_job(kind, env, operator, None, targets=targets)


def rehearsed_plan_set(targets: Targets, env: Environment, record: dict) -> tuple[AlembicPlan, PlanSet]:
    """The plan set a passing rehearsal ran, rebuilt from its record: each revision rendered offline
    again must read as it did then (an edited file would run unrehearsed), and the captured ones
    are taken as captured from the copy."""
    recorded = record.get("alembic") or {}
    graph, fresh = alembic_plan(targets, env, recorded.get("target"))
    plan = with_recorded(fresh, recorded, env.target, graph)
    return plan, plan.plan_set(env.target)
