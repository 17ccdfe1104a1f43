"""Remember inspections until the file changes, so a page over 1 GB databases renders fast.

A snapshot is reused only while the database file and its -wal file keep the same size,
modification time and inode; any write changes one of them.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import TargetUnavailable
from app.core.inspect import inspect_database
from app.core.schema import Snapshot


def file_signature(path: Path) -> tuple:
    parts = []
    for candidate in (path, Path(f"{path}-wal")):
        try:
            stat = os.stat(candidate)
            parts.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
        except OSError:
            parts.append(None)
    return tuple(parts)


@dataclass(frozen=True)
class Inspection:
    """A snapshot of one database, or the reason there is none."""

    path: Path
    snapshot: Snapshot | None = None
    error: TargetUnavailable | None = None

    @property
    def ok(self) -> bool:
        return self.snapshot is not None


class SnapshotCache:
    def __init__(self, busy_timeout: float = 1.0):
        self.busy_timeout = busy_timeout
        self._entries: dict[Path, tuple[tuple, Snapshot]] = {}
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def inspect(self, path: Path, *, refresh: bool = False) -> Inspection:
        path = Path(path)
        with self._lock_for(path):
            signature = file_signature(path)
            cached = self._entries.get(path)
            if cached and cached[0] == signature and not refresh:
                return Inspection(path, snapshot=cached[1])
            try:
                snapshot = inspect_database(path, deep=True, busy_timeout=self.busy_timeout)
            except TargetUnavailable as error:
                self._entries.pop(path, None)
                return Inspection(path, error=error)
            self._entries[path] = (file_signature(path), snapshot)
            return Inspection(path, snapshot=snapshot)

    def _lock_for(self, path: Path) -> threading.Lock:
        # One inspection per file at a time: a second viewer waits for the first result
        # instead of reading the same gigabyte again.
        with self._guard:
            return self._locks.setdefault(path, threading.Lock())
