"""Deny by default: every route needs a session or a token; CSRF, Host and headers."""
import pytest

from tests.conftest import csrf_token_from

PUBLIC = {"auth.login", "static"}


def concrete_urls(app):
    """Every route of the app, with placeholder values for its arguments."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        url = rule.rule
        for argument in rule.arguments:
            url = url.replace(f"<{argument}>", "x").replace(f"<int:{argument}>", "1")
            url = url.replace(f"<path:{argument}>", "x")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            yield method, url


def test_every_route_requires_authentication(app, client):
    urls = list(concrete_urls(app))
    assert len(urls) >= 6
    for method, url in urls:
        response = client.open(url, method=method)
        if url.startswith("/api/"):
            assert response.status_code == 401, (method, url)
            assert response.get_json()["error"] == "unauthorized"
        else:
            assert response.status_code in (302, 401), (method, url)
            if response.status_code == 302:
                assert "/login" in response.headers["Location"]


def test_a_wrong_bearer_token_is_refused(client):
    for header in ["Bearer wrong", "Bearer ", "Basic YWRtaW46eA==", "bearer test-api-token"]:
        response = client.get("/api/v1/environments", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_the_right_bearer_token_is_accepted(client, api_headers):
    assert client.get("/api/v1/environments", headers=api_headers).status_code == 200


def test_post_without_csrf_token_is_refused(logged_in):
    response = logged_in.post("/refresh")
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_post_with_another_sessions_token_is_refused(app, logged_in):
    from tests.conftest import log_in

    other = app.test_client()
    log_in(other)
    foreign_token = csrf_token_from(other.get("/").get_data(as_text=True))
    own_token = csrf_token_from(logged_in.get("/").get_data(as_text=True))
    assert foreign_token != own_token
    assert logged_in.post("/refresh", data={"csrf_token": foreign_token}).status_code == 400


def test_login_itself_needs_a_csrf_token(client):
    response = client.post("/login", data={"username": "admin", "password": "x"})
    assert response.status_code == 400


def test_get_on_a_state_changing_route_is_405(logged_in):
    assert logged_in.get("/refresh").status_code == 405
    assert logged_in.get("/logout").status_code == 405


def test_cross_site_post_is_refused_even_with_a_token(logged_in):
    token = csrf_token_from(logged_in.get("/").get_data(as_text=True))
    response = logged_in.post("/refresh", data={"csrf_token": token},
                              headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
    assert response.status_code == 403


@pytest.mark.parametrize("host", ["evil.example", "evil.example:5000", "127.0.0.1.evil.example"])
def test_untrusted_host_header_is_refused(client, host):
    response = client.get("/login", headers={"Host": host})
    assert response.status_code == 400


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "localhost", "localhost:8080"])
def test_trusted_host_header_is_accepted(client, host):
    assert client.get("/login", headers={"Host": host}).status_code == 200


def test_security_headers_on_pages_and_api(logged_in, api_headers):
    for response in [logged_in.get("/"), logged_in.get("/login"), logged_in.get("/api/v1/environments", headers=api_headers)]:
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Access-Control-Allow-Origin" not in response.headers


def test_cross_origin_preflight_gets_nothing_permissive(client):
    response = client.options("/api/v1/environments", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_no_shell_in_the_application_code():
    from pathlib import Path

    for path in Path("app").rglob("*.py"):
        text = path.read_text()
        assert "shell=True" not in text and "os.system(" not in text, path


def test_core_never_imports_flask_or_models():
    from pathlib import Path

    for path in Path("app/core").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")):
                assert "flask" not in stripped and "app.models" not in stripped, (path, line)
