"""Helpers for the checklist fault tests: a workspace around one target database, a run
whose backup and rehearsal passed, a dashboard that launches a step and dies, and a
watcher of the step's persisted log lines.

Real files, real worker processes (`python -m app.jobs.worker`), real signals; no mocks.
"""
from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

from app.checklist.progress import create_run, start_step
from app.extensions import db
from tests.conftest import make_app
from tests.checklist.test_progress import targets_of, views_of  # noqa: F401  (the fault tests use them from here)

REPO = Path(__file__).resolve().parents[2]

ITEMS_SCHEMA = """
CREATE TABLE groups (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE items (id INTEGER PRIMARY KEY, group_id INTEGER REFERENCES groups(id),
                    n INTEGER NOT NULL, tag TEXT NOT NULL, pad BLOB);
CREATE INDEX items_n ON items (n);
"""

# Every row is touched in several phases: two columns added, both backfilled, one rewritten,
# then two indexes built over the new columns.
ITEMS_PLAN = """\
-- phase: Add columns
ALTER TABLE items ADD COLUMN doubled INTEGER;
ALTER TABLE items ADD COLUMN label TEXT;
-- phase: Backfill
UPDATE items SET doubled = n * 2;
UPDATE items SET label = 'item ' || id;
-- phase: Rewrite
UPDATE items SET tag = upper(tag);
-- phase: Index
CREATE INDEX items_doubled ON items (doubled);
CREATE INDEX items_label ON items (label);
"""
ITEMS_PLAN_STATEMENTS = 7

BACKUP_REHEARSE_MIGRATE = """
[checklist]
order = ["backup", "rehearse", "migrate"]
[checklist.steps.rehearse]
signoff = false
"""


def make_items_database(path: Path, *, rows: int, pad_bytes: int, groups: int = 100) -> Path:
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.executescript(ITEMS_SCHEMA)
        connection.execute("BEGIN")
        connection.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?) "
            "INSERT INTO groups SELECT x, 'group ' || x FROM c", (groups,))
        connection.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?) "
            "INSERT INTO items SELECT x, x % ? + 1, x % 1000, printf('tag %d', x), randomblob(?) FROM c",
            (rows, groups, pad_bytes))
        connection.execute("COMMIT")
    return path


def write_workspace(folder: Path, database: Path, *, plan: str = ITEMS_PLAN,
                    checklist: str = BACKUP_REHEARSE_MIGRATE, extra: str = "") -> Path:
    """cutover.toml with one environment, production, at `database` (absolute), one plan and
    one backup folder inside `folder`. Returns the configuration's path."""
    (folder / "plans").mkdir(parents=True, exist_ok=True)
    (folder / "backups" / "local").mkdir(parents=True, exist_ok=True)
    (folder / "plans" / "plan.sql").write_text(plan, encoding="utf-8")
    config = folder / "cutover.toml"
    config.write_text(textwrap.dedent(f"""
        [environments.production]
        database = "{database}"
        backup_dirs = ["backups/local"]

        [migration]
        plans = ["plans/plan.sql"]
        """) + textwrap.dedent(checklist) + textwrap.dedent(extra), encoding="utf-8")
    return config


class Apps:
    """Dashboards (create_app) on one state database; every engine is disposed at the end."""

    def __init__(self, tmp_path: Path, config: Path):
        self.tmp_path, self.config, self.made = tmp_path, config, []

    def start(self, **overrides):
        app = make_app(self.tmp_path, self.config, **overrides)
        self.made.append(app)
        return app

    def close(self) -> None:
        for app in self.made:
            with app.app_context():
                db.engine.dispose()




def new_run(app):
    targets = targets_of(app)
    return create_run(targets, targets.environment("production"), "admin")


def run_here(app, run, step_id: str):
    """Run a step in this process, as the CLI does; returns its finished job."""
    return start_step(targets_of(app), run, step_id, "admin", run_here=True)


def prepared_run(app):
    """A run of BACKUP_REHEARSE_MIGRATE whose backup and rehearsal passed: migrate is ready."""
    run = new_run(app)
    for step_id in ("backup", "rehearse"):
        job = run_here(app, run, step_id)
        assert job.state == "passed", f"{step_id}: {job.error}"
    assert views_of(app, run)["migrate"].state == "ready"
    return run


# A dashboard process that starts one step in a worker, prints "JOB_ID PID" and vanishes at
# once: its reaper thread never sees the worker end, so only a restart (reconcile_jobs) can
# say what became of the step.
DASHBOARD = """
import os, sys
from pathlib import Path
from tests.conftest import make_app
from app.checklist.progress import get_run, start_step

app = make_app(Path(sys.argv[1]), Path(sys.argv[2]))
with app.app_context():
    job = start_step(app.extensions["cutover.targets"], get_run(int(sys.argv[3])), sys.argv[4], "admin")
    print(job.id, job.pid, flush=True)
os._exit(0)
"""


def launch_from_a_dashboard_that_dies(tmp_path: Path, config: Path, run_id: int, step_id: str) -> tuple[int, int]:
    dashboard = subprocess.run([sys.executable, "-c", DASHBOARD, str(tmp_path), str(config), str(run_id), step_id],
                               cwd=REPO, capture_output=True, text=True, timeout=60)
    assert dashboard.returncode == 0, dashboard.stderr
    job_id, pid = map(int, dashboard.stdout.split())
    return job_id, pid


class LineWatcher:
    """Reads a job's persisted log lines (and state) straight from the dashboard's database,
    the way every viewer sees them, as soon as the worker commits them."""

    def __init__(self, state_db: Path, job_id: int):
        self.connection = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, isolation_level=None)
        self.job_id, self.last, self.lines = job_id, 0, []

    def poll(self):
        """New lines, each appended to `lines` just before it is yielded."""
        rows = self.connection.execute(
            "SELECT id, level, text FROM log_line WHERE job_id = ? AND id > ? ORDER BY id",
            (self.job_id, self.last)).fetchall()
        for row in rows:
            self.last = row[0]
            self.lines.append(row)
            yield row

    def read_all(self) -> None:
        for _ in self.poll():
            pass

    def state(self) -> str:
        return self.connection.execute("SELECT state FROM job WHERE id = ?", (self.job_id,)).fetchone()[0]

    def wait_for(self, predicate, timeout: float = 60.0, interval: float = 0.001):
        """The first new line for which predicate(line_text, lines_so_far) holds; None if the
        job ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for row in self.poll():
                if predicate(row[2], self.lines):
                    return row
            if self.state() not in ("queued", "running"):
                for row in self.poll():
                    if predicate(row[2], self.lines):
                        return row
                return None
            time.sleep(interval)
        raise AssertionError(f"job {self.job_id}: no such line within {timeout} s; saw {[r[2] for r in self.lines]}")

    def close(self) -> None:
        self.connection.close()


def at_line(prefix: str):
    """A LineWatcher predicate: the line starts with `prefix`."""
    return lambda text, lines: text.startswith(prefix)


def statements_done(lines) -> int:
    return sum(" … ✓ " in text or " … ⚠ " in text for _, _, text in lines)


def living_group_members(pgid: int) -> list[int]:
    from app.jobs.runner import living_group_members as members

    return members(pgid)


def kill_group(pgid: int) -> None:
    """kill -9 of the worker's whole process group, then wait until nothing of it runs."""
    os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while living_group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert living_group_members(pgid) == []


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def schema_rows(path: Path) -> list[tuple]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return sorted(connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema").fetchall(),
                      key=repr)


def open_read_write(path: Path) -> str:
    """What the next opener does: a read-write connection (which rolls a hot journal back),
    then PRAGMA integrity_check. Returns its answer."""
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    return "\n".join(row[0] for row in rows)


def side_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name + "-"))
