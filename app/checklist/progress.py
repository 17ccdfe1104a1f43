"""How a checklist run executes: creating runs, each step's state, the gates, sign-offs.

A step's state is derived, every time, from what is persisted: the run's jobs (one per
attempt, executed by app.jobs.runner in a child process), its sign-offs and, for the monitor
step, its monitoring window. Nothing has to be kept in sync, so a killed worker or a
dashboard restart cannot leave a step "running" or "passed" that is not.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app import audit
from app.actions.guards import require_capability
from app.actions.planning import load_plans, plan_paths
from app.core.revisions.files import project_digest
from app.core.checklist import Checklist, StepDefinition
from app.core.errors import Conflict, CutoverError, NotFound, UsageError
from app.core.workspace import Environment, Workspace
from app.extensions import db
from app.jobs.runner import cancel, create_job, launch, run_job
from app.models import OPEN_RUN, Job, LogLine, MonitorWindow, Run, SignOff, iso_time, utcnow
from app.targets import Targets, current_targets

SATISFIED = ("passed", "signed_off", "skipped")
RETRYABLE = ("failed", "cancelled", "interrupted")
NOTE_LIMIT = 2000


# --------------------------------------------------------------------------- creating


def create_run(targets: Targets, env: Environment, operator: str) -> Run:
    require_capability(env, "checklist")
    if env.reference:
        raise UsageError(f"{env.name} is the reference environment: the checklist brings another "
                         "environment to it. Start the run on the target (production).")
    steps = [_with_skip_reason(step, targets.workspace, env) for step in targets.workspace.checklist.steps]
    run = Run(environment=env.name, created_by=operator, checklist=json.dumps(steps))
    db.session.add(run)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise _open_run_conflict(env.name) from None
    audit.record(operator, "run-created", target=env.name, detail=f"run {run.id}")
    return run


def _open_run_conflict(environment: str) -> Conflict:
    open_run = db.session.scalar(select(Run).where(Run.environment == environment, Run.status == OPEN_RUN))
    which = f"Run {open_run.id} (by {open_run.created_by})" if open_run else "Another run"
    return Conflict(f"{which} is still open on {environment}: finish it or abandon it first.",
                    run=open_run.id if open_run else None)


def _with_skip_reason(step: StepDefinition, workspace: Workspace, env: Environment) -> dict:
    """Steps with nothing to do here are skipped, with the reason, when the run is created."""
    reason = ""
    if step.kind == "hotfix" and not step.plans:
        reason = "no hotfix plan is configured ([checklist.steps.hotfix] plans)"
    elif step.kind == "smoke" and not workspace.verification.smoke and not env.app.health_url:
        reason = "no smoke statements ([verification] smoke) and no health_url configured"
    return {**step.to_dict(), "skip_reason": reason}


def get_run(run_id: int) -> Run:
    run = db.session.get(Run, run_id)
    if run is None:
        raise NotFound(f"No run {run_id}.")
    return run


def list_runs(limit: int = 100) -> list[Run]:
    return list(db.session.scalars(select(Run).order_by(Run.id.desc()).limit(limit)))


def checklist_of(run: Run) -> Checklist:
    items = json.loads(run.checklist)
    return Checklist.from_list([{k: v for k, v in item.items() if k != "skip_reason"} for item in items])


def skip_reasons(run: Run) -> dict[str, str]:
    return {item["id"]: item.get("skip_reason", "") for item in json.loads(run.checklist)}


# --------------------------------------------------------------------------- plans per step


def step_plan_paths(targets: Targets, env: Environment, checklist: Checklist, step: StepDefinition) -> list[Path]:
    """Rehearse runs every plan; hotfix its own (the last ones); migrate the rest."""
    every = plan_paths(targets, env)
    hotfix = [Path(p) for s in checklist.steps if s.kind == "hotfix" for p in s.plans]
    if step.kind == "rehearse":
        return every
    if step.kind == "hotfix":
        return hotfix
    return [p for p in every if p not in hotfix]


def subject_of(targets: Targets, env: Environment, checklist: Checklist, step: StepDefinition,
               job: Job | None) -> tuple[str, str]:
    """What a sign-off or approval pins, in words and as SHA-256: the plan for plan steps
    (read from the files now, so an edited plan voids it), else the step's recorded result."""
    if step.kind in ("rehearse", "migrate") and targets.workspace.alembic is not None:
        return revisions_subject(targets.workspace.alembic)
    if step.kind in ("rehearse", "migrate", "hotfix"):
        paths = step_plan_paths(targets, env, checklist, step)
        try:
            plan_set = load_plans(paths, env.target.dialect)
        except CutoverError as error:
            return f"plan unreadable: {error.message}", ""
        return f"plan {plan_set.hash[:12]} ({', '.join(p.name for p in paths)})", plan_set.hash
    if job is None:
        return "the step's definition", _sha256(json.dumps(step.to_dict(), sort_keys=True))
    return f"the result of job {job.id}", _sha256(job.result or "{}")


def revisions_subject(settings) -> tuple[str, str]:
    """The application's revision files as they are now: an edited revision voids a sign-off."""
    try:
        digest = project_digest(settings)
    except CutoverError as error:
        return f"revisions unreadable: {error.message}", ""
    return f"Alembic revisions {digest[:12]} ({settings.ini.name})", digest


def log_digest(job: Job | None) -> str:
    if job is None:
        return ""
    lines = db.session.execute(select(LogLine.level, LogLine.text).where(LogLine.job_id == job.id)
                               .order_by(LogLine.id)).all()
    return _sha256("".join(f"{level}\t{text}\n" for level, text in lines))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- states


@dataclass
class SignatureView:
    signature: SignOff
    valid: bool
    why_not: str = ""

    def to_dict(self) -> dict:
        s = self.signature
        return {"id": s.id, "kind": s.kind, "operator": s.operator, "time": iso_time(s.time), "note": s.note,
                "job": s.job_id, "log_sha256": s.log_sha256, "subject": s.subject,
                "subject_sha256": s.subject_sha256, "valid": self.valid, "why_not": self.why_not or None}


@dataclass
class StepView:
    definition: StepDefinition
    state: str  # blocked | ready | running | passed | signed_off | failed | cancelled | interrupted | skipped | monitoring
    reason: str = ""
    attempts: list[Job] = field(default_factory=list)
    signatures: list[SignatureView] = field(default_factory=list)
    window: MonitorWindow | None = None
    startable: bool = False
    manual: bool = False  # confirmed by an operator with a note instead of run

    @property
    def id(self) -> str:
        return self.definition.id

    @property
    def job(self) -> Job | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def satisfied(self) -> bool:
        return self.state in SATISFIED and not self.needs_signoff

    @property
    def status_words(self) -> str:
        return "waiting for a sign-off" if self.needs_signoff else self.state.replace("_", " ")

    @property
    def needs_signoff(self) -> bool:
        return self.definition.signoff and self.state == "passed"

    def valid(self, kind: str) -> SignatureView | None:
        return next((s for s in reversed(self.signatures) if s.signature.kind == kind and s.valid), None)

    @property
    def needs_approval(self) -> bool:
        waiting = self.state in ("blocked", "ready") + RETRYABLE
        return self.definition.approval and waiting and self.valid("approval") is None

    def duration_seconds(self) -> float | None:
        job = self.job
        if job and job.started_at and job.finished_at:
            return (job.finished_at - job.started_at).total_seconds()
        return None

    def to_dict(self) -> dict:
        d = self.definition
        return {"id": d.id, "title": d.title, "kind": d.kind, "state": self.state, "reason": self.reason or None,
                "description": d.description, "instructions": d.instructions, "manual": self.manual,
                "startable": self.startable, "requires": list(d.requires), "signoff_required": d.signoff,
                "approval_required": d.approval, "needs_signoff": self.needs_signoff,
                "needs_approval": self.needs_approval,
                "job": self.job.to_dict() if self.job else None, "attempts": [j.id for j in self.attempts],
                "signoffs": [s.to_dict() for s in self.signatures],
                "monitor_window": self.window.id if self.window else None,
                "duration_seconds": self.duration_seconds()}


def step_views(targets: Targets, run: Run) -> list[StepView]:
    env = targets.environment(run.environment)
    checklist = checklist_of(run)
    skips = skip_reasons(run)
    jobs = list(db.session.scalars(select(Job).where(Job.run_id == run.id).order_by(Job.id)))
    signatures = list(db.session.scalars(select(SignOff).where(SignOff.run_id == run.id).order_by(SignOff.id)))
    views: dict[str, StepView] = {}
    for step in checklist.steps:
        attempts = [job for job in jobs if job.step == step.id]
        view = StepView(step, "blocked", attempts=attempts, manual=is_manual(step, env))
        view.signatures = [_check_signature(targets, env, checklist, step, s, view.job)
                           for s in signatures if s.step == step.id]
        _derive_state(view, skips.get(step.id, ""))
        if run.status == OPEN_RUN:
            _mark_stale_rehearsal(view, targets, env, checklist)
        _apply_gate(view, views, run)
        views[step.id] = view
    return list(views.values())


def is_manual(step: StepDefinition, env: Environment) -> bool:
    return step.kind == "manual" or (step.kind == "start-app" and not env.app.start_command)


def _check_signature(targets, env, checklist, step, signature: SignOff, job: Job | None) -> SignatureView:
    if signature.kind == "signoff":
        if job is None or signature.job_id != job.id:
            return SignatureView(signature, False, "the step ran again after this sign-off")
        if log_digest(job) != signature.log_sha256:
            return SignatureView(signature, False, "the step's log changed after it was signed")
    _, subject_hash = subject_of(targets, env, checklist, step, job if signature.kind == "signoff" else None)
    if subject_hash != signature.subject_sha256:
        return SignatureView(signature, False, "what was signed (the plan or result) changed since")
    return SignatureView(signature, True)


def _derive_state(view: StepView, skip_reason: str) -> None:
    job = view.job
    if skip_reason:
        view.state, view.reason = "skipped", skip_reason
    elif job is None:
        view.state = "blocked"  # until the gate says otherwise
    elif job.active:
        view.state = "running"
    elif job.state == "passed":
        _derive_passed(view)
    else:
        view.state, view.reason = job.state, job.error


def _derive_passed(view: StepView) -> None:
    if view.definition.kind == "monitor":
        _derive_monitoring(view)
        if view.state != "passed":
            return
    view.state = "passed"
    if view.definition.signoff:
        if view.valid("signoff"):
            view.state = "signed_off"
        else:
            voided = [s for s in view.signatures if s.signature.kind == "signoff" and not s.valid]
            view.reason = (f"The sign-off by {voided[-1].signature.operator} no longer counts: {voided[-1].why_not}. "
                           "Sign off again." if voided else "Waiting for an operator's sign-off.")


def _derive_monitoring(view: StepView) -> None:
    from app.actions.monitoring import window_summary

    window_id = view.job.result_document.get("window")
    view.window = db.session.get(MonitorWindow, window_id) if window_id else None
    if view.window is None:
        view.state, view.reason = "failed", "The monitoring window of this step is missing."
        return
    summary = window_summary(view.window)
    if view.window.state == "active":
        view.state = "monitoring"
        view.reason = f"Watching until {view.window.ends_at:%Y-%m-%d %H:%M} UTC: {summary['counts']['passed']} tick(s) passed, {summary['counts']['failed']} failed."
    elif not summary["clean"]:
        why = (f"it was stopped{': ' + view.window.end_reason if view.window.end_reason else ''}"
               if view.window.state == "stopped" else f"{summary['counts']['failed']} tick(s) failed")
        view.state, view.reason = "failed", f"The monitoring window did not end clean: {why}."
    else:
        view.state = "passed"


def _mark_stale_rehearsal(view: StepView, targets: Targets, env: Environment, checklist: Checklist) -> None:
    """A rehearsal of a plan that changed since proves nothing about the plan now: it must run
    again. Left "passed", it could only be signed again, pinning a plan nobody rehearsed, and
    migrate would then refuse it with no way to rehearse within the run."""
    if view.definition.kind != "rehearse" or view.state not in ("passed", "signed_off"):
        return
    # An Alembic rehearsal pins the revision files it compiled (its plan hash exists only after a capture).
    pinned = "revisions_digest" if targets.workspace.alembic is not None else "plan_hash"
    rehearsed = str(view.job.result_document.get(pinned))
    _, current = subject_of(targets, env, checklist, view.definition, None)
    if rehearsed != current:
        view.state = "blocked"  # the gate makes it "ready" when the steps before it are done
        view.reason = (f"The plan changed since this rehearsal (rehearsed {rehearsed[:12]}, now "
                       f"{current[:12] or 'unreadable'}): rehearse it again.")


def _apply_gate(view: StepView, earlier: dict[str, StepView], run: Run) -> None:
    waiting = [earlier[needed] for needed in view.definition.requires if not earlier[needed].satisfied]
    if waiting:
        # Name the steps holding things up, not every step blocked behind them.
        frontier = [w for w in waiting if w.state != "blocked"] or waiting[:1]
        gate = "Waits for: " + "; ".join(f"{w.definition.title} ({w.status_words})" for w in frontier)
        if view.state == "blocked":
            view.reason = f"{view.reason} {gate}".strip()  # a stale rehearsal keeps its why
        elif view.state in RETRYABLE:
            view.reason = f"{view.reason} {gate}".strip()
        return
    if view.state == "blocked":
        view.state = "ready"
    view.startable = run.status == OPEN_RUN and view.state in ("ready",) + RETRYABLE


def run_is_complete(views: list[StepView]) -> bool:
    return all(view.satisfied for view in views)


def settle(targets: Targets, run: Run, views: list[StepView] | None = None) -> list[StepView]:
    """Close a run whose every step is done (the monitor step passes hours after the last click)."""
    views = views if views is not None else step_views(targets, run)
    if run.status == OPEN_RUN and run_is_complete(views):
        # The job's end, a sign-off and a window's end may settle it at once: one closes and records it.
        closed = db.session.execute(update(Run).where(Run.id == run.id, Run.status == OPEN_RUN)
                                    .values(status="finished", finished_at=utcnow())).rowcount
        db.session.commit()
        db.session.refresh(run)
        if closed:
            audit.record("cutover", "run-finished", target=run.environment, detail=f"run {run.id}")
        views = step_views(targets, run)
    return views


def settle_after_job(job: Job) -> None:
    """A run is settled where its step's job ends, never by a page that shows it."""
    run = db.session.get(Run, job.run_id) if job.run_id is not None else None
    if run is not None:
        settle(current_targets(), run)


def settle_after_window(targets: Targets, window: MonitorWindow) -> None:
    """The monitor step passes when its window ends clean, hours after its job ended."""
    run = db.session.scalar(select(Run).where(Run.environment == window.environment, Run.status == OPEN_RUN))
    if run is not None:
        settle(targets, run)


def settle_open_runs(targets: Targets) -> None:
    """After a restart: a run that became complete while nothing was there to settle it (a
    window that ended unwatched, a state database from before runs were settled where their
    jobs end) is closed now, so its environment can take a new run."""
    for run in db.session.scalars(select(Run).where(Run.status == OPEN_RUN)).all():
        try:
            settle(targets, run)
        except CutoverError:  # the configuration no longer describes it: its page says why
            db.session.rollback()


def view_of(views: list[StepView], step_id: str) -> StepView:
    view = next((v for v in views if v.id == step_id), None)
    if view is None:
        raise NotFound(f"The run has no step {step_id!r}.")
    return view


# --------------------------------------------------------------------------- acting


def start_step(targets: Targets, run: Run, step_id: str, operator: str, *, note: str = "",
               run_here: bool = False, echo=None) -> Job:
    """Start one step: refused (409) unless its gate is open and nothing else runs on the target."""
    view = view_of(step_views(targets, run), step_id)
    note = _clean_note(note, required=False)  # a bad note is refused before anything starts
    _refuse_unless_startable(run, view, operator)
    env = targets.environment(run.environment)
    if view.manual:
        return _confirm_manual(run, view, operator, _clean_note(note, required=True), echo)
    # No definition in the params: a command's environment may hold secrets, and params are shown.
    job = create_job(view.definition.kind, env.name, operator, {}, run_id=run.id, step=step_id)
    if run_here:
        return run_job(job.id, echo=echo)
    return launch(job)


def _refuse_unless_startable(run: Run, view: StepView, operator: str) -> None:
    if run.status != OPEN_RUN:
        raise Conflict(f"Run {run.id} is {run.status}; start a new run.")
    if view.state == "running":
        raise Conflict(f"{view.definition.title} is already running (job {view.job.id}).", job=view.job.id)
    if not view.startable:
        why = view.reason or f"it is {view.state.replace('_', ' ')}"
        raise Conflict(f"{view.definition.title} cannot start: {why}", step=view.id, state=view.state)
    if view.definition.approval:
        approval = view.valid("approval")
        if approval is None:
            raise Conflict(f"{view.definition.title} needs a second operator's approval first "
                           "(another operator signs off the step before it runs).", step=view.id)
        if approval.signature.operator == operator:
            raise Conflict(f"{operator} approved {view.definition.title}; a different operator must start it "
                           "(one operator cannot supply both).", step=view.id)


def _confirm_manual(run: Run, view: StepView, operator: str, note: str, echo=None) -> Job:
    """A manual step is confirmed at once, in this request; it still gets a job and a log line."""
    job = create_job("manual", run.environment, operator, {"note": note}, run_id=run.id, step=view.id)
    return run_job(job.id, echo=echo)


def _clean_note(note, *, required: bool) -> str:
    if note is not None and not isinstance(note, str):
        raise UsageError("The note must be text.")
    note = (note or "").strip()
    if required and not note:
        raise UsageError("Say what was done in the note: a manual step is confirmed with a note.")
    if len(note) > NOTE_LIMIT:
        raise UsageError(f"The note is longer than {NOTE_LIMIT} characters.")
    return note


def cancel_step(targets: Targets, run: Run, step_id: str, operator: str) -> Job:
    view = view_of(step_views(targets, run), step_id)
    if view.job is None or not view.job.active:
        raise Conflict(f"{view.definition.title} is not running; only a running step can be cancelled.")
    return cancel(view.job, operator)


def sign_off(targets: Targets, run: Run, step_id: str, operator: str, note: str = "") -> SignOff:
    """Sign what a passed step showed, or approve a step that needs a second operator."""
    if run.status != OPEN_RUN:
        raise Conflict(f"Run {run.id} is {run.status}; nothing more can be signed.")
    env = targets.environment(run.environment)
    checklist = checklist_of(run)
    view = view_of(step_views(targets, run), step_id)
    kind = _signature_kind(view)
    job = view.job if kind == "signoff" else None
    subject, subject_hash = subject_of(targets, env, checklist, view.definition, job)
    if not subject_hash:
        raise Conflict(f"Nothing to sign: {subject}.")
    signature = SignOff(run_id=run.id, step=step_id, kind=kind, job_id=job.id if job else None, operator=operator,
                        note=_clean_note(note, required=False), log_sha256=log_digest(job),
                        subject=subject, subject_sha256=subject_hash)
    db.session.add(signature)
    db.session.commit()
    audit.record(operator, "sign-off" if kind == "signoff" else "approve", target=run.environment,
                 detail=f"run {run.id} step {step_id}: {subject}")
    settle(targets, run)
    return signature


def _signature_kind(view: StepView) -> str:
    if view.state in ("passed", "signed_off") and view.job is not None:
        return "signoff"
    if view.definition.approval and view.state in ("ready", "blocked") + RETRYABLE:
        return "approval"
    raise Conflict(f"{view.definition.title} is {view.state.replace('_', ' ')}: only a passed step can be "
                   "signed off" + (", or approved before it runs." if view.definition.approval else "."))


def abandon_run(run: Run, operator: str, reason: str) -> Run:
    if run.status != OPEN_RUN:
        raise Conflict(f"Run {run.id} is already {run.status}.")
    if db.session.scalar(select(Job).where(Job.run_id == run.id, Job.state.in_(("queued", "running")))):
        raise Conflict(f"A step of run {run.id} is running: cancel it first.")
    run.status, run.finished_at, run.status_note = "abandoned", utcnow(), _clean_note(reason, required=True)
    db.session.commit()
    audit.record(operator, "run-abandoned", target=run.environment, detail=f"run {run.id}: {run.status_note}")
    return run


# --------------------------------------------------------------------------- facts for steps


def passed_result(run_id: int, step_kind: str) -> dict | None:
    """The result of the newest passed attempt of this run's step of that kind."""
    job = db.session.scalars(select(Job).where(Job.run_id == run_id, Job.kind == step_kind, Job.state == "passed")
                             .order_by(Job.id.desc()).limit(1)).first()
    return job.result_document if job else None


def run_document(targets: Targets, run: Run, views: list[StepView] | None = None) -> dict:
    views = views if views is not None else step_views(targets, run)
    return {"id": run.id, "environment": run.environment, "status": run.status, "status_note": run.status_note or None,
            "created_by": run.created_by, "created_at": iso_time(run.created_at),
            "finished_at": iso_time(run.finished_at), "complete": run_is_complete(views),
            "steps": [view.to_dict() for view in views]}


def run_summary(run: Run) -> dict:
    return {"id": run.id, "environment": run.environment, "status": run.status, "created_by": run.created_by,
            "created_at": iso_time(run.created_at), "finished_at": iso_time(run.finished_at)}
