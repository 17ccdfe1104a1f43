"""Application factory: extensions, the workspace, security hooks, blueprints, CLI, error pages."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask

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
    return app


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
