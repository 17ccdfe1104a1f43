"""Verification and the health page, API and CLI."""
import json
from datetime import timedelta

from app.actions.monitoring import start_window, tick_window
from app.extensions import db
from app.models import MonitorWindow
from tests.conftest import csrf_token_from
from tests.test_cli import cli
from tests.web.test_backups import wait_for_job


def migrate_demo(client, headers):
    client.post("/api/v1/environments/production/prep?reference=development&save=1", headers=headers)
    job = client.post("/api/v1/environments/production/migrate", headers=headers, json={"confirm": "production"}).get_json()["job"]
    done = wait_for_job(client, headers, job["id"])
    assert done["job"]["state"] == "passed", done["job"]["error"]


def checks_by_name(body):
    return {c["name"]: c for c in body["checks"]}


def test_verify_before_the_migration_fails_with_reasons(client, api_headers):
    body = client.post("/api/v1/environments/production/verify", headers=api_headers).get_json()
    assert body["passed"] is False
    checks = checks_by_name(body)
    assert checks["integrity_check"]["passed"] is True
    assert [name for name, c in checks.items() if not c["passed"]][:1] == ["foreign_key_check"]
    assert checks["foreign_key_check"]["passed"] is False  # no pre-migration baseline: orphans fail
    assert body["baseline"] == ["no migration recorded: foreign-key violations fail, no row-count ledger"]


def test_verify_after_the_migration_passes_every_check(client, api_headers):
    migrate_demo(client, api_headers)
    body = client.post("/api/v1/environments/production/verify", headers=api_headers).get_json()
    failing = {name: c["summary"] for name, c in checks_by_name(body).items() if not c["passed"]}
    assert failing == {} and body["passed"] is True
    names = set(checks_by_name(body))
    assert {"integrity_check", "foreign_key_check", "null_root_id_activity_instances", "null_root_id_goals",
            "required_indexes", "smoke_test"} <= names
    assert body["baseline"][0].startswith("baseline: backup ")


def test_cli_verify_exit_codes_and_json_names(tmp_path, demo_config):
    result = cli(tmp_path, demo_config, "verify", "production", "--json")
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert {"null_root_id_activity_instances", "null_root_id_goals"} <= {c["name"] for c in body["checks"]}
    development = cli(tmp_path, demo_config, "verify", "development")  # migrated, no orphans
    assert development.returncode == 0, development.stdout
    assert "✓ integrity_check" in development.stdout and "✓ smoke_test" in development.stdout


def test_health_api_and_page_with_a_window(app, client, api_headers, logged_in):
    with app.app_context():
        targets = app.extensions["cutover.targets"]
        window = start_window(targets, targets.environment("development"), "admin", hours=1, interval_minutes=5)
        for minutes in (0, 10):
            tick_window(targets, window, now=window.started_at + timedelta(minutes=minutes, seconds=1))
    body = client.get("/api/v1/environments/development/health", headers=api_headers).get_json()
    assert body["sqlite"]["version"] and body["window"]["counts"] == {"passed": 2, "failed": 0, "missed": 1, "running": 0}
    assert [s["state"] for s in body["samples"]] == ["passed", "missed", "passed"]
    html = logged_in.get("/environments/development/health").get_data(as_text=True)
    assert "Monitoring window" in html and "1 missed" in html and "a gap" in html
    assert html.count('class="cell cell-') == 3
    assert '<path d="M' in html  # the size and row charts have lines
    assert "integrity_check" in html


def test_row_chart_skips_tables_that_could_not_be_counted():
    from app.models import HealthSample
    from app.web.health import charts

    samples = [HealthSample(measurements=json.dumps({"row_counts": {"a": 3, "spell": None}})),
               HealthSample(measurements=json.dumps({"row_counts": {"a": 5, "spell": None}}))]
    rows = charts(samples)[1]
    assert rows.title == "Rows in all tables" and (rows.low, rows.high) == (3, 5)


def test_page_verify_now_and_monitoring_buttons(app, logged_in):
    html = logged_in.get("/environments/production/health").get_data(as_text=True)
    assert "No window yet" in html
    token = csrf_token_from(html)
    verified = logged_in.post("/environments/production/health/verify", data={"csrf_token": token}).get_data(as_text=True)
    assert "Verification FAILED" in verified and "null_root_id_goals" in verified
    started = logged_in.post("/environments/production/health/monitor", data={"csrf_token": token}, follow_redirects=True)
    assert "Watching production until" in started.get_data(as_text=True)
    stopped = logged_in.post("/environments/production/health/monitor/stop", data={"csrf_token": token}, follow_redirects=True)
    assert "Monitoring stopped." in stopped.get_data(as_text=True)
    with app.app_context():
        assert [w.state for w in db.session.query(MonitorWindow)] == ["stopped"]


def test_sqlite_warning_for_wal_with_an_affected_version():
    from app.actions.verification import sqlite_warnings

    assert sqlite_warnings("3.40.1", "wal") and "3.51.3" in sqlite_warnings("3.40.1", "wal")[0]
    assert sqlite_warnings("3.40.1", "delete") == [] and sqlite_warnings("3.51.3", "wal") == []


def test_verification_asked_for_is_audited(app, client, api_headers):
    client.post("/api/v1/environments/development/verify", headers=api_headers)
    with app.app_context():
        from app.models import AuditEntry

        rows = [(r.actor, r.action, r.target, r.result) for r in db.session.query(AuditEntry)]
        assert rows == [("api-token", "verify-environment", "development", "ok")]
