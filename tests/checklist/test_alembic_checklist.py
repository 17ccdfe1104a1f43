"""The production checklist over the application's Alembic revisions: the rehearse and migrate
steps use the compiled revisions, and the completion report lists each revision applied."""
from __future__ import annotations

import pytest

from tests.checklist.test_driver import TINY_WINDOW, cli, dashboard  # noqa: F401
from tests.core.revisions.alembic_fixture import copy_project, sqlite_database
from tests.test_cli_alembic import stamp

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def config(tmp_path):
    settings = copy_project(tmp_path / "app")
    sqlite_database(settings, tmp_path / "dev.db", "owner0006")
    sqlite_database(settings, tmp_path / "prod.db", "merge0004", [("ship it", "ana"), ("write docs", "bo")])
    path = tmp_path / "cutover.toml"
    path.write_text('[environments.development]\ndatabase = "dev.db"\nreference = true\n\n'
                    '[environments.production]\ndatabase = "prod.db"\n\n'
                    '[migration]\nalembic = "app/alembic.ini"\n\n'
                    + TINY_WINDOW + "declared_row_changes = { settings = 1 }\n")
    return path


def test_the_checklist_rehearses_and_migrates_the_revisions_and_reports_them(tmp_path, config, dashboard):  # noqa: F811
    done = cli(tmp_path, config, "run-checklist", "production", "--yes", timeout=200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "✓ This run's rehearsal passed for revisions count0005, owner0006" in done.stdout
    assert stamp(tmp_path / "prod.db") == ["owner0006"]
    response = dashboard(config).test_client().get("/api/v1/runs/1/report",
                                                   headers={"Authorization": "Bearer test-api-token"})
    report = response.get_data(as_text=True)
    assert "## Alembic revisions applied" in report
    assert "- `count0005` remember how many goals there were (reads the database) (captured from rehearsal, " \
           "2 statements, changes data)" in report
    assert "- `owner0006`" in report
