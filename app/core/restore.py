"""Put a verified backup back in place of a target database (the rollback).

Order of work, and why:
1. Checks that touch nothing: the target path is sane, a copy of the backup verifies
   NOW (SHA-256 against the manifest, quick_check, row counts, fingerprint; a damaged
   copy is skipped in favour of one that verifies), and the application is not running.
2. A safety copy of the current state: raw bytes of the database plus its -wal and
   -journal, even when it is damaged, so the restore itself can be undone.
3. The replacement is written beside the target under a hidden name, with the target's
   owner and mode, hashed while written, switched back to WAL if the source was, fsynced
   and checked again (integrity, counts, fingerprint).
4. The old database is "settled": opened read-write once so SQLite itself rolls back a
   hot journal or checkpoints the -wal into the file. Its content does not change, but
   the main file alone now holds it, so the side files can go without losing anything.
5. Stale -wal/-shm/-journal are removed (a leftover -wal or hot journal would be applied
   to the restored file: "How To Corrupt An SQLite Database" 1.4), then the replacement
   is renamed over the target (atomic), and the folder is fsynced.
6. The restored file is inspected: fingerprint and row counts must equal the manifest.

A kill -9 at any moment leaves the target entirely old (before the rename) or entirely
the backup (after it), never a mix.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from app.core.backup import (
    Backup,
    CopyCheck,
    Manifest,
    Log,
    belongs_to,
    check_free_space,
    content_problems,
    create_backup,
    folder_error,
    id_for,
    target_file,
    verify_backup,
)
from app.core.engines import engine_for
from app.core.engines.base import TargetInUse
from app.core.errors import BackupError, CutoverError, RestoreFailed, RestoreRefused
from app.core.fsutil import (
    copy_and_hash,
    copy_file_durably,
    create_exclusive,
    fsync_directory,
    fsync_file,
    open_regular_file,
    partial_path,
    remove_if_present,
    remove_stale_partials,
)
from app.core.inspect import inspect_database
from app.core.processes import ProcessInfo


AppRunningCheck = Callable[[], Sequence[ProcessInfo]]


@dataclass(frozen=True)
class RestoreResult:
    target: str
    backup_id: str
    copy_used: str
    rejected_copies: tuple[CopyCheck, ...]  # copies that failed verification, and why
    safety_copies: tuple[str, ...]  # the previous database's files, byte for byte
    row_counts: dict
    schema_fingerprint: str
    journal_mode: str
    restored_at: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "backup_id": self.backup_id,
            "copy_used": self.copy_used,
            "rejected_copies": [check.to_dict() for check in self.rejected_copies],
            "safety_copies": list(self.safety_copies),
            "row_counts": dict(self.row_counts),
            "schema_fingerprint": self.schema_fingerprint,
            "journal_mode": self.journal_mode,
            "restored_at": self.restored_at,
            "notes": list(self.notes),
        }


def restore_backup(
    target,
    backup: Backup,
    *,
    safety_dir,
    app_running_check: AppRunningCheck,
    busy_timeout: float = 5.0,
    now: datetime | None = None,
    allow_other_source: bool = False,
    log: Log | None = None,
) -> RestoreResult:
    """Replace `target` with `backup`, or raise RestoreRefused having changed nothing.

    RestoreFailed is raised only if something fails after the swap began; its message
    names the safety copy.
    """
    say = log or (lambda line: None)
    engine = engine_for(target)
    if not engine.target_is_file:
        return _restore_database(engine, backup, safety_dir=Path(safety_dir), app_running_check=app_running_check,
                                 now=now, allow_other_source=allow_other_source, say=say)
    target = Path(os.path.abspath(target_file(target)))
    manifest = _check_request(target, backup, allow_other_source)
    good_copy, rejected = _choose_good_copy(backup, say)
    _refuse_if_running(app_running_check, target)
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    safety = keep_safety_copy(target, Path(safety_dir), moment, manifest.size_bytes)
    say(f"Safety copy of the current database: {', '.join(map(str, safety)) or 'none (no file)'}.")
    replacement = _prepare_replacement(good_copy, manifest, target)
    say("Replacement written beside the target and verified.")
    try:
        _refuse_if_running(app_running_check, target)
        notes = _settle_old_database(target, busy_timeout, safety)
        say("Old database settled (its journal or WAL folded into the file).")
        _swap(replacement, target, safety, say)
    finally:
        remove_if_present(replacement)
    say("Target replaced; checking the restored database against the manifest.")
    snapshot = _check_restored(target, manifest, safety)
    say(f"Restored backup {backup.id} into {target}.")
    return RestoreResult(
        str(target), backup.id, str(good_copy), rejected, tuple(map(str, safety)),
        snapshot.row_counts(), snapshot.schema.fingerprint(), snapshot.facts.journal_mode,
        moment.isoformat(timespec="seconds"), tuple(notes),
    )


def _restore_database(engine, backup: Backup, *, safety_dir: Path, app_running_check: AppRunningCheck,
                      now: datetime | None, allow_other_source: bool, say: Log) -> RestoreResult:
    """The restore of a target that is not a file: the same refusals and safety backup first,
    then the engine puts the copy in place all or nothing (engines/*/restore.py)."""
    manifest = _check_source(backup, engine, allow_other_source)
    good_copy, rejected = _choose_good_copy(backup, say, target=engine)
    _refuse_if_running(app_running_check, engine.label)
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    safety = _safety_backup(engine, safety_dir, moment, say)
    _refuse_if_running(app_running_check, engine.label)
    try:
        engine.replace_with_backup(good_copy, manifest, say=say)
    except RestoreRefused as exc:
        raise RestoreRefused(f"{exc.message} The safety backup {safety.id} is kept.", **exc.details) from None
    say(f"Restored backup {backup.id} into {engine.label}.")
    return RestoreResult(
        engine.label, backup.id, str(good_copy), rejected, tuple(map(str, safety.copies)),
        dict(manifest.row_counts), manifest.schema_fingerprint, "", moment.isoformat(timespec="seconds"))


def _check_source(backup: Backup, engine, allow_other_source: bool) -> Manifest:
    if backup.manifest is None:
        raise _refused(f"Backup {backup.id} has no manifest, so it cannot be verified.")
    if not belongs_to(backup.manifest, engine) and not allow_other_source:
        raise _refused(
            f"Backup {backup.id} was taken from {backup.manifest.source}, not {engine.label}. Restoring "
            "another database's backup here must be asked for explicitly.",
            source=backup.manifest.source, target=engine.label)
    return backup.manifest


def _safety_backup(engine, safety_dir: Path, moment: datetime, say: Log) -> Backup:
    """A verified backup of the database as it is now, the way back from this restore."""
    if not safety_dir.is_dir():
        raise _refused(f"The safety folder {safety_dir} does not exist; create it first.",
                       directory=str(safety_dir))
    try:
        safety = create_backup(engine, [safety_dir], now=moment, log=say)
    except BackupError as exc:
        raise _refused(f"No safety backup of the current database could be made: {exc.message}",
                       **exc.details) from None
    say(f"Safety backup of the current database: {', '.join(map(str, safety.copies))}.")
    return safety


def _refused(message: str, **details) -> RestoreRefused:
    return RestoreRefused(message + " Nothing was changed.", **details)


def _check_request(target: Path, backup: Backup, allow_other_source: bool) -> Manifest:
    if backup.manifest is None:
        raise _refused(f"Backup {backup.id} has no manifest, so it cannot be verified.")
    if os.path.islink(target):
        raise _refused(f"{target} is a symbolic link; configure the database's real path.")
    if os.path.lexists(target) and not stat.S_ISREG(os.lstat(target).st_mode):
        raise _refused(f"{target} is not a regular file.")
    if not target.parent.is_dir():
        raise _refused(f"The folder {target.parent} does not exist.")
    source = Path(backup.manifest.source)
    if not belongs_to(backup.manifest, target) and not allow_other_source:
        raise _refused(
            f"Backup {backup.id} was taken from {source}, not {target}. Restoring another "
            "database's backup here must be asked for explicitly.",
            source=str(source), target=str(target),
        )
    return backup.manifest


def _choose_good_copy(backup: Backup, say: Log, target=None) -> tuple[Path, tuple[CopyCheck, ...]]:
    say(f"Verifying the copies of backup {backup.id}.")
    result = verify_backup(backup, record=True, target=target)
    rejected = tuple(check for check in result.copies if not check.ok)
    for check in rejected:
        say(f"Copy {check.path} rejected: {check.reason}.")
    if not result.good_copies:
        reasons = "; ".join(f"{check.path}: {check.reason}" for check in result.copies)
        raise _refused(
            f"No copy of backup {backup.id} verifies now ({reasons or 'no copy found'}).",
            backup_id=backup.id, copies=[check.to_dict() for check in result.copies],
        )
    chosen = result.good_copies[0]
    say(f"Using copy {chosen}" + (" (another copy failed, see above)." if rejected else "."))
    return chosen, rejected


def _refuse_if_running(app_running_check: AppRunningCheck, target: Path) -> None:
    running = list(app_running_check())
    if running:
        described = "; ".join(f"pid {info.pid} ({info.cmdline[:80]}) {info.reason}".strip()
                              for info in running)
        raise _refused(
            f"The application is still running ({described}). Stop it, then restore {target}.",
            processes=[info.to_dict() for info in running],
        )


# --- safety copy ----------------------------------------------------------------------


def keep_safety_copy(target: Path, safety_dir: Path, moment: datetime, extra: int = 0) -> list[Path]:
    """Byte copies of the target and its -wal/-journal in safety_dir (nothing if no target).

    `extra` is the room the replacement will need beside the target, checked now so
    that a full disk refuses the restore before anything is written.
    """
    suffixes = engine_for(target).safety_side_files
    present = [target.with_name(target.name + suffix) for suffix in suffixes]
    present = [path for path in present if os.path.lexists(path)]
    if not safety_dir.is_dir():
        raise _refused(f"The safety folder {safety_dir} does not exist; create it first.",
                       directory=str(safety_dir))
    try:
        check_free_space([safety_dir], sum(path.stat().st_size for path in present))
        check_free_space([target.parent], extra)
    except BackupError as exc:
        raise _refused(exc.message, **exc.details) from None
    base = _free_safety_name(safety_dir, target.name, moment, suffixes)
    written: list[Path] = []
    try:
        for path in present:
            copy = base.with_name(base.name + path.name[len(target.name):])
            copy_file_durably(path, copy)
            written.append(copy)
    except OSError as exc:
        for copy in written:
            remove_if_present(copy)
        error = folder_error(safety_dir, exc)
        raise _refused(error.message.replace("Backup folder", "Safety folder"), **error.details)
    return written


def _free_safety_name(safety_dir: Path, name: str, moment: datetime, suffixes: tuple[str, ...]) -> Path:
    stamp = id_for(moment)
    for number in range(1, 10_000):
        candidate = safety_dir / f"{name}.pre-restore_{stamp}{'' if number == 1 else f'_{number}'}"
        if not any(os.path.lexists(f"{candidate}{suffix}") for suffix in suffixes):
            return candidate
    raise _refused(f"Too many safety copies named {stamp} in {safety_dir}.")


# --- the replacement file -------------------------------------------------------------


def _prepare_replacement(good_copy: Path, manifest: Manifest, target: Path) -> Path:
    """A verified replacement beside the target, under a hidden name; removed on failure."""
    remove_stale_partials(target.parent, target.name)
    replacement = partial_path(target)
    try:
        _write_replacement(good_copy, manifest, target, replacement)
        if manifest.journal_mode == "wal":
            _enable_wal(replacement)
        fsync_file(replacement)
        problems = _replacement_problems(replacement, manifest)
    except BaseException:
        _remove_with_side_files(replacement)
        raise
    if problems:
        _remove_with_side_files(replacement)
        raise _refused(f"The replacement written from {good_copy} failed its check: {problems}.")
    return replacement


def _write_replacement(good_copy: Path, manifest: Manifest, target: Path, replacement: Path):
    reader = open_regular_file(good_copy)
    try:
        fd = create_exclusive(replacement)
        try:
            _match_owner_and_mode(fd, target)
            size, sha256 = copy_and_hash(reader, [fd])
        finally:
            os.close(fd)
    except OSError as exc:
        raise _refused(f"Could not write the replacement beside {target} ({exc.strerror}).",
                       directory=str(target.parent)) from exc
    finally:
        os.close(reader)
    if sha256 != manifest.sha256:
        raise _refused(f"{good_copy} changed while it was being copied (SHA-256 differs).")


def _match_owner_and_mode(fd: int, target: Path) -> None:
    """The application must be able to open the restored file exactly as it opened the old one."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return  # no previous file: keep 0600
    os.fchmod(fd, stat.S_IMODE(info.st_mode))
    try:
        os.fchown(fd, info.st_uid, info.st_gid)
    except PermissionError:
        pass  # not root: the file stays ours; the mode still matches


def _enable_wal(path: Path) -> None:
    """Backups are stored with a rollback header; the restored file gets WAL back."""
    mode = engine_for(path).set_journal_mode("wal")
    if mode != "wal":
        raise _refused(f"Could not switch the replacement back to WAL mode (got {mode}).")


def _replacement_problems(replacement: Path, manifest: Manifest) -> str:
    check = engine_for(replacement).quick_check_copy()
    if check != "ok":
        return f"quick_check: {check.splitlines()[0]}"
    return "; ".join(content_problems(inspect_database(replacement, deep=False), manifest))


def _remove_with_side_files(path: Path) -> None:
    for suffix in ("", *engine_for(path).side_files):
        remove_if_present(path.with_name(path.name + suffix))


# --- the swap -------------------------------------------------------------------------


def _settle_old_database(target: Path, busy_timeout: float, safety: list[Path]) -> list[str]:
    """Let SQLite fold a hot journal or the -wal into the main file, so it stands alone."""
    if not target.exists():
        return []
    try:
        problem = engine_for(target).fold_side_files(busy_timeout=busy_timeout)
    except TargetInUse:
        raise _refused(
            f"{target} is in use (a connection kept it busy for {busy_timeout:g} s); "
            "close every program using it and try again. Its content was not changed; "
            f"safety copy: {', '.join(map(str, safety))}."
        ) from None
    if problem is not None:
        # A damaged database cannot be settled; the safety copy holds its files as they were.
        return [f"The old database could not be opened ({problem}); its side files were removed "
                "as they were (they are in the safety copy)."]
    return []


def _swap(replacement: Path, target: Path, safety: list[Path], say: Log) -> None:
    try:
        for suffix in engine_for(target).side_files:
            remove_if_present(target.with_name(target.name + suffix))
        fsync_directory(target.parent)
        say("Stale side files removed; renaming the replacement over the target.")
        os.replace(replacement, target)
        fsync_directory(target.parent)
    except OSError as exc:
        raise _failed(target, safety, f"the swap failed ({exc})") from exc


def _check_restored(target: Path, manifest: Manifest, safety: list[Path]):
    try:
        snapshot = inspect_database(target, deep=False)
    except CutoverError as exc:
        raise _failed(target, safety, f"it cannot be read back ({exc.message})") from None
    problems = content_problems(snapshot, manifest)
    if problems:
        raise _failed(target, safety, "; ".join(problems))
    return snapshot


def _failed(target: Path, safety: list[Path], problem: str) -> RestoreFailed:
    kept = ", ".join(map(str, safety)) or "none (there was no database file)"
    return RestoreFailed(
        f"Restoring {target} failed after the swap began: {problem}. The previous database "
        f"is kept byte for byte in the safety copy: {kept}.",
        target=str(target), safety_copies=[str(path) for path in safety],
    )
