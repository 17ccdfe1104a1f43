"""Application factory: extensions, the workspace, security hooks, blueprints, CLI, error pages."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask
from sqlalchemy import event

from app.extensions import csrf, db, login_manager
from config import Config

PROJECT_DIR = Path(__file__).resolve().parent.parent


def create_app(config_class: type = Config, overrides: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        template_folder=str(PROJECT_DIR / "templates"),
        static_folder=str(PROJECT_DIR / "static"),
    )
    app.config.from_object(config_class)
    app.config.update(overrides or {})
    Path(app.config["INSTANCE_DIR"]).mkdir(parents=True, exist_ok=True)
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or _stored_secret_key(Path(app.config["INSTANCE_DIR"]))

    db.init_app(app)
    with app.app_context():
        _tune_state_database()
    login_manager.init_app(app)
    csrf.init_app(app)

    from app import auth_setup, cli, security, targets
    from app.web import register_blueprints
    from app.web.errors import register_error_handlers

    targets.init_app(app)
    security.init_app(app)
    register_blueprints(app)
    register_error_handlers(app)
    cli.init_app(app)
    with app.app_context():
        db.create_all()
        auth_setup.ensure_first_operator(app)
        if not app.config.get("CUTOVER_IS_WORKER"):
            from app.runner import reconcile_jobs

            reconcile_jobs()
    return app


def _tune_state_database() -> None:
    """WAL lets job processes write log lines while the server reads them; waits instead of failing."""
    if db.engine.url.get_backend_name() != "sqlite" or db.engine.url.database in (None, "", ":memory:"):
        return

    @event.listens_for(db.engine, "connect")
    def set_pragmas(connection, _record):
        cursor = connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 10000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()


def _stored_secret_key(instance_dir: Path) -> str:
    """A random key kept on disk (0600) so sessions survive a restart without a configured key."""
    key_file = instance_dir / "secret_key"
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_hex(32)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key
