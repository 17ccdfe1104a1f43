"""The apply holds the target to its backup: a write the backup does not hold refuses the migration."""
from __future__ import annotations

import os
import sqlite3
from contextlib import closing

import pytest

from app.core.backup import create_backup
from app.core.baseline import Baseline
from app.core.errors import TargetChanged
from app.core.events import collecting
from app.core.migrate import apply_plan
from app.core.plans import make_plan_set, parse_plan_text
from app.core.snapshots import file_stamp
from tests.core.conftest import folder_state

SCHEMA = "CREATE TABLE goals (id INTEGER PRIMARY KEY, name TEXT NOT NULL); INSERT INTO goals (name) VALUES ('first');"
PLAN = make_plan_set([parse_plan_text("ALTER TABLE goals ADD COLUMN note TEXT;\n"
                                      "UPDATE goals SET note = 'migrated';\n", file="plan.sql")])


def write_a_row(path, name="written late") -> None:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("INSERT INTO goals (name) VALUES (?)", (name,))
        connection.commit()


def names(path) -> list[str]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return [name for (name,) in connection.execute("SELECT name FROM goals ORDER BY id")]


def backed_up(path, tmp_path):
    """A verified backup of `path` and its baseline: the stamp taken just before it, as every caller does."""
    folder = tmp_path / "backups"
    folder.mkdir(exist_ok=True)
    stamp = file_stamp(path)
    backup = create_backup(path, [folder])
    return backup, Baseline.of_backup(backup, stamp)


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_a_row_written_after_the_backup_refuses_the_apply_and_is_kept(make_db, tmp_path, journal_mode):
    path = make_db(SCHEMA)
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(f"PRAGMA journal_mode = {journal_mode}")
    backup, baseline = backed_up(path, tmp_path)
    write_a_row(path)
    before = folder_state(path.parent)
    lines = []

    with pytest.raises(TargetChanged) as refused:
        apply_plan(path, PLAN, emit=collecting(lines), baseline=baseline)

    assert refused.value.message == (
        f"{path} changed after backup {backup.id} was taken: something wrote to it since, and backup {backup.id} "
        "does not hold that write, so rolling back to it would lose it. Nothing was migrated; the write is kept. "
        "Stop whatever writes to it, then take a new backup and migrate again.")
    assert refused.value.details == {"path": str(path), "backup": backup.id}
    assert lines[-1] == ("error", f"Refused: {refused.value.message}")
    assert folder_state(path.parent) == before  # not a byte nor an mtime moved
    assert names(path) == ["first", "written late"]
    assert names(backup.copies[0]) == ["first"]  # what a rollback to the backup would have lost


def test_a_write_during_the_backup_counts_as_a_change(make_db, tmp_path):
    """The stamp is taken before the backup: a write racing the backup can only refuse, never hide.
    (In WAL mode: a byte copy's hash would prove the write is in the backup, and rightly accept it.)"""
    path = make_db(SCHEMA)
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode = wal")
    stamp = file_stamp(path)
    write_a_row(path, "written while the backup started")
    (tmp_path / "backups").mkdir()
    backup = create_backup(path, [tmp_path / "backups"])
    before = folder_state(path.parent)
    with pytest.raises(TargetChanged, match=f"backup {backup.id} does not hold that write"):
        apply_plan(path, PLAN, baseline=Baseline.of_backup(backup, stamp))
    assert folder_state(path.parent) == before


def test_an_unchanged_target_is_migrated_and_the_log_names_the_way_back(make_db, tmp_path):
    path = make_db(SCHEMA)
    backup, baseline = backed_up(path, tmp_path)
    lines = []
    result = apply_plan(path, PLAN, emit=collecting(lines), baseline=baseline)
    assert result.committed
    assert ("ok", f"✓ {path} is unchanged since backup {backup.id} was taken: backup {backup.id} is the way back") in lines


def test_same_bytes_rewritten_pass_for_a_byte_copy_backup_only(make_db, tmp_path):
    """A rolled-back attempt rewrites pages with their old bytes (a new mtime): the backup's hash proves the
    file is still what it holds. A backup-API copy is a rewritten file whose hash proves nothing."""
    path = make_db(SCHEMA)
    backup, baseline = backed_up(path, tmp_path)
    assert baseline.sha256 == backup.manifest.sha256  # a rollback-journal file: a byte copy
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    before = folder_state(path.parent)

    with pytest.raises(TargetChanged):
        apply_plan(path, PLAN, baseline=Baseline(baseline.stamp, backup.id))  # no hash to prove it
    assert folder_state(path.parent) == before

    lines = []
    assert apply_plan(path, PLAN, emit=collecting(lines), baseline=baseline).committed
    assert ("ok", f"✓ {path.name} was rewritten by a rolled-back attempt; its SHA-256 still equals "
                  f"backup {backup.id}'s") in lines


def test_the_baseline_names_its_moment_and_remedy(make_db, tmp_path):
    path = make_db(SCHEMA)
    backup, baseline = backed_up(path, tmp_path)
    after_migration = Baseline(baseline.stamp, backup.id, since="the migration committed",
                               remedy="Abandon this run and start a new one.")
    write_a_row(path)
    with pytest.raises(TargetChanged) as refused:
        apply_plan(path, PLAN, baseline=after_migration)
    assert refused.value.message.startswith(f"{path} changed after the migration committed: ")
    assert refused.value.message.endswith("the write is kept. Abandon this run and start a new one.")
