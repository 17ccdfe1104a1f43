"""The dashboard's own state database: an older one is upgraded in place and keeps working, and
two workspaces sharing one keep their environments' state apart."""
import json
import shutil
import sqlite3
from contextlib import closing

from app.core.errors import Conflict
from app.extensions import db
from app.models import Job, MonitorWindow, Run, workspace_key
from tests.conftest import log_in, make_app

OLD_INDEXES = """
CREATE UNIQUE INDEX one_active_job_per_environment ON job (environment) WHERE state IN ('queued', 'running');
CREATE UNIQUE INDEX one_open_run_per_environment ON run (environment) WHERE status = 'open';
"""


def dispose(app):
    with app.app_context():
        db.engine.dispose()


def make_older(state):
    """The state database as the version before left it: no workspace on jobs, runs and
    windows, no end reason on windows, one active job and one open run per environment name, and
    no schema revision recorded."""
    with closing(sqlite3.connect(state)) as connection:
        connection.execute("DROP TABLE cutover_state_version")
        for index in ("one_active_job_per_workspace_environment", "one_open_run_per_workspace_environment",
                      "ix_job_workspace", "ix_run_workspace", "ix_monitor_window_workspace"):
            connection.execute(f'DROP INDEX "{index}"')
        for table, column in (("job", "workspace"), ("run", "workspace"), ("monitor_window", "workspace"),
                              ("monitor_window", "end_reason")):
            connection.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        connection.executescript(OLD_INDEXES)
        connection.execute(
            "INSERT INTO monitor_window (environment, started_at, ends_at, interval_seconds, started_by, reason, "
            "state, baseline, log_offset) VALUES ('production', '2026-01-01 00:00:00', '2026-01-02 00:00:00', "
            "900, 'admin', 'after the migration', 'stopped', '{}', 0)")
        connection.execute(
            "INSERT INTO job (kind, environment, params, state, operator, created_at, progress_done, progress_total, "
            "result, error) VALUES ('backup', 'production', '{}', 'passed', 'admin', '2026-01-01 00:00:00', 0, 0, "
            "'{\"backup\": \"20260101_000000\"}', '')")
        connection.commit()


def indexes(state):
    with closing(sqlite3.connect(state)) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_an_older_state_database_is_upgraded_in_place_and_keeps_its_rows(tmp_path, demo_config):
    state = tmp_path / "state.db"
    dispose(make_app(tmp_path, demo_config))
    make_older(state)

    app = make_app(tmp_path, demo_config)

    with app.app_context():
        window = db.session.get(MonitorWindow, 1)
        assert (window.environment, window.reason, window.end_reason) == ("production", "after the migration", "")
        assert window.workspace == workspace_key(demo_config)  # old rows are the upgrading workspace's
        assert db.session.get(Job, 1).result_document == {"backup": "20260101_000000"}
        assert app.extensions["cutover.state_schema"][0] == "adopted"
    assert make_app(tmp_path, demo_config).extensions["cutover.state_schema"] == []  # nothing changes twice
    assert {"one_active_job_per_workspace_environment", "one_open_run_per_workspace_environment",
            "ix_job_workspace", "ix_run_workspace", "ix_monitor_window_workspace"} <= indexes(state)
    assert not {"one_active_job_per_environment", "one_open_run_per_environment"} & indexes(state)
    client = app.test_client()
    log_in(client)
    assert client.get("/environments/production/health").status_code == 200
    assert 'data-job="1"' in client.get("/jobs").get_data(as_text=True)
    dispose(app)


def two_workspaces(tmp_path, demo_dir):
    """Two copies of the demo (each has a "production"), one state database."""
    other = tmp_path / "other"
    shutil.copytree(demo_dir, other)
    return make_app(tmp_path, demo_dir / "cutover.toml"), make_app(tmp_path, other / "cutover.toml")


def test_two_workspaces_sharing_a_state_database_never_read_each_others_environment_state(
        tmp_path, demo_dir, api_headers):
    from app.jobs.runner import create_job
    from app.checklist.progress import create_run
    from app.targets import current_targets

    first, second = two_workspaces(tmp_path, demo_dir)
    with first.app_context():
        migrated = Job(kind="migrate", environment="production", operator="admin", state="passed",
                       result=json.dumps({"backup": "20260101_000000"}))
        db.session.add(migrated)
        db.session.commit()
        busy = create_job("integrity", "production", "admin")  # active on the first's production
        targets = current_targets()
        run = create_run(targets, targets.environment("production"), "admin")
        ids = (migrated.id, busy.id, run.id)

    client = second.test_client()
    verified = client.post("/api/v1/environments/production/verify", headers=api_headers).get_json()
    assert verified["baseline"] == ["no migration recorded: foreign-key violations fail, no row-count ledger"]
    assert client.get(f"/api/v1/jobs/{ids[0]}", headers=api_headers).status_code == 404
    with second.app_context():
        assert db.session.get(Job, ids[1]) is None and db.session.get(Run, ids[2]) is None
        job = create_job("integrity", "production", "admin")  # not blocked by the first's job
        assert job.workspace == workspace_key(tmp_path / "other" / "cutover.toml")
        try:
            create_job("backup", "production", "admin")
        except Conflict as refusal:  # its own active job still blocks a second one
            assert f"(job {job.id}," in refusal.message
        else:
            raise AssertionError("a second active job on one environment was accepted")
    with first.app_context():
        assert [j.id for j in db.session.scalars(db.select(Job))] == list(ids[:2])
    dispose(first)
    dispose(second)
