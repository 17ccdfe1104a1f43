"""The dashboard's own database (runs, jobs, log lines, audit) in trouble.

What is right, and tested here:
- At start-up, a state database that cannot be used (its folder missing, a directory in its
  place, a file that is not SQLite or is damaged, a read-only disk) stops `python run.py`
  with one line naming the file and what to do, exit code 2, no traceback, and nothing
  created or changed: a missing folder is not created (a typo or an unmounted disk must not
  start an empty dashboard without its history), a foreign file is never overwritten.
- A state database another process holds locked is waited for (STATE_BUSY_TIMEOUT, 10 s):
  released in time, start-up proceeds (and does its writes, such as marking a dead job
  interrupted); held longer, start-up stops with one line naming the file and the process
  holding it, exit code 2.
- During a step, a lock on the state database makes the worker wait; held past the wait,
  the step fails (never "passed") and the target's transaction is rolled back: the target
  is byte-identical, the state database intact, and the step can be retried. (The failure
  is reported today as SQLAlchemy's PendingRollbackError, SQL included: see app/jobs/runner.py.)
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from app.checklist.progress import get_run, start_step
from app.extensions import db
from app.jobs.runner import log_lines
from app.models import Job
from config import Config
from tests.browser.conftest import free_port
from tests.faults.helpers import mount_tmpfs, unmount
from tests.faults.run_helpers import (
    ITEMS_PLAN,
    ITEMS_PLAN_STATEMENTS,
    Apps,
    LineWatcher,
    at_line,
    make_items_database,
    open_read_write,
    prepared_run,
    run_here,
    schema_rows,
    sha256,
    side_files,
    targets_of,
    views_of,
    write_workspace,
)

REPO = Path(__file__).resolve().parents[2]
FINAL = ("passed", "failed", "cancelled", "interrupted")


RUN_PY = ["run.py"]
CLI = ["-m", "flask", "--app", "run", "cutover", "envs"]


def run_py(tmp_path: Path, config: Path, state_db: Path, timeout: float = 60,
           argv: list[str] = RUN_PY) -> subprocess.CompletedProcess:
    """`python run.py` with the dashboard's database at `state_db` (or `argv`, the CLI)."""
    env = {**os.environ, "CUTOVER_CONFIG": str(config), "CUTOVER_INSTANCE_DIR": str(tmp_path / "instance"),
           "CUTOVER_STATE_DATABASE_URL": f"sqlite:///{state_db}", "CUTOVER_PORT": str(free_port()),
           "CUTOVER_SECRET_KEY": "state-test-key", "CUTOVER_ADMIN_PASSWORD": "state-password"}
    return subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def assert_one_clear_line(result: subprocess.CompletedProcess, state_db: Path, *words: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "serving" not in result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(f"cutover: The dashboard's database {state_db} "), line
    for word in words:
        assert word in line, line
    return line


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- start-up: unusable


@pytest.mark.parametrize("argv", [RUN_PY, CLI], ids=["run.py", "flask-cutover-envs"])
def test_a_missing_folder_is_not_created(tmp_path, demo_config, argv):
    state_db = tmp_path / "not-mounted" / "cutover.db"
    result = run_py(tmp_path, demo_config, state_db, argv=argv)
    assert_one_clear_line(result, state_db, f"its folder {state_db.parent} does not exist", "Create the folder")
    assert not state_db.parent.exists()


def test_a_directory_in_its_place(tmp_path, demo_config):
    state_db = tmp_path / "cutover.db"
    state_db.mkdir()
    result = run_py(tmp_path, demo_config, state_db)
    assert_one_clear_line(result, state_db, "is a directory, not a database file")
    assert listing(state_db) == [] and not Path(f"{state_db}-wal").exists()


@pytest.mark.parametrize("content", [
    b"# notes, not a database\n" * 40,
    b"SQLite format 3\x00" + bytes(range(256)) * 20,  # SQLite's header, then garbage
], ids=["not-sqlite", "damaged"])
def test_a_foreign_or_damaged_file_is_never_overwritten(tmp_path, demo_config, content):
    state_db = tmp_path / "cutover.db"
    state_db.write_bytes(content)
    before = state_db.stat().st_mtime_ns
    result = run_py(tmp_path, demo_config, state_db)
    line = assert_one_clear_line(result, state_db)
    assert "not a SQLite database" in line or "damaged" in line, line
    assert state_db.read_bytes() == content and state_db.stat().st_mtime_ns == before
    assert side_files(state_db) == []  # no -wal, -shm or -journal beside it


def test_a_read_only_disk(tmp_path, demo_config):
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "size=4m"):
        pytest.skip("needs root to mount a tmpfs and remount it read-only")
    try:
        state_db = disk / "cutover.db"
        with closing(sqlite3.connect(state_db)) as connection:  # a real state database, from an earlier start
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("CREATE TABLE kept (x)")
            connection.execute("INSERT INTO kept VALUES (1)")
            connection.commit()
        before = state_db.read_bytes()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        result = run_py(tmp_path, demo_config, state_db)
        assert_one_clear_line(result, state_db, "is on a read-only file system", "Remount it read-write")
        assert state_db.read_bytes() == before and listing(disk) == ["cutover.db"]
    finally:
        unmount(disk)


# --------------------------------------------------------------------------- start-up: locked

# Another process holds the dashboard's database. "writer": a write transaction (in WAL mode
# readers go on; writers wait). "exclusive": locking_mode=EXCLUSIVE, as an sqlite3 shell
# can (nobody can even read).
LOCKER = """
import sqlite3, sys, time
path, kind, hold, wait = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
connection = sqlite3.connect(path, isolation_level=None, timeout=wait)
if kind == "exclusive":
    connection.execute("PRAGMA locking_mode = EXCLUSIVE")
connection.execute("BEGIN EXCLUSIVE")
connection.execute("SELECT count(*) FROM job").fetchone()
print("locked", flush=True)
time.sleep(hold)
connection.execute("ROLLBACK")
connection.close()
print("released", flush=True)
"""


def lock_state_database(state_db: Path, kind: str, hold: float) -> subprocess.Popen:
    locker = try_to_lock(state_db, kind, hold)
    assert locker is not None, "another process kept the dashboard's database locked"
    return locker


def try_to_lock(state_db: Path, kind: str, hold: float, wait: float = 5.0) -> subprocess.Popen | None:
    """A process holding the lock for `hold` seconds, or None when the database stayed busy
    for `wait` seconds."""
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(state_db), kind, str(hold), str(wait)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if locker.stdout.readline() == "locked\n":
        return locker
    said = locker.stderr.read()
    stop_locker(locker)
    assert "database is locked" in said, said
    return None


def lock_while_paused(pid: int, state_db: Path, hold: float) -> subprocess.Popen:
    """Pause the worker's group and take the dashboard's database from another process.

    The pause may land while the worker itself holds the database (writing a log line); then
    nobody can take it until the worker goes on, so it is resumed briefly and paused again."""
    for _ in range(20):
        os.killpg(pid, signal.SIGSTOP)
        try:
            locker = try_to_lock(state_db, "writer", hold, wait=0.5)
        finally:
            os.killpg(pid, signal.SIGCONT)
        if locker is not None:
            return locker
        time.sleep(0.05)
    raise AssertionError("the worker kept the dashboard's database locked through 20 pauses")


def stop_locker(locker: subprocess.Popen) -> None:
    if locker.poll() is None:
        locker.kill()
    locker.wait()
    locker.stdout.close()
    locker.stderr.close()


def plant_a_job_whose_worker_is_gone(app) -> int:
    """Start-up then has to write: reconcile_jobs marks the job interrupted. The dashboard
    that recorded it is gone (its connections closed), as after a crash."""
    with app.app_context():
        job = Job(kind="backup", environment="production", operator="admin", state="running",
                  pid=2_000_000_000, pid_start="1")
        db.session.add(job)
        db.session.commit()
        job_id = job.id
        db.session.remove()
        db.engine.dispose()
        return job_id


@pytest.mark.parametrize("kind", ["writer", "exclusive"])
def test_start_up_waits_for_a_lock_released_in_time_then_proceeds(tmp_path, demo_config, kind):
    apps = Apps(tmp_path, demo_config)
    try:
        job_id = plant_a_job_whose_worker_is_gone(apps.start())
        locker = lock_state_database(tmp_path / "state.db", kind, hold=1.5)
        try:
            started = time.monotonic()
            app = apps.start()  # create_app: reconcile_jobs must write, and waits for the lock
            waited = time.monotonic() - started
            assert locker.wait(timeout=10) == 0 and locker.stdout.read() == "released\n"
        finally:
            stop_locker(locker)
        assert waited >= 0.8, f"start-up did not wait for the lock ({waited:.2f} s)"
        with app.app_context():
            job = db.session.get(Job, job_id)
            assert job.state == "interrupted", job.state
        with closing(sqlite3.connect(tmp_path / "state.db")) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        apps.close()


@pytest.mark.slow
def test_python_run_py_stops_with_one_line_when_the_lock_is_held_too_long(tmp_path, demo_config):
    apps = Apps(tmp_path, demo_config)
    apps.start()
    apps.close()
    state_db = tmp_path / "state.db"
    locker = lock_state_database(state_db, "exclusive", hold=60)
    try:
        started = time.monotonic()
        result = run_py(tmp_path, demo_config, state_db)
        took = time.monotonic() - started
    finally:
        stop_locker(locker)
    line = assert_one_clear_line(result, state_db, "is locked by another process",
                                 f"(held open by pid {locker.pid}: ", f"waited {Config.STATE_BUSY_TIMEOUT:g} s")
    assert Config.STATE_BUSY_TIMEOUT <= took < Config.STATE_BUSY_TIMEOUT + 15, took
    print(line)
    with closing(sqlite3.connect(state_db)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --------------------------------------------------------------------------- during a step


@pytest.fixture
def migrate_ready(tmp_path):
    target = make_items_database(tmp_path / "goals.db", rows=20_000, pad_bytes=150)
    config = write_workspace(tmp_path / "workspace", target)
    apps = Apps(tmp_path, config)
    app = apps.start()
    with app.app_context():
        run_id = prepared_run(app).id
    yield app, target, run_id
    apps.close()


def lock_during_the_transaction(app, tmp_path: Path, run_id: int, hold: float):
    """Launch the migrate step; inside its transaction, as its first statement is about to
    run, pause the worker, let another process take the dashboard's database for `hold`
    seconds, go on: the statement runs, then its log line has to wait for the lock.
    Returns (job id, seconds from the lock to the end)."""
    with app.app_context():
        job = start_step(targets_of(app), get_run(run_id), "migrate", "admin")
    watcher = LineWatcher(tmp_path / "state.db", job.id)
    try:
        assert watcher.wait_for(at_line("Phase 1: Add columns")) is not None, [r[2] for r in watcher.lines]
        locker = lock_while_paused(job.pid, tmp_path / "state.db", hold)
        locked_at = time.monotonic()
        try:
            deadline = time.monotonic() + hold + 3 * Config.STATE_BUSY_TIMEOUT
            while watcher.state() not in FINAL and time.monotonic() < deadline:
                time.sleep(0.05)
            assert watcher.state() in FINAL, watcher.state()
            assert locker.wait(timeout=hold + 5) == 0
        finally:
            stop_locker(locker)
        took = time.monotonic() - locked_at
    finally:
        watcher.close()
    return job.id, took


def test_a_step_waits_for_a_short_lock_on_the_dashboards_database(migrate_ready, tmp_path):
    app, target, run_id = migrate_ready
    job_id, took = lock_during_the_transaction(app, tmp_path, run_id, hold=2.0)
    with app.app_context():
        job = db.session.get(Job, job_id)
        texts = [line.text for line in log_lines(job_id)]
        assert job.state == "passed", (job.error, texts)
        assert took >= 1.5
        statements = [text for text in texts if text.startswith("[Phase ")]
        assert [s.split(" … ")[0] for s in statements] == [
            f"[Phase {phase}] {line}" for phase, line in plan_statements()]  # every line once, in order
        assert len(texts) == len(set(texts))
        assert views_of(app, get_run(run_id))["migrate"].state == "passed"
    assert open_read_write(target) == "ok"
    with closing(sqlite3.connect(f"file:{target}?mode=ro", uri=True)) as connection:
        assert connection.execute("SELECT count(*) FROM items WHERE label = 'item ' || id").fetchone()[0] == 20_000
    with closing(sqlite3.connect(tmp_path / "state.db")) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def plan_statements() -> list[tuple[int, str]]:
    phase, found = 0, []
    for line in ITEMS_PLAN.splitlines():
        if line.startswith("-- phase:"):
            phase += 1
        elif line.strip():
            found.append((phase, line.rstrip(";")))
    assert len(found) == ITEMS_PLAN_STATEMENTS
    return found


@pytest.mark.slow
def test_a_step_fails_cleanly_when_the_lock_outlasts_the_wait(migrate_ready, tmp_path):
    """Held past STATE_BUSY_TIMEOUT: the worker cannot record its next line, so the migration
    stops and rolls back; the step ends failed, the target is byte-identical, nothing corrupt."""
    app, target, run_id = migrate_ready
    before, schema = sha256(target), schema_rows(target)
    job_id, took = lock_during_the_transaction(app, tmp_path, run_id, hold=Config.STATE_BUSY_TIMEOUT + 2)
    assert side_files(target) == []  # rolled back by the worker itself, no hot journal left
    assert sha256(target) == before and schema_rows(target) == schema
    assert open_read_write(target) == "ok"
    with closing(sqlite3.connect(tmp_path / "state.db")) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with app.app_context():
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        texts = [line.text for line in log_lines(job_id)]
        print(f"{job.state}: {job.error}\n" + "\n".join(texts[-4:]))
        assert job.state in ("failed", "interrupted"), (job.state, texts)
        assert "database is locked" in job.error, job.error
        assert not any(text.startswith("Committed") for text in texts)
        migrate = views_of(app, get_run(run_id))["migrate"]
        assert migrate.state == job.state and migrate.startable

        retry = run_here(app, get_run(run_id), "migrate")  # the lock is gone: the retry goes through
        assert retry.state == "passed", retry.error
