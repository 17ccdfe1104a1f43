"""Blueprints: the only code that touches requests and responses."""
from flask import Flask, Response, request

# A form the page posts in the background (static/js/cutover.js, forms marked data-stay) asks
# for its redirect as this header instead: following it there would show the flashed message
# to the background request, not to the operator.
STAY_HEADER, GO_HEADER = "X-Cutover-Stay", "X-Cutover-Go"


def register_blueprints(app: Flask) -> None:
    from app.web import api, auth, backups, dashboard, health, jobs, migration, runs

    for module in (auth, dashboard, runs, backups, migration, health, jobs, api):
        app.register_blueprint(module.bp)
    health.init_app(app)
    jobs.init_app(app)
    app.after_request(_redirect_for_the_page)


def _redirect_for_the_page(response: Response) -> Response:
    if request.headers.get(STAY_HEADER) == "1" and response.status_code in (301, 302, 303, 307, 308):
        response.headers[GO_HEADER] = response.headers.pop("Location")
        response.status_code = 204
        response.set_data(b"")
    return response
