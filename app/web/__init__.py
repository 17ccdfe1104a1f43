"""Blueprints: the only code that touches requests and responses."""
from flask import Flask, g
from flask_login import current_user


def register_blueprints(app: Flask) -> None:
    from app.web import api, auth, backups, dashboard, health, jobs, migration, runs

    for module in (auth, dashboard, runs, backups, migration, health, jobs, api):
        app.register_blueprint(module.bp)
    health.init_app(app)


def acting_operator() -> str:
    """Who the audit log and the jobs name: the operator, or the API token."""
    return "api-token" if g.get("via_token") else current_user.username
