"""The operator dashboard: every environment side by side, and the drift explained."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from app.actions.documents import (difference_kinds, differences_by_table, environment_condition,
                                   environment_document, table_views)
from app.actions.next_action import environment_facts, next_action
from app.targets import current_targets

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def index():
    targets = current_targets()
    # The page never waits for whole-file checks: they run in the background and each card
    # that shows "checking" refreshes itself until they land.
    environments = [(env, targets.inspect(env, wait_for_checks=False)) for env in targets.workspace.environments]
    pair = _chosen_pair(targets)
    comparison = targets.compare(*pair, wait_for_checks=False) if pair else None
    compared = comparison is not None and comparison.differences is not None
    return render_template(
        "dashboard/index.html",
        workspace=targets.workspace,
        environments=[_card(targets, env, inspection, comparison) for env, inspection in environments],
        comparison=comparison,
        tables=table_views(comparison) if compared else [],
        kinds=difference_kinds(comparison) if compared else [],
        groups=differences_by_table(comparison) if compared else [],
    )


def _card(targets, env, inspection, comparison):
    """An environment's card: its document, its badge and the one thing to do next."""
    doc = environment_document(env, inspection)
    reference = targets.workspace.reference
    shown = comparison if comparison and reference and (comparison.left, comparison.right) == (reference.name, env.name) else None
    facts = environment_facts(targets, env, shown)
    return env, inspection, doc, environment_condition(doc, inspection, facts.differences), next_action(facts)


def _chosen_pair(targets):
    default = targets.default_pair()
    left = request.args.get("left") or (default and default[0])
    right = request.args.get("right") or (default and default[1])
    if not left or not right:
        return None
    for name in (left, right):
        targets.environment(name)  # an unknown name is a clear 404
    return left, right


@bp.post("/refresh")
def refresh():
    """Inspect every environment again now, even if its file looks unchanged."""
    targets = current_targets()
    for env in targets.workspace.environments:
        targets.inspect(env, refresh=True)
    flash("Every environment was inspected again.")
    # Only the pair compared travels back: any other argument would reach url_for.
    pair = {key: request.args[key] for key in ("left", "right") if isinstance(request.args.get(key), str)}
    return redirect(url_for("dashboard.index", **pair))
