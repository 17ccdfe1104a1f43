"""The JSON API under /api/v1."""
import time


def settled_environments(client, api_headers) -> dict:
    """GET /api/v1/environments once the background whole-file checks have landed."""
    deadline = time.monotonic() + 30
    while True:
        envs = {env["name"]: env for env in client.get("/api/v1/environments", headers=api_headers).get_json()["environments"]}
        if all(env["status"] != "checking" for env in envs.values()) or time.monotonic() > deadline:
            return envs
        time.sleep(0.05)


def test_the_first_answer_does_not_wait_for_the_whole_file_checks(client, api_headers):
    response = client.get("/api/v1/environments", headers=api_headers)
    assert response.status_code == 200
    for env in response.get_json()["environments"]:
        assert env["status"] == "checking", env["name"]  # as the dashboard's "checking…"
        assert env["facts"]["quick_check"] is None and env["facts"]["foreign_key_violations"] is None
        assert env["row_counts"]["goals"] and len(env["fingerprint"]) == 64  # the schema read is there
    assert settled_environments(client, api_headers)["production"]["facts"]["foreign_key_violations"] == 2


def test_the_first_diff_does_not_wait_for_the_whole_file_checks(client, api_headers):
    body = client.get("/api/v1/diff?left=development&right=production", headers=api_headers).get_json()
    assert body["summary"]["status"] == "behind"
    assert body["checks"] == [
        {"environment": side, "state": "pending", "quick_check": None, "foreign_key_violations": None}
        for side in ("development", "production")]
    settled_environments(client, api_headers)
    body = client.get("/api/v1/diff?left=development&right=production", headers=api_headers).get_json()
    assert [(c["state"], c["quick_check"], c["foreign_key_violations"]) for c in body["checks"]] == [
        ("done", "ok", 0), ("done", "ok", 2)]


def test_environments_document(client, api_headers):
    envs = settled_environments(client, api_headers)
    assert set(envs) == {"development", "production"}
    dev, prod = envs["development"], envs["production"]
    assert dev["reference"] is True and prod["reference"] is False
    assert dev["status"] == "ok" and dev["error"] is None
    assert dev["row_counts"]["goals"] == 45
    assert dev["row_counts"]["activity_instances"] == 79
    assert dev["row_counts"]["metric_values"] == 116
    assert dev["facts"]["quick_check"] == "ok"
    assert dev["facts"]["foreign_key_violations"] == 0
    assert prod["facts"]["foreign_key_violations"] == 2
    assert len(dev["fingerprint"]) == 64 and dev["fingerprint"] != prod["fingerprint"]


def test_schema_document(client, api_headers):
    body = client.get("/api/v1/environments/production/schema", headers=api_headers).get_json()
    assert body["environment"] == "production"
    tables = {t["name"]: t for t in body["schema"]["tables"]}
    instances = [c["name"] for c in tables["activity_instances"]["columns"]]
    assert "completed" not in instances and "root_id" not in instances  # hotfix and phase 1 missing here
    assert "root_id" in [c["name"] for c in tables["goals"]["columns"]]  # the failed attempt got this far
    assert "activity_groups" not in tables  # drift
    assert len(body["schema"]["fingerprint"]) == 64


def test_unknown_environment_is_404(client, api_headers):
    response = client.get("/api/v1/environments/staging/schema", headers=api_headers)
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    assert "development, production" in response.get_json()["message"]


def test_diff_document(client, api_headers):
    response = client.get("/api/v1/diff?left=development&right=production", headers=api_headers)
    assert response.status_code == 200
    body = response.get_json()
    differences = body["differences"]
    keys = {"object", "table", "name", "change", "fix", "left", "right", "explanation"}
    assert all(set(d) == keys for d in differences)
    group_id = [d for d in differences if d["object"] == "column" and d["name"] == "group_id"]
    assert group_id == [{**group_id[0], "table": "activity_definitions", "change": "only_left", "fix": "additive", "right": None}]
    hotfix = {d["name"] for d in differences if d["object"] == "column" and d["table"] == "activity_instances"}
    assert {"completed", "notes", "data"} <= hotfix
    assert body["summary"]["status"] == "behind"


def test_diff_of_an_environment_with_itself_is_empty(client, api_headers):
    body = client.get("/api/v1/diff?left=production&right=production", headers=api_headers).get_json()
    assert body["differences"] == []


def test_diff_needs_both_sides(client, api_headers):
    response = client.get("/api/v1/diff?left=development", headers=api_headers)
    assert response.status_code == 400
    assert response.get_json()["error"] == "usage_error"


def test_diff_takes_environment_names_only(client, api_headers, demo_dir):
    response = client.get(f"/api/v1/diff?left=development&right={demo_dir / 'goals.db'}", headers=api_headers)
    assert response.status_code == 404


def test_api_with_session_cookie(logged_in):
    assert logged_in.get("/api/v1/environments").status_code == 200
