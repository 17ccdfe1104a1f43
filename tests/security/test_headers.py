"""The Host header (DNS rebinding), where the server listens, CORS, and the headers every
answer carries: pages, API, streams, reports, errors and redirects alike (every route of
the URL map, logged in and through the token)."""
import os
import subprocess
import sys

import pytest

from tests.security.helpers import route_table

FOREIGN_HOSTS = ["evil.example", "evil.example:5000", "127.0.0.1.evil.example", "localhost.evil.example",
                 "127.0.0.1@evil.example", "evil.example#127.0.0.1"]


def csp_directives(header: str) -> dict:
    directives = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value.split()
    return directives


def every_answer(site, api_headers):
    """One answer of each GET route, logged in (pages) or with the token (API), with real ids;
    plus a redirect, an error page, an API error and the login page."""
    client = site.operator()
    for route in route_table():
        if route.method == "GET":
            response = client.get(route.url(site.values), headers=api_headers if route.api else {})
            response.close()
            yield str(route), response
    yield "redirect", site.app.test_client().get("/jobs")
    yield "error page", client.get("/runs/999999")
    yield "API error", client.get("/api/v1/runs/999999", headers=api_headers)
    yield "refused", site.app.test_client().get("/api/v1/runs")


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_a_foreign_host_header_is_refused_everywhere(site, host, api_headers):
    operator = site.operator()
    token = site.token(operator)
    before = site.evidence()
    for client, headers in ((site.app.test_client(), {}), (operator, {}), (site.app.test_client(), api_headers)):
        for url in ("/login", "/", "/api/v1/environments", f"/api/v1/runs/{site.run_id}/events"):
            response = client.get(url, headers={**headers, "Host": host})
            assert response.status_code == 400, (url, host)
            assert "evil" not in response.headers.get("Location", "")
    response = operator.post("/refresh", data={"csrf_token": token}, headers={"Host": host})
    assert response.status_code == 400
    anonymous = site.app.test_client()
    login = anonymous.post("/login", data={"username": "admin", "password": "x", "csrf_token": site.login_token(anonymous)},
                           headers={"Host": host})
    assert login.status_code == 400
    assert site.evidence() == before


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "localhost", "localhost:8080", "[::1]:5000"])
def test_the_trusted_host_headers_are_accepted(client, host):
    assert client.get("/login", headers={"Host": host}).status_code == 200


def test_x_forwarded_host_is_not_believed(client):
    response = client.get("/jobs", headers={"X-Forwarded-Host": "evil.example"})
    assert response.status_code == 302 and "evil" not in response.headers["Location"]


def test_the_server_listens_on_loopback_unless_told_otherwise(app):
    from app.server import server_options

    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    printed = subprocess.run([sys.executable, "-c", "from config import Config; "
                              "print(Config.CUTOVER_HOST, Config.TRUSTED_HOSTS)"],
                             env=env, capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert printed[0] == "127.0.0.1"
    assert printed[1].strip() == "['127.0.0.1', 'localhost', '[::1]']"
    assert server_options(app)["bind"] == f"127.0.0.1:{app.config['CUTOVER_PORT']}"


def test_no_answer_allows_another_origin(site, api_headers):
    origin = {"Origin": "https://evil.example"}
    answers = []
    for route in route_table():
        for client, headers in ((site.operator(), {}), (site.app.test_client(), api_headers)):
            method = "GET" if route.method == "GET" else "OPTIONS"
            response = client.open(route.url(site.values), method=method,
                                   headers={**headers, **origin, "Access-Control-Request-Method": route.method})
            response.close()
            answers.append((str(route), response))
    for what, response in answers:
        assert not [name for name in response.headers.keys() if name.lower().startswith("access-control-")], what


def test_every_answer_carries_the_security_headers(site, api_headers):
    kinds = set()
    for what, response in every_answer(site, api_headers):
        kinds.add(response.mimetype)
        csp = csp_directives(response.headers.get("Content-Security-Policy", ""))
        assert csp.get("default-src") == ["'self'"], what
        assert "'unsafe-inline'" not in csp.get("script-src", ["'unsafe-inline'"]), what
        assert not {"'unsafe-eval'", "*", "data:", "http:", "https:"} & set(csp["script-src"]), what
        assert csp.get("frame-ancestors") == ["'none'"], what
        assert csp.get("object-src") == ["'none'"], what
        assert response.headers.get("X-Content-Type-Options") == "nosniff", what
    assert {"text/html", "application/json", "text/event-stream", "text/markdown", "text/css"} <= kinds


def test_pages_carry_no_inline_script(site):
    """What the policy forbids, the pages must not need: no inline script or handler."""
    import re

    client = site.operator()
    for route in route_table():
        if route.method == "GET" and not route.api and not route.public:
            html = client.get(route.url(site.values)).get_data(as_text=True)
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), route
            assert not re.search(r"\son[a-z]+\s*=", html), route
            assert "javascript:" not in html, route


def test_every_cookie_is_httponly_and_samesite_lax(app):
    from tests.conftest import ADMIN_PASSWORD, csrf_token_from

    client = app.test_client()
    page = client.get("/login")
    login = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                                        "csrf_token": csrf_token_from(page.get_data(as_text=True))})
    logout = client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/jobs").get_data(as_text=True))})
    cookies = [c for r in (page, login, logout) for c in r.headers.getlist("Set-Cookie")]
    assert len(cookies) >= 2
    for cookie in cookies:
        attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
        assert "httponly" in attributes and attributes.get("samesite") == "SameSite=Lax", cookie
