"""The dashboard's own state database: an older one is upgraded in place and keeps working."""
import sqlite3
from contextlib import closing

from app.extensions import db
from app.models import ADDED_COLUMNS, MonitorWindow, upgrade_state_database
from tests.conftest import make_app


def dispose(app):
    with app.app_context():
        db.engine.dispose()


def make_older(state, tables_and_columns):
    """The state database as an earlier version left it: without the columns added since."""
    with closing(sqlite3.connect(state)) as connection:
        for table, column in tables_and_columns:
            connection.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        connection.commit()


def test_an_older_state_database_gets_the_new_columns_and_keeps_its_rows(tmp_path, demo_config):
    state = tmp_path / "state.db"
    dispose(make_app(tmp_path, demo_config))
    make_older(state, [(table, column) for table, column, _ in ADDED_COLUMNS])
    with closing(sqlite3.connect(state)) as connection:
        connection.execute(
            "INSERT INTO monitor_window (environment, started_at, ends_at, interval_seconds, started_by, reason, "
            "state, baseline, log_offset) VALUES ('production', '2026-01-01 00:00:00', '2026-01-02 00:00:00', "
            "900, 'admin', 'after the migration', 'stopped', '{}', 0)")
        connection.commit()

    app = make_app(tmp_path, demo_config)

    with app.app_context():
        window = db.session.get(MonitorWindow, 1)
        assert (window.environment, window.reason, window.end_reason) == ("production", "after the migration", "")
        assert upgrade_state_database() == []  # already done: nothing to add twice
    client = app.test_client()
    from tests.conftest import log_in

    log_in(client)
    assert client.get("/environments/production/health").status_code == 200
    dispose(app)
