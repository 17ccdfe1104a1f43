"""Blueprints: the only code that touches requests and responses."""
from flask import Flask


def register_blueprints(app: Flask) -> None:
    from app.web import api, auth, dashboard

    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(api.bp)
