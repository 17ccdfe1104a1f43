"""scripts/alembic_demo.py: the Alembic demo workspace a newcomer can try, walked through as its docstring says."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests.test_cli_alembic import cutover, stamp

PROJECT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_the_alembic_demo_walkthrough(tmp_path):
    folder = tmp_path / "demo"
    made = subprocess.run([sys.executable, "scripts/alembic_demo.py", str(folder)], cwd=PROJECT,
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    envs = {e["name"]: e["alembic"] for e in json.loads(cutover(folder, "envs", "--json").stdout)["environments"]}
    assert envs["development"]["pending"] == [] and envs["production"]["pending"] == ["count0005", "owner0006"]
    assert cutover(folder, "rehearse", "production").returncode == 1
    assert cutover(folder, "migrate", "production", "--to", "count0005", "--yes").returncode == 0
    with closing(sqlite3.connect(folder / "goals.db")) as connection:
        connection.execute("UPDATE goals SET owner = 'nobody' WHERE owner IS NULL")
        connection.commit()
    done = cutover(folder, "migrate", "production", "--yes")
    assert done.returncode == 0, done.stderr
    assert stamp(folder / "goals.db") == ["owner0006"]
    assert cutover(folder, "diff", "development", "production").returncode == 0  # the same schema now
    again = subprocess.run([sys.executable, "scripts/alembic_demo.py", str(folder)], cwd=PROJECT,
                           capture_output=True, text=True)
    assert again.returncode == 1 and "exists already" in again.stderr
