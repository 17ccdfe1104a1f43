"""restore_backup: the rollback, on real files (crash tests are in tests/faults)."""

from __future__ import annotations

import os
import sqlite3
import stat
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pytest

from app.core.backup import create_backup, find_backup, verify_backup
from app.core.errors import RestoreRefused
from app.core.processes import ProcessInfo
from app.core.restore import restore_backup
from tests.faults.helpers import (
    file_state,
    flip_byte,
    listing,
    logical_state,
    make_database,
    run_child,
    sha256,
)

NOON = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
LATER = datetime(2025, 3, 1, 13, 0, 0, tzinfo=timezone.utc)


def not_running():
    return []


@pytest.fixture
def setup(tmp_path):
    """A database, a verified backup of it in two folders, then a migration-like change."""
    target = make_database(tmp_path / "goals.db")
    folders = [tmp_path / "local", tmp_path / "offsite"]
    safety = tmp_path / "safety"
    for folder in (*folders, safety):
        folder.mkdir()
    backup = create_backup(target, folders, now=NOON)
    assert verify_backup(backup).verified
    change(target)
    return target, folders, safety, backup


def change(path: Path) -> None:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("ALTER TABLE goals ADD COLUMN group_id INTEGER")
        connection.execute("DELETE FROM items WHERE id % 2 = 0")
        connection.commit()


def test_restore_brings_the_backup_back_and_keeps_a_safety_copy(setup):
    target, folders, safety, backup = setup
    os.chmod(target, 0o640)
    changed_bytes = target.read_bytes()
    lines = []

    result = restore_backup(target, backup, safety_dir=safety, app_running_check=not_running,
                            now=LATER, log=lines.append)

    assert logical_state(target) == (backup.manifest.schema_fingerprint, backup.manifest.row_counts)
    assert sha256(target) == backup.manifest.sha256
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640  # the application can still open it
    safety_copy = safety / "goals.db.pre-restore_20250301_130000"
    assert listing(safety) == [safety_copy.name]
    assert safety_copy.read_bytes() == changed_bytes
    assert result.to_dict() == {
        "target": str(target),
        "backup_id": backup.id,
        "copy_used": str(backup.copies[0]),
        "rejected_copies": [],
        "safety_copies": [str(safety_copy)],
        "row_counts": backup.manifest.row_counts,
        "schema_fingerprint": backup.manifest.schema_fingerprint,
        "journal_mode": "delete",
        "restored_at": "2025-03-01T13:00:00+00:00",
        "notes": [],
    }
    assert listing(target.parent) == ["goals.db", "local", "offsite", "safety"]
    assert lines[0] == f"Verifying the copies of backup {backup.id}."
    assert lines[-1] == f"Restored backup {backup.id} into {target}."


def test_a_wal_database_comes_back_in_wal_mode_and_stale_side_files_go(tmp_path):
    target = make_database(tmp_path / "goals.db", journal_mode="wal")
    (tmp_path / "b").mkdir()
    (tmp_path / "s").mkdir()
    backup = create_backup(target, [tmp_path / "b"], now=NOON)
    # The application wrote more and was killed: its commits are only in the -wal.
    child = run_child(
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA wal_autocheckpoint = 0')\n"
        "c.execute(\"INSERT INTO items (n, tag) VALUES (1, 'after')\")\n"
        "os.kill(os.getpid(), 9)\n",
        str(target),
    )
    assert child.returncode == -9
    assert Path(f"{target}-wal").stat().st_size > 0
    wal_bytes = Path(f"{target}-wal").read_bytes()

    result = restore_backup(target, backup, safety_dir=tmp_path / "s", app_running_check=not_running,
                            now=LATER)

    assert result.journal_mode == "wal"
    assert target.read_bytes()[18:20] == b"\x02\x02"
    assert not Path(f"{target}-wal").exists() and not Path(f"{target}-shm").exists()
    assert logical_state(target) == (backup.manifest.schema_fingerprint, backup.manifest.row_counts)
    assert (tmp_path / "s" / "goals.db.pre-restore_20250301_130000-wal").read_bytes() == wal_bytes


def test_refused_while_the_application_runs(setup):
    target, folders, safety, backup = setup
    before = file_state(target)
    app = ProcessInfo(4242, "python app.py", 'command line contains "app.py"')

    with pytest.raises(RestoreRefused, match="still running.*pid 4242") as refused:
        restore_backup(target, backup, safety_dir=safety, app_running_check=lambda: [app])

    assert refused.value.details["processes"] == [app.to_dict()]
    assert file_state(target) == before
    assert listing(safety) == []
    assert listing(target.parent) == ["goals.db", "local", "offsite", "safety"]


def test_refused_when_no_copy_verifies(setup):
    target, folders, safety, backup = setup
    before = file_state(target)
    for copy in backup.copies:
        flip_byte(copy, 5000)

    with pytest.raises(RestoreRefused, match="No copy of backup .* verifies now.*SHA-256"):
        restore_backup(target, backup, safety_dir=safety, app_running_check=not_running)

    assert file_state(target) == before
    assert listing(safety) == []


def test_a_damaged_copy_is_skipped_for_one_that_verifies(setup):
    target, folders, safety, backup = setup
    flip_byte(backup.copies[0], 5000)
    lines = []

    result = restore_backup(target, backup, safety_dir=safety, app_running_check=not_running,
                            log=lines.append)

    assert result.copy_used == str(backup.copies[1])
    assert [check.path for check in result.rejected_copies] == [str(backup.copies[0])]
    assert "SHA-256" in result.rejected_copies[0].reason
    assert f"Using copy {backup.copies[1]} (another copy failed, see above)." in lines
    assert sha256(target) == backup.manifest.sha256
    assert find_backup(folders, target, backup.id).status == "failed"


def test_a_backup_of_another_database_needs_to_be_asked_for(setup, tmp_path):
    target, folders, safety, backup = setup
    other = make_database(tmp_path / "other.db")
    before = file_state(other)

    with pytest.raises(RestoreRefused, match="was taken from .*goals.db, not .*other.db"):
        restore_backup(other, backup, safety_dir=safety, app_running_check=not_running)
    assert file_state(other) == before

    restore_backup(other, backup, safety_dir=safety, app_running_check=not_running,
                   allow_other_source=True)
    assert sha256(other) == backup.manifest.sha256


def test_a_symlinked_target_is_refused(setup, tmp_path):
    target, folders, safety, backup = setup
    link = tmp_path / "link.db"
    link.symlink_to(target)
    with pytest.raises(RestoreRefused, match="is a symbolic link"):
        restore_backup(link, backup, safety_dir=safety, app_running_check=not_running,
                       allow_other_source=True)
    assert link.is_symlink()


def test_a_missing_safety_folder_is_refused(setup, tmp_path):
    target, folders, safety, backup = setup
    before = file_state(target)
    with pytest.raises(RestoreRefused, match="safety folder .*nowhere does not exist"):
        restore_backup(target, backup, safety_dir=tmp_path / "nowhere",
                       app_running_check=not_running)
    assert file_state(target) == before


def test_a_corrupt_target_is_replaced_and_its_raw_bytes_kept(setup):
    target, folders, safety, backup = setup
    for offset in range(4096 * 3, 4096 * 3 + 64):
        flip_byte(target, offset)
    damaged = target.read_bytes()

    result = restore_backup(target, backup, safety_dir=safety, app_running_check=not_running)

    assert Path(result.safety_copies[0]).read_bytes() == damaged
    assert sha256(target) == backup.manifest.sha256


def test_a_missing_target_is_restored_without_a_safety_copy(setup):
    target, folders, safety, backup = setup
    target.unlink()

    result = restore_backup(target, backup, safety_dir=safety, app_running_check=not_running)

    assert result.safety_copies == ()
    assert sha256(target) == backup.manifest.sha256
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_a_target_too_damaged_to_open_is_replaced_with_its_journal_kept(setup):
    target, folders, safety, backup = setup
    with open(target, "r+b") as file:
        file.write(b"garbage, not a SQLite header" * 4)
    Path(f"{target}-journal").write_bytes(b"a hot journal nobody can apply")

    result = restore_backup(target, backup, safety_dir=safety, app_running_check=not_running,
                            now=LATER)

    assert sha256(target) == backup.manifest.sha256
    assert not Path(f"{target}-journal").exists()
    assert (safety / "goals.db.pre-restore_20250301_130000-journal").read_bytes() == (
        b"a hot journal nobody can apply")
    assert len(result.notes) == 1 and result.notes[0].startswith("The old database could not be opened")
