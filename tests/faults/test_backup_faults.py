"""Backups against bad folders, full disks, damaged files and planted paths.

Each test shows the clear error AND that nothing was lost: the source's bytes and mtime
are unchanged and no partial file is left in any folder.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

import app.core.fsutil as fsutil
from app.core import backup as backup_module
from app.core.backup import (
    create_backup,
    find_backup,
    list_backups,
    verify_backup,
)
from app.core.engines.sqlite.backup_copy import BACKUP_API, LOCKED_COPY
from app.core.errors import BackupError, RestoreRefused
from app.core.restore import restore_backup
from tests.faults.helpers import (
    file_state,
    flip_byte,
    listing,
    make_database,
    mount_tmpfs,
    sha256,
    unmount,
)

NOON = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def source(tmp_path) -> Path:
    return make_database(tmp_path / "goals.db", rows=2000, pad_bytes=400)  # about 1.5 MB


@pytest.fixture
def healthy(tmp_path) -> Path:
    folder = tmp_path / "healthy"
    folder.mkdir()
    return folder


@pytest.fixture
def tmpfs(tmp_path):
    """mount(folder_name, *options) -> a tmpfs folder; skipped where mounting is not allowed."""
    mounted = []

    def mount(name: str, *options: str) -> Path:
        folder = tmp_path / name
        if not mount_tmpfs(folder, *options):
            pytest.skip("mounting a tmpfs needs root (the injected-error tests cover this case)")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        unmount(folder)


def assert_nothing_lost(source: Path, before, *folders: Path) -> None:
    assert file_state(source) == before
    for folder in folders:
        assert listing(folder) == []


# --- folders --------------------------------------------------------------------------


def test_a_missing_folder_is_named(source, healthy, tmp_path):
    before = file_state(source)
    with pytest.raises(BackupError, match=f"Backup folder {tmp_path}/absent does not exist") as error:
        create_backup(source, [healthy, tmp_path / "absent"])
    assert error.value.details == {"directory": str(tmp_path / "absent"), "reason": "missing"}
    assert_nothing_lost(source, before, healthy)
    assert not (tmp_path / "absent").exists()


def test_a_folder_below_a_regular_file_is_named(source, healthy, tmp_path):
    (tmp_path / "plain-file").write_text("not a folder")
    before = file_state(source)
    with pytest.raises(BackupError, match="plain-file/backups is not a folder") as error:
        create_backup(source, [healthy, tmp_path / "plain-file" / "backups"])
    assert error.value.details["reason"] == "not_a_folder"
    assert_nothing_lost(source, before, healthy)


def test_a_read_only_folder_is_named(source, healthy, tmpfs):
    read_only = tmpfs("read-only", "ro", "size=8m")
    before = file_state(source)
    with pytest.raises(BackupError, match="read-only is on a read-only file system") as error:
        create_backup(source, [healthy, read_only])
    assert error.value.details["reason"] == "read_only"
    assert_nothing_lost(source, before, healthy, read_only)


def test_a_folder_too_small_is_refused_before_the_source_is_locked(source, healthy, tmpfs):
    small = tmpfs("small", "size=512k")
    before = file_state(source)
    with pytest.raises(BackupError, match=r"small has 0\.5 MB free but this backup needs about 1\.") as error:
        create_backup(source, [healthy, small])
    assert error.value.details["reason"] == "full"
    assert_nothing_lost(source, before, healthy, small)


@pytest.mark.parametrize("method", [LOCKED_COPY, BACKUP_API])
def test_a_disk_filling_up_during_the_copy(source, healthy, tmpfs, monkeypatch, method):
    small = tmpfs("small", "size=1m")
    # Somebody else fills the disk after our free-space check: skip the check.
    monkeypatch.setattr(backup_module, "check_free_space", lambda folders, needed: None)
    before = file_state(source)

    with pytest.raises(BackupError, match="small is full") as error:
        create_backup(source, [healthy, small], method=method)

    assert error.value.details["reason"] == "full"
    assert_nothing_lost(source, before, healthy, small)


def test_an_injected_enospc_mid_copy(source, healthy, tmp_path, monkeypatch):
    """The same without root: the second chunk copied into the second folder fails."""
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setattr(fsutil, "COPY_CHUNK_SIZE", 64 * 1024)
    real_copy_chunk, calls = fsutil.copy_chunk, {}

    def failing_copy_chunk(source_fd, destination_fd, offset, count):
        calls[destination_fd] = calls.get(destination_fd, 0) + 1
        if len(calls) == 2 and calls[destination_fd] == 2 and destination_fd == max(calls):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy_chunk(source_fd, destination_fd, offset, count)

    monkeypatch.setattr(fsutil, "copy_chunk", failing_copy_chunk)
    before = file_state(source)

    with pytest.raises(BackupError, match=f"Backup folder {other} is full"):
        create_backup(source, [healthy, other])

    assert_nothing_lost(source, before, healthy, other)


def test_without_copy_file_range_the_copy_falls_back_to_sendfile(source, healthy, monkeypatch):
    def unsupported(*args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(fsutil, "copy_chunk", unsupported)
    backup = create_backup(source, [healthy])
    assert backup.verified
    assert sha256(backup.copies[0]) == sha256(source)


# --- damaged files --------------------------------------------------------------------


def test_a_copy_with_one_flipped_byte_is_named_with_the_reason(source, healthy, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    backup = create_backup(source, [healthy, other], now=NOON)
    flip_byte(backup.copies[1], 100_000)

    result = verify_backup(backup)

    assert result.verified is False
    assert [(check.path, check.ok) for check in result.copies] == [
        (str(backup.copies[0]), True), (str(backup.copies[1]), False)]
    assert result.copies[1].reason.startswith("SHA-256 ")
    assert "differs from the manifest's" in result.copies[1].reason
    assert find_backup([healthy, other], source, backup.id).status == "failed"


def test_a_damaged_source_gives_no_backup(source, healthy, tmp_path):
    # Damage the b-tree of `items` (not page 1, so the file still opens).
    page = 4096 * 20
    for offset in range(page, page + 200):
        flip_byte(source, offset)
    before = file_state(source)
    other = tmp_path / "other"
    other.mkdir()

    with pytest.raises(BackupError, match="failed its integrity check at snapshot time") as error:
        create_backup(source, [healthy, other])

    assert error.value.details["reason"] == "source_damaged"
    assert_nothing_lost(source, before, healthy, other)
    assert list_backups([healthy, other], source) == []


def test_a_damaged_wal_source_gives_no_backup(tmp_path, healthy):
    source = make_database(tmp_path / "goals.db", rows=2000, pad_bytes=400, journal_mode="wal")
    for offset in range(4096 * 20, 4096 * 20 + 200):
        flip_byte(source, offset)
    before = file_state(source)

    with pytest.raises(BackupError, match="failed its integrity check"):
        create_backup(source, [healthy])

    assert_nothing_lost(source, before, healthy)


# --- planted paths ----------------------------------------------------------------------


def test_a_symlink_planted_in_a_backup_folder_is_never_followed(source, healthy, tmp_path):
    """The link points at a perfect copy with a matching manifest: following it would
    make it verify, so a refusal proves it was not followed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    genuine = create_backup(source, [outside], now=NOON)
    name = genuine.copies[0].name
    (healthy / name).symlink_to(outside / name)
    shutil.copyfile(outside / (name + ".json"), healthy / (name + ".json"))
    before = file_state(outside / name)

    found = find_backup([healthy], source, genuine.id)

    assert found.copies == ()
    assert f"{healthy / name} is a symbolic link or not a regular file: ignored" in found.problems
    assert found.status == "incomplete"
    assert verify_backup(found, record=False).verified is False
    with pytest.raises(RestoreRefused, match="No copy of backup .* verifies now"):
        restore_backup(source, found, safety_dir=tmp_path, app_running_check=lambda: [])
    assert file_state(outside / name) == before


def test_a_symlinked_manifest_is_not_read(source, healthy, tmp_path):
    backup = create_backup(source, [healthy], now=NOON, verify=False)
    manifest = healthy / (backup.copies[0].name + ".json")
    elsewhere = tmp_path / "elsewhere.json"
    os.replace(manifest, elsewhere)
    manifest.symlink_to(elsewhere)
    before = file_state(elsewhere)

    found = find_backup([healthy], source, backup.id)

    assert found.manifest is None
    assert found.status == "unverifiable"
    assert verify_backup(found).verified is False
    assert file_state(elsewhere) == before  # nothing was written through the link
    assert json.loads(elsewhere.read_text())["verification"] is None


def test_a_copy_swapped_for_a_symlink_after_listing_is_refused(source, healthy, tmp_path):
    backup = create_backup(source, [healthy], now=NOON)
    real = tmp_path / "real-copy"
    os.replace(backup.copies[0], real)
    backup.copies[0].symlink_to(real)

    result = verify_backup(backup, record=False)

    assert result.copies[0].reason == "is a symbolic link or not a regular file: refused"


def test_a_manifest_for_another_backup_is_not_trusted(source, healthy):
    first = create_backup(source, [healthy], now=NOON)
    second = create_backup(source, [healthy], now=datetime(2025, 3, 2, tzinfo=timezone.utc))
    shutil.copyfile(first.manifest_paths[0], second.manifest_paths[0])

    found = find_backup([healthy], source, second.id)

    assert found.manifest is None
    assert any("describes another backup" in problem for problem in found.problems)


# --- leftovers --------------------------------------------------------------------------


def test_partials_of_dead_processes_are_removed_and_live_ones_kept(source, healthy):
    dead = healthy / ".goals.db.backup_20250101_000000.partial-999999999-abcdef"
    alive = healthy / f".goals.db.backup_20250101_000000.partial-{os.getpid()}-abcdef"
    dead_manifest = healthy / ".goals.db.backup_20250101_000000.json.partial-999999999-0123ab"
    for path in (dead, alive, dead_manifest):
        path.write_bytes(b"half")

    backup = create_backup(source, [healthy], now=NOON)

    assert listing(healthy) == sorted([alive.name, backup.copies[0].name, backup.copies[0].name + ".json"])


def test_the_copy_is_the_source_byte_for_byte(source, healthy):
    backup = create_backup(source, [healthy])
    assert sha256(backup.copies[0]) == sha256(source) == backup.manifest.sha256
