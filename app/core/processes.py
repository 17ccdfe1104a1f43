"""Is the application still running? Answered from /proc, without extra dependencies.

Two independent signals, because each misses cases the other catches:
- a command line matching one of the operator's patterns (the app may be idle, with no
  database file open right now);
- a process holding the database file, its -wal or its -journal open (catches a worker,
  a cron job or an sqlite3 shell nobody configured a pattern for).

Our own process and its ancestors are never reported: the dashboard, the `flask cutover`
command and the shell that started them are not "the application". Without root, /proc
only shows other users' command lines, not their open files: run restores as root (or as
the application's user) for the file check to see everything.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from app.core.engines import engine_for

PROC = Path("/proc")
SIDE_FILE_SUFFIXES = ("", "-wal", "-journal", "-shm")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    cmdline: str  # arguments joined by spaces, as `ps -o args` shows them
    reason: str = ""  # what matched: 'pattern "..."' or 'holds /path'

    def to_dict(self) -> dict:
        return asdict(self)


def find_processes(patterns: list[str]) -> list[ProcessInfo]:
    """Processes whose command line contains one of `patterns` (plain substrings)."""
    wanted = [pattern for pattern in patterns if pattern]
    if not wanted:
        return []
    found = []
    for pid in _other_pids():
        cmdline = read_cmdline(pid)
        pattern = next((p for p in wanted if p in cmdline), None)
        if pattern is not None:
            found.append(ProcessInfo(pid, cmdline, f'command line contains "{pattern}"'))
    return found


def processes_holding(path) -> list[ProcessInfo]:
    """Processes with the database file (or its -wal/-journal/-shm) open."""
    path = Path(os.path.abspath(path))
    targets = _file_identities(path)
    # A file replaced since a process opened it shows as "/path (deleted)": still held.
    names = {str(path) + suffix for suffix in SIDE_FILE_SUFFIXES}
    found = []
    for pid in _other_pids():
        held = _held_file(pid, targets, names)
        if held is not None:
            found.append(ProcessInfo(pid, read_cmdline(pid), f"holds {held} open"))
    return found


def application_running(target, patterns: list[str]) -> list[ProcessInfo]:
    """Every process that suggests the application is running (holding the target open, or
    matching a pattern), each pid once."""
    by_pid: dict[int, ProcessInfo] = {}
    for info in [*engine_for(target).holders(), *find_processes(patterns)]:
        by_pid.setdefault(info.pid, info)
    return sorted(by_pid.values(), key=lambda info: info.pid)


def read_cmdline(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.rstrip(b"\x00").replace(b"\x00", b" ").decode("utf-8", "replace")


def parent_pid(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may itself contain spaces and parentheses.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1])


def ancestors_and_self() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid and pid not in pids:
        pids.add(pid)
        pid = parent_pid(pid)
    return pids


def _other_pids() -> list[int]:
    excluded = ancestors_and_self()
    try:
        names = os.listdir(PROC)
    except OSError:
        return []
    return sorted(int(name) for name in names if name.isdigit() and int(name) not in excluded)


def _file_identities(path: Path) -> dict[tuple[int, int], str]:
    """(device, inode) -> path for the database and each side file that exists."""
    identities = {}
    for suffix in SIDE_FILE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        identities[(info.st_dev, info.st_ino)] = str(candidate)
    return identities


def _held_file(pid: int, targets: dict[tuple[int, int], str], names: set[str]) -> str | None:
    fd_dir = PROC / str(pid) / "fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return None  # the process ended, or it is another user's and we are not root
    for fd in fds:
        try:
            link = os.readlink(fd_dir / fd)
            info = os.stat(fd_dir / fd)  # follows the magic link to the open file itself
        except OSError:
            continue
        if link.removesuffix(" (deleted)") in names:
            return link
        held = targets.get((info.st_dev, info.st_ino))
        if held is not None:
            return held
    return None
