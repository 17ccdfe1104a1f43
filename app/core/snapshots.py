"""Remember inspections until the file changes, so a page over 1 GB databases renders fast.

A snapshot is reused only while the database file and its -wal file keep the same size,
modification time and inode; any write changes one of them. The whole-file checks
(quick_check, foreign_key_check) are treated apart: in rollback-journal mode they hold a
read lock for the entire pass, stalling the application's writers, so a file that merely
changed gets a fresh schema and fresh row counts while the last check result is carried
forward, with its own time, until it is older than `deep_interval` or a refresh is asked.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from app.core.engines import Engine, engine_for
from app.core.errors import TargetUnavailable
from app.core.inspect import inspect_database
from app.core.schema import Snapshot


def file_stamp(path) -> list:
    """The target's stamp now (JSON-able), to be recorded and compared later: any write changes it."""
    return engine_for(path).stamp()


def same_file_state(path, recorded: list) -> bool:
    """Is the target still as `recorded` (a file_stamp) describes it?"""
    return engine_for(path).unchanged_since(recorded)


@dataclass(frozen=True)
class Inspection:
    """A snapshot of one database, or the reason there is none."""

    path: Path
    snapshot: Snapshot | None = None
    error: TargetUnavailable | None = None
    checked_at: str | None = None  # when quick_check and foreign_key_check last ran
    checks_skipped: bool = False  # the caller asked for schema and counts only

    @property
    def ok(self) -> bool:
        return self.snapshot is not None

    @property
    def checks_are_current(self) -> bool:
        return self.ok and self.checked_at == self.snapshot.inspected_at

    @property
    def checks_pending(self) -> bool:
        """Schema and counts are here; quick_check and foreign_key_check are still running."""
        return self.ok and self.checked_at is None and not self.checks_skipped

    @property
    def checks_not_run(self) -> bool:
        """Schema and counts are here; quick_check and foreign_key_check were not asked for."""
        return self.ok and self.checked_at is None and self.checks_skipped

    @property
    def checks_state(self) -> str | None:
        """"done", "pending" (running in the background), "not_run"; None without a snapshot."""
        if not self.ok:
            return None
        if self.checked_at is not None:
            return "done"
        return "not_run" if self.checks_skipped else "pending"


class SnapshotCache:
    def __init__(self, busy_timeout: float = 1.0, deep_interval: float = 300.0):
        self.busy_timeout = busy_timeout
        self.deep_interval = deep_interval
        self._entries: dict[Path, tuple[list, Inspection]] = {}
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()
        self._checking: set[Path] = set()
        self._engines: dict[Path, Engine] = {}  # each target's engine, picked once
        self._held = threading.local()  # stamps held for one request of this thread

    def inspect(self, target, *, refresh: bool = False, wait_for_checks: bool = True,
                run_checks: bool = True) -> Inspection:
        """With wait_for_checks=False a file never checked gets its schema and counts at once
        (a fraction of a second even for gigabytes) and the whole-file checks run in the
        background; the next call after they finish sees them. With run_checks=False they
        are not run at all (a one-shot command that did not ask for them; recent results
        are still carried forward). `target` is an engine (or a SQLite file's path);
        inspections are remembered by its location."""
        engine = engine_for(target)
        path = engine.location
        with self._guard:
            self._engines.setdefault(path, engine)
        with self._lock_for(path):
            cached = self._entries.get(path)
            if cached and cached[0] == self._stamp(path) and not refresh:
                return cached[1]
            previous = cached[1] if cached else None
            skip_checks = not run_checks and not refresh and engine.slow_deep_checks
            if skip_checks and not self._recent_checks(previous):
                # Not remembered: a later caller that wants the checks must not get this.
                return self._inspect_shallow(path)
            if wait_for_checks or refresh or not engine.slow_deep_checks or self._recent_checks(previous):
                inspection = self._inspect_now(path, previous, refresh)
            else:
                inspection = self._inspect_shallow_and_check_later(path)
            self._remember(path, inspection)
            return inspection

    def _remember(self, path: Path, inspection: Inspection) -> None:
        if inspection.ok:
            self._entries[path] = (self._stamp(path), inspection)
        else:
            self._entries.pop(path, None)

    def _inspect_shallow_and_check_later(self, path: Path) -> Inspection:
        inspection = self._inspect_shallow(path, checks_skipped=False)
        if not inspection.ok:
            return inspection
        with self._guard:
            if path not in self._checking:
                self._checking.add(path)
                threading.Thread(target=self._check_in_background, args=(path,), daemon=True).start()
        return inspection

    def _inspect_shallow(self, path: Path, *, checks_skipped: bool = True) -> Inspection:
        """Schema and counts only: no quick_check, no foreign_key_check."""
        try:
            snapshot = inspect_database(self._engine(path), deep=False, busy_timeout=self.busy_timeout)
        except TargetUnavailable as error:
            return Inspection(path, error=error)
        return Inspection(path, snapshot=snapshot, checks_skipped=checks_skipped)

    def _check_in_background(self, path: Path) -> None:
        try:
            signature = self._stamp(path)
            try:
                snapshot = inspect_database(self._engine(path), deep=True, busy_timeout=self.busy_timeout)
            except TargetUnavailable as error:
                inspection = Inspection(path, error=error)
            else:
                inspection = Inspection(path, snapshot=snapshot, checked_at=snapshot.inspected_at)
            with self._lock_for(path):
                # A file that changed meanwhile is inspected again by the next viewer.
                if self._stamp(path) == signature:
                    self._remember(path, inspection)
        finally:
            with self._guard:
                self._checking.discard(path)

    def _inspect_now(self, path: Path, previous: Inspection | None, refresh: bool) -> Inspection:
        deep = refresh or not self._recent_checks(previous)
        try:
            snapshot = inspect_database(self._engine(path), deep=deep, busy_timeout=self.busy_timeout)
        except TargetUnavailable as error:
            return Inspection(path, error=error)
        if deep:
            return Inspection(path, snapshot=snapshot, checked_at=snapshot.inspected_at)
        return Inspection(path, snapshot=snapshot.carrying_checks_from(previous.snapshot),
                          checked_at=previous.checked_at)

    def _recent_checks(self, previous: Inspection | None) -> bool:
        if previous is None or not previous.ok or previous.checked_at is None:
            return False
        age = datetime.now(timezone.utc) - datetime.fromisoformat(previous.checked_at)
        return age.total_seconds() < self.deep_interval

    @contextmanager
    def stamps_held(self) -> Iterator[None]:
        """Inside, each target's stamp is read once per thread: one page asks whether a target
        changed several times (its card, the comparison, the next action), and on a server each
        ask is a connection and a query. Everything inside then describes one moment; the next
        request reads the stamps again."""
        self._held.stamps = {}
        try:
            yield
        finally:
            self._held.stamps = None

    def _stamp(self, path: Path) -> list:
        held = getattr(self._held, "stamps", None)
        if held is None:
            return self._engine(path).stamp()
        if path not in held:
            held[path] = self._engine(path).stamp()
        return held[path]

    def _engine(self, path: Path) -> Engine:
        engine = self._engines.get(path)
        if engine is None:
            engine = self._engines.setdefault(path, engine_for(path))
        return engine

    def _lock_for(self, path: Path) -> threading.Lock:
        # One inspection per file at a time: a second viewer waits for the first result
        # instead of reading the same gigabyte again.
        with self._guard:
            return self._locks.setdefault(path, threading.Lock())
