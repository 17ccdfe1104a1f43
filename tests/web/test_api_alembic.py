"""The JSON API over Alembic revisions: GET .../plan?to=REV, POST .../rehearse and .../migrate with {"to": REV}."""
from __future__ import annotations

import json

import pytest

from app.extensions import db
from app.models import Job
from tests.conftest import make_app
from tests.core.revisions.alembic_fixture import copy_project, sqlite_database
from tests.test_cli_alembic import digest, stamp
from tests.web.test_backups import wait_for_job

pytestmark = pytest.mark.slow


@pytest.fixture
def client(tmp_path):
    settings = copy_project(tmp_path / "app")
    sqlite_database(settings, tmp_path / "prod.db", "merge0004", [("ship it", "ana"), ("write docs", None)])
    config = tmp_path / "cutover.toml"
    config.write_text('[environments.production]\ndatabase = "prod.db"\n\n[migration]\nalembic = "app/alembic.ini"\n')
    app = make_app(tmp_path, config)
    yield app.test_client()
    with app.app_context():
        db.engine.dispose()


def test_the_environments_document_has_the_alembic_status(client, api_headers):
    environments = client.get("/api/v1/environments", headers=api_headers).get_json()["environments"]
    assert environments[0]["alembic"] == {"current": ["merge0004"], "heads": ["owner0006"],
                                          "pending": ["count0005", "owner0006"]}


def test_the_plan_takes_to(client, api_headers):
    body = client.get("/api/v1/environments/production/plan?to=count0005", headers=api_headers).get_json()
    assert [r["id"] for r in body["revisions"]] == ["count0005"] and body["alembic"]["target"] == "count0005"


def test_migrate_takes_to_and_goes_part_of_the_way(client, api_headers, tmp_path):
    response = client.post("/api/v1/environments/production/migrate", headers=api_headers,
                           json={"confirm": "production", "to": "count0005"})
    assert response.status_code == 202, response.get_json()
    job = response.get_json()["job"]
    assert job["params"] == {"alembic": True, "to": "count0005"}
    done = wait_for_job(client, api_headers, job["id"], timeout=120)
    assert done["job"]["state"] == "passed", done
    assert stamp(tmp_path / "prod.db") == ["count0005"]


def test_an_unknown_target_is_refused_before_a_job_exists(client, api_headers, tmp_path):
    before = digest(tmp_path / "prod.db")
    for route, body in (("rehearse", {"to": "nope"}), ("migrate", {"confirm": "production", "to": "nope"})):
        response = client.post(f"/api/v1/environments/production/{route}", headers=api_headers, json=body)
        assert response.status_code == 409
        assert "Target nope: no revision has that id" in response.get_json()["message"]
    with client.application.app_context():
        assert db.session.query(Job).count() == 0
    assert digest(tmp_path / "prod.db") == before


def test_to_must_be_a_revision_id(client, api_headers):
    response = client.post("/api/v1/environments/production/rehearse", headers=api_headers, json={"to": 7})
    assert response.status_code == 400 and '"to" must be a revision id' in response.get_json()["message"]


def test_the_migration_page_lists_each_revision_and_how_it_was_obtained(client):
    from tests.conftest import log_in

    log_in(client)
    page = client.get("/environments/production/migration").get_data(as_text=True)
    assert "is at <code>merge0004</code>;\n    2 revisions to <code>owner0006</code>" in page
    assert "count0005</span> remember how many goals there were (reads the database)" in page
    assert "reads the database: captured from the rehearsal&#39;s copy" in page
    assert "The schema is what its stamp merge0004 says" in page


def test_the_migration_page_goes_part_of_the_way_when_asked(client, api_headers, tmp_path):
    """The page's picker: the plan up to the chosen revision, and the migrate form carries it."""
    from tests.conftest import csrf_token_from, log_in

    log_in(client)
    page = client.get("/environments/production/migration?to=count0005").get_data(as_text=True)
    assert "1 revision to <code>count0005</code>" in page and "owner0006</span>" not in page
    assert '<option value="count0005" selected>' in page and '<option value="owner0006" >' in page
    assert '<input type="hidden" name="to" value="count0005">' in page
    response = client.post("/environments/production/migration/migrate",
                           data={"csrf_token": csrf_token_from(page), "confirm": "production", "to": "count0005"})
    assert response.status_code == 302 and "to=count0005" in response.headers["Location"]
    with client.application.app_context():
        job = db.session.query(Job).one()
        job_id = job.id
        assert json.loads(job.params)["to"] == "count0005"
    done = wait_for_job(client, api_headers, job_id, timeout=120)
    assert done["job"]["state"] == "passed", done
    assert stamp(tmp_path / "prod.db") == ["count0005"]


def test_an_unknown_target_on_the_page_is_said_and_changes_nothing(client, tmp_path):
    from tests.conftest import log_in

    log_in(client)
    before = digest(tmp_path / "prod.db")
    page = client.get("/environments/production/migration?to=nope").get_data(as_text=True)
    assert "Target nope: no revision has that id" in page
    assert digest(tmp_path / "prod.db") == before
