"""Ids no database row can have: every route with an integer argument, read from the URL map,
answers a logged-in operator's request for an id beyond SQLite's 64-bit integers (or one of
thousands of digits) with 404, and acts on nothing."""
import pytest

from tests.security.helpers import ids, route_table

WITH_IDS = [route for route in route_table() if any(converter == "int" for _, converter in route.arguments)]
HUGE_IDS = {"2**63": str(2 ** 63), "25 digits": "9999999999999999999999999", "5000 digits": "9" * 5000}


def test_the_integer_routes_are_found():
    assert len(WITH_IDS) >= 11 and "GET /api/v1/runs/<int:run_id>" in ids(WITH_IDS)


@pytest.mark.parametrize("route", WITH_IDS, ids=ids(WITH_IDS))
def test_an_id_beyond_64_bits_is_not_found(site, route):
    client = site.operator()
    token = site.token(client)
    before = site.evidence()
    for what, huge in HUGE_IDS.items():
        override = {name: huge for name, converter in route.arguments if converter == "int"}
        response = client.open(route.url(site.values, **override), method=route.method,
                               headers={"X-CSRFToken": token}, data={"csrf_token": token})
        assert response.status_code == 404, (what, response.status_code, response.get_data(as_text=True)[:300])
        if route.api:
            assert response.get_json()["error"] == "not_found", what
    assert site.evidence() == before


def test_the_largest_sqlite_integer_is_still_looked_up(site):
    """2**63 - 1 is a valid id (no row has it): the lookup runs and says so."""
    response = site.operator().get(f"/api/v1/runs/{2 ** 63 - 1}")
    assert response.status_code == 404
    assert str(2 ** 63 - 1) in response.get_json()["message"]


QUERY_INTS = ["/jobs?page={}", "/environments/production/backups?job={}", "/environments/production/migration?job={}",
              "/api/v1/jobs/{job}?after={}"]


@pytest.mark.parametrize("url", QUERY_INTS)
def test_a_query_number_beyond_64_bits_is_taken_as_absent(site, url):
    client = site.operator()
    for huge in HUGE_IDS.values():
        response = client.get(url.format(huge, job=site.job_id))
        assert response.status_code == 200, (huge[:30], response.status_code)
