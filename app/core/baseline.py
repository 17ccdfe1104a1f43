"""The way back, as the apply checks it: the target must still be the file its backup holds.

A migration is taken back by restoring the backup made before it. A row the application
writes after that backup and before the migration commits is in production but in no
backup: rolling back would silently lose it. So every apply of a plan to a target names
the backup that is its way back and the target's stamp (its engine's `stamp()`) taken
just before that backup began, and refuses, once it holds the write lock, when the file
changed since. The stamp is taken *before* the backup, never after: a write landing
between the two is then seen as a change (a refusal to retry), never hidden.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from app.core.engines import engine_for
from app.core.engines.base import engine_class
from app.core.errors import TargetChanged
from app.core.events import Emit, discard
from app.core.fsutil import sha256_of_file


@dataclass(frozen=True)
class Baseline:
    """The target as the backup `backup_id` holds it.

    `since` says in words when `stamp` was taken ("backup X was taken", "the migration
    committed"); `sha256` is the backup's hash when the backup is a byte copy of the file,
    which can prove a file rewritten by a rolled-back attempt still holds the same bytes;
    `remedy` tells the operator what to do when the target changed."""

    stamp: list
    backup_id: str
    since: str = ""
    sha256: str | None = None
    remedy: str = "Stop whatever writes to it, then take a new backup and migrate again."

    @classmethod
    def of_backup(cls, backup, stamp: list, **words) -> Baseline:
        """The baseline of a verified backup (a core Backup) whose stamp was taken just before it."""
        manifest = backup.manifest
        byte_copy = manifest is not None and engine_class(manifest.engine).holds_target_bytes(manifest.method)
        return cls(stamp, backup.id, sha256=manifest.sha256 if byte_copy else None, **words)

    @property
    def moment(self) -> str:
        return self.since or f"backup {self.backup_id} was taken"


def accept_current_state(path, baseline: Baseline, *, emit: Emit = discard,
                         busy_timeout: float) -> Baseline:
    """The baseline to hold the target to under the write lock; TargetChanged when it changed.

    An earlier attempt that was killed, cancelled or ran out of disk rolled back: its pages
    were written back with their old bytes, so the file is the same but its mtime is new.
    For a byte-copy backup the hashes then prove nothing changed, and the stamp of the file
    as it is now is accepted. Run it before taking the write lock (it may play a journal back).
    """
    engine = engine_for(path)
    if engine.unchanged_since(baseline.stamp):
        return baseline
    if _rolled_back_to_backup(engine, baseline, emit, busy_timeout):
        emit("ok", f"✓ {Path(engine.location).name} was rewritten by a rolled-back attempt; its SHA-256 still equals "
                   f"backup {baseline.backup_id}'s")
        return replace(baseline, stamp=engine.stamp())
    raise changed(engine, baseline)


def refuse_if_changed(path, baseline: Baseline) -> None:
    """Under the write lock: any write since the baseline refuses the apply (nothing changed yet)."""
    engine = engine_for(path)
    if not engine.unchanged_since(baseline.stamp):
        raise changed(engine, baseline)


def changed(target, baseline: Baseline) -> TargetChanged:
    label = engine_for(target).label
    return TargetChanged(
        f"{label} changed after {baseline.moment}: something wrote to it since, and backup "
        f"{baseline.backup_id} does not hold that write, so rolling back to it would lose it. Nothing was "
        f"migrated; the write is kept. {baseline.remedy}",
        path=label, backup=baseline.backup_id)


def _rolled_back_to_backup(engine, baseline: Baseline, emit: Emit, busy_timeout: float) -> bool:
    if baseline.sha256 is None:
        return False  # a WAL database's backup is a rewritten copy: its bytes prove nothing
    engine.settle(busy_timeout=busy_timeout)
    if not engine.may_hold_same_bytes(baseline.stamp):
        return False  # another file, another size, or pages waiting elsewhere
    path = Path(engine.location)
    emit("info", f"{path.name} was touched since backup {baseline.backup_id}: comparing its SHA-256 with "
                 "the backup's")
    return sha256_of_file(path)[1] == baseline.sha256
