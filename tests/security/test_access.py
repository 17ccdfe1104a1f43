"""Deny by default: every route but the login page and static files needs a session or the
API token. The routes are read from the app's URL map, so a route added later is covered
without anyone remembering to list it; its arguments get real values (a real backup id, an
existing run and job), so a refusal is the gate's, not a 404 of a missing object."""
import pytest

from config import TestConfig
from tests.security.helpers import ids, protected_routes, route_table, routes_of

PROTECTED = protected_routes()
API = [route for route in PROTECTED if route.api]
BAD_AUTHORIZATION = [
    "Bearer wrong",
    "Bearer ",
    "Bearer",
    f"bearer {TestConfig.CUTOVER_API_TOKEN}",
    f"Bearer {TestConfig.CUTOVER_API_TOKEN}x",
    f"Bearer {TestConfig.CUTOVER_API_TOKEN[:-1]}",
    f"Bearer  {TestConfig.CUTOVER_API_TOKEN}",
    f"Basic {TestConfig.CUTOVER_API_TOKEN}",
    "Basic YWRtaW46YWRtaW4tcGFzc3dvcmQ=",  # admin:admin-password
]


def test_the_route_table_is_the_apps_and_covers_what_the_readme_names(site):
    assert route_table() == tuple(routes_of(site.app))
    rules = {route.rule for route in PROTECTED}
    for needed in ["/api/v1/jobs/<int:job_id>/events", "/api/v1/runs/<int:run_id>/events",
                   "/runs/<int:run_id>/report", "/runs/<int:run_id>/report.md", "/api/v1/runs/<int:run_id>/report"]:
        assert needed in rules
    assert len(PROTECTED) >= 50


def test_the_plausible_values_reach_real_objects(site):
    """Logged in, every GET route answers 200 with these values: the refusals below are the gate's."""
    client = site.operator()
    for route in PROTECTED:
        if route.method == "GET":
            response = client.get(route.url(site.values))
            assert response.status_code == 200, (str(route), response.status_code)


@pytest.mark.parametrize("route", PROTECTED, ids=ids(PROTECTED))
def test_every_route_refuses_an_anonymous_request(site, route):
    url = route.url(site.values)
    before = site.evidence()
    client = site.app.test_client()
    accepts = [None, "text/event-stream"] if route.stream else [None, "application/json"]
    for accept in accepts:
        response = client.open(url, method=route.method, headers={"Accept": accept} if accept else {})
        if route.api or accept == "text/event-stream":
            assert response.status_code == 401, (accept, response.status_code)
            assert response.get_json()["error"] == "unauthorized"
        else:
            assert response.status_code in (302, 401), (accept, response.status_code)
            if response.status_code == 302:
                assert response.headers["Location"].startswith("/login?next=")
        assert response.mimetype != "text/event-stream"
    assert site.evidence() == before


@pytest.mark.parametrize("route", API, ids=ids(API))
def test_every_api_route_refuses_a_wrong_bearer_token_even_beside_a_session(site, route):
    url = route.url(site.values)
    before = site.evidence()
    for client in (site.app.test_client(), site.operator()):
        for header in BAD_AUTHORIZATION:
            response = client.open(url, method=route.method, headers={"Authorization": header}, json={})
            assert response.status_code == 401, (header, response.status_code)
            assert response.get_json()["error"] == "unauthorized"
    assert site.evidence() == before


def test_the_right_bearer_token_is_accepted(client, api_headers):
    assert client.get("/api/v1/environments", headers=api_headers).status_code == 200


def test_without_a_configured_token_no_bearer_token_works(tmp_path, demo_config):
    from tests.conftest import make_app

    app = make_app(tmp_path, demo_config, CUTOVER_API_TOKEN=None)
    client = app.test_client()
    for header in ["Bearer ", "Bearer None", "Bearer null", f"Bearer {TestConfig.CUTOVER_API_TOKEN}"]:
        assert client.get("/api/v1/environments", headers={"Authorization": header}).status_code == 401, header
