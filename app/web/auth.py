"""Log in and out. Failed attempts are throttled and audited; the message never says which part was wrong."""
from __future__ import annotations

import threading
import time
from functools import lru_cache
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from app import audit
from app.extensions import db
from app.models import Operator

bp = Blueprint("auth", __name__)
THROTTLE_WINDOW = 15 * 60
LOGIN_FAILED = "Unknown operator or wrong password."


THROTTLE_KEYS = 10_000  # (name, address) pairs remembered before expired ones are dropped
NAME_LIMIT = 64  # an operator name is at most this long; a longer attempt is cut in the audit log


class LoginThrottle:
    """Failed attempts per (name, address) in a sliding window, kept in memory (one server process)."""

    def __init__(self):
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, key: tuple[str, str], limit: int) -> bool:
        with self._lock:
            recent = [t for t in self._failures.get(key, []) if t > time.monotonic() - THROTTLE_WINDOW]
            self._failures[key] = recent
            return len(recent) >= limit

    def fail(self, key: tuple[str, str]) -> None:
        with self._lock:
            now = time.monotonic()
            if len(self._failures) > THROTTLE_KEYS:
                # Someone is trying many names: forget the keys whose attempts have all expired.
                self._failures = {k: v for k, v in self._failures.items() if v and v[-1] > now - THROTTLE_WINDOW}
            self._failures.setdefault(key, []).append(now)

    def clear(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)


def throttle() -> LoginThrottle:
    return current_app.extensions.setdefault("cutover.login_throttle", LoginThrottle())


@lru_cache(maxsize=1)
def _unknown_operator_hash() -> str:
    return generate_password_hash("no operator has this password")  # the method operators' hashes use


def password_matches(operator: Operator | None, password: str) -> bool:
    """As slow for an unknown name as for a wrong password: the time taken must not say
    which names exist, any more than the message does."""
    if operator is None:
        check_password_hash(_unknown_operator_hash(), password)
        return False
    return operator.check_password(password)


def safe_next(target: str | None) -> str:
    """Only a path on this site: `https://evil.example` and `//evil.example` go to the dashboard."""
    if not target or "\\" in target:
        return url_for("dashboard.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("dashboard.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(safe_next(request.args.get("next")))
        return render_template("auth/login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "").strip()
    key = (username.lower(), request.remote_addr or "")
    error = None
    if throttle().blocked(key, current_app.config["CUTOVER_LOGIN_ATTEMPTS"]):
        error = "Too many failed attempts. Wait 15 minutes and try again."
        audit.record(username[:NAME_LIMIT] or "?", "login", result="throttled")
        return render_template("auth/login.html", error=error, next=request.form.get("next", ""),
                               username=username[:NAME_LIMIT]), 429
    operator = db.session.scalar(select(Operator).where(Operator.username == username))
    if not password_matches(operator, request.form.get("password", "")):
        throttle().fail(key)
        audit.record(username[:NAME_LIMIT] or "?", "login", result="failed")
        # The name typed stays in the form: only the password is asked for again.
        return render_template("auth/login.html", error=LOGIN_FAILED, next=request.form.get("next", ""),
                               username=username[:NAME_LIMIT]), 401
    throttle().clear(key)
    session.clear()  # nothing from before the login survives into the operator's session
    login_user(operator)
    audit.record(operator.username, "login")
    return redirect(safe_next(request.form.get("next")))


@bp.route("/logout", methods=["POST"])
def logout():
    operator = db.session.get(Operator, current_user.id)
    operator.session_generation += 1  # every copy of the old cookie stops working
    db.session.commit()
    audit.record(operator.username, "logout")
    logout_user()
    session.clear()
    flash("You are logged out.", "success")
    return redirect(url_for("auth.login"))
