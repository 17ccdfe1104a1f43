"""The fixture Alembic project (tests/fixtures/alembic_app), copied per test, and databases made
by the application's own `alembic upgrade` (through its env.py, as the application does)."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from app.core.workspace import AlembicSettings

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "alembic_app"
VERSIONS = Path("migrations") / "versions"


def copy_project(folder: Path) -> AlembicSettings:
    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return AlembicSettings(folder / "alembic.ini", sys.executable)


def alembic_upgrade(settings: AlembicSettings, url: str, revision: str) -> None:
    """The application's own `alembic upgrade REV`: env.py connects to DATABASE_URL."""
    done = subprocess.run([sys.executable, "-m", "alembic", "-c", str(settings.ini), "upgrade", revision],
                          env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True,
                          cwd=settings.ini.parent)
    assert done.returncode == 0, done.stderr


def sqlite_database(settings: AlembicSettings, path: Path, revision: str, goals=()) -> Path:
    """A SQLite file at `revision`, with `goals` as (title, owner) rows once the goals table exists."""
    alembic_upgrade(settings, f"sqlite:///{path}", revision)
    with closing(sqlite3.connect(path)) as connection:
        connection.executemany("INSERT INTO goals (title, owner) VALUES (?, ?)", goals)
        connection.commit()
    return path


def write_revision(settings: AlembicSettings, name: str, text: str) -> Path:
    path = settings.ini.parent / VERSIONS / name
    path.write_text(text)
    return path


def revision_text(revision: str, down: str, body: str, doc: str = "an added revision") -> str:
    return (f'"""{doc}"""\nimport sqlalchemy as sa\nfrom alembic import op\n\nrevision = {revision!r}\n'
            f"down_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n"
            + "".join(f"    {line}\n" for line in body.splitlines()) + "\n\ndef downgrade():\n    pass\n")
