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
    check_password_length(password)
    if find_operator(username):
        raise UsageError(f"An operator named '{username}' already exists; "
                         f"`cutover reset-password {username}` gives it a new password.")
    operator = Operator(username=username)
    operator.set_password(password)
    db.session.add(operator)
    db.session.commit()
    return operator


def reset_password(username: str, password: str) -> Operator:
    """A forgotten password (the first start's admin one is shown once) is replaced, never recovered."""
    check_password_length(password)
    operator = find_operator(username)
    if operator is None:
        raise UsageError(f"No operator is named '{username}'; `cutover add-operator {username}` creates one.")
    operator.set_password(password)
    operator.session_generation += 1  # whoever held the old password is logged out everywhere
    db.session.commit()
    return operator


def find_operator(username: str) -> Operator | None:
    return db.session.scalar(select(Operator).where(Operator.username == username))


def check_password_length(password: str) -> None:
    if len(password) < 8:
        raise UsageError("The password is too short: use at least 8 characters.")


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
