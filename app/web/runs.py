"""The checklist pages: every run, one run's steps with their live logs, its report.

Actions are plain forms that redirect back (they work without JavaScript); a refusal (a
gate, a step already running, a missing note) comes back as a message on the page. Logs
arrive live over /api/v1/runs/ID/events (static/js/run.js); the step states refresh
through the `state` partial.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from app.checklist.progress import (StepView, abandon_run, cancel_step, create_run, get_run, list_runs,
                                    run_is_complete, sign_off, start_step, step_views)
from app.checklist.report_facts import markdown_report, report_facts
from app.core.errors import Conflict, UsageError
from app.extensions import db
from app.models import LogLine
from app.targets import current_targets
from app.web.operator import acting_operator

bp = Blueprint("runs", __name__, url_prefix="/runs")


@bp.get("")
def index():
    targets = current_targets()
    environments = [env for env in targets.workspace.environments if not env.reference]
    return render_template("runs/index.html", runs=list_runs(), environments=environments)


@bp.post("")
def create():
    targets = current_targets()
    try:
        run = create_run(targets, targets.environment(request.form.get("environment", "")), acting_operator())
    except (Conflict, UsageError) as refusal:
        flash(refusal.message, "refusal")
        return redirect(url_for("runs.index"), code=303)
    return redirect(url_for("runs.detail", run_id=run.id), code=303)


@bp.get("/<int:run_id>")
def detail(run_id: int):
    targets = current_targets()
    run = get_run(run_id)
    views = step_views(targets, run)
    lines = list(db.session.scalars(select(LogLine).where(LogLine.run_id == run.id).order_by(LogLine.id)))
    by_step: dict[str, list[LogLine]] = {}
    for line in lines:
        by_step.setdefault(line.step, []).append(line)
    newest = {step: step_lines[-1] for step, step_lines in by_step.items()}
    glance = overview(run, views)
    return render_template("runs/detail.html", run=run, views=views, lines=by_step,
                           last_seq=lines[-1].id if lines else 0, complete=run_is_complete(views),
                           overview=glance, summaries=step_summaries(views, newest, glance.current))


@bp.get("/<int:run_id>/state")
def state(run_id: int):
    """Every step's head and one-line summary, and the progress header, swapped in place (out
    of band) without touching the logs."""
    targets = current_targets()
    run = get_run(run_id)
    views = step_views(targets, run)
    glance = overview(run, views)
    return render_template("runs/_state.html", run=run, views=views, complete=run_is_complete(views),
                           overview=glance, summaries=step_summaries(views, last_lines(run.id), glance.current))


@dataclass(frozen=True)
class Overview:
    """The run at a glance: how many steps are done and which one needs attention now."""
    done: int
    total: int
    current: StepView | None  # None once nothing is left to do, or the run is closed


def overview(run, views: list[StepView]) -> Overview:
    live = next((v for v in views if v.state in ("running", "monitoring")), None)
    actionable = next((v for v in views if not v.satisfied and v.state != "blocked"), None)
    waiting = next((v for v in views if not v.satisfied), None)
    current = live or (actionable or waiting if run.status == "open" else None)
    return Overview(sum(v.satisfied for v in views), len(views), current)


@dataclass(frozen=True)
class StepSummary:
    """What a step's one-line title row says: its verdict, and whether the step opens by itself."""
    text: str
    level: str  # a log level (ok, error, ...) or "muted"
    open: bool


def step_summaries(views: list[StepView], newest: dict[str, LogLine],
                   current: StepView | None) -> dict[str, StepSummary]:
    """A finished step folds to its title and final log line; the current step and the others
    still to act on stay open. A wait is said once: a blocked step waiting for what the one
    above waits for says nothing."""
    summaries: dict[str, StepSummary] = {}
    previous: StepView | None = None
    for view in views:
        line = newest.get(view.id)
        open_ = view is current or (not view.satisfied and view.state != "blocked")
        if view.state == "blocked":
            repeated = previous is not None and previous.state == "blocked" and previous.reason == view.reason
            summaries[view.id] = StepSummary("" if repeated else view.reason, "muted", open_)
        elif line is not None:
            summaries[view.id] = StepSummary(line.text, line.level, open_)
        else:
            level = "error" if view.state in ("failed", "interrupted", "cancelled") else "muted"
            summaries[view.id] = StepSummary(view.reason, level, open_)
        previous = view
    return summaries


def last_lines(run_id: int) -> dict[str, LogLine]:
    """Each step's newest line (one indexed query, not the whole log every refresh)."""
    newest = select(func.max(LogLine.id)).where(LogLine.run_id == run_id).group_by(LogLine.step)
    return {line.step: line for line in db.session.scalars(select(LogLine).where(LogLine.id.in_(newest)))}


def _acting(run_id: int, action) -> Response:
    """`action` returns (message, category) or None; a refusal is flashed as one."""
    try:
        outcome = action(get_run(run_id))
    except (Conflict, UsageError) as refusal:
        flash(refusal.message, "refusal")
    else:
        if outcome:
            message, category = outcome
            flash(message, category)
    return redirect(url_for("runs.detail", run_id=run_id, _anchor=request.form.get("anchor") or None), code=303)


@bp.post("/<int:run_id>/steps/<step_id>/start")
def start(run_id: int, step_id: str):
    def act(run):
        job = start_step(current_targets(), run, step_id, acting_operator(), note=request.form.get("note", ""))
        return None if job.active else (f"{step_id}: {job.state}.", "success" if job.state == "passed" else "failure")
    return _acting(run_id, act)


@bp.post("/<int:run_id>/steps/<step_id>/cancel")
def cancel(run_id: int, step_id: str):
    return _acting(run_id, lambda run: (
        f"{step_id}: {cancel_step(current_targets(), run, step_id, acting_operator()).state}.", "success"))


@bp.post("/<int:run_id>/steps/<step_id>/signoff")
def signoff(run_id: int, step_id: str):
    def act(run):
        signature = sign_off(current_targets(), run, step_id, acting_operator(), request.form.get("note", ""))
        return f"{'Approved' if signature.kind == 'approval' else 'Signed off'}: {signature.subject}.", "success"
    return _acting(run_id, act)


@bp.post("/<int:run_id>/abandon")
def abandon(run_id: int):
    return _acting(run_id, lambda run: (
        f"Run {abandon_run(run, acting_operator(), request.form.get('reason', '')).id} abandoned.", "success"))


@bp.get("/<int:run_id>/report")
def report(run_id: int):
    run = get_run(run_id)
    return render_template("runs/report.html", run=run, facts=report_facts(current_targets(), run))


@bp.get("/<int:run_id>/report.md")
def report_markdown(run_id: int):
    return markdown_download(get_run(run_id))


def markdown_download(run) -> Response:
    """The completion report as a Markdown file to save (the page's link and the API)."""
    return Response(markdown_report(current_targets(), run), mimetype="text/markdown",
                    headers={"Content-Disposition": f'attachment; filename="cutover-run-{run.id}-{run.environment}.md"'})
