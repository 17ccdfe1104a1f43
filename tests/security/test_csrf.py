"""CSRF and cross-site requests: every state-changing route, read from the URL map.

Each request is one that would act if it got through (a real backup id, an open run whose
first step passed and awaits its sign-off, the confirmations typed, save=1 for prep), sent
by a logged-in operator; refused, it must leave no Job, Run, SignOff, log line, monitoring
window or session change behind, and every file of the workspace byte-identical."""
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.security.helpers import audit_entries_after, ids, last_audit_id, route_table, state_changing_routes

STATE_CHANGING = state_changing_routes()
READABLE = {route.rule for route in route_table() if route.method == "GET"}
POST_ONLY = [route for route in STATE_CHANGING if route.rule not in READABLE]  # no rule reads that URL


def form_for(site) -> dict:
    return {"confirm": "production", "note": "checked", "reason": "testing", "environment": "production",
            "reference": "development", "save": "1", "username": "admin", "password": ADMIN_PASSWORD, "next": "/"}


def json_for(site) -> dict:
    return {"environment": "production", "backup": site.backup_id, "note": "checked", "reason": "testing"}


def send(site, client, route, token: str | None, headers: dict | None = None):
    headers = dict(headers or {})
    if route.api:
        if token is not None:
            headers["X-CSRFToken"] = token
        return client.open(route.url(site.values), method=route.method, json=json_for(site), headers=headers)
    data = form_for(site)
    if token is not None:
        data["csrf_token"] = token
    return client.open(route.url(site.values), method=route.method, data=data, headers=headers)


def evidence(site) -> dict:
    found = site.evidence()
    found["rows"].pop("AuditEntry")  # checked below: only a record of the refusal may be added
    return found


def assert_nothing_happened(site, before: dict, audit_before: int) -> None:
    assert evidence(site) == before
    for entry in audit_entries_after(site.app, audit_before):
        assert entry[3] == "refused", entry
    assert site.operator().get("/jobs").status_code == 200  # still logged in: not even a logout


def foreign_tokens(site) -> dict:
    """Tokens valid for some session, but not the operator's."""
    anonymous = site.app.test_client()
    return {"another operator session": site.token(site.operator("other")),
            "an anonymous session": site.login_token(anonymous)}


@pytest.mark.parametrize("route", STATE_CHANGING, ids=ids(STATE_CHANGING))
def test_a_post_without_a_valid_token_is_refused_and_changes_nothing(site, route):
    client = site.operator()
    own = site.token(client)
    attempts = {"no token": None, "an empty token": "", "a made-up token": "IjEyMyI.aGVsbG8.d29ybGQ",
                "own token, tampered": own[:-2] + ("AA" if not own.endswith("AA") else "BB"),
                **foreign_tokens(site)}
    assert own not in attempts.values()
    before, audit_before = evidence(site), last_audit_id(site.app)
    for what, token in attempts.items():
        response = send(site, client, route, token)
        assert response.status_code == 400, (what, response.status_code, response.get_data(as_text=True)[:300])
        if route.api:
            assert response.get_json()["error"] == "csrf_failed", what
        else:
            assert "CSRF" in response.get_data(as_text=True), what
    assert_nothing_happened(site, before, audit_before)


@pytest.mark.parametrize("route", STATE_CHANGING, ids=ids(STATE_CHANGING))
def test_a_cross_site_post_is_refused_even_with_a_valid_token(site, route):
    client = site.operator()
    token = site.token(client)
    before, audit_before = evidence(site), last_audit_id(site.app)
    response = send(site, client, route, token, {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
    assert response.status_code == 403
    assert_nothing_happened(site, before, audit_before)


@pytest.mark.parametrize("route", POST_ONLY, ids=ids(POST_ONLY))
def test_get_on_a_state_changing_route_is_405(site, route):
    before, audit_before = evidence(site), last_audit_id(site.app)
    response = site.operator().get(route.url(site.values))
    assert response.status_code == 405
    assert_nothing_happened(site, before, audit_before)


def test_the_valid_token_does_get_through(site):
    """The refusals above are the token's: the same request with the operator's own token acts."""
    client = site.operator()
    response = client.post("/refresh", data={"csrf_token": site.token(client)})
    assert response.status_code == 302
    route = next(r for r in STATE_CHANGING if r.endpoint == "api.verify_backup_route")
    response = send(site, client, route, site.token(client))
    assert response.status_code == 200 and response.get_json()["verified"] is True
