"""Operators: loading them for Flask-Login, and the first one at start-up."""
from __future__ import annotations

import secrets
import sys

from flask import Flask
from sqlalchemy.exc import IntegrityError
from sqlalchemy import func, select

from app.core.errors import UsageError
from app.extensions import db, login_manager
from app.models import Operator

USERNAME_RULE = "letters, digits, '.', '_' and '-' (1 to 64 characters)"


@login_manager.user_loader
def load_operator(user_id: str):
    operator_id, _, generation = user_id.partition(":")
    if not operator_id.isdigit() or not generation.isdigit():
        return None
    operator = db.session.get(Operator, int(operator_id))
    # A cookie from before the last logout carries an old generation: refuse it.
    if operator is None or operator.session_generation != int(generation):
        return None
    return operator


def create_operator(username: str, password: str) -> Operator:
    if not username or len(username) > 64 or not all(c.isalnum() or c in "._-" for c in username):
        raise UsageError(f"Operator name '{username}' is not valid: use {USERNAME_RULE}.")
    if len(password) < 8:
        raise UsageError("The password is too short: use at least 8 characters.")
    if db.session.scalar(select(Operator).where(Operator.username == username)):
        raise UsageError(f"An operator named '{username}' already exists.")
    operator = Operator(username=username)
    operator.set_password(password)
    db.session.add(operator)
    db.session.commit()
    return operator


def ensure_first_operator(app: Flask) -> None:
    """Nobody can log in to an empty dashboard, so the first start creates 'admin'."""
    if db.session.scalar(select(func.count()).select_from(Operator)):
        return
    password = app.config.get("CUTOVER_ADMIN_PASSWORD")
    try:
        create_operator("admin", password or (generated := secrets.token_urlsafe(12)))
    except (IntegrityError, UsageError):
        # Another process (the server and a CLI command starting together) created it first.
        db.session.rollback()
        return
    if not password:
        print(f"Created operator 'admin' with password: {generated}  (shown once; set CUTOVER_ADMIN_PASSWORD to choose it)",
              file=sys.stderr, flush=True)


login_manager.login_view = "auth.login"
login_manager.session_protection = "strong"
