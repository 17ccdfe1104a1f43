"""One place renders every error, as JSON for the API and as a page otherwise."""
from __future__ import annotations

from flask import Flask, Response, jsonify, render_template
from flask.globals import request_ctx
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import ClientDisconnected, HTTPException, RequestEntityTooLarge, RequestTimeout

from app.core.errors import CutoverError
from app.extensions import db
from app.security import is_api_request


def _render(status: int, code: str, message: str, details: dict | None = None):
    db.session.rollback()
    if is_api_request():
        return jsonify({"error": code, "message": message, **(details or {})}), status
    if request_ctx.url_adapter is None:
        # The request never got as far as routing (an untrusted Host header): no page links.
        return Response(f"{status} {message}\n", status=status, mimetype="text/plain")
    return render_template("errors/error.html", status=status, code=code, message=message), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CutoverError)
    def cutover_error(error: CutoverError):
        details = {k: v for k, v in error.to_dict().items() if k not in ("error", "message")}
        return _render(error.http_status, error.code, error.message, details)

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return _render(400, "csrf_failed", f"{error.description} Reload the page and try again.")

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge):
        limit = app.config["MAX_CONTENT_LENGTH"]
        return _render(413, "request_entity_too_large",
                       f"The request is larger than the {limit:,} bytes this dashboard accepts "
                       "(CUTOVER_MAX_REQUEST_BYTES); nothing was done. Send less, or raise the limit.")

    @app.errorhandler(ClientDisconnected)
    def body_cut_short(error: ClientDisconnected):
        # Werkzeug reports any failed body read as a disconnect; the server's body deadline
        # (app.server) is the cause worth telling.
        cause = error.__context__
        return http_error(cause if isinstance(cause, RequestTimeout) else error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = (error.name or "error").lower().replace(" ", "_")
        response = app.make_response(_render(error.code or 500, code, error.description or error.name))
        for name, value in error.get_headers():
            if name == "Retry-After":  # a 503 that says when to come back (too many live viewers)
                response.headers[name] = value
        return response
