"""Create a demo workspace whose plan is an application's Alembic revisions.

    python scripts/alembic_demo.py FOLDER
    export CUTOVER_CONFIG=FOLDER/cutover.toml
    flask --app run cutover envs                       # each environment's stamp and pending revisions
    flask --app run cutover plan production            # each revision's SQL, and how it was obtained
    flask --app run cutover rehearse production        # fails: a goal has no owner (production untouched)
    flask --app run cutover migrate production --to count0005 --yes   # the part that works
    sqlite3 FOLDER/goals.db "UPDATE goals SET owner = 'nobody' WHERE owner IS NULL"
    flask --app run cutover migrate production --yes   # the rest

The application (tests/fixtures/alembic_app: goals, a branch and its merge, a data migration, a
revision that reads the database, one that fails on real data) is copied into FOLDER/app. Its
env.py connects wherever DATABASE_URL points; this script builds both databases with the
application's own `alembic upgrade`, and Cutover never runs that env.py.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "alembic_app"
CONFIG = """# A workspace migrated by the application's own Alembic revisions (scripts/alembic_demo.py).
[environments.development]
database = "goals_dev.db"
reference = true

[environments.production]
database = "goals.db"

[migration]
alembic = "app/alembic.ini"
# alembic_python = "app/.venv/bin/python"   # the application's interpreter, when it has its own

[verification]
declared_row_changes = { settings = 1 }     # count0005 records how many goals there were
"""
GOALS = [("Run a marathon", "ana"), ("Learn Italian", "bo"), ("Write the docs", None), ("Ship 2.0", "ana")]


def upgrade(folder: Path, database: Path, revision: str) -> None:
    """The application's own `alembic upgrade`, through its env.py and DATABASE_URL."""
    subprocess.run([sys.executable, "-m", "alembic", "-c", str(folder / "app" / "alembic.ini"), "upgrade", revision],
                   env={**os.environ, "DATABASE_URL": f"sqlite:///{database}"}, check=True, cwd=folder / "app",
                   stdout=subprocess.DEVNULL)


def create(folder: Path) -> Path:
    if (folder / "cutover.toml").exists():
        raise SystemExit(f"{folder / 'cutover.toml'} exists already: choose an empty folder.")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(PROJECT, folder / "app", ignore=shutil.ignore_patterns("__pycache__"))
    upgrade(folder, folder / "goals_dev.db", "head")
    upgrade(folder, folder / "goals.db", "merge0004")
    with closing(sqlite3.connect(folder / "goals.db")) as connection:
        connection.executemany("INSERT INTO goals (title, owner, priority) VALUES (?, ?, 1)", GOALS)
        connection.commit()
    (folder / "cutover.toml").write_text(CONFIG)
    return folder / "cutover.toml"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    config = create(Path(sys.argv[1]).absolute())
    print(f"Created {config}. Next:\n  export CUTOVER_CONFIG={config}\n  flask --app run cutover plan production")
