"""The guards in front of every change to a target, the same on the pages, the API and the CLI.

- Confirmation: a migration or a restore names the environment twice. The pages ask for its
  name typed into the form, the API for `{"confirm": NAME}` in the body, the CLI for `--yes`
  after the name on the command line.
- An open checklist run owns its environment: while it is open, the environment changes only
  through its steps (their gates, this run's backup and rehearsal, the approvals and sign-offs).
  A migration or restore started outside it is refused (409), naming the run.
- A checklist that wants a second operator's approval before the migration cannot be
  sidestepped by migrating without a run: the approval exists only within one.
- What the environment's engine does not do yet (a capability it does not list) is refused
  with one message before anything touches the target.

Each refusal comes before any job exists and is written to the audit log.
"""
from __future__ import annotations

from sqlalchemy import select

from app import audit
from app.core.errors import Conflict, NotSupported, UsageError
from app.core.workspace import Environment, Workspace
from app.extensions import db
from app.models import OPEN_RUN, Run

APPLYING_KINDS = ("migrate", "hotfix")  # the checklist's steps that apply plans


class RunOpen(Conflict):
    """A change outside the checklist run that is open on the environment."""

    code = "run_open"


class RunRequired(Conflict):
    """A migration the checklist wants approved, started without a run."""

    code = "run_required"


_DOING = {"backup": "backing it up", "restore": "restoring it", "plan": "planning its migration",
          "prep": "writing a prep plan for its drift",
          "rehearse": "rehearsing its migration", "migrate": "migrating it", "verify": "verifying it",
          "monitor": "watching it after a migration", "checklist": "the production checklist"}


def require_capability(env: Environment, capability: str) -> None:
    """Refuse what `env`'s engine does not do yet, naming it; nothing has been touched."""
    engine = env.target
    if capability not in engine.supports:
        raise NotSupported(
            f"{env.name} ({env.label}) is a {engine.title} database, and {_DOING[capability]} is not "
            f"available for {engine.title} yet: it can be inspected and compared, and nothing was changed.",
            environment=env.name, capability=capability)


def require_typed_name(env: Environment, typed, what: str, how: str = "") -> None:
    """`what` ("Migration", "Restore") starts only when `typed` is the environment's name."""
    if typed != env.name:
        raise UsageError(f"{what} not started: type the environment name ({env.name}) to confirm{how}.")


def open_run(environment: str) -> Run | None:
    return db.session.scalar(select(Run).where(Run.environment == environment, Run.status == OPEN_RUN))


def refuse_outside_open_run(environment: str, action: str, operator: str) -> None:
    """Refuse `action` ("migrate", "restore") on `environment` while a checklist run is open on it."""
    run = open_run(environment)
    if run is None:
        return
    opened = f"{run.created_at:%Y-%m-%d %H:%M} UTC" if run.created_at else "earlier"
    refusal = RunOpen(
        f"Refused to {action} {environment}: checklist run {run.id}, opened by {run.created_by} at {opened}, is "
        f"open on {environment}, and while it is open {environment} changes only through its steps. Continue the "
        f"run on its page (/runs/{run.id}) or with `flask --app run cutover run-checklist {environment}`, or abandon it there "
        "(with a reason) first.",
        environment=environment, run=run.id, opened_by=run.created_by)
    _refused(operator, action, environment, refusal)


def refuse_unapproved_migration(workspace: Workspace, env: Environment, operator: str) -> None:
    """A checklist whose migrate or hotfix step needs an approval allows no migration outside a run."""
    if env.reference:
        return  # plans are developed on the reference; no checklist runs on it
    needing = [step for step in workspace.checklist.steps if step.kind in APPLYING_KINDS and step.approval]
    if needing:
        titles = " and ".join(f"'{step.title}'" for step in needing)
        refusal = RunRequired(
            f"Refused to migrate {env.name} outside a checklist run: the checklist requires a second operator's "
            f"approval for {titles}, which only a run can give. Start a checklist run on {env.name} (Runs page, "
            f"POST /api/v1/runs, or `flask --app run cutover run-checklist {env.name}`).",
            environment=env.name)
        _refused(operator, "migrate", env.name, refusal)


def _refused(operator: str, action: str, environment: str, refusal: Conflict) -> None:
    audit.record(operator, action, target=environment, result="refused", detail=refusal.message)
    raise refusal
