"""JSON API under /api/v1 (session cookie or bearer token; see app.security)."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from app.core.errors import UsageError
from app.targets import current_targets
from app.web.presenters import comparison_document, environment_document

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/environments")
def environments():
    targets = current_targets()
    docs = [environment_document(env, targets.inspect(env)) for env in targets.workspace.environments]
    return jsonify(environments=docs)


@bp.get("/environments/<name>/schema")
def environment_schema(name: str):
    targets = current_targets()
    env = targets.environment(name)
    inspection = targets.inspect(env)
    if not inspection.ok:
        raise inspection.error
    return jsonify(environment=env.name, **inspection.snapshot.to_dict())


@bp.get("/diff")
def diff():
    left, right = request.args.get("left"), request.args.get("right")
    if not left or not right:
        raise UsageError("Give both environments to compare: /api/v1/diff?left=NAME&right=NAME.")
    targets = current_targets()
    targets.environment(left), targets.environment(right)  # the API compares configured environments only
    comparison = targets.compare(left, right)
    for inspection in (comparison.left_inspection, comparison.right_inspection):
        if not inspection.ok:
            raise inspection.error
    return jsonify(comparison_document(comparison))
