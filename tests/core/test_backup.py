"""create_backup, verify_backup, list/find and retention on real SQLite files."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from app.core.backup import (
    Backup,
    check_backup_id,
    create_backup,
    find_backup,
    list_backups,
    plan_pruning,
    prune,
    verify_backup,
)
from app.core.engines.sqlite.backup_copy import BACKUP_API, LOCKED_COPY
from app.core.errors import NotFound, UsageError
from tests.faults.helpers import file_state, listing, logical_state, make_database, sha256

NOON = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def folders(tmp_path) -> list[Path]:
    made = [tmp_path / "local", tmp_path / "offsite"]
    for folder in made:
        folder.mkdir()
    return made


@pytest.fixture
def source(tmp_path) -> Path:
    return make_database(tmp_path / "goals.db")


def test_rollback_mode_backup_is_written_to_every_folder_and_verifies(source, folders):
    before = file_state(source)

    backup = create_backup(source, folders, now=NOON)

    name = "goals.db.backup_20250301_120000"
    assert backup.id == "20250301_120000"
    assert backup.copies == (folders[0] / name, folders[1] / name)
    assert backup.status == "verified"  # each copy was verified before it was published
    for folder in folders:
        assert listing(folder) == [name, name + ".json"]
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(folder / (name + ".json")).st_mode) == 0o600
    assert file_state(source) == before  # bytes and mtime
    assert [b.status for b in list_backups(folders, source)] == ["verified"]
    result = verify_backup(backup)  # checking again later gives the same answer
    assert result.verified is True
    assert [(check.path, check.ok, check.reason) for check in result.copies] == [
        (str(copy), True, "ok") for copy in backup.copies
    ]
    assert [b.status for b in list_backups(folders, source)] == ["verified"]


def test_an_unverified_backup_is_listed_as_such_until_verified(source, folders):
    backup = create_backup(source, folders, now=NOON, verify=False)

    assert backup.status == "unverified"
    assert [b.status for b in list_backups(folders, source)] == ["unverified"]
    assert verify_backup(backup).verified is True
    assert [b.status for b in list_backups(folders, source)] == ["verified"]


def test_the_verification_is_recorded_in_every_manifest(source, folders):
    backup = create_backup(source, folders, now=NOON)

    for manifest in backup.manifest_paths:
        recorded = json.loads(manifest.read_text())["verification"]
        assert recorded["verified"] is True
        assert recorded["copies"] == [
            {"path": str(copy), "ok": True, "reason": "ok"} for copy in backup.copies]


def test_manifest_records_the_snapshot(source, folders):
    backup = create_backup(source, folders, now=NOON, verify=False)

    manifest = json.loads((folders[1] / "goals.db.backup_20250301_120000.json").read_text())
    copy = folders[1] / "goals.db.backup_20250301_120000"
    fingerprint, counts = logical_state(source)
    assert manifest == {
        "format": "cutover-backup/1",
        "id": "20250301_120000",
        "database_name": "goals.db",
        "source": str(source),
        "created_at": "2025-03-01T12:00:00+00:00",
        "size_bytes": copy.stat().st_size,
        "sha256": sha256(copy),
        "schema_fingerprint": fingerprint,
        "row_counts": {"counter": 1, "goals": 200, "items": 200},
        "sqlite_version": sqlite3.sqlite_version,
        "method": LOCKED_COPY,
        "journal_mode": "delete",
        "page_size": 4096,
        "page_count": copy.stat().st_size // 4096,
        "copies": [str(path) for path in backup.copies],
        "verification": None,
        "source_realpath": str(source.resolve()),
    }
    assert counts == manifest["row_counts"]
    assert sha256(copy) == sha256(source)  # a locked copy is byte for byte


def test_wal_backup_holds_the_rows_still_in_the_wal_and_opens_without_side_files(tmp_path, folders):
    source = make_database(tmp_path / "goals.db", journal_mode="wal")
    with closing(sqlite3.connect(source, isolation_level=None)) as writer:
        writer.execute("PRAGMA wal_autocheckpoint = 0")  # keep these commits in the -wal only
        writer.executemany("INSERT INTO items (n, tag) VALUES (?, 'late')", [(i,) for i in range(500)])
        assert Path(f"{source}-wal").stat().st_size > 0

        backup = create_backup(source, folders[:1], now=NOON)

        assert backup.manifest.method == BACKUP_API
        assert backup.manifest.journal_mode == "wal"
        assert backup.manifest.row_counts == {"counter": 1, "goals": 200, "items": 700}
    copy = backup.copies[0]
    assert copy.read_bytes()[18:20] == b"\x01\x01"  # stored with a rollback-journal header
    assert verify_backup(backup).verified is True
    assert listing(folders[0]) == [copy.name, copy.name + ".json"]  # no -wal/-shm created


def test_a_name_taken_in_any_folder_gets_the_next_suffix(source, folders):
    squatter = folders[1] / "goals.db.backup_20250301_120000"
    squatter.write_bytes(b"somebody else's file")

    second = create_backup(source, folders, now=NOON)
    third = create_backup(source, folders, now=NOON)

    assert (second.id, third.id) == ("20250301_120000_2", "20250301_120000_3")
    assert squatter.read_bytes() == b"somebody else's file"
    assert listing(folders[0]) == [
        "goals.db.backup_20250301_120000_2", "goals.db.backup_20250301_120000_2.json",
        "goals.db.backup_20250301_120000_3", "goals.db.backup_20250301_120000_3.json",
    ]


def test_names_use_utc(source, folders):
    local_noon = datetime(2025, 7, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert create_backup(source, folders[:1], now=local_noon).id == "20250701_100000"


@pytest.mark.parametrize("method", [LOCKED_COPY, BACKUP_API])
def test_progress_counts_bytes_up_to_the_total(source, folders, method):
    reports = []

    backup = create_backup(source, folders, now=NOON, method=method,
                           progress=lambda done, total: reports.append((done, total)))

    size = backup.manifest.size_bytes
    passes = 1 if method == LOCKED_COPY else 2  # the backup API needs a hashing pass
    assert reports[-1] == (passes * size, passes * size)
    assert all(done <= total for done, total in reports)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    assert backup.manifest.method == method
    assert verify_backup(backup).verified is True


def test_a_locked_copy_of_a_wal_database_is_refused(tmp_path, folders):
    source = make_database(tmp_path / "goals.db", journal_mode="wal")
    with pytest.raises(UsageError, match="not consistent in WAL mode"):
        create_backup(source, folders, method=LOCKED_COPY)
    assert listing(folders[0]) == listing(folders[1]) == []


def test_log_lines_tell_the_story(source, folders):
    lines = []
    create_backup(source, folders[:1], now=NOON, log=lines.append)
    assert lines[:-1] == [
        f"Backing up {source} as 20250301_120000 into 1 folder(s).",
        "Source is in delete mode: snapshot by locked copy.",
        "Snapshot taken; verifying every copy before publishing it.",
        "Publishing the copies.",
        f"Published {folders[0] / 'goals.db.backup_20250301_120000'}",
    ]
    assert lines[-1].startswith("Backup 20250301_120000 written: ") and " kB, sha256 " in lines[-1]


# --- listing and finding ---------------------------------------------------------------


def test_list_is_newest_first_and_ignores_partials(source, folders):
    old = create_backup(source, folders, now=NOON - timedelta(days=2), verify=False)
    new = create_backup(source, folders, now=NOON)
    (folders[0] / ".goals.db.backup_20250302_000000.partial-1-abc123").write_bytes(b"half")
    (folders[0] / "goals.db.backup_20250301_130000").write_bytes(b"no manifest")
    (folders[0] / "other.db.backup_20250301_140000").write_bytes(b"another database")

    backups = list_backups(folders, source)

    assert [(b.id, b.status) for b in backups] == [
        ("20250301_130000", "unverifiable"),
        (new.id, "verified"),
        (old.id, "unverified"),
    ]
    assert backups[0].copies == (folders[0] / "goals.db.backup_20250301_130000",)
    assert backups[0].manifest is None


def test_a_missing_copy_makes_the_backup_incomplete(source, folders):
    backup = create_backup(source, folders, now=NOON)
    backup.copies[1].unlink()

    listed = find_backup(folders, source, backup.id)

    assert listed.status == "incomplete"
    assert listed.copies == backup.copies[:1]
    assert f"{backup.copies[1]} is missing (its manifest is there)" in listed.problems
    result = verify_backup(listed, record=False)
    assert result.verified is False
    assert [(c.path, c.ok, c.reason) for c in result.copies] == [
        (str(backup.copies[0]), True, "ok"), (str(backup.copies[1]), False, "copy is missing"),
    ]


def test_find_backup_returns_the_one_asked_for(source, folders):
    first = create_backup(source, folders, now=NOON)
    create_backup(source, folders, now=NOON + timedelta(hours=1))

    found = find_backup(folders, source, first.id)

    assert (found.id, found.copies, found.manifest.sha256) == (
        first.id, first.copies, first.manifest.sha256)
    with pytest.raises(NotFound, match=f"No backup 20250301_120001 of {source} in"):
        find_backup(folders, source, "20250301_120001")


class Trap(os.PathLike):
    """A backup folder that fails the test if anything tries to use it as a path."""

    def __fspath__(self):
        raise AssertionError("a file system path was touched")


@pytest.mark.parametrize("bad_id", [
    "../../etc/passwd", "..%2f..%2fetc%2fpasswd", "/etc/passwd", "20250301_120000/../../x",
    "20250301_120000\x00", "20250301_120000\\..\\x", "20250301_120000\n", "2025031_120000",
    "２０２５０３０１_１２００００", " 20250301_120000", "", None, 20250301,
])
def test_bad_backup_ids_are_refused_before_any_file_is_touched(bad_id):
    with pytest.raises(UsageError, match="is not a backup id"):
        find_backup([Trap()], "goals.db", bad_id)


@pytest.mark.parametrize("bad_name", ["/srv/a\\b", "x\x00", "/srv/..", "", "/", None, 7])
def test_bad_database_names_are_refused(bad_name):
    with pytest.raises(UsageError, match="is not a database file"):
        list_backups([Trap()], bad_name)
    with pytest.raises(UsageError):
        find_backup([Trap()], bad_name, "20250301_120000")


def test_valid_ids():
    assert check_backup_id("20250301_120000") == "20250301_120000"
    assert check_backup_id("20250301_120000_12") == "20250301_120000_12"


# --- retention --------------------------------------------------------------------------


def _backup(backup_id: str, status: str) -> Backup:
    return Backup(backup_id, "goals.db", (), (), None, status)


def test_pruning_keeps_the_newest_verified_and_protected_backups():
    backups = [
        _backup("20250101_000000", "verified"),  # 59 days old, protected
        _backup("20250110_000000", "unverified"),  # 50 days old
        _backup("20250115_000000", "verified"),  # 45 days old, newest verified
        _backup("20250120_000000", "failed"),  # 40 days old
        _backup("20250220_000000", "unverified"),  # 9 days old: within keep_days
    ]

    doomed = plan_pruning(backups, keep_days=30, protected_ids=["20250101_000000"], now=NOON)

    assert [backup.id for backup in doomed] == ["20250120_000000", "20250110_000000"]


def test_pruning_with_nothing_verified_keeps_only_recent_and_protected():
    backups = [_backup("20250101_000000", "failed"), _backup("20250225_000000", "unverified")]
    assert [b.id for b in plan_pruning(backups, keep_days=30, now=NOON)] == ["20250101_000000"]


def test_prune_deletes_copies_and_manifests_of_old_backups_only(source, folders):
    oldest = create_backup(source, folders, now=NOON - timedelta(days=60))
    old_verified = create_backup(source, folders, now=NOON - timedelta(days=40))
    recent = create_backup(source, folders, now=NOON - timedelta(days=1), verify=False)

    deleted = prune(folders, source, keep_days=30, now=NOON)

    assert [backup.id for backup in deleted] == [oldest.id]
    for folder in folders:
        assert listing(folder) == [
            f"goals.db.backup_{old_verified.id}", f"goals.db.backup_{old_verified.id}.json",
            f"goals.db.backup_{recent.id}", f"goals.db.backup_{recent.id}.json",
        ]


# --- whose backup is it -----------------------------------------------------------------


@pytest.fixture
def namesakes(tmp_path) -> tuple[Path, Path, Path]:
    """Two databases called app.db in different folders, backed up into one shared folder."""
    shared = tmp_path / "shared"
    for folder in (shared, tmp_path / "a", tmp_path / "b"):
        folder.mkdir()
    return make_database(tmp_path / "a" / "app.db"), make_database(tmp_path / "b" / "app.db", rows=50), shared


def _states(folder: Path, backup: Backup) -> dict:
    return {path.name: file_state(path) for path in (*backup.copies, *backup.manifest_paths)}


def test_a_database_lists_and_finds_only_its_own_backups_when_a_namesake_shares_the_folder(namesakes):
    a, b, shared = namesakes
    a_backup = create_backup(a, [shared], now=NOON)
    b_backup = create_backup(b, [shared], now=NOON + timedelta(hours=1))

    assert [backup.id for backup in list_backups([shared], b)] == [b_backup.id]
    assert [backup.id for backup in list_backups([shared], a)] == [a_backup.id]
    assert find_backup([shared], a, a_backup.id).manifest.sha256 == sha256(a)
    with pytest.raises(NotFound, match=f"No backup {a_backup.id} of {b} in"):
        find_backup([shared], b, a_backup.id)


def test_pruning_a_database_never_touches_a_namesakes_backups(namesakes):
    a, b, shared = namesakes
    a_old = create_backup(a, [shared], now=NOON - timedelta(days=60))
    a_newest = create_backup(a, [shared], now=NOON - timedelta(days=1))
    b_oldest = create_backup(b, [shared], now=NOON - timedelta(days=50))
    b_old = create_backup(b, [shared], now=NOON - timedelta(days=40))
    a_before = {**_states(shared, a_old), **_states(shared, a_newest)}

    deleted = prune([shared], b, keep_days=30, now=NOON)

    # b's newest verified backup is b_old (a's newer backup is not b's way back).
    assert [backup.id for backup in deleted] == [b_oldest.id]
    assert [backup.id for backup in list_backups([shared], b)] == [b_old.id]
    assert {**_states(shared, a_old), **_states(shared, a_newest)} == a_before
    assert [backup.id for backup in list_backups([shared], a)] == [a_newest.id, a_old.id]


def test_a_manifest_written_before_the_real_path_was_recorded_is_attributed_by_its_source(namesakes):
    a, b, shared = namesakes
    a_backup = create_backup(a, [shared], now=NOON - timedelta(days=60))
    for path in a_backup.manifest_paths:
        document = json.loads(path.read_text())
        del document["source_realpath"]
        path.write_text(json.dumps(document))
    before = _states(shared, a_backup)

    assert prune([shared], b, keep_days=30, now=NOON) == []
    assert list_backups([shared], b) == []
    assert _states(shared, a_backup) == before
    [listed] = list_backups([shared], a)
    assert (listed.id, listed.status, listed.attributed, listed.manifest.source_realpath) == (
        a_backup.id, "verified", True, None)


def test_a_database_reached_through_a_symlinked_folder_owns_its_backups(namesakes, tmp_path):
    a, _, shared = namesakes
    (tmp_path / "link").symlink_to(tmp_path / "a")
    backup = create_backup(tmp_path / "link" / "app.db", [shared], now=NOON)

    assert [listed.id for listed in list_backups([shared], a)] == [backup.id]


def test_copies_no_manifest_attributes_are_listed_but_never_pruned(namesakes):
    a, b, shared = namesakes
    orphan = shared / "app.db.backup_20250101_000000"
    orphan.write_bytes(a.read_bytes())
    unreadable = shared / "app.db.backup_20250102_000000"
    unreadable.write_bytes(b.read_bytes())
    (shared / "app.db.backup_20250102_000000.json").write_text("{not json")
    before = {path.name: file_state(path) for path in shared.iterdir()}

    for database in (a, b):
        listed = list_backups([shared], database)
        assert [(backup.id, backup.status, backup.attributed) for backup in listed] == [
            ("20250102_000000", "unverifiable", False), ("20250101_000000", "unverifiable", False)]
        assert "never pruned" in listed[1].problems[-1]
        assert prune([shared], database, keep_days=30, now=NOON) == []
    assert {path.name: file_state(path) for path in shared.iterdir()} == before


def test_a_namesakes_copy_under_the_same_id_is_not_part_of_the_backup(namesakes, tmp_path):
    """Ids are unique per folder, so two databases' backups share an id only across folders
    that one of them does not use; listing the union of folders must still split them."""
    a, b, shared = namesakes
    only_a = tmp_path / "only_a"
    only_a.mkdir()
    a_backup = create_backup(a, [only_a], now=NOON - timedelta(days=60))
    b_backup = create_backup(b, [shared], now=NOON - timedelta(days=60))
    assert a_backup.id == b_backup.id
    a_before = _states(only_a, a_backup)

    [listed] = list_backups([shared, only_a], b)
    assert (listed.copies, listed.status) == (b_backup.copies, "verified")
    b_newer = create_backup(b, [shared, only_a], now=NOON - timedelta(days=1))

    deleted = prune([shared, only_a], b, keep_days=30, now=NOON)

    assert [(backup.id, backup.copies) for backup in deleted] == [(b_backup.id, b_backup.copies)]
    assert [backup.id for backup in list_backups([shared, only_a], b)] == [b_newer.id]
    assert _states(only_a, a_backup) == a_before


def test_a_symlink_named_like_a_backup_is_listed_as_a_problem_and_never_followed(source, folders, tmp_path):
    outside = tmp_path / "outside.db"
    outside.write_bytes(source.read_bytes())
    (folders[0] / "goals.db.backup_20250101_000000").symlink_to(outside)
    before = file_state(outside)

    [listed] = list_backups(folders, source)

    assert (listed.id, listed.status, listed.attributed, listed.copies) == ("20250101_000000", "incomplete", False, ())
    assert f"{folders[0] / 'goals.db.backup_20250101_000000'} is a symbolic link" in listed.problems[0]
    assert prune(folders, source, keep_days=30, now=NOON) == []
    assert file_state(outside) == before and os.path.islink(folders[0] / "goals.db.backup_20250101_000000")
