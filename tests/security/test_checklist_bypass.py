"""An operator with a checklist run open on production tries every other door: each state-changing
route of the app outside the runs' own, with every confirmation a route could want (the typed name,
a real backup id, a saved prep plan so a migration would succeed). None may change production while
the run is open: the migration and restore doors answer 409 naming the run, no migration or restore
job exists, and production's bytes and mtime are as they were. A route added later is covered too.
"""
from __future__ import annotations

import pytest

from app.actions.planning import make_prep, save_prep
from app.extensions import db
from app.models import Job
from app.targets import current_targets
from tests.security.conftest import build_site
from tests.security.helpers import file_state, state_changing_routes, wait_for_jobs

THE_RUNS_OWN = ("/runs", "/api/v1/runs", "/login", "/logout")
CHANGES_THE_TARGET = {"api.migrate_route", "api.restore_route", "migration.migrate", "backups.restore"}


def doors():
    return [route for route in state_changing_routes() if not route.rule.startswith(THE_RUNS_OWN)]


@pytest.fixture
def site(tmp_path, demo_template):
    site = build_site(tmp_path, demo_template)
    with site.app.app_context():
        targets = current_targets()
        production = targets.environment("production")
        save_prep(targets, production, make_prep(targets, production, "development"), "admin")
        db.session.remove()
    yield site
    with site.app.app_context():
        db.engine.dispose()


def test_no_door_outside_the_open_run_changes_production(site, api_headers):
    client = site.operator()
    before = file_state(site.production)
    body = {"confirm": "production", "backup": site.backup_id, "reference": "development", "note": "by hand",
            "save": "1", "csrf_token": site.token(client)}
    answers = {}
    for route in doors():
        url = route.url(site.values)
        if route.api:
            response = client.open(url, method=route.method, json=body, headers=api_headers)
        else:
            response = client.open(url, method=route.method, data=body)
        answers[route.endpoint] = response
        wait_for_jobs(site.app)  # one job at a time: a refusal must be the run's, not "busy"

    assert set(CHANGES_THE_TARGET) <= set(answers)  # the doors that matter were all tried
    for endpoint in CHANGES_THE_TARGET:
        response = answers[endpoint]
        assert response.status_code == 409, (endpoint, response.status_code)
        text = response.get_data(as_text=True)
        assert f"checklist run {site.run_id}, opened by admin" in text, (endpoint, text[:300])
    with site.app.app_context():
        assert db.session.query(Job).filter(Job.kind.in_(("migrate", "restore", "hotfix"))).count() == 0
        db.session.remove()
    assert file_state(site.production) == before
