"""An older state database upgraded by several processes starting at once (the server, a job's
worker, the CLI): each starts, the columns and indexes are added exactly once, no row is lost."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from tests.conftest import make_app
from tests.faults.helpers import sha256
from tests.test_models import dispose, indexes, make_older

REPO = Path(__file__).resolve().parents[2]
CLI = ["-m", "flask", "--app", "run", "cutover", "envs"]


def start_cli(tmp_path: Path, config: Path, state_db: Path) -> subprocess.Popen:
    env = {**os.environ, "CUTOVER_CONFIG": str(config), "CUTOVER_INSTANCE_DIR": str(tmp_path / "instance"),
           "CUTOVER_STATE_DATABASE_URL": f"sqlite:///{state_db}", "CUTOVER_SECRET_KEY": "upgrade-test-key",
           "CUTOVER_ADMIN_PASSWORD": "upgrade-password"}
    return subprocess.Popen([sys.executable, *CLI], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def columns(state: Path, table: str) -> list[str]:
    with closing(sqlite3.connect(state)) as connection:
        return [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')]


def test_processes_starting_together_upgrade_an_older_state_database_once(tmp_path, demo_config):
    state = tmp_path / "state.db"
    dispose(make_app(tmp_path, demo_config))
    make_older(state)
    production = demo_config.parent / "goals.db"
    before = sha256(production)

    children = [start_cli(tmp_path, demo_config, state) for _ in range(4)]
    outcomes = [(child.wait(timeout=120), child.stderr.read()) for child in children]

    assert [code for code, _ in outcomes] == [0, 0, 0, 0], outcomes
    assert columns(state, "job").count("workspace") == 1
    assert columns(state, "monitor_window").count("end_reason") == 1
    assert "one_active_job_per_workspace_environment" in indexes(state)
    assert "one_active_job_per_environment" not in indexes(state)
    with closing(sqlite3.connect(state)) as connection:
        assert connection.execute("SELECT workspace FROM job").fetchall() == [(str(demo_config.resolve()),)]
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert sha256(production) == before
    for child in children:
        child.stdout.close()
        child.stderr.close()
