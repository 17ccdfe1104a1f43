"""Headless CLI: `flask --app run cutover ...`. Exit codes: 0 success, 1 failed or found a problem, 2 usage or configuration."""
from __future__ import annotations

import functools
import json
import sys

import click
from flask import Flask
from flask.cli import AppGroup

from app.core.errors import CutoverError
from app.targets import current_targets
from app.web.presenters import comparison_document, environment_document

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


@cutover.command("envs")
@click.option("--json", "as_json", is_flag=True, help="Print the same document as GET /api/v1/environments.")
@reports_errors
def envs_command(as_json: bool):
    """Show every configured environment: file, facts, integrity, row counts."""
    targets = current_targets()
    docs = [environment_document(env, targets.inspect(env)) for env in targets.workspace.environments]
    if as_json:
        print_json({"environments": docs})
    else:
        for doc in docs:
            click.echo(_environment_text(doc))
    sys.exit(0 if all(doc["status"] == "ok" for doc in docs) else 1)


def _environment_text(doc: dict) -> str:
    head = f"{doc['name']}{' (reference)' if doc['reference'] else ''}: {doc['database']}"
    if doc["status"] == "unavailable":
        return f"{head}\n  UNAVAILABLE ({doc['error']['reason']}): {doc['error']['message']}\n"
    facts = doc["facts"]
    lines = [
        head,
        f"  size {facts['size_bytes']:,} bytes, {facts['page_count']:,} pages of {facts['page_size']}, "
        f"journal {facts['journal_mode']}, user_version {facts['user_version']}, SQLite {facts['sqlite_version']}",
        f"  integrity: {facts['quick_check']}; foreign-key orphans: {facts['foreign_key_violations']}; "
        f"fingerprint {doc['fingerprint'][:12]}",
    ]
    lines += [f"  {name:<32} {count:>12,}" for name, count in doc["row_counts"].items()]
    return "\n".join(lines) + "\n"


@cutover.command("diff")
@click.argument("left")
@click.argument("right")
@click.option("--json", "as_json", is_flag=True, help="Print {\"differences\": [...]} as the API does.")
@reports_errors
def diff_command(left: str, right: str, as_json: bool):
    """Compare two environments (or database files). Exits 1 when they differ, like diff(1)."""
    comparison = current_targets().compare(left, right)
    for inspection in (comparison.left_inspection, comparison.right_inspection):
        if not inspection.ok:
            raise inspection.error
    if as_json:
        print_json(comparison_document(comparison))
    else:
        _print_differences(comparison)
    sys.exit(1 if comparison.differences else 0)


def _print_differences(comparison) -> None:
    summary = comparison.summary.to_dict()
    if not comparison.differences:
        click.echo(f"No differences: {comparison.right} matches {comparison.left}.")
        return
    counts = ", ".join(f"{count} {fix}" for fix, count in summary["by_fix"].items() if count)
    click.echo(f"{comparison.right} is {summary['status'].replace('_', ' ')} relative to {comparison.left}: "
               f"{len(comparison.differences)} differences ({counts})")
    for d in comparison.differences:
        name = f"{d.table}.{d.name}" if d.table and d.object != "table" else d.name
        click.echo(f"  [{d.fix:<11}] {d.object:<7} {name}: {d.explanation}")


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


def init_app(app: Flask) -> None:
    app.cli.add_command(cutover)
