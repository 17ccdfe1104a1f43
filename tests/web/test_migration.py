"""The migration API and page: reconciliation, prep, rehearse, migrate, and the refusals."""
import hashlib
import re
import sqlite3

from app.extensions import db
from app.models import Job
from tests.conftest import csrf_token_from
from tests.web.test_backups import wait_for_job


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_plan_reports_the_partial_migration_and_the_drift(client, api_headers):
    body = client.get("/api/v1/environments/production/plan", headers=api_headers).get_json()
    reconciliation = body["reconciliation"]
    assert reconciliation["state"] == "partly_applied" and reconciliation["ready"] is False
    assert reconciliation["counts"] == {"will_run": 27, "skip": 6, "conflict": 0, "will_fail": 1}
    [problem] = body["preflight"]["problems"]
    assert problem["error"] == "no such column: group_id"
    assert "production lacks activity_definitions.group_id which development has" in problem["fix"]


def test_migrate_is_refused_by_preflight_and_production_is_unchanged(client, api_headers, demo_dir):
    before = sha(demo_dir / "goals.db")
    response = client.post("/api/v1/environments/production/migrate", headers=api_headers, json={"confirm": "production"})
    assert response.status_code == 202
    done = wait_for_job(client, api_headers, response.get_json()["job"]["id"])
    assert done["job"]["state"] == "failed"
    assert "Preflight found 1 statement(s) that would fail; nothing was changed." in done["job"]["error"]
    assert sha(demo_dir / "goals.db") == before
    assert not any((demo_dir / "backups/local").iterdir())  # refused before even the backup


def test_prep_then_rehearse_then_migrate(client, api_headers, demo_dir):
    prep = client.post("/api/v1/environments/production/prep?reference=development&save=1", headers=api_headers).get_json()
    assert prep["saved"].endswith("plans/prep_production.sql")
    assert 'ALTER TABLE "activity_definitions" ADD COLUMN "group_id"' in prep["prep"]["text"]
    assert client.get("/api/v1/environments/production/plan", headers=api_headers).get_json()["preflight"]["ok"]

    rehearsal = client.post("/api/v1/environments/production/rehearse", headers=api_headers).get_json()
    done = wait_for_job(client, api_headers, rehearsal["job"]["id"])
    assert done["job"]["state"] == "passed", done["job"]["error"]
    assert done["job"]["result"]["passed"] is True

    migration = client.post("/api/v1/environments/production/migrate", headers=api_headers, json={"confirm": "production"}).get_json()
    done = wait_for_job(client, api_headers, migration["job"]["id"])
    assert done["job"]["state"] == "passed", done["job"]["error"]
    texts = [line["text"] for line in done["lines"]]
    assert any(t.startswith("✓ Using the passing rehearsal of") for t in texts)
    assert any("⚠ Column already exists, skipping (expected)" in t for t in texts)
    assert texts[-1].startswith("✓ Migration of production committed")
    assert done["job"]["result"]["apply"]["foreign_keys"]["new"] == 0
    diff = client.get("/api/v1/diff?left=development&right=production", headers=api_headers).get_json()
    assert diff["differences"] == []
    listing = client.get("/api/v1/environments/production/backups", headers=api_headers).get_json()
    assert [b["status"] for b in listing["backups"]] == ["verified"]  # the migration's own backup

    again = client.post("/api/v1/environments/production/migrate", headers=api_headers, json={"confirm": "production"}).get_json()
    done = wait_for_job(client, api_headers, again["job"]["id"])
    assert done["job"]["state"] == "passed"
    assert done["job"]["result"]["apply"]["counts"]["applied"] == 7  # only the idempotent data statements


def test_a_target_changed_after_its_rehearsal_is_rehearsed_again(client, api_headers, demo_dir):
    client.post("/api/v1/environments/production/prep?reference=development&save=1", headers=api_headers)
    rehearsal = client.post("/api/v1/environments/production/rehearse", headers=api_headers).get_json()
    wait_for_job(client, api_headers, rehearsal["job"]["id"])
    conn = sqlite3.connect(demo_dir / "goals.db")
    conn.execute("CREATE TABLE hand_made (id INTEGER PRIMARY KEY)")  # someone changed production by hand
    conn.commit()
    conn.close()
    migration = client.post("/api/v1/environments/production/migrate", headers=api_headers, json={"confirm": "production"}).get_json()
    done = wait_for_job(client, api_headers, migration["job"]["id"])
    texts = [line["text"] for line in done["lines"]]
    assert "No passing rehearsal of this plan on this schema yet: rehearsing now." in texts
    assert done["job"]["state"] == "passed"


def test_a_plan_with_a_forbidden_statement_is_refused_before_any_job(app, client, api_headers, demo_dir):
    plan = demo_dir / "plans/hotfix_activity_instances.sql"
    plan.write_text(plan.read_text() + "\nPRAGMA writable_schema = ON;\n")
    before = sha(demo_dir / "goals.db")
    response = client.post("/api/v1/environments/production/migrate", headers=api_headers, json={"confirm": "production"})
    assert response.status_code == 400
    assert "writable_schema" in response.get_json()["message"]
    assert sha(demo_dir / "goals.db") == before
    with app.app_context():
        assert db.session.query(Job).count() == 0


def test_the_page_shows_predictions_and_prep(logged_in):
    html = logged_in.get("/environments/production/migration").get_data(as_text=True)
    assert "is partially migrated" in html and "Preflight: 1 statement would stop the migration" in html
    assert "Column already exists, skipping (expected)" in html
    token = csrf_token_from(html)
    prep = logged_in.post("/environments/production/migration/prep", data={"csrf_token": token}).get_data(as_text=True)
    assert "Prep plan: bring production to development" in prep and "CREATE TABLE activity_groups" in prep
    saved = logged_in.post("/environments/production/migration/prep",
                           data={"csrf_token": token, "save": "1", "reference": "development"}, follow_redirects=True)
    assert "Prep plan saved as" in saved.get_data(as_text=True)
    assert "ready to run" in saved.get_data(as_text=True)


def test_the_page_says_what_to_do_next_before_and_after_the_prep(logged_in):
    html = logged_in.get("/environments/production/migration").get_data(as_text=True)
    assert 'data-next-action="prep"' in html and 'action="/environments/production/migration/prep"' in html
    token = csrf_token_from(html)
    saved = logged_in.post("/environments/production/migration/prep",
                           data={"csrf_token": token, "save": "1", "reference": "development"}, follow_redirects=True)
    html = saved.get_data(as_text=True)
    assert 'data-next-action="start_run"' in html and "Start a checklist run" in html
    assert '<form method="post" action="/runs" class="inline">' in html
    assert '<input type="hidden" name="environment" value="production">' in html


def test_the_page_wants_the_typed_name_to_migrate(app, logged_in):
    token = csrf_token_from(logged_in.get("/environments/production/migration").get_data(as_text=True))
    response = logged_in.post("/environments/production/migration/migrate",
                              data={"csrf_token": token, "confirm": "yes"}, follow_redirects=True)
    assert "type the environment name (production) to confirm" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(Job).count() == 0


def test_a_rehearsal_log_page_links_back_to_the_migration(logged_in, client, api_headers):
    rehearsal = client.post("/api/v1/environments/production/rehearse", headers=api_headers).get_json()
    wait_for_job(client, api_headers, rehearsal["job"]["id"])
    html = logged_in.get(f"/jobs/{rehearsal['job']['id']}").get_data(as_text=True)
    assert "← Migration of production" in html and "no such column: group_id" in html
    assert logged_in.get("/jobs/999999").status_code == 404


def test_prep_from_the_environment_itself_or_an_unknown_one_is_refused(client, api_headers, demo_dir):
    same = client.post("/api/v1/environments/production/prep?reference=production", headers=api_headers)
    assert same.status_code == 400 and "choose a different reference" in same.get_json()["message"]
    unknown = client.post("/api/v1/environments/production/prep?reference=staging", headers=api_headers)
    assert unknown.status_code == 404
    assert not (demo_dir / "plans/prep_production.sql").exists()


def test_a_trigger_the_plan_destroys_is_named_and_blocks_the_migration(logged_in, client, api_headers, demo_dir):
    production = demo_dir / "goals.db"
    with sqlite3.connect(production) as connection:
        connection.execute("CREATE TRIGGER goals_touch AFTER UPDATE ON goals BEGIN SELECT 1; END")
    connection.close()
    prep = demo_dir / "plans/prep_production.sql"
    prep.write_text("DROP TRIGGER goals_touch;\n", encoding="utf-8")
    before = sha(production)
    body = client.get("/api/v1/environments/production/plan", headers=api_headers).get_json()
    assert [loss["name"] for loss in body["reconciliation"]["losses"]] == ["goals_touch"]
    lost = [p for p in body["preflight"]["problems"] if p["outcome"] == "loses_object"]
    assert [p["error"] for p in lost] == [
        f"trigger goals_touch on goals is destroyed by statement 1 ({prep}:1: DROP TRIGGER goals_touch) "
        "and the plan does not re-create it"]
    html = logged_in.get("/environments/production/migration").get_data(as_text=True)
    assert "Destroyed and not re-created" in html and "-- accept-drop: trigger goals_touch" in html
    response = client.post("/api/v1/environments/production/migrate", json={"confirm": "production"}, headers=api_headers)
    done = wait_for_job(client, api_headers, response.get_json()["job"]["id"])
    assert done["job"]["state"] == "failed" and "Preflight found 2" in done["job"]["error"]
    assert any(line["text"].startswith("✗ DROP TRIGGER goals_touch: trigger goals_touch on goals is destroyed")
               for line in done["lines"])
    assert sha(production) == before

    prep.write_text("-- accept-drop: trigger goals_touch\nDROP TRIGGER goals_touch;\n", encoding="utf-8")
    accepted = client.get("/api/v1/environments/production/plan", headers=api_headers).get_json()
    assert accepted["reconciliation"]["losses"][0]["accepted"] is True
    assert [p["outcome"] for p in accepted["preflight"]["problems"]] == ["will_fail"]
    html = logged_in.get("/environments/production/migration").get_data(as_text=True)
    assert "accepted</span>" in html and "by <code>-- accept-drop: trigger goals_touch</code>" in html


def test_the_prep_view_is_a_page_a_reload_shows_again_statements_first(logged_in, demo_dir):
    html = logged_in.get("/environments/production/migration").get_data(as_text=True)
    assert '<form method="get" action="/environments/production/migration/prep"' in html
    prep = logged_in.get("/environments/production/migration/prep?reference=development")
    assert prep.status_code == 200  # a GET: a reload or a bookmark shows it again
    text = prep.get_data(as_text=True)
    assert text.index("CREATE TABLE activity_groups") < text.index("-- Prep plan: bring production")
    assert '<details class="card prep-file">' in text  # the file's comments, folded under the statements
    assert not (demo_dir / "plans/prep_production.sql").exists()  # looking never saves


def test_prep_phases_count_on_their_own_and_the_plan_keeps_its_numbers(logged_in):
    def phases(html):
        return re.findall(r'<span class="phase-number">([^<]+)</span> ([^\n<]+)', html)

    before = phases(logged_in.get("/environments/production/migration").get_data(as_text=True))
    token = csrf_token_from(logged_in.get("/environments/production/migration").get_data(as_text=True))
    after = phases(logged_in.post("/environments/production/migration/prep", data={
        "csrf_token": token, "save": "1", "reference": "development"}, follow_redirects=True).get_data(as_text=True))
    assert [label for label, _ in after[:2]] == ["Prep 1", "Prep 2"]
    assert after[2:] == before and before[0][0] == "Phase 1"
