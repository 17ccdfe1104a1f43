"""Disk full during a checklist migrate step: the target lives on a small tmpfs.

The run's backup and rehearsal go to a normal disk (the backup folder); only the target's
own disk is short of room, by different margins, so the migration runs out of space at
different moments: in the first backfill, in the index phase (pages already spilled into
the file, which has grown) and at COMMIT. Each time the step fails with a message naming the cause
and the target is byte-identical at once, with no hot journal left for someone else to
roll back.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.core.inspect import inspect_database
from app.jobs.runner import log_lines
from tests.faults.helpers import mount_tmpfs, unmount
from tests.faults.run_helpers import (
    Apps,
    make_items_database,
    open_read_write,
    prepared_run,
    run_here,
    schema_rows,
    sha256,
    side_files,
    views_of,
    write_workspace,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """About 3.8 MB; the plan needs roughly 1.25 times its size again (journal and growth)."""
    return make_items_database(tmp_path_factory.mktemp("disk-full") / "goals.db", rows=20_000, pad_bytes=150)


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "small-disk"
    mounted = []

    def mount(size: int) -> Path:
        if not mount_tmpfs(folder, f"size={size}", "mode=0755"):
            pytest.skip("these tests put the target on a small tmpfs, which needs root (CAP_SYS_ADMIN) and a "
                        "kernel that allows mounting here; `mount -t tmpfs` was refused")
        mounted.append(folder)
        return folder

    yield mount
    for path in mounted:
        unmount(path)


# Free room on the target's disk beyond the database itself, as a fraction of its size, and
# where the migration then runs out of space (SQLite 3.4x with its default 2 MB cache).
# The second item is the start of the log line that reports the failure; if a new SQLite
# spends space differently, these margins need retuning (the test says so).
MARGINS = [
    (0.02, "[Phase 2] UPDATE items SET doubled = n * 2 … ✗ Error: database or disk is full"),
    (0.60, "[Phase 2] UPDATE items SET doubled = n * 2 … ✗ Error: database or disk is full"),
    (1.10, "[Phase 4] CREATE INDEX items_label ON items (label) … ✗ Error: database or disk is full"),
    (1.18, "Rolled back:"),  # every statement and check ran; COMMIT found no room
]


@pytest.mark.parametrize("margin, where", MARGINS, ids=[f"room-{m}" for m, _ in MARGINS])
def test_a_full_disk_fails_the_migrate_step_and_leaves_the_target_byte_identical(
        tmp_path, template, small_disk, margin, where):
    size = template.stat().st_size
    disk = small_disk(size + int(margin * size))
    target = disk / "goals.db"
    shutil.copyfile(template, target)
    config = write_workspace(tmp_path / "workspace", target)
    apps = Apps(tmp_path, config)
    try:
        app = apps.start()
        with app.app_context():
            run = prepared_run(app)  # backup and rehearsal on the normal disk
            before, schema = sha256(target), schema_rows(target)
            stat_before = target.stat()

            job = run_here(app, run, "migrate")

            # At once, before anything opens the file read-write: the very bytes it had, no journal.
            assert side_files(target) == []
            assert sha256(target) == before
            assert target.stat().st_size == stat_before.st_size
            assert inspect_database(target, deep=False).schema.fingerprint()  # a read-only viewer can read it
            assert open_read_write(target) == "ok" and sha256(target) == before
            assert schema_rows(target) == schema

            assert job.state == "failed"
            assert "database or disk is full" in job.error, job.error
            assert job.error.endswith("The database is unchanged; backup "
                                      f"{job.result_document['backup']} is verified."), job.error
            texts = [line.text for line in log_lines(job.id)]
            failed_at = next(text for text in texts if "disk is full" in text or text.startswith("Rolled back:"))
            print(f"room {margin:.2f}: {failed_at}")
            assert failed_at.startswith(where), f"ran out of room elsewhere than meant (retune MARGINS): {failed_at}"
            if where == "Rolled back:":
                assert texts[texts.index(failed_at) - 1].startswith("Foreign keys after: no new violations")
                assert "the migration stopped: database or disk is full" in job.error
            assert any(text.startswith("Rolled back:") for text in texts)
            assert not any(text.startswith("Committed") for text in texts)
            migrate = views_of(app, run)["migrate"]
            assert migrate.state == "failed" and migrate.startable
            assert "database or disk is full" in migrate.reason
    finally:
        apps.close()
