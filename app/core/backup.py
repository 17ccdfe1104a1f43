"""Verified backups of a live SQLite database, written to every backup folder.

The runbook's `cp goals.db goals.db.backup_$(date ...)` copies whatever bytes happen to
be on disk: a transaction committing meanwhile, or pages still in the -wal file, give a
copy that is torn or missing data. A backup here is a transaction-consistent snapshot:

- Rollback-journal modes (delete, truncate, persist, memory, off): a byte copy taken while
  our read transaction holds SQLite's SHARED lock. No writer can commit while it is held,
  so the file cannot change. The kernel copies (copy_file_range) while we hash the same
  bytes; nothing else happens under the lock, so a writer waits only for the copy
  (about 1 s per GB). Measured on 1 GB (bench/bench_backup.py) it is the fastest method:
  the online backup API copies page by page through SQLite and needs a second pass for
  the hash.
- WAL: the online backup API. Committed pages may live in the -wal file, which a byte
  copy of the main file misses and which checkpoints rewrite under a reader, so SQLite
  itself must read the snapshot. We open a read transaction first and step the backup
  inside it: the backup then copies exactly that pinned snapshot, foreign writes cannot
  restart it (no starvation), writers are never blocked, and stepping in chunks gives
  progress. VACUUM INTO also gives a snapshot, but it rebuilds every table and index
  and still needs the hash pass: slower on the benchmark.
  The copy is stored with a rollback-journal header, so any reader can open it read-only
  without creating -wal/-shm files beside it; the manifest records the source's journal
  mode and restore turns WAL back on.

Verification (verify_backup, and create_backup before it publishes anything): per copy,
SHA-256 against the manifest, quick_check, exact row counts and schema fingerprint, all
in parallel threads. quick_check dominates (about 2.4 s per GB), so it starts on each
copy the moment the copy is whole.

Names: `<db file name>.backup_YYYYMMDD_HHMMSS` in UTC (local time repeats an hour when
clocks go back, UTC names always sort in creation order), plus `_2`, `_3` when that
name is taken in any folder. Each copy has a JSON manifest beside it (`<copy>.json`).

Crash safety: copies are written under hidden partial names, fsynced and verified; then
each folder gets its manifest first and its copy second (no-overwrite link), then the
folder is fsynced. A crash leaves no final-named copy without a manifest; hidden partial
files of dead processes are removed by the next backup.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable

from app.core.engines import Engine, engine_for
from app.core.engines.base import SnapshotTaken
from app.core.errors import BackupError, CutoverError, NotFound, UsageError, source_damaged
from app.core.fsutil import (
    Progress,
    copy_and_hash,
    create_exclusive,
    fsync_directory,
    open_regular_file,
    partial_path,
    publish,
    remove_if_present,
    remove_stale_partials,
    same_file,
    sha256_of_file,
    write_file_atomically,
)

MANIFEST_FORMAT = "cutover-backup/1"
BACKUP_ID = re.compile(r"[0-9]{8}_[0-9]{6}(?:_[0-9]+)?")  # [0-9]: \d also matches other scripts' digits
ID_FORMAT = "%Y%m%d_%H%M%S"
MANIFEST_ALLOWANCE = 64 * 1024  # room a manifest and directory entries need, per copy
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

Log = Callable[[str], None]


# --- value objects --------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """What a backup holds, written as JSON beside every copy (all copies are identical)."""

    id: str
    database_name: str
    source: str
    created_at: str  # ISO 8601, UTC
    size_bytes: int
    sha256: str
    schema_fingerprint: str
    row_counts: dict
    method: str
    copies: tuple[str, ...]
    # A SQLite source's facts (its copies are stored with a rollback-journal header).
    sqlite_version: str = ""
    journal_mode: str = ""
    page_size: int = 0
    page_count: int = 0
    verification: dict | None = None  # the latest verify_backup outcome, when recorded
    # The source's real path (symlinks resolved) when the backup was taken: two databases
    # may share a file name and a backup folder, so the name alone cannot say whose a backup
    # is. Manifests written before it was recorded lack it (None).
    source_realpath: str | None = None
    # The engine the backup was taken by, and its own facts (a PostgreSQL server's version,
    # pg_dump's); a manifest without them is a SQLite file's, as every manifest once was.
    engine: str = "sqlite"
    engine_facts: dict | None = None
    format: str = MANIFEST_FORMAT

    def to_dict(self) -> dict:
        data = {
            "format": self.format,
            "id": self.id,
            "database_name": self.database_name,
            "source": self.source,
            "created_at": self.created_at,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "schema_fingerprint": self.schema_fingerprint,
            "row_counts": dict(self.row_counts),
            **({"sqlite_version": self.sqlite_version} if self.engine == "sqlite" else {}),
            "method": self.method,
            **({"journal_mode": self.journal_mode, "page_size": self.page_size, "page_count": self.page_count}
               if self.engine == "sqlite" else {}),
            "copies": list(self.copies),
            "verification": self.verification,
            "source_realpath": self.source_realpath,
        }
        if self.engine != "sqlite":
            data.update(engine=self.engine, engine_facts=self.engine_facts)
        return data

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n").encode()

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        """Read a manifest, checking every field's type (manifests are files anyone can edit)."""
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"not a {MANIFEST_FORMAT} manifest")
        engine = data.get("engine", "sqlite")
        if not isinstance(engine, str):
            raise ValueError("field 'engine' must name an engine")
        types = {**_MANIFEST_TYPES, **(_SQLITE_MANIFEST_TYPES if engine == "sqlite" else {})}
        values = {name: data.get(name) for name in types}
        for name, kind in types.items():
            if not isinstance(values[name], kind) or isinstance(values[name], bool):
                raise ValueError(f"field {name!r} is missing or not a {kind.__name__}")
        if not all(isinstance(path, str) for path in values["copies"]):
            raise ValueError("field 'copies' must list paths")
        verification = data.get("verification")
        if verification is not None and not isinstance(verification, dict):
            raise ValueError("field 'verification' must be an object")
        source_realpath = data.get("source_realpath")
        if source_realpath is not None and not isinstance(source_realpath, str):
            raise ValueError("field 'source_realpath' must be a path")
        engine_facts = data.get("engine_facts")
        if engine_facts is not None and not isinstance(engine_facts, dict):
            raise ValueError("field 'engine_facts' must be an object")
        values["copies"] = tuple(values["copies"])
        return cls(**values, verification=verification, source_realpath=source_realpath,
                   engine=engine, engine_facts=engine_facts)


_MANIFEST_TYPES = {
    "id": str, "database_name": str, "source": str, "created_at": str, "size_bytes": int,
    "sha256": str, "schema_fingerprint": str, "row_counts": dict, "method": str, "copies": list,
}
_SQLITE_MANIFEST_TYPES = {"sqlite_version": str, "journal_mode": str, "page_size": int, "page_count": int}


@dataclass(frozen=True)
class Backup:
    """One backup (one id) as found in the backup folders.

    status: "verified" (every copy checked out when last verified), "unverified" (never
    verified), "failed" (a copy failed its last verification), "incomplete" (a copy or a
    manifest is missing, or a copy has the wrong size) or "unverifiable" (copies without
    any manifest: nothing to check them against).
    """

    id: str
    database_name: str
    copies: tuple[Path, ...]  # copy files present, each directly inside a backup folder
    manifest_paths: tuple[Path, ...]
    manifest: Manifest | None
    status: str
    problems: tuple[str, ...] = ()
    attributed: bool = True

    @property
    def created(self) -> datetime:
        if self.manifest is not None:
            try:
                moment = datetime.fromisoformat(self.manifest.created_at)
            except ValueError:
                return id_moment(self.id)
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        return id_moment(self.id)

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "database_name": self.database_name,
            "created_at": self.created.isoformat(),
            "status": self.status,
            "copies": [str(path) for path in self.copies],
            "manifests": [str(path) for path in self.manifest_paths],
            "problems": list(self.problems),
            "attributed": self.attributed,
            "manifest": self.manifest.to_dict() if self.manifest else None,
        }


@dataclass(frozen=True)
class CopyCheck:
    """The outcome of verifying one copy; `reason` is "ok" or every problem found."""

    path: str
    ok: bool
    reason: str
    sha256: str | None = None
    quick_check: str | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "ok": self.ok, "reason": self.reason,
                "sha256": self.sha256, "quick_check": self.quick_check}


@dataclass(frozen=True)
class VerificationResult:
    backup_id: str
    verified: bool  # True only when every copy checked out
    checked_at: str
    copies: tuple[CopyCheck, ...]

    @property
    def good_copies(self) -> tuple[Path, ...]:
        return tuple(Path(check.path) for check in self.copies if check.ok)

    def to_dict(self) -> dict:
        return {"backup_id": self.backup_id, "verified": self.verified,
                "checked_at": self.checked_at, "copies": [c.to_dict() for c in self.copies]}


# --- names ----------------------------------------------------------------------------


def check_backup_id(backup_id) -> str:
    """Refuse anything but YYYYMMDD_HHMMSS[_N] before it comes near a path."""
    if not isinstance(backup_id, str) or not BACKUP_ID.fullmatch(backup_id):
        raise UsageError(
            f"{backup_id!r} is not a backup id: ids look like 20250131_235959 "
            "(or 20250131_235959_2), and nothing else is accepted.",
            backup_id=repr(backup_id),
        )
    return backup_id


def check_database_name(name) -> str:
    """A database file name (no folder part), as backups are named after it."""
    bad = not isinstance(name, str) or name in ("", ".", "..") or len(name) > 200
    if bad or any(char in name for char in "/\\\x00"):
        raise UsageError(f"{name!r} is not a database file name.", database_name=repr(name))
    return name


def id_for(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(ID_FORMAT)


def id_moment(backup_id: str) -> datetime:
    return datetime.strptime(backup_id[:15], ID_FORMAT).replace(tzinfo=timezone.utc)


def _id_order(backup_id: str) -> tuple[str, int]:
    stamp, _, suffix = backup_id.partition("_")[2].partition("_")
    return backup_id[:8] + stamp, int(suffix or 1)


def copy_name(database_name: str, backup_id: str) -> str:
    return f"{database_name}.backup_{backup_id}"


def manifest_path(copy_path: Path) -> Path:
    return copy_path.with_name(copy_path.name + ".json")


def free_backup_id(folders: list[Path], database_name: str, moment: datetime) -> str:
    """The first id whose copy and manifest names are free in every folder."""
    base = id_for(moment)
    for number in range(1, 10_000):
        candidate = base if number == 1 else f"{base}_{number}"
        name = copy_name(database_name, candidate)
        taken = any(
            os.path.lexists(folder / name) or os.path.lexists(folder / f"{name}.json")
            for folder in folders
        )
        if not taken:
            return candidate
    raise BackupError(f"Too many backups named {base} already exist.", backup_id=base)


# --- backup folders -------------------------------------------------------------------

_FOLDER_PROBLEMS = {
    errno.ENOSPC: ("full", "is full"),
    errno.EDQUOT: ("full", "is over its disk quota"),
    errno.EROFS: ("read_only", "is on a read-only file system"),
    errno.EACCES: ("not_writable", "is not writable by this user"),
    errno.EPERM: ("not_writable", "is not writable by this user"),
    errno.ENOENT: ("missing", "does not exist"),
    errno.ENOTDIR: ("not_a_folder", "is not a folder (part of its path is a file)"),
}


def folder_error(directory: Path, exc: OSError) -> BackupError:
    reason, what = _FOLDER_PROBLEMS.get(exc.errno, ("error", f"cannot be written ({exc.strerror})"))
    return BackupError(
        f"Backup folder {directory} {what}. The source database was not changed and no "
        "partial backup file was left behind. Fix the folder (or remove it from the "
        "configuration) and run the backup again.",
        directory=str(directory),
        reason=reason,
    )


@contextmanager
def _writing_into(directory: Path):
    """Turn an OSError raised while writing into `directory` into a BackupError naming it."""
    try:
        yield
    except CutoverError:
        raise
    except OSError as exc:
        raise folder_error(directory, exc) from exc


def usable_backup_folders(backup_dirs: Iterable) -> list[Path]:
    """Resolved, de-duplicated backup folders; each must exist and be a folder."""
    folders: list[Path] = []
    for configured in backup_dirs:
        folder = Path(os.path.abspath(configured))
        try:
            info = os.stat(folder)
        except OSError as exc:
            raise folder_error(folder, exc) from None
        if not stat.S_ISDIR(info.st_mode):
            raise folder_error(folder, OSError(errno.ENOTDIR, "Not a directory"))
        if not any(same_file(folder, known) for known in folders):  # a bind mount or symlink of one listed
            folders.append(folder)
    if not folders:
        raise UsageError("No backup folder is configured: a backup needs at least one.")
    return folders


def check_free_space(folders: list[Path], needed: int) -> None:
    """Fail before locking the source when a file system cannot hold its copies."""
    by_device: dict[int, list[Path]] = defaultdict(list)
    for folder in folders:
        by_device[os.stat(folder).st_dev].append(folder)
    for group in by_device.values():
        usage = os.statvfs(group[0])
        free = usage.f_bavail * usage.f_frsize
        required = (needed + MANIFEST_ALLOWANCE) * len(group)
        if free < required:
            names = ", ".join(str(folder) for folder in group)
            raise BackupError(
                f"Backup folder {names} has {_mb(free)} free but this backup needs about "
                f"{_mb(required)}. Free some space or choose another folder; nothing was written.",
                directory=str(group[0]),
                reason="full",
            )


def _mb(size: int) -> str:
    # Decimal megabytes, as the pages show sizes: one file, one number, everywhere.
    return f"{size / 1_000_000:,.1f} MB"


def _size(size: int) -> str:
    """A file's size as the pages print it (Jinja's filesizeformat: decimal, '172.0 kB')."""
    if size < 1000:
        return f"{size} Bytes"
    value, prefix = size / 1000, "kB"
    for larger in ("MB", "GB", "TB"):
        if value < 1000:
            break
        value, prefix = value / 1000, larger
    return f"{value:.1f} {prefix}"


# --- partial copies -------------------------------------------------------------------


@dataclass
class _PartialCopy:
    directory: Path
    temporary: Path
    final: Path
    fd: int | None = None


class _PartialCopies:
    """The hidden files one backup writes, one per folder, until they are published."""

    def __init__(self):
        self.copies: list[_PartialCopy] = []
        self.published: list[Path] = []

    @classmethod
    def create(cls, folders: list[Path], database_name: str, backup_id: str) -> _PartialCopies:
        """One new hidden file per folder (O_EXCL, 0600); none is left if one fails."""
        copies = cls()
        try:
            for folder in folders:
                final = folder / copy_name(database_name, backup_id)
                copy = _PartialCopy(folder, partial_path(final), final)
                with _writing_into(folder):
                    copy.fd = create_exclusive(copy.temporary)
                copies.copies.append(copy)
        except BaseException:
            copies.discard()
            raise
        return copies

    @property
    def first(self) -> _PartialCopy:
        return self.copies[0]

    def write_error(self, fd: int, exc: OSError) -> BackupError:
        directory = next(copy.directory for copy in self.copies if copy.fd == fd)
        return folder_error(directory, exc)

    def fsync(self) -> None:
        for copy in self.copies:
            with _writing_into(copy.directory):
                os.fsync(copy.fd)

    def close(self) -> None:
        for copy in self.copies:
            if copy.fd is not None:
                os.close(copy.fd)
                copy.fd = None

    def publish(self, manifest: Manifest, say: Log) -> None:
        """Manifest first, then the copy: a crash never leaves a copy without its manifest."""
        for copy in self.copies:
            with _writing_into(copy.directory):
                write_file_atomically(manifest_path(copy.final), manifest.to_json(), overwrite=False)
                self.published.append(manifest_path(copy.final))
                publish(copy.temporary, copy.final)
                self.published.append(copy.final)
                fsync_directory(copy.directory)
            say(f"Published {copy.final}")

    def discard(self) -> None:
        """Remove everything this backup wrote: copies before their manifests."""
        self.close()
        for path in [copy.temporary for copy in self.copies] + self.published[::-1]:
            try:
                remove_if_present(path)
            except OSError:
                pass


# --- taking the snapshot --------------------------------------------------------------


def _hash_and_fan_out(copies: _PartialCopies, size: int, progress) -> tuple[int, str]:
    """Hash the first copy while writing it to the other folders (one read pass)."""
    reader = open_regular_file(copies.first.temporary)
    try:
        return copy_and_hash(
            reader, [copy.fd for copy in copies.copies[1:]], progress=progress,
            done_before=size, total=2 * size, on_write_error=copies.write_error,
        )
    finally:
        os.close(reader)


# --- creating a backup ----------------------------------------------------------------


def create_backup(
    source,
    backup_dirs: Iterable,
    *,
    now: datetime | None = None,
    busy_timeout: float = 5.0,
    method: str | None = None,
    verify: bool = True,
    progress: Progress | None = None,
    log: Log | None = None,
) -> Backup:
    """Snapshot `source` into every backup folder.

    With `verify` (the default) every copy is verified (as verify_backup does) while it
    still has its hidden name, and only then published: the result is "verified", and a
    damaged source raises BackupError instead of producing a backup. `verify=False`
    publishes at once ("unverified"); call verify_backup before relying on it.

    Raises TargetUnavailable (source unreadable, or locked longer than busy_timeout),
    BackupError (a folder missing, full or read-only, or the source damaged; nothing that
    looks like a backup is left) or UsageError (bad method).

    Run it where no other connection of this process writes to the source (the runner
    holds the target): closing our descriptor of the source drops every POSIX lock this
    process holds on it, SQLite's included ("How To Corrupt", 2.2).
    """
    source = _catalogued(source)
    say = log or (lambda line: None)
    folders = usable_backup_folders(backup_dirs)
    source.check_backup_source()
    for folder in folders:
        remove_stale_partials(folder, f"{source.backup_name}.backup_")
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    backup_id = free_backup_id(folders, source.backup_name, moment)
    check_free_space(folders, source.backup_size())
    copies = _PartialCopies.create(folders, source.backup_name, backup_id)
    try:
        say(f"Backing up {source.label} as {backup_id} into {len(folders)} folder(s).")
        with ThreadPoolExecutor(max_workers=3 * len(folders) + 1) as pool:
            manifest, snapshot = _snapshot_and_check(
                source, copies, pool, backup_id, moment, method, busy_timeout, verify, progress, say)
        say("Publishing the copies.")
        copies.publish(manifest, say)
        copies.close()
    except BaseException:
        copies.discard()
        raise
    say(f"Backup {backup_id} written: {_size(snapshot.size)}, sha256 {snapshot.sha256[:12]}...")
    return _backup_from(manifest, copies)


def _snapshot_and_check(source, copies, pool, backup_id, moment, method, busy_timeout,
                        verify, progress, say) -> tuple[Manifest, SnapshotTaken]:
    """The snapshot, its manifest and (with `verify`) the verification of every copy.

    quick_check, the slowest check, starts on each copy the moment it is whole; the
    fsync, the hash pass and the manifest's inspection run meanwhile.
    """
    quick_checks: dict[Path, Future] = {}

    def complete(paths: list[Path]) -> None:
        if verify:
            quick_checks.update({path: pool.submit(_quick_check_part, source, path) for path in paths})

    snapshot = source.backup_snapshot(
        copies, method=method, busy_timeout=busy_timeout, progress=progress, log=say,
        complete=complete, fan_out=_hash_and_fan_out)
    flushed = pool.submit(copies.fsync)  # to disk while we read the copies back
    manifest = _snapshot_manifest(source, backup_id, moment, snapshot, copies)
    if verify:
        say("Snapshot taken; verifying every copy before publishing it.")
        temporaries = tuple(copy.temporary for copy in copies.copies)
        checks = _finish_checks(
            source, pool, temporaries, manifest, [quick_checks[p] for p in temporaries],
            # A copy hashed by reading it back needs no second read; a locked copy's hash
            # is the source's, so every copy of it is read back here.
            hashed=copies.first.temporary if snapshot.hashed_from_copy else None,
            # A manifest described from the first copy need not be checked against it; one
            # read from the source's own snapshot (PostgreSQL) is proven by restoring the copy.
            described=copies.first.temporary if snapshot.described is None else None,
        )
        manifest = _verified_manifest(source, manifest, copies, checks)
    flushed.result()
    return manifest, snapshot


def _snapshot_manifest(source: Engine, backup_id, moment, snapshot: SnapshotTaken, copies) -> Manifest:
    """What the source held at the snapshot's moment, as its engine describes it."""
    recorded_source, recorded_realpath = source.source_record()
    return Manifest(
        id=backup_id,
        database_name=source.backup_name,
        source=recorded_source,
        created_at=moment.isoformat(timespec="seconds"),
        size_bytes=snapshot.size,
        sha256=snapshot.sha256,
        method=snapshot.method,
        copies=tuple(str(copy.final) for copy in copies.copies),
        source_realpath=recorded_realpath,
        **({} if source.name == "sqlite" else {"engine": source.name}),
        **source.backup_facts(snapshot, copies.first.temporary),
    )


def _verified_manifest(source: Engine, manifest: Manifest, copies: _PartialCopies,
                       checks: tuple[CopyCheck, ...]) -> Manifest:
    """Judge the hidden copies' checks; the manifest records the outcome under final names."""
    failed = [(copy, check) for copy, check in zip(copies.copies, checks) if not check.ok]
    if failed and all(check.sha256 == manifest.sha256 for check in checks):
        # Every copy holds exactly the bytes read from the source: the source is damaged.
        raise source_damaged(source.label, failed[0][1].reason, source.investigate_damage)
    if failed:
        copy, check = failed[0]
        raise BackupError(
            f"The copy written to backup folder {copy.directory} did not read back as "
            f"written ({check.reason}): suspect that disk. No backup was kept.",
            directory=str(copy.directory), reason="copy_damaged",
        )
    final_checks = [replace(check, path=str(copy.final)) for copy, check in zip(copies.copies, checks)]
    result = VerificationResult(manifest.id, True, _now_text(), tuple(final_checks))
    return replace(manifest, verification=_verification_record(result))


def _backup_from(manifest: Manifest, copies: _PartialCopies) -> Backup:
    verified = bool(manifest.verification and manifest.verification.get("verified"))
    return Backup(
        id=manifest.id,
        database_name=manifest.database_name,
        copies=tuple(copy.final for copy in copies.copies),
        manifest_paths=tuple(manifest_path(copy.final) for copy in copies.copies),
        manifest=manifest,
        status="verified" if verified else "unverified",
    )


def _now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- verifying ------------------------------------------------------------------------


def verify_backup(backup: Backup, *, record: bool = True, target=None) -> VerificationResult:
    """Check every copy now: SHA-256, quick_check, exact row counts and schema fingerprint.

    The hash read and the SQLite checks of every copy run in parallel threads (hashlib
    and sqlite3 release the GIL). With `record`, the outcome is written into each
    manifest, so list_backups can show it without reading gigabytes.
    """
    checked_at = _now_text()
    if backup.manifest is None:
        checks = tuple(
            CopyCheck(str(path), False, "no manifest: nothing to verify this copy against")
            for path in backup.copies
        )
        return VerificationResult(backup.id, False, checked_at, checks)
    checks = _check_copies(_copy_reader(backup.manifest, target), backup.copies, backup.manifest)
    missing = [path for path in backup.manifest.copies if Path(path) not in backup.copies]
    checks += tuple(CopyCheck(path, False, "copy is missing") for path in missing)
    verified = bool(checks) and all(check.ok for check in checks)
    result = VerificationResult(backup.id, verified, checked_at, checks)
    if record:
        _record_verification(backup, result)
    return result


def _copy_reader(manifest: Manifest, target) -> Engine:
    """The engine that reads this backup's copies: the target's own when given (a PostgreSQL
    copy is read by restoring it on the target's server), else the manifest's engine's."""
    if target is not None:
        return engine_for(target)
    return engine_for(manifest.source, manifest.engine)


def _check_copies(reader: Engine, paths: tuple[Path, ...], manifest: Manifest) -> tuple[CopyCheck, ...]:
    """Three independent reads per copy, all in parallel: its SHA-256, its integrity check
    (SQLite's quick_check, the slowest: about 2.4 s per GB) and its row counts + fingerprint."""
    if not paths:
        return ()
    with ThreadPoolExecutor(max_workers=min(12, 3 * len(paths))) as pool:
        quick_checks = [pool.submit(_quick_check_part, reader, path) for path in paths]
        return _finish_checks(reader, pool, paths, manifest, quick_checks)


def _finish_checks(reader: Engine, pool, paths, manifest: Manifest, quick_checks: list[Future], *,
                   hashed: Path | None = None, described: Path | None = None) -> tuple[CopyCheck, ...]:
    """Hash and content checks next to the running quick_checks.

    `hashed` was already read back and hashed after it was written, and `described` is
    the copy the manifest's counts and fingerprint were read from: checking either
    again would read the same bytes from the same page cache, and prove nothing more.
    """
    def hash_part(path: Path):
        if path == hashed:
            return _done((manifest.size_bytes, manifest.sha256, None))
        return pool.submit(_hash_part, path)

    def content_part(path: Path):
        return _done([]) if path == described else pool.submit(_content_part, reader, path, manifest)

    hashes = [hash_part(path) for path in paths]
    contents = [content_part(path) for path in paths]
    parts = [(h.result(), c.result(), k.result()) for h, c, k in zip(hashes, quick_checks, contents)]
    return tuple(_combine(reader, path, manifest, *part) for path, part in zip(paths, parts))


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def _hash_part(path: Path) -> tuple[int | None, str | None, str | None]:
    """(size, sha256, problem) of a copy, read without following a symlink."""
    try:
        size, sha256 = sha256_of_file(path)
    except OSError as exc:
        problem = "is a symbolic link or not a regular file: refused" if exc.errno in (
            errno.ELOOP, errno.EINVAL) else f"cannot be read ({exc.strerror})"
        return None, None, problem
    return size, sha256, None


def _is_regular_file(path: Path) -> bool:
    """lstat before SQLite opens a path: SQLite itself would follow a symlink."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _quick_check_part(reader: Engine, path: Path) -> str | None:
    if not _is_regular_file(path):
        return None  # the hash part says why
    try:
        return reader.check_backup_copy(path)
    except CutoverError as exc:
        return f"cannot be opened as a database: {exc.message}"


def _content_part(reader: Engine, path: Path, manifest: Manifest) -> list[str]:
    if not _is_regular_file(path):
        return []
    try:
        return content_problems(reader.read_backup_copy(path), manifest)
    except CutoverError as exc:
        return [f"cannot be opened as a database: {exc.message}"]


def content_problems(snapshot, manifest: Manifest) -> list[str]:
    problems = []
    counts = snapshot.row_counts()
    if counts != manifest.row_counts:
        differing = sorted(set(counts) | set(manifest.row_counts))
        described = [
            f"{table}: {counts.get(table)} instead of {manifest.row_counts.get(table)}"
            for table in differing if counts.get(table) != manifest.row_counts.get(table)
        ]
        problems.append("row counts differ from the manifest (" + "; ".join(described) + ")")
    if snapshot.schema.fingerprint() != manifest.schema_fingerprint:
        problems.append("schema fingerprint differs from the manifest")
    return problems


def _combine(reader: Engine, path: Path, manifest: Manifest, hashed, quick_check, content) -> CopyCheck:
    size, sha256, read_problem = hashed
    if read_problem:
        problems = [read_problem]
    elif quick_check != "ok":
        # Counts read from damaged pages mean nothing; the damage is the reason.
        problems = [f"{reader.copy_check_name}: {(quick_check or '').splitlines()[0]}"]
    else:
        problems = content
    if sha256 is not None and sha256 != manifest.sha256:
        problems = [
            f"SHA-256 {sha256[:12]}... differs from the manifest's {manifest.sha256[:12]}... "
            f"(the file changed after the backup; {size:,} bytes, manifest says "
            f"{manifest.size_bytes:,})", *problems,
        ]
    reason = "; ".join(problems) or "ok"
    return CopyCheck(str(path), not problems, reason, sha256, quick_check)


def _verification_record(result: VerificationResult) -> dict:
    return {
        "verified": result.verified,
        "checked_at": result.checked_at,
        "copies": [{"path": c.path, "ok": c.ok, "reason": c.reason} for c in result.copies],
    }


def _record_verification(backup: Backup, result: VerificationResult) -> None:
    content = replace(backup.manifest, verification=_verification_record(result)).to_json()
    for path in backup.manifest_paths:
        try:
            write_file_atomically(path, content, overwrite=True)
        except OSError:
            pass  # a read-only backup folder still verifies; it just cannot remember it


# --- finding backups ------------------------------------------------------------------


@dataclass
class _Found:
    copies: list[Path] = field(default_factory=list)
    manifests: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def list_backups(backup_dirs: Iterable, database) -> list[Backup]:
    """Every backup of the database file `database` in the folders, newest first (cheap:
    no hashing).

    A backup belongs to `database` when its manifest says it was taken from that file
    (belongs_to), not because its name matches: another database of the same file name
    may share a folder. Hidden partial files are ignored; symlinks and non-files are
    refused (listed as problems, never opened); copies no readable manifest claims are
    listed as not attributed ("unverifiable" when no manifest is beside them).
    """
    database = _catalogued(database)
    found = _collect(_existing_folders(backup_dirs), database.backup_name)
    backups = [_assemble(database, backup_id, item) for backup_id, item in found.items()]
    return sorted((b for b in backups if b is not None), key=lambda b: _id_order(b.id), reverse=True)


def find_backup(backup_dirs: Iterable, database, backup_id) -> Backup:
    """`database`'s backup with that id; the id is checked before any file is touched."""
    check_backup_id(backup_id)
    database = _catalogued(database)
    folders = _existing_folders(backup_dirs)
    found = _collect(folders, database.backup_name, only_id=backup_id)
    backup = _assemble(database, backup_id, found[backup_id]) if backup_id in found else None
    if backup is None:
        where = ", ".join(str(folder) for folder in folders) or "no existing backup folder"
        raise NotFound(f"No backup {backup_id} of {database.label} in {where}.", backup_id=backup_id)
    return backup


def target_file(target):
    """The file a SQLite target is (restore still works on files): an engine is taken at its
    location; a path is taken as it is."""
    return target.location if isinstance(target, Engine) else target


def _catalogued(database) -> Engine:
    """The target's engine (a SQLite file's path is taken as one); the name its backups are
    filed under is checked, because every copy is named after it."""
    if isinstance(database, Engine):
        check_database_name(database.backup_name)
        return database
    if not isinstance(database, (str, os.PathLike)):
        raise UsageError(f"{database!r} is not a database file's path.", database=repr(database))
    check_database_name(Path(database).name)  # before the path is touched at all
    return engine_for(Path(os.path.abspath(database)))


def belongs_to(manifest: Manifest, database) -> bool:
    """Was this backup taken from `database` (an engine, or a SQLite file's path)? Asked of
    the target's engine (by path and real path for a file, never by name alone)."""
    engine = engine_for(database)
    return manifest.engine == engine.name and engine.is_source_of(manifest.source, manifest.source_realpath)


def _existing_folders(backup_dirs: Iterable) -> list[Path]:
    folders = []
    for configured in backup_dirs:
        folder = Path(os.path.abspath(configured))
        if folder.is_dir() and not any(same_file(folder, known) for known in folders):
            folders.append(folder)
    return folders


def _collect(folders: list[Path], database_name: str, only_id: str | None = None) -> dict:
    pattern = re.compile(
        re.escape(copy_name(database_name, "")) + r"(?P<id>" + BACKUP_ID.pattern
        + r")(?P<manifest>\.json)?\Z"
    )
    found: dict[str, _Found] = {}
    for folder in folders:
        for entry in _entries(folder):
            match = pattern.match(entry.name)
            if not match or (only_id and match["id"] != only_id):
                continue
            item = found.setdefault(match["id"], _Found())
            path = folder / entry.name
            if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                item.problems.append(f"{path} is a symbolic link or not a regular file: ignored")
            elif match["manifest"]:
                item.manifests.append(path)
            else:
                item.copies.append(path)
    return found


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        return list(os.scandir(folder))
    except OSError as exc:
        raise BackupError(f"Backup folder {folder} cannot be listed ({exc.strerror}).",
                          directory=str(folder), reason="unreadable") from None


def _assemble(database: Engine, backup_id: str, item: _Found) -> Backup | None:
    """`database`'s part of the files found under this id, or None when it has none.

    A copy and a manifest belong to whoever the manifest beside the copy names; a copy
    whose own manifest is missing or unreadable, to whoever a readable manifest lists it
    among its copies. What nobody can be shown to own is listed, not attributed.
    """
    readable, unreadable = _read_manifests(item, database.backup_name, backup_id)

    def owner(copy: Path) -> bool | None:
        beside = manifest_path(copy)
        if beside in readable:
            return belongs_to(readable[beside], database)
        claims = {belongs_to(m, database) for m in readable.values() if str(copy) in m.copies}
        return claims.pop() if len(claims) == 1 else None

    def owned_by(verdict: bool | None) -> _Found:
        return _Found(
            copies=[copy for copy in item.copies if owner(copy) is verdict],
            manifests=[path for path in item.manifests if owner(path.with_suffix("")) is verdict],
            problems=list(item.problems) + [unreadable[path] for path in item.manifests
                                            if path in unreadable and owner(path.with_suffix("")) is verdict])

    own, unknown = owned_by(True), owned_by(None)
    if own.manifests:
        if unknown.copies:
            own.problems.append(
                f"{', '.join(map(str, unknown.copies))}: no manifest says which database this was "
                "taken from; it is not counted as part of this backup and is left alone")
        return _backup_of(database.backup_name, backup_id, own, [readable[p] for p in own.manifests if p in readable])
    if unknown.copies or unknown.manifests or unknown.problems:  # a planted symlink is shown too
        unknown.problems.append(
            "no readable manifest says which database this was taken from (another database "
            f"named {database.backup_name} may share the folder): it is listed, never pruned")
        return replace(_backup_of(database.backup_name, backup_id, unknown, []), attributed=False)
    return None


def _read_manifests(item: _Found, database_name: str, backup_id: str):
    """({path: manifest} of the readable ones, {path: problem} of the others)."""
    readable, unreadable = {}, {}
    for path in item.manifests:
        manifest, problem = _read_manifest(path, database_name, backup_id)
        if problem:
            unreadable[path] = problem
        else:
            readable[path] = manifest
    return readable, unreadable


def _backup_of(database_name: str, backup_id: str, item: _Found, manifests: list[Manifest]) -> Backup:
    problems = list(item.problems)
    manifest = manifests[0] if manifests else None
    if any(other.sha256 != manifest.sha256 for other in manifests[1:]):
        problems.append("the manifests of this backup disagree about its SHA-256")
    problems += _presence_problems(item, manifest)
    status = _status(manifest, manifests, problems, item)
    return Backup(backup_id, database_name, tuple(item.copies), tuple(item.manifests),
                  manifest, status, tuple(problems))


def _read_manifest(path: Path, database_name: str, backup_id: str):
    try:
        fd = open_regular_file(path)
        with os.fdopen(fd, "rb") as file:
            manifest = Manifest.from_dict(json.loads(file.read(MAX_MANIFEST_BYTES)))
    except (OSError, ValueError) as exc:
        return None, f"{path} cannot be used as a manifest ({exc})"
    if manifest.id != backup_id or manifest.database_name != database_name:
        return None, f"{path} describes another backup ({manifest.database_name} {manifest.id})"
    return manifest, None


def _presence_problems(item: _Found, manifest: Manifest | None) -> list[str]:
    if manifest is None:
        return []
    problems = []
    with_manifest = {path.with_suffix("") for path in item.manifests}
    for copy in item.copies:
        if copy not in with_manifest:
            problems.append(f"{copy} has no manifest beside it")
        if copy.stat().st_size != manifest.size_bytes:
            problems.append(f"{copy} is {copy.stat().st_size:,} bytes, not {manifest.size_bytes:,}")
    for path in item.manifests:
        if path.with_suffix("") not in item.copies:
            problems.append(f"{path.with_suffix('')} is missing (its manifest is there)")
    if len(item.copies) < len(manifest.copies):
        problems.append(f"{len(item.copies)} of {len(manifest.copies)} copies found")
    return problems


def _status(manifest, manifests, problems, item: _Found) -> str:
    if manifest is None:
        return "unverifiable" if item.copies else "incomplete"
    if problems:
        return "incomplete"
    outcomes = [m.verification for m in manifests]
    if any(outcome is None for outcome in outcomes):
        return "unverified"
    return "verified" if all(outcome.get("verified") is True for outcome in outcomes) else "failed"


# --- retention ------------------------------------------------------------------------


def plan_pruning(
    backups: Iterable[Backup],
    *,
    keep_days: int = 30,
    protected_ids: Iterable[str] = (),
    now: datetime | None = None,
) -> list[Backup]:
    """Backups older than keep_days, except the newest verified one, protected ones and
    those not attributed to the database (they may be another database's)."""
    ordered = sorted(backups, key=lambda backup: _id_order(backup.id), reverse=True)
    newest_verified = next((backup.id for backup in ordered if backup.verified), None)
    keep = set(protected_ids) | {newest_verified}
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=keep_days)
    return [backup for backup in ordered
            if backup.attributed and backup.id not in keep and backup.created < cutoff]


def prune(
    backup_dirs: Iterable,
    database,
    *,
    keep_days: int = 30,
    protected_ids: Iterable[str] = (),
    now: datetime | None = None,
) -> list[Backup]:
    """Delete what plan_pruning selects among `database`'s own backups (copies, then
    manifests); returns what was deleted."""
    backup_dirs = list(backup_dirs)
    doomed = plan_pruning(
        list_backups(backup_dirs, database),
        keep_days=keep_days, protected_ids=protected_ids, now=now,
    )
    for backup in doomed:
        delete_backup(backup, backup_dirs)
    return doomed


def delete_backup(backup: Backup, backup_dirs: Iterable) -> list[Path]:
    """Remove a backup's copies, then its manifests; only regular files inside the folders."""
    folders = _existing_folders(backup_dirs)
    removed = []
    for path in [*backup.copies, *backup.manifest_paths]:
        in_a_folder = any(same_file(path.parent, folder) for folder in folders)
        if in_a_folder and _is_regular_file(path) and remove_if_present(path):
            removed.append(path)
    for folder in {path.parent for path in removed}:
        fsync_directory(folder)
    return removed

