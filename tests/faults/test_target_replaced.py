"""The target replaced by a different file (os.replace, as a deploy script or a restore by
hand would do it) after the run's backup and rehearsal.

Whether it happens before the migrate step starts, while the step runs its checks, or
while its transaction is open, the migration is refused (never applied to a file nobody
backed up or rehearsed, nor to the old file that no longer has the name), the message says
what happened, and the replacement is byte-identical afterwards, with no journal beside it.
"""
from __future__ import annotations

import os
import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from app.checklist.progress import get_run, start_step
from app.extensions import db
from app.jobs.runner import log_lines
from app.models import Job
from tests.faults.run_helpers import (
    Apps,
    LineWatcher,
    at_line,
    make_items_database,
    prepared_run,
    run_here,
    sha256,
    side_files,
    targets_of,
    views_of,
    write_workspace,
)

FINAL = ("passed", "failed", "cancelled", "interrupted")


def with_one_more_row(connection: sqlite3.Connection) -> None:
    connection.execute("INSERT INTO items (group_id, n, tag, pad) VALUES (1, 1, 'added by hand', x'00')")


def with_another_schema(connection: sqlite3.Connection) -> None:
    connection.execute("ALTER TABLE items ADD COLUMN note TEXT")
    connection.execute("CREATE INDEX items_tag ON items (tag)")


REPLACEMENTS = {"one-more-row": with_one_more_row, "another-schema": with_another_schema}


def replacement_for(target: Path, change) -> Path:
    """A copy of the target beside it, changed, ready to be renamed over it."""
    copy = target.with_name("incoming.db")
    with closing(sqlite3.connect(target)) as source, closing(sqlite3.connect(copy, isolation_level=None)) as new:
        source.backup(new)
        change(new)
    return copy


def prepare(folder: Path):
    """A run with its backup and rehearsal passed on a fresh target in `folder`."""
    folder.mkdir(exist_ok=True)
    target = make_items_database(folder / "goals.db", rows=3_000, pad_bytes=200)
    config = write_workspace(folder / "workspace", target)
    apps = Apps(folder, config)
    app = apps.start()
    with app.app_context():
        run_id = prepared_run(app).id
    return apps, app, target, run_id


@pytest.fixture
def setup(tmp_path):
    apps, app, target, run_id = prepare(tmp_path)
    yield app, target, run_id
    apps.close()


def assert_refused(app, run, job, target: Path, replacement_sha: str, replacement_inode: int) -> None:
    assert job.state == "failed", job.error
    assert job.error.startswith(f"{target} changed after backup "), job.error
    assert "Nothing was migrated" in job.error, job.error
    assert job.error.endswith("This run's backup and rehearsal no longer describe it: abandon this run and "
                              "start a new one."), job.error
    assert sha256(target) == replacement_sha
    assert os.stat(target).st_ino == replacement_inode
    assert side_files(target) == []
    assert not any(line.text.startswith("Committed") for line in log_lines(job.id))
    migrate = views_of(app, run)["migrate"]
    assert migrate.state == "failed" and migrate.reason == job.error


@pytest.mark.parametrize("change", REPLACEMENTS, ids=list(REPLACEMENTS))
def test_a_target_replaced_after_the_rehearsal_is_refused(setup, change):
    app, target, run_id = setup
    with app.app_context():
        run = get_run(run_id)
        os.replace(replacement_for(target, REPLACEMENTS[change]), target)
        replaced = sha256(target), os.stat(target).st_ino, os.stat(target).st_mtime_ns

        job = run_here(app, run, "migrate")

        assert_refused(app, run, job, target, replaced[0], replaced[1])
        assert os.stat(target).st_mtime_ns == replaced[2]
        retry = run_here(app, run, "migrate")  # retrying cannot get round it
        assert retry.state == "failed" and retry.error == job.error
        assert sha256(target) == replaced[0] and side_files(target) == []
        assert os.stat(target).st_mtime_ns == replaced[2]


@pytest.mark.parametrize("moment", [
    "✓ This run's rehearsal passed",  # the step's own checks are done; apply_plan is next
    "Phase 1: ",  # inside the migration's transaction, before its first write
    "Foreign keys after: no new violations",  # every statement ran; COMMIT is next
])
def test_a_target_replaced_while_the_migrate_step_runs_is_not_migrated(tmp_path, moment):
    """The worker is stopped at `moment`, the file renamed over, the worker continued.

    A loaded machine can let the worker run on between its line and the stop: at "✓" into
    opening the file, after "Foreign keys after" into COMMIT. Such an attempt is not the case
    under test: the worker is let go without a replacement and the case is tried again on a
    fresh run."""
    for attempt in range(1, 4):
        apps, app, target, run_id = prepare(tmp_path / f"attempt-{attempt}")
        try:
            if replace_while_running(app, target, run_id, moment):
                return
        finally:
            apps.close()
    pytest.fail(f"the worker ran past {moment!r} before it could be stopped, three times")


def replace_while_running(app, target: Path, run_id: int, moment: str) -> bool:
    """Replace the target with the worker stopped at `moment` and check the refusal; False
    when the worker had already run past the moment (nothing replaced, nothing checked)."""
    incoming = replacement_for(target, with_one_more_row)  # made now: the stopped worker may hold locks
    with app.app_context():
        run = get_run(run_id)
        job = start_step(targets_of(app), run, "migrate", "admin")
        job_id, pgid = job.id, job.pid
        watcher = LineWatcher(target.parent / "state.db", job_id)
        try:
            assert watcher.wait_for(at_line(moment)) is not None, [r[2] for r in watcher.lines]
            os.killpg(pgid, signal.SIGSTOP)
            too_late = ran_past(moment, pgid, target)
            try:
                if not too_late:
                    os.replace(incoming, target)
                    replaced = sha256(target), os.stat(target).st_ino
            finally:
                os.killpg(pgid, signal.SIGCONT)
            while watcher.state() not in FINAL:
                watcher.read_all()
        finally:
            watcher.close()
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        print(f"at {moment!r}: {'ran past it; tried again' if too_late else 'replaced'}: {job.state}: {job.error}")
        if too_late:
            return False
        texts = [line.text for line in log_lines(job_id)]
        assert job.state == "failed", (job.state, texts)
        assert sha256(target) == replaced[0] and os.stat(target).st_ino == replaced[1]
        assert side_files(target) == []
        assert not any(text.startswith("Committed") for text in texts)
        if moment.startswith("✓"):  # the check under the write lock sees the new inode
            assert job.error.startswith(f"{target} changed after backup "), job.error
        elif moment.startswith("Foreign keys after"):  # the check before COMMIT sees it
            assert job.error.startswith(f"{target} was replaced by another file (renamed over, or deleted) "
                                        "while it was open for writing"), job.error
        else:  # SQLite refuses to write to a file renamed over since it was opened, or the check before COMMIT
            assert "was replaced by another file" in job.error or "readonly database" in job.error, job.error
    return True


def ran_past(moment: str, pgid: int, target: Path) -> bool:
    """Whether the stopped worker is already beyond `moment`: at "✓", it has the file open;
    after "Foreign keys after", it is committing (no reader gets in)."""
    if moment.startswith("✓"):
        return open_in_group(pgid, target)
    if moment.startswith("Foreign keys after"):
        with closing(sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=0)) as reader:
            try:
                reader.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                return True
    return False


def open_in_group(pgid: int, path: Path) -> bool:
    """Whether a process of the group has `path` open (read while the group is stopped)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) == pgid and any(
                    os.readlink(fd) == str(path) for fd in (proc / "fd").iterdir()):
                return True
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return False
