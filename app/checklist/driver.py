"""`cutover run-checklist`: drive a run step by step in this process, printing every line.

It stops where a person is needed (a manual step, a sign-off, a second operator's
approval) unless --yes says to confirm and sign headless; an approval is never faked.
"""
from __future__ import annotations

import time
from typing import Callable

import click
from sqlalchemy import select

from app.checklist.progress import RETRYABLE, create_run, settle, sign_off, start_step
from app.core.errors import NotFound, UsageError
from app.extensions import db
from app.models import OPEN_RUN, Run
from app.targets import Targets

MONITOR_POLL_SECONDS = 5.0


def drive_run(targets: Targets, environment: str, operator: str, *, yes: bool,
              echo: Callable[[str, str], None]) -> int:
    try:
        env = targets.environment(environment)
    except NotFound as error:  # a name the configuration does not have is a usage error: exit 2
        raise UsageError(error.message) from None
    run = db.session.scalar(select(Run).where(Run.environment == env.name, Run.status == OPEN_RUN))
    if run is None:
        run = create_run(targets, env, operator)
        click.echo(f"Run {run.id} created on {env.name}.")
    else:
        click.echo(f"Resuming run {run.id} on {env.name} (steps that passed are not run again).")
    attempted: set[str] = set()  # steps started by this invocation: one that fails is not retried
    while True:
        views = settle(targets, run)
        if run.status == "finished":
            click.echo(f"Run {run.id} finished: every step passed.")
            return 0
        if run.status != OPEN_RUN:
            note = f": {run.status_note}" if run.status_note else ""
            click.echo(f"Run {run.id} was {run.status} by an operator{note}. Not every step passed.", err=True)
            return 1
        outcome = _advance(targets, run, views, operator, yes, echo, attempted)
        if outcome is not None:
            return outcome


def _advance(targets, run: Run, views, operator: str, yes: bool, echo, attempted: set[str]) -> int | None:
    """Do the next thing the run needs; return an exit code to stop, None to go on."""
    total = len(views)
    for number, view in enumerate(views, 1):
        if view.satisfied:
            continue
        title = f"[{number}/{total}] {view.definition.title}"
        if view.needs_signoff:
            return _sign(targets, run, view, operator, yes, title)
        if view.state == "monitoring":
            attempted.add(view.id)  # a window watched here that ends unclean stops the command
            return _wait_for_window(targets, run, view, title)
        if view.state == "running":
            click.echo(f"{title} is running in another process (job {view.job.id}); try again when it ends.", err=True)
            return 1
        if view.state in RETRYABLE and view.id in attempted:
            # It ran in this invocation and did not pass (a monitoring window that did not end
            # clean fails after its job passed): stop instead of retrying it forever.
            click.echo(f"{title} {view.state}: {view.reason}", err=True)
            return 1
        if not view.startable:
            click.echo(f"{title}: {view.state.replace('_', ' ')}. {view.reason}", err=True)
            return 1
        attempted.add(view.id)
        return _start(targets, run, view, operator, yes, title, echo)
    return None


def _start(targets, run, view, operator, yes, title, echo) -> int | None:
    if view.needs_approval:
        click.echo(f"{title} needs a second operator's approval: another operator signs it off on the run page "
                   f"(or POST /api/v1/runs/{run.id}/steps/{view.id}/signoff). Then run this command again.", err=True)
        return 1
    if view.manual and not yes:
        click.echo(f"{title} is done by hand: {view.definition.instructions or view.definition.description} "
                   "Confirm it on the run page, or run again with --yes.", err=True)
        return 1
    if view.state in RETRYABLE:
        click.echo(f"{title}: retrying after {view.state}.")
    click.echo(f"== {title}")
    job = start_step(targets, run, view.id, operator, note="confirmed headless (run-checklist --yes)",
                     run_here=True, echo=echo)
    if job.state != "passed":
        click.echo(f"{title} {job.state}: {job.error}", err=True)
        return 1
    return None


def _sign(targets, run, view, operator, yes, title) -> int | None:
    if not yes:
        click.echo(f"{title} passed and waits for a sign-off: sign it on the run page, or run again with --yes.", err=True)
        return 1
    signature = sign_off(targets, run, view.id, operator, "signed off headless (run-checklist --yes)")
    click.echo(f"✓ {title} signed off by {operator}: {signature.subject}")
    return None


def _wait_for_window(targets, run, view, title) -> int | None:
    """Headless, nobody else may be ticking: run due ticks here (claims keep them single).
    Stops waiting when the run is closed meanwhile (an operator abandoned it)."""
    from app.actions.monitoring import tick_window

    window = view.window
    click.echo(f"{title}: watching until {window.ends_at:%Y-%m-%d %H:%M} UTC (Ctrl+C stops waiting; "
               "the dashboard's scheduler keeps watching).")
    while window.state == "active" and run.status == OPEN_RUN:
        sample = tick_window(targets, window)
        if sample is not None:
            click.echo(f"  tick {sample.tick}: {sample.state}", err=sample.state == "failed")
        time.sleep(min(MONITOR_POLL_SECONDS, window.interval_seconds))
        db.session.refresh(window)
        db.session.refresh(run)
    return None
