"""Telling whether a SQLite target changed: one stamp of the file and its -wal, one identity.

Any write changes the size, modification time or inode of the database file or of its
-wal file, so comparing two stamps says whether somebody wrote in between. The identity
(device, inode) says whether a path still names the very file that was opened.
"""
from __future__ import annotations

import os


def file_signature(path) -> tuple:
    """(inode, size, mtime_ns) of the file and of its -wal, None for one that is missing."""
    # Plain strings: this runs on every cached page view, where building Paths shows.
    name = os.fspath(path)
    parts = []
    for candidate in (name, name + "-wal"):
        try:
            stat = os.stat(candidate)
            parts.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
        except OSError:
            parts.append(None)
    return tuple(parts)


def file_stamp(path) -> list:
    """file_signature as JSON lists, to be recorded and compared later: any write changes it."""
    return [list(part) if part else None for part in file_signature(path)]


def same_file_state(path, recorded: list) -> bool:
    """Is `path` still as `recorded` (a file_stamp)? An empty WAL that did not exist then was
    created by opening the database in WAL mode, not by a write."""
    now = file_stamp(path)
    if now == recorded:
        return True
    (main_now, wal_now), (main_then, wal_then) = now, recorded
    return main_now == main_then and wal_then is None and wal_now is not None and wal_now[1] == 0


def file_identity(path) -> tuple[int, int] | None:
    """(device, inode) of the file `path` names now, None when it names none."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def may_hold_same_bytes(path, recorded: list) -> bool:
    """Could the file still hold the bytes it held at `recorded`, though it was touched?

    Only the same file (inode) with the same size and no pages waiting in a -wal can; the
    caller then compares hashes. A rolled-back write rewrites pages with their old bytes."""
    (main_now, wal_now), main_then = file_stamp(path), recorded[0]
    if main_now is None or main_then is None or main_now[:2] != main_then[:2]:
        return False
    return not (wal_now and wal_now[1])
