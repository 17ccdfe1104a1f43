"""kill -9 during a backup and during a restore, at several points (R10, R12)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pytest

from app.core.backup import create_backup, list_backups, verify_backup
from app.core.fsutil import partial_owner
from tests.faults.helpers import (
    file_state,
    kill_hard,
    make_database,
    recovered_state,
    run_child,
    start_child,
    wait_for_line,
)

NOON = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)

# The child prints every log line and stops (sleeps) right after the line the test wants
# to kill it at, so the kill lands exactly there; "progress" lines come from the progress
# callback, in the middle of the copy.
PAUSE = """
import sys, time
def pause_at(kill_at):
    def log(line):
        print(line, flush=True)
        if line.startswith(kill_at):
            print("paused", flush=True)
            time.sleep(60)
    return log
"""

BACKUP_CHILD = PAUSE + """
from app.core.backup import create_backup
kill_at, source, *folders = sys.argv[1:]
log = pause_at(kill_at)
def progress(done, total):
    if done < total:
        log("progress: the copy is under way")
create_backup(source, folders, progress=progress, log=log)
print("finished", flush=True)
"""

RESTORE_CHILD = PAUSE + """
from app.core.backup import find_backup
from app.core.restore import restore_backup
kill_at, target, folder, safety, backup_id = sys.argv[1:]
backup = find_backup([folder], target, backup_id)
restore_backup(target, backup, safety_dir=safety, app_running_check=lambda: [], log=pause_at(kill_at))
print("finished", flush=True)
"""


@pytest.fixture(scope="module")
def big_database(tmp_path_factory) -> Path:
    """About 50 MB, built once for the module."""
    return make_database(tmp_path_factory.mktemp("big") / "goals.db", rows=100_000, pad_bytes=400)


@pytest.mark.parametrize("kill_at", [
    "Backing up",  # partial files just created
    "progress",  # in the middle of the copy
    "Snapshot taken",  # copied, about to be verified
    "Publishing",  # verified, about to publish
    "Published",  # published in the first folder, not yet in the second
    "Backup ",  # published, manifests written
])
def test_kill_during_a_backup_leaves_nothing_that_looks_valid(big_database, tmp_path, kill_at):
    folders = [tmp_path / "local", tmp_path / "offsite"]
    for folder in folders:
        folder.mkdir()
    before = file_state(big_database)
    child = start_child(BACKUP_CHILD, kill_at, str(big_database), *map(str, folders))
    seen = wait_for_line(child, "paused")
    kill_hard(child)
    assert seen is not None

    assert file_state(big_database) == before
    for folder in folders:
        finals = [p for p in folder.iterdir() if not p.name.startswith(".")]
        copies = [p for p in finals if not p.name.endswith(".json")]
        for copy in copies:  # never a final-named copy without its manifest
            assert Path(f"{copy}.json").exists()
        for hidden in set(folder.iterdir()) - set(finals):
            assert partial_owner(hidden.name)[1] == child.pid
    for backup in list_backups(folders, big_database):
        # Whatever was published is complete, or verification says it is not; only a
        # backup that had finished may be listed as verified.
        result = verify_backup(backup, record=False)
        assert result.verified == (len(backup.copies) == 2)
        assert backup.verified == (kill_at == "Backup ")
    # The next backup reaps the dead child's partial files.
    create_backup(big_database, folders, now=NOON)
    for folder in folders:
        assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def make_old_state_with_wal(target: Path) -> None:
    """The application committed more, some of it checkpointed into the file and some only
    in the -wal when it was killed. So the main file alone is neither the old state nor
    the backup: losing the -wal, or applying it to the wrong file, shows."""
    with closing(sqlite3.connect(target, isolation_level=None)) as connection:
        connection.execute("INSERT INTO items (n, tag) SELECT n, 'checkpointed' FROM items LIMIT 1000")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    child = run_child(
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA wal_autocheckpoint = 0')\n"
        "c.execute('ALTER TABLE goals ADD COLUMN group_id INTEGER')\n"
        "c.execute(\"INSERT INTO items (n, tag) SELECT n, 'old' FROM items LIMIT 5000\")\n"
        "os.kill(os.getpid(), 9)\n",
        str(target),
    )
    assert child.returncode == -9
    assert Path(f"{target}-wal").stat().st_size > 0


@pytest.fixture(scope="module")
def restore_case(big_database, tmp_path_factory):
    """A WAL target with unsaved -wal content, a backup of an earlier state, both states.

    The target's files are kept in `pristine` and put back before each test."""
    base = tmp_path_factory.mktemp("restore")
    live, pristine, folder = base / "live", base / "pristine", base / "backups"
    for made in (live, pristine, folder):
        made.mkdir()
    target = live / "goals.db"
    target.write_bytes(big_database.read_bytes())
    with closing(sqlite3.connect(target)) as connection:
        connection.execute("PRAGMA journal_mode = wal")
    backup = create_backup(target, [folder], now=NOON)
    assert verify_backup(backup).verified
    make_old_state_with_wal(target)
    for side in live.iterdir():
        (pristine / side.name).write_bytes(side.read_bytes())
    old = recovered_state(target)
    new = (backup.manifest.schema_fingerprint, backup.manifest.row_counts, "ok")
    assert old[:2] != new[:2]
    return target, pristine, folder, backup, old, new


def fresh_target(target: Path, pristine: Path) -> None:
    for leftover in target.parent.iterdir():
        leftover.unlink()
    for side in pristine.iterdir():
        (target.parent / side.name).write_bytes(side.read_bytes())


@pytest.mark.parametrize("kill_at", [
    "Verifying the copies",
    "Safety copy",
    "Replacement written",
    "Old database settled",
    "Stale side files removed",
    "Target replaced",
])
def test_kill_during_a_restore_leaves_the_old_or_the_new_database(restore_case, tmp_path, kill_at):
    target, pristine, folder, backup, old, new = restore_case
    fresh_target(target, pristine)

    child = start_child(RESTORE_CHILD, kill_at, str(target), str(folder), str(tmp_path), backup.id)
    seen = wait_for_line(child, "paused")
    kill_hard(child)
    assert seen is not None

    state = recovered_state(target)
    assert state in (old, new), f"killed after {kill_at!r}: neither the old nor the backup"
    print(f"killed after {kill_at!r}: target is the {'old' if state == old else 'restored'} database")


def test_an_uninterrupted_restore_child_finishes(restore_case, tmp_path):
    target, pristine, folder, backup, old, new = restore_case
    fresh_target(target, pristine)

    child = run_child(RESTORE_CHILD, "never", str(target), str(folder), str(tmp_path), backup.id)

    assert child.returncode == 0, child.stderr
    assert child.stdout.splitlines()[-1] == "finished"
    assert recovered_state(target) == new
