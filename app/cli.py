"""Headless CLI: `flask --app run cutover ...`. Exit codes: 0 success, 1 failed or found a problem, 2 usage or configuration."""
from __future__ import annotations

import functools
import getpass
import json
import sys

import click
from flask import Flask
from flask.cli import AppGroup

from app.actions.documents import (check_notices, comparison_document, environment_document, plural,
                                   unreadable_notices)
from app.core.errors import CutoverError, UsageError
from app.targets import current_targets

cutover = AppGroup("cutover", help="Inspect, compare and migrate the configured databases.")


def reports_errors(command):
    """Turn a CutoverError into its message on stderr and its exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CutoverError as error:
            click.echo(f"Error: {error.message}", err=True)
            sys.exit(error.exit_code)

    return wrapper


def print_json(document: dict) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


CHECKS_NOT_RUN = ("whole-file checks (quick_check, foreign_key_check) not run: they read every page; "
                  "add --check to run them")

check_option = click.option(
    "--check", is_flag=True,
    help="Also run the whole-file checks (quick_check, foreign_key_check), which read every page; "
         "without it the answer takes as long as reading the schema.")


@cutover.command("envs")
@click.option("--json", "as_json", is_flag=True, help="Print the same document as GET /api/v1/environments.")
@check_option
@reports_errors
def envs_command(as_json: bool, check: bool):
    """Show every configured environment: file, facts, integrity (with --check), row counts.

    Exits 1 when one is unavailable or a check that ran found a problem."""
    targets = current_targets()
    docs = [environment_document(env, targets.inspect(env, run_checks=check))
            for env in targets.workspace.environments]
    docs = _with_alembic_status(targets, docs)
    if as_json:
        print_json({"environments": docs})
    else:
        for doc in docs:
            click.echo(_environment_text(doc) + _alembic_text(doc))
    alembic_problems = [doc for doc in docs if "problem" in doc.get("alembic", {})]
    for doc in alembic_problems:
        click.echo(f"{doc['name']}: Alembic: {doc['alembic']['problem']}", err=True)
    sys.exit(0 if all(doc["status"] in ("ok", "not_checked") for doc in docs) and not alembic_problems else 1)


def _environment_text(doc: dict) -> str:
    head = f"{doc['name']}{' (reference)' if doc['reference'] else ''}: {doc.get('database') or doc['url']}"
    if doc["status"] == "unavailable":
        return f"{head}\n  UNAVAILABLE ({doc['error']['reason']}): {doc['error']['message']}\n"
    estimated = set(doc.get("estimated_row_counts", ()))
    lines = [head, *_FACT_LINES[doc["engine"]](doc["facts"], doc)]
    lines += [f"  {name:<32} {_shown_count(count, name in estimated):>12}" for name, count in doc["row_counts"].items()]
    lines += [f"  {notice['table']} cannot be read here: {notice['explanation']}" for notice in doc["unreadable"]]
    return "\n".join(lines) + "\n"


def _sqlite_facts(facts: dict, doc: dict) -> list[str]:
    if doc["status"] == "not_checked":
        checks = f"integrity: {CHECKS_NOT_RUN}"
    else:
        checks = f"integrity: {facts['quick_check']}; foreign-key orphans: {facts['foreign_key_violations']}"
    return [
        f"  size {facts['size_bytes']:,} bytes, {facts['page_count']:,} pages of {facts['page_size']}, "
        f"journal {facts['journal_mode']}, user_version {facts['user_version']}, SQLite {facts['sqlite_version']}",
        f"  {checks}; fingerprint {doc['fingerprint'][:12]}",
    ]


def _postgresql_facts(facts: dict, doc: dict) -> list[str]:
    return [f"  size {facts['size_bytes']:,} bytes, PostgreSQL {facts['server_version'].split(' ')[0]}, "
            f"{facts['connections']} sessions; fingerprint {doc['fingerprint'][:12]}"]


_FACT_LINES = {"sqlite": _sqlite_facts, "postgresql": _postgresql_facts}


def _shown_count(count: int | None, estimated: bool = False) -> str:
    if count is None:
        return "unknown" if estimated else "unreadable"
    return f"~{count:,}" if estimated else f"{count:,}"


@cutover.command("diff")
@click.argument("left")
@click.argument("right")
@click.option("--json", "as_json", is_flag=True, help="Print {\"differences\": [...]} as the API does.")
@check_option
@reports_errors
def diff_command(left: str, right: str, as_json: bool, check: bool):
    """Compare two environments (or database files). Exits 1 when they differ, like diff(1)."""
    comparison = current_targets().compared(left, right, run_checks=check)
    if as_json:
        print_json(comparison_document(comparison))
    else:
        _print_differences(comparison)
        _print_checks(comparison)
    sys.exit(1 if comparison.differences else 0)


def _print_differences(comparison) -> None:
    summary = comparison.summary.to_dict()
    for notice in unreadable_notices(comparison):
        click.echo(f"Note: {notice['environment']}: {notice['explanation']}")
    if not comparison.differences:
        click.echo(f"No differences: {comparison.right} matches {comparison.left}.")
        return
    counts = ", ".join(f"{count} {fix}" for fix, count in summary["by_fix"].items() if count)
    click.echo(f"{comparison.right} is {summary['status'].replace('_', ' ')} relative to {comparison.left}: "
               f"{len(comparison.differences)} differences ({counts})")
    for d in comparison.differences:
        name = f"{d.table}.{d.name}" if d.table and d.object != "table" else d.name
        click.echo(f"  [{d.fix:<11}] {d.object:<7} {name}: {d.explanation}")


def _print_checks(comparison) -> None:
    """The schemas were compared either way; say whether the whole-file checks ran and what they found."""
    notices = check_notices(comparison)
    if any(notice["state"] == "not_run" for notice in notices):
        click.echo(f"Note: {CHECKS_NOT_RUN}.")
        return
    found = {notice["environment"]: _check_results(notice)
             for notice in notices if notice["quick_check"] is not None}  # PostgreSQL has no such checks
    if found:
        click.echo(f"Checks: {'; '.join(f'{side}: {results}' for side, results in found.items())}.")


def _check_results(notice: dict) -> str:
    orphans = notice["foreign_key_violations"]
    if orphans is None:  # not looked for once quick_check failed
        return f"quick_check {notice['quick_check']}"
    return f"quick_check {notice['quick_check']}, {orphans} {plural('foreign-key orphan', orphans)}"


@cutover.command("add-operator")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Prompted for when not given; use the prompt so it stays out of shell history.")
@reports_errors
def add_operator_command(name: str, password: str):
    """Create another operator who can log in to the dashboard."""
    from app import audit
    from app.auth_setup import create_operator

    operator = create_operator(name, password)
    audit.record("cli", "add-operator", target=operator.username)
    click.echo(f"Operator '{operator.username}' created.")


@cutover.command("reset-password")
@click.argument("name")
@click.option("--password", prompt="New password", hide_input=True, confirmation_prompt=True,
              help="Prompted for when not given; use the prompt so it stays out of shell history.")
@reports_errors
def reset_password_command(name: str, password: str):
    """Give an operator a new password (a lost one cannot be recovered) and end their sessions."""
    from app import audit
    from app.auth_setup import reset_password

    operator = reset_password(name, password)
    audit.record(cli_operator(), "reset-password", target=operator.username)
    click.echo(f"Operator '{operator.username}' has a new password; their open sessions are logged out.")


def cli_operator() -> str:
    return f"cli:{getpass.getuser()}"


def line_printer(to_stderr: bool):
    """The same lines the page shows; on stderr when stdout carries JSON."""

    def echo(level: str, text: str) -> None:
        click.echo(text, err=to_stderr or level == "error")

    return echo


def run_in_this_process(job, as_json: bool):
    from app.jobs.runner import run_job

    job = run_job(job.id, echo=line_printer(as_json))
    return job, json.loads(job.result or "{}")


@cutover.command("backup")
@click.argument("environment")
@click.option("--json", "as_json", is_flag=True, help="Print the id and every copy with its path and hash.")
@reports_errors
def backup_command(environment: str, as_json: bool):
    """Take a verified backup of ENVIRONMENT into each of its backup folders. Exit 0 only when verified."""
    from app.actions.backup_jobs import start_backup

    env = current_targets().environment(environment)
    backup_id, job = start_backup(env, cli_operator(), run_here=True)
    job, result = run_in_this_process(job, as_json)
    verified = job.state == "passed" and result.get("status") == "verified"
    if as_json:
        manifest = result.get("manifest") or {}
        print_json({"id": backup_id, "status": result.get("status", job.state), "error": job.error or None,
                    "sha256": manifest.get("sha256"),
                    "copies": [{"path": path, "sha256": manifest.get("sha256")} for path in result.get("copies", [])]})
    sys.exit(0 if verified else 1)


@cutover.command("backups")
@click.argument("environment")
@click.option("--json", "as_json", is_flag=True)
@reports_errors
def backups_command(environment: str, as_json: bool):
    """List the backups of ENVIRONMENT, newest first."""
    from app.actions.backup_jobs import backups_of

    env = current_targets().environment(environment)
    backups = backups_of(env)
    if as_json:
        print_json({"environment": env.name, "backups": [b.to_dict() for b in backups]})
        return
    if not backups:
        click.echo(f"No backups of {env.name} in {', '.join(map(str, env.backup_dirs))}.")
    for b in backups:
        size = f"{b.manifest.size_bytes:,} bytes" if b.manifest else "no manifest"
        click.echo(f"{b.id}  {b.status:<12} {size:>20}  {len(b.copies)} copies  "
                   f"{b.manifest.sha256[:16] if b.manifest else ''}")
        for problem in b.problems:
            click.echo(f"    ! {problem}")


@cutover.command("restore")
@click.argument("environment")
@click.argument("backup_id")
@click.option("--yes", is_flag=True, help="Confirm: the database is replaced (a safety copy is kept first).")
@reports_errors
def restore_command(environment: str, backup_id: str, yes: bool):
    """Replace ENVIRONMENT's database with backup BACKUP_ID (verified now, app must be stopped)."""
    from app.actions.backup_jobs import restore_job

    env = current_targets().environment(environment)
    if not yes:
        raise UsageError(f"Restoring replaces {env.label}; add --yes to confirm.")
    job, _ = run_in_this_process(restore_job(env, backup_id, cli_operator()), False)
    sys.exit(0 if job.state == "passed" else 1)


plan_option = click.option("--plan", "plans", multiple=True, type=click.Path(dir_okay=False),
                           help="A plan file; repeat for several, in order. Replaces the configured plans.")


to_option = click.option("--to", "to", metavar="REV",
                         help="With [migration] alembic: the revision to go to (default: the single head).")


@cutover.command("plan")
@click.argument("environment")
@plan_option
@to_option
@click.option("--json", "as_json", is_flag=True)
@reports_errors
def plan_command(environment: str, plans: tuple, to: str | None, as_json: bool):
    """Predict every statement of the plan set on ENVIRONMENT (reads only its schema). Exit 1 if any would fail."""
    from app.actions.planning import plan_view

    targets = current_targets()
    if _alembic_chosen(targets, plans, to):
        _alembic_plan_command(targets, environment, to, as_json)
    view = plan_view(targets, targets.environment(environment), list(plans))
    if as_json:
        print_json(view.to_dict())
    else:
        _print_plan_view(view)
    sys.exit(0 if view.preflight.ok else 1)


def _print_plan_view(view) -> None:
    reconciliation = view.reconciliation
    click.echo(f"Plan {view.plan_set.hash[:12]} on {reconciliation.target}: {reconciliation.summary()}")
    for phase in reconciliation.phases:
        click.echo(f"Phase {phase.number}: {phase.title} [{phase.status.replace('_', ' ')}]")
        for outcome in phase.outcomes:
            message = f" ({outcome.message})" if outcome.outcome != "will_run" else ""
            click.echo(f"  {OUTCOME_MARKS[outcome.outcome]} {outcome.statement.description}{message}")
            for risk in outcome.lock_risks:
                safer = f" Safer: {risk.fix}" if risk.fix else ""
                click.echo(f"      lock risk ({risk.level}, {risk.lock}): {risk.message}{safer}")
    for loss in reconciliation.losses:
        if loss.accepted:
            click.echo(f"ACCEPTED loss: {loss.message()} ({loss.acceptance_line})")
    for problem in view.preflight.problems:
        click.echo(f"BLOCKED {problem.outcome.statement.description}: {problem.error}\n  fix: {problem.fix}")


OUTCOME_MARKS = {"will_run": "✓ will run      ", "skip": "⚠ already there ", "conflict": "✗ CONFLICT      ",
                 "will_fail": "✗ WILL FAIL     "}


@cutover.command("prep")
@click.argument("environment")
@click.option("--reference", required=True, help="The environment whose schema to bring over (normally development).")
@click.option("--output", type=click.Path(dir_okay=False), help="Write the plan here instead of printing it.")
@reports_errors
def prep_command(environment: str, reference: str, output: str | None):
    """Generate the additive plan that brings ENVIRONMENT's tables, columns and indexes to REFERENCE."""
    from pathlib import Path

    from app.actions.planning import make_prep

    targets = current_targets()
    prep = make_prep(targets, targets.environment(environment), reference)
    if output:
        prep.save(Path(output))
        click.echo(f"Wrote {len(prep.items)} statement(s) to {output}.", err=True)
    else:
        click.echo(prep.text, nl=False)


def _run_migration_job(kind: str, environment: str, plans: tuple, to: str | None = None):
    from app.actions.planning import start_job
    from app.actions.revisions import start_revisions_job

    targets = current_targets()
    env = targets.environment(environment)
    if _alembic_chosen(targets, plans, to):
        job = start_revisions_job(kind, env, cli_operator(), to, targets=targets, run_here=True)
    else:
        job = start_job(kind, env, cli_operator(), list(plans), targets=targets, run_here=True)
    job, _ = run_in_this_process(job, False)
    sys.exit(0 if job.state == "passed" else 1)


@cutover.command("rehearse")
@click.argument("environment")
@plan_option
@to_option
@reports_errors
def rehearse_command(environment: str, plans: tuple, to: str | None):
    """Apply the plan set to a snapshot of ENVIRONMENT and verify it. Exit 0 pass, 1 fail."""
    _run_migration_job("rehearse", environment, plans, to)


@cutover.command("migrate")
@click.argument("environment")
@plan_option
@to_option
@click.option("--yes", is_flag=True, help="Confirm: the database is migrated (after a verified backup and a rehearsal).")
@reports_errors
def migrate_command(environment: str, plans: tuple, to: str | None, yes: bool):
    """Back up, rehearse and apply the plan set to ENVIRONMENT in one transaction; unchanged on any failure."""
    if not yes:
        raise UsageError(f"Migrating changes {environment}; add --yes to confirm.")
    _run_migration_job("migrate", environment, plans, to)


@cutover.command("verify")
@click.argument("environment")
@click.option("--json", "as_json", is_flag=True, help="Every check by name with its result and evidence.")
@reports_errors
def verify_command(environment: str, as_json: bool):
    """Run every verification check on ENVIRONMENT. Exit 0 when all pass, 1 when any fails."""
    from app.core.checks import report
    from app.actions.verification import verify_environment

    targets = current_targets()
    env = targets.environment(environment)
    results, baseline = verify_environment(targets, env)
    document = {"environment": env.name, **report(results), "baseline": baseline.notes}
    if as_json:
        print_json(document)
    else:
        for note in baseline.notes:
            click.echo(f"  ({note})")
        for result in results:
            click.echo(result.line())
            for line in result.evidence[:10]:
                click.echo(f"    {line}")
    sys.exit(0 if document["passed"] else 1)


@cutover.command("monitor-start")
@click.argument("environment")
@click.option("--hours", help="Length of the window (default from cutover.toml, 24).")
@click.option("--interval-minutes", help="Minutes between checks (default from cutover.toml, 15).")
@reports_errors
def monitor_start_command(environment: str, hours: str | None, interval_minutes: str | None):
    """Start the post-migration watch of ENVIRONMENT (the running dashboard executes its ticks)."""
    from app.core.numbers import option_number
    from app.core.workspace import VERIFICATION_NUMBERS
    from app.actions.monitoring import start_window

    # Checked as cutover.toml's monitor_hours and monitor_interval_minutes are (click takes nan and inf).
    if hours is not None:
        hours = option_number("--hours", hours, VERIFICATION_NUMBERS["monitor_hours"])
    if interval_minutes is not None:
        interval_minutes = option_number("--interval-minutes", interval_minutes,
                                         VERIFICATION_NUMBERS["monitor_interval_minutes"])
    targets = current_targets()
    window = start_window(targets, targets.environment(environment), cli_operator(), reason="started from the CLI",
                          hours=hours, interval_minutes=interval_minutes)
    click.echo(f"Watching {environment} until {window.ends_at:%Y-%m-%d %H:%M} UTC, every {window.interval_seconds} s (window {window.id}).")


@cutover.command("monitor-tick")
@reports_errors
def monitor_tick_command():
    """Run every due monitoring tick now (for cron, instead of the dashboard's scheduler). Exit 1 if one failed."""
    from app.actions.monitoring import tick_all

    samples = tick_all(current_targets())
    for sample in samples:
        click.echo(f"window {sample.window_id} tick {sample.tick}: {sample.state}")
    sys.exit(1 if any(s.state == "failed" for s in samples) else 0)


@cutover.command("run-checklist")
@click.argument("environment")
@click.option("--yes", is_flag=True, help="Confirm manual steps and sign off steps headless instead of stopping there.")
@reports_errors
def run_checklist_command(environment: str, yes: bool):
    """Run the production checklist on ENVIRONMENT headless, in the dashboard's database (the run
    shows on its page). Resumes the open run if there is one. Exit 0 only when every step passed."""
    from app.checklist.driver import drive_run

    sys.exit(drive_run(current_targets(), environment, cli_operator(), yes=yes, echo=line_printer(False)))


# --- move: a SQLite environment into a PostgreSQL one (app/core/move) ---------------------


@cutover.command("move")
@click.argument("source")
@click.argument("target")
@click.option("--preflight", "preflight_only", is_flag=True,
              help="Judge every row against TARGET's schema and report; writes nothing. Exit 0 when every row can move.")
@click.option("--yes", is_flag=True, help="Confirm: copy into TARGET in one transaction (its tables must be empty).")
@click.option("--quarantine", type=click.Path(dir_okay=False),
              help="A new SQLite file to receive every rejected row with its reason (refused if it exists).")
@click.option("--drop", "drop", multiple=True, metavar="TABLE[.COLUMN]",
              help="Leave this source table or column behind (the target has none); repeat for several.")
@click.option("--json", "as_json", is_flag=True, help="Print the preflight (or the move's report) as JSON.")
@reports_errors
def move_command(source: str, target: str, preflight_only: bool, yes: bool, quarantine: str | None,
                 drop: tuple, as_json: bool):
    """Move SOURCE (a SQLite environment or file) into TARGET (a PostgreSQL environment or URL) without losing a row."""
    from app.core import move

    if preflight_only == yes:
        raise UsageError("Say what to do: --preflight (reads only) or --yes (copies into the target).")
    if preflight_only and quarantine:
        raise UsageError("--quarantine is for the move itself (--yes); --preflight writes nothing.")
    source_engine, target_engine = _move_sides(source, target)
    if preflight_only:
        checked = move.preflight(source_engine, target_engine, drop=drop)
        if as_json:
            print_json(checked.to_dict())
        else:
            _print_preflight(checked)
        sys.exit(0 if checked.movable else 1)
    report = _audited_move(source_engine, target_engine, quarantine, drop, as_json)
    if as_json:
        print_json(report.to_dict())
    else:
        for line in report.lines():
            click.echo(line)
    sys.exit(0 if report.passed else 1)


def _move_sides(source: str, target: str):
    from app.core.engines import engine_for

    targets = current_targets()
    _, source_engine = targets.resolve(source)
    if target.startswith(("postgresql://", "postgres://")):
        return source_engine, engine_for(target, kind="postgresql")
    return source_engine, targets.environment(target).target


def _audited_move(source_engine, target_engine, quarantine, drop, as_json: bool):
    from pathlib import Path

    from app import audit
    from app.core import move

    say = line_printer(as_json)
    where = f"{source_engine.label} -> {target_engine.label}"
    try:
        report = move.move(source_engine, target_engine, quarantine=Path(quarantine) if quarantine else None,
                           drop=drop, say=lambda line: say("info", line))
    except CutoverError as error:
        audit.record(cli_operator(), "move", target=where, result="refused" if error.exit_code else "failed",
                     detail=error.message[:500])
        raise
    audit.record(cli_operator(), "move", target=where, result="ok" if report.passed else "failed",
                 detail=f"{report.moved} rows moved, {report.quarantined} quarantined")
    return report


def _print_preflight(checked) -> None:
    click.echo(f"Preflight of {checked.source} -> {checked.target}: "
               + ("every row can be moved." if checked.movable else f"{checked.rejected_rows} rows cannot be moved."))
    for table in checked.tables:
        click.echo(f"  {table.name:<28} {table.rows:>10,} rows {len(table.rejected):>8,} rejected")
        for group in table.groups.values():
            click.echo(f"    {group.count:,} {group.reason}: {group.to_dict()['explanation']}")
            for example in group.examples:
                click.echo(f"      e.g. {json.dumps(example['key'], default=str)}: {example['detail']}")
    for conversion in checked.conversions():
        click.echo(f"  converted: {conversion}")
    for table in checked.tables:
        for name, definition in table.server_checks:
            click.echo(f"  checked by the server, not by preflight: {table.name}.{name} {definition} "
                       "(a row that breaks it fails the whole move, which rolls back)")
    if checked.version_stamp is not None:
        stamp = checked.version_stamp
        click.echo(f"  {stamp.table} (a stamp, not moved): source at {', '.join(stamp.source or ()) or '-'}, "
                   f"target at {', '.join(stamp.target) or '-'}")
    for problem in checked.blocking_problems():
        click.echo(f"BLOCKED: {problem}")


# --------------------------------------------------------------------------- Alembic revisions


def _alembic_chosen(targets, plans: tuple, to: str | None) -> bool:
    """[migration] alembic makes the application's revisions the plan; --plan FILE still runs a file."""
    if plans and to:
        raise UsageError("--to REV names an Alembic revision and --plan a .sql file: give one of them.")
    if to and targets.workspace.alembic is None:
        raise UsageError("--to REV needs [migration] alembic = \"path/to/alembic.ini\" in cutover.toml.")
    return targets.workspace.alembic is not None and not plans


def _alembic_text(doc: dict) -> str:
    status = doc.get("alembic")
    if status is None or "problem" in status:
        return ""
    pending = f"{len(status['pending'])} pending ({', '.join(status['pending'])})" if status["pending"] else "up to date"
    return f"  Alembic: at {', '.join(status['current']) or 'no revision'}, head {', '.join(status['heads'])}: {pending}\n"


def _with_alembic_status(targets, docs: list[dict]) -> list[dict]:
    from app.actions.revisions import with_alembic_status

    return with_alembic_status(targets, docs)


def _alembic_plan_command(targets, environment: str, to: str | None, as_json: bool):
    from app.actions.revisions import alembic_view

    view = alembic_view(targets, targets.environment(environment), to)
    if as_json:
        print_json(view.to_dict())
    else:
        _print_alembic_view(view)
    sys.exit(0 if view.ok else 1)


def _print_alembic_view(view) -> None:
    plan = view.plan
    click.echo(f"Alembic: at {', '.join(plan.current) or 'no revision'}, going to {plan.target} "
               f"({len(plan.revisions)} revisions)")
    for line in view.stamp.lines():
        click.echo(f"NOT WHAT THE STAMP SAYS: {line}")
    for revision in plan.revisions:
        flags = [revision.rendering] + (["changes data"] if revision.data_changes else []) + \
            ([] if revision.transactional else ["outside the transaction, not atomic"])
        click.echo(f"Revision {revision.revision.id}: {revision.revision.message} [{'; '.join(flags)}]")
        for sql in revision.statements:
            click.echo("  " + sql.replace("\n", "\n  "))
        for risk in revision.lock_risks:
            click.echo(f"  lock risk ({risk.level}, {risk.lock}): {risk.message}")
    if view.preflight is not None:
        for problem in view.preflight.problems:
            click.echo(f"BLOCKED {problem.outcome.statement.description}: {problem.error}\n  fix: {problem.fix}")


def init_app(app: Flask) -> None:
    app.cli.add_command(cutover)
