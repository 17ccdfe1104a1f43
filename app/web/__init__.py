"""Blueprints: the only code that touches requests and responses."""
from flask import Flask


def register_blueprints(app: Flask) -> None:
    from app.web import api, auth, backups, dashboard, health, jobs, migration, runs

    for module in (auth, dashboard, runs, backups, migration, health, jobs, api):
        app.register_blueprint(module.bp)
    health.init_app(app)
    jobs.init_app(app)
