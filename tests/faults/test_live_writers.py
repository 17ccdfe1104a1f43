"""Backups of a database the application keeps writing to (R6), and the cp trap (R11)."""

from __future__ import annotations

import shutil
import sqlite3
import time
from contextlib import closing
from datetime import datetime, timezone

import pytest

from app.core.engines.sqlite import backup_copy
from app.core.backup import create_backup, verify_backup
from app.core.engines.sqlite.backup_copy import BACKUP_API, LOCKED_COPY
from app.core.restore import restore_backup
from tests.faults.helpers import (
    assert_consistent_prefix,
    make_database,
    start_writer,
    stop_writer,
)

NOON = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("journal_mode, method", [
    ("delete", LOCKED_COPY), ("delete", BACKUP_API), ("wal", BACKUP_API),
])
def test_a_backup_under_constant_writes_restores_to_a_consistent_prefix(
        tmp_path, monkeypatch, journal_mode, method):
    # Many small backup-API steps, so writers commit between steps (R7): with the
    # snapshot pinned by our read transaction they can neither restart nor starve it.
    monkeypatch.setattr(backup_copy, "STEP_BYTES", 64 * 1024)
    source = make_database(tmp_path / "goals.db", rows=20_000, pad_bytes=400,
                           journal_mode=journal_mode)  # about 10 MB
    folder, safety = tmp_path / "backups", tmp_path / "safety"
    folder.mkdir()
    safety.mkdir()
    writer = start_writer(source, journal_mode)
    try:
        # A slow disk: the backup lasts long enough for the writer to commit meanwhile.
        backup = create_backup(source, [folder], method=method, now=NOON,
                               progress=lambda done, total: time.sleep(0.002))
    finally:
        stats = stop_writer(writer)
    print(f"{journal_mode}/{method}: writer made {stats['commits']} commits, "
          f"longest commit {stats['longest_stall_s'] * 1000:.1f} ms")
    assert verify_backup(backup).verified

    restore_backup(source, backup, safety_dir=safety, app_running_check=lambda: [])

    counter = assert_consistent_prefix(source)
    assert counter >= 20  # the writer was running when the snapshot was taken
    assert stats["commits"] > counter  # ... and kept committing after it
    assert backup.manifest.row_counts["items"] == 20_000 + 2 * counter
    assert assert_consistent_prefix(backup.copies[0]) == counter


def test_cp_without_the_wal_loses_committed_rows_and_our_backup_does_not(tmp_path):
    source = make_database(tmp_path / "goals.db", rows=100, journal_mode="wal")
    folder = tmp_path / "backups"
    folder.mkdir()
    with closing(sqlite3.connect(source, isolation_level=None)) as app:
        app.execute("PRAGMA wal_autocheckpoint = 0")
        app.executemany("INSERT INTO items (n, tag) VALUES (?, 'committed')", [(i,) for i in range(50)])
        # The runbook's method, while the application is up:
        runbook_copy = tmp_path / "goals.db.backup_runbook"
        shutil.copy(source, runbook_copy)
        ours = create_backup(source, [folder], now=NOON)

    with closing(sqlite3.connect(f"file:{runbook_copy}?mode=ro", uri=True)) as copy:
        assert copy.execute("SELECT count(*) FROM items WHERE tag = 'committed'").fetchone() == (0,)
    with closing(sqlite3.connect(f"file:{ours.copies[0]}?mode=ro", uri=True)) as copy:
        assert copy.execute("SELECT count(*) FROM items WHERE tag = 'committed'").fetchone() == (50,)
    assert verify_backup(ours).verified
