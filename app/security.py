"""Deny by default: every request is authenticated, CSRF-checked and given strict headers here.

Putting the gate in one before_request hook (not on each view) means a route added later
is protected without anyone remembering to decorate it.
"""
from __future__ import annotations

import hmac

from flask import Flask, current_app, g, jsonify, redirect, request, url_for
from flask_login import current_user

from app.extensions import csrf

PUBLIC_ENDPOINTS = {"auth.login", "static"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def bearer_token_valid() -> bool:
    expected = current_app.config.get("CUTOVER_API_TOKEN")
    header = request.headers.get("Authorization", "")
    if not expected or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].encode(), expected.encode())


def authenticate():
    g.via_token = False
    if request.routing_exception is not None:
        # No such route, wrong method or an untrusted Host header: answer that, reveal nothing.
        raise request.routing_exception
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if is_api_request() and "Authorization" in request.headers:
        if bearer_token_valid():
            g.via_token = True
            return None
        return jsonify(error="unauthorized", message="The bearer token is not valid."), 401
    if current_user.is_authenticated:
        return None
    if is_api_request() or request.accept_mimetypes.best == "text/event-stream":
        return jsonify(error="unauthorized", message="Log in, or send Authorization: Bearer <token>."), 401
    return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))


def check_csrf():
    # A bearer-token call carries no cookie, so a forged cross-site request cannot use it.
    if g.get("via_token") or request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    csrf.protect()
    return None


def refuse_cross_site():
    """Browsers say where a request comes from; a state change from another site is refused."""
    if request.method in ("GET", "HEAD", "OPTIONS") or g.get("via_token"):
        return None
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return jsonify(error="cross_site", message="Cross-site requests are refused."), 403
    return None


def set_security_headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "static":
        # Pages show live production facts; a cached copy would be a stale one.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    app.before_request(authenticate)
    app.before_request(refuse_cross_site)
    app.before_request(check_csrf)
    app.after_request(set_security_headers)
