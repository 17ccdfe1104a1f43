"""The monitoring window: ticks, gaps after a restart, one run per tick, alerts."""
import json
import sqlite3
import threading
import time
from datetime import timedelta

from sqlalchemy import select

from app.actions.monitoring import MonitorScheduler, start_window, tick_all, tick_window, window_summary
from app.extensions import db
from app.models import AuditEntry, HealthSample, MonitorWindow


def targets_of(app):
    return app.extensions["cutover.targets"]


def samples(window_id):
    return [(s.tick, s.state) for s in db.session.scalars(
        select(HealthSample).where(HealthSample.window_id == window_id).order_by(HealthSample.tick))]


def copy_with_null_root_id(path, table):
    """What the application kept doing after the real migration: a new row, root_id NULL."""
    conn = sqlite3.connect(path)
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})") if row[1] != "id"]
    values = ["NULL" if c == "root_id" else c for c in columns]
    conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {table} LIMIT 1")
    conn.commit()
    conn.close()


def test_the_first_tick_runs_at_once_and_records_measurements(app):
    with app.app_context():
        targets = targets_of(app)
        window = start_window(targets, targets.environment("development"), "admin", hours=1, interval_minutes=15)
        sample = tick_window(targets, window)
        assert sample.tick == 0 and sample.state == "passed", sample.results
        measurements = json.loads(sample.measurements)
        assert measurements["row_counts"]["goals"] == 45 and measurements["size_bytes"] > 0
        names = [r["name"] for r in json.loads(sample.results)]
        assert names[:2] == ["integrity_check", "foreign_key_check"] and "new_rows_keep_columns_filled" in names
        assert tick_window(targets, window) is None  # the same tick never runs twice


def test_ticks_missed_while_down_are_a_gap_and_only_the_latest_runs(app):
    with app.app_context():
        targets = targets_of(app)
        window = start_window(targets, targets.environment("development"), "admin", hours=1, interval_minutes=5)
        tick_window(targets, window)
        later = window.started_at + timedelta(minutes=5 * 4 + 1)  # the dashboard was down for ticks 1-3
        sample = tick_window(targets, window, now=later)
        assert sample.tick == 4
        assert samples(window.id) == [(0, "passed"), (1, "missed"), (2, "missed"), (3, "missed"), (4, "passed")]
        summary = window_summary(window)
        assert summary["counts"] == {"passed": 2, "failed": 0, "missed": 3, "running": 0}


def test_two_schedulers_never_run_a_tick_twice(app):
    with app.app_context():
        targets = targets_of(app)
        window = start_window(targets, targets.environment("development"), "admin", hours=1, interval_minutes=5)
        window_id = window.id
    ran = []

    def scheduler():
        with app.app_context():
            ran.extend(s.tick for s in tick_all(targets_of(app)))
            db.session.remove()

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert ran == [0]
    with app.app_context():
        assert samples(window_id) == [(0, "passed")]


def test_a_null_root_id_after_the_migration_raises_an_alert(app, logged_in, demo_dir):
    with app.app_context():
        targets = targets_of(app)
        window = start_window(targets, targets.environment("development"), "admin", hours=1, interval_minutes=5)
        tick_window(targets, window)
    copy_with_null_root_id(demo_dir / "goals_dev.db", "activity_instances")
    with app.app_context():
        window = db.session.get(MonitorWindow, window.id)
        sample = tick_window(targets, window, now=window.started_at + timedelta(minutes=5, seconds=1))
        assert sample.state == "failed"
        failed = {r["name"]: r for r in json.loads(sample.results) if not r["passed"]}
        assert set(failed) == {"null_root_id_activity_instances", "new_rows_keep_columns_filled"}
        assert failed["new_rows_keep_columns_filled"]["evidence"] == [
            "activity_instances.root_id: 1 of 1 new row(s) are NULL"]
        alert = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "health-alert")).one()
        assert alert.target == "development" and alert.result == "failed"
    page = logged_in.get("/").get_data(as_text=True)
    assert "Health check failing on <strong>development</strong>" in page


def test_a_window_finishes_and_is_clean(app):
    with app.app_context():
        targets = targets_of(app)
        window = start_window(targets, targets.environment("development"), "admin", hours=0.25, interval_minutes=5)
        for minutes in (0, 5, 10, 15):
            tick_window(targets, window, now=window.started_at + timedelta(minutes=minutes, seconds=1))
        tick_window(targets, window, now=window.ends_at + timedelta(minutes=1))
        assert window.state == "finished"
        assert window_summary(window)["clean"] is True


def test_the_scheduler_thread_survives_a_restart(app):
    """Run, stop (the dashboard goes down), wait past several ticks, start again."""
    with app.app_context():
        targets = targets_of(app)
        window = start_window(targets, targets.environment("development"), "admin",
                              hours=1, interval_minutes=1 / 60)  # a tick every second
        window_id = window.id
    first = MonitorScheduler(app, poll_seconds=0.1).start()
    time.sleep(1.5)
    first.stop()
    time.sleep(3.2)  # down for about three ticks
    second = MonitorScheduler(app, poll_seconds=0.1).start()
    time.sleep(1.0)
    second.stop()
    with app.app_context():
        states = samples(window_id)
        ticks = [tick for tick, _ in states]
        assert ticks == sorted(set(ticks)), "a tick ran twice"
        assert ticks == list(range(len(ticks))), "a tick is neither run nor recorded as missed"
        assert any(state == "missed" for _, state in states)
        assert states[0] == (0, "passed") and states[-1][1] == "passed"


def test_a_restore_stops_the_window_that_watched_the_replaced_database(app, logged_in, api_headers, demo_dir):
    """Rolling back: the window's baseline describes the file that is gone, so it must not
    keep alarming about the restored one; the restore's log and the audit log say so."""
    from tests.web.test_backups import take_backup, wait_for_job

    backup_id, _ = take_backup(logged_in, api_headers)
    copy_with_null_root_id(demo_dir / "goals.db", "activity_instances")  # what the failed release wrote
    with app.app_context():
        targets = targets_of(app)
        window = start_window(targets, targets.environment("production"), "admin", hours=1, interval_minutes=5)
        window_id = window.id
        copy_with_null_root_id(demo_dir / "goals.db", "activity_instances")
        assert tick_window(targets, window).state == "failed"
    assert "Health check failing on <strong>production</strong>" in logged_in.get("/").get_data(as_text=True)

    started = logged_in.post("/api/v1/environments/production/restore", json={"backup": backup_id, "confirm": "production"}, headers=api_headers)
    done = wait_for_job(logged_in, api_headers, started.get_json()["job"]["id"])

    assert done["job"]["state"] == "passed", done
    assert done["job"]["result"]["monitoring_stopped"] == window_id
    reason = (f"production was restored from backup {backup_id}: the window watched the database that was "
              "replaced. Start a new window to watch the restored one.")
    assert f"Monitoring window {window_id} stopped: {reason}" in [line["text"] for line in done["lines"]]
    assert "Health check failing" not in logged_in.get("/").get_data(as_text=True)
    assert f"Stopped: {reason}" in logged_in.get("/environments/production/health").get_data(as_text=True)
    with app.app_context():
        window = db.session.get(MonitorWindow, window_id)
        assert (window.state, window.end_reason) == ("stopped", reason)
        assert window_summary(window)["end_reason"] == reason
        assert tick_all(targets_of(app), now=window.started_at + timedelta(minutes=10, seconds=1)) == []
        stop = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "monitor-stop")).one()
        assert (stop.actor, stop.target, stop.detail) == ("api-token", "production", f"window {window_id}: {reason}")


def test_a_restore_leaves_other_environments_windows_alone(app, api_headers):
    from tests.web.test_backups import take_backup, wait_for_job

    client = app.test_client()
    backup_id, _ = take_backup(client, api_headers)
    with app.app_context():
        targets = targets_of(app)
        window_id = start_window(targets, targets.environment("development"), "admin", hours=1).id
    started = client.post("/api/v1/environments/production/restore", json={"backup": backup_id, "confirm": "production"}, headers=api_headers)
    done = wait_for_job(client, api_headers, started.get_json()["job"]["id"])
    assert done["job"]["state"] == "passed" and done["job"]["result"]["monitoring_stopped"] is None
    with app.app_context():
        assert db.session.get(MonitorWindow, window_id).state == "active"
