"""Helpers for the backup, restore and fault tests: real files, real child processes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

from app.core.inspect import inspect_database

REPO = Path(__file__).resolve().parents[2]

# Child processes import app.core through the real package: app/__init__.py loads Flask only
# when create_app is asked for, so a child that needs only the core starts fast.
CHILD_PRELUDE = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
"""

SCHEMA = """
CREATE TABLE goals (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES goals(id),
                    name TEXT NOT NULL, description TEXT);
CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, tag TEXT NOT NULL, pad BLOB);
CREATE INDEX items_n ON items (n);
CREATE TABLE counter (v INTEGER NOT NULL);
INSERT INTO counter VALUES (0);
"""


def make_database(path: Path, *, rows: int = 200, pad_bytes: int = 100,
                  journal_mode: str = "delete") -> Path:
    """A multi-page database: `rows` goals and `rows` items with `pad_bytes` blobs."""
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute(f"PRAGMA journal_mode = {journal_mode}")
        connection.executescript(SCHEMA)
        connection.execute("BEGIN")
        connection.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?) "
            "INSERT INTO goals SELECT x, nullif(x / 10, 0), 'goal ' || x, hex(randomblob(20)) FROM c",
            (rows,),
        )
        connection.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?) "
            "INSERT INTO items (n, tag, pad) SELECT -x, 'seed', randomblob(?) FROM c",
            (rows, pad_bytes),
        )
        connection.execute("COMMIT")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def file_state(path: Path) -> tuple[str, int]:
    """(SHA-256, mtime) of a file: proof that it was not touched."""
    return sha256(path), Path(path).stat().st_mtime_ns


def logical_state(path: Path) -> tuple[str, dict]:
    """(schema fingerprint, row counts) of a database."""
    snapshot = inspect_database(path, deep=False)
    return snapshot.schema.fingerprint(), snapshot.row_counts()


def recovered_state(path: Path) -> tuple[str, dict, str]:
    """What the application would see next: copy the file and its -wal/-journal aside,
    let SQLite recover them read-write there, then (fingerprint, counts, quick_check)."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / path.name
        for suffix in ("", "-wal", "-journal"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                shutil.copyfile(side, Path(scratch) / side.name)
        with closing(sqlite3.connect(copy, isolation_level=None)) as connection:
            check = connection.execute("PRAGMA quick_check").fetchone()[0]
        fingerprint, counts = logical_state(copy)
    return fingerprint, counts, check


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        value = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([value ^ 0xFF]))


def run_child(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD_PRELUDE + code, *args],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )


def start_child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_PRELUDE + code, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )


def wait_for_line(child: subprocess.Popen, prefix: str) -> str | None:
    """Read the child's stdout until a line starts with `prefix`; None if it exits first."""
    for line in child.stdout:
        if line.startswith(prefix):
            return line
    return None


def kill_hard(child: subprocess.Popen) -> None:
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    child.stderr.close()


# A writer that behaves like the application: one small transaction every few ms, each
# inserting (n, 'a') and (n, 'b') and setting counter = n. On SIGTERM it prints how long
# its longest commit waited, as JSON.
WRITER = """
import json, signal, sqlite3, sys, time
path, journal_mode = sys.argv[1], sys.argv[2]
stop = False
def finish(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, finish)
connection = sqlite3.connect(path, isolation_level=None, timeout=60)
connection.execute(f"PRAGMA journal_mode = {journal_mode}")
n, longest = 0, 0.0
while not stop:
    n += 1
    started = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO items (n, tag) VALUES (?, 'a')", (n,))
    connection.execute("INSERT INTO items (n, tag) VALUES (?, 'b')", (n,))
    connection.execute("UPDATE counter SET v = ?", (n,))
    connection.execute("COMMIT")
    longest = max(longest, time.perf_counter() - started)
    if n == 20:
        print("ready", flush=True)
    time.sleep(0.003)
connection.close()
print(json.dumps({"commits": n, "longest_stall_s": round(longest, 4)}), flush=True)
"""


def start_writer(path: Path, journal_mode: str) -> subprocess.Popen:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), journal_mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert wait_for_line(writer, "ready") is not None, writer.stderr.read()
    return writer


def stop_writer(writer: subprocess.Popen) -> dict:
    writer.send_signal(signal.SIGTERM)
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def assert_consistent_prefix(path: Path) -> int:
    """Every writer transaction is whole (both rows), none is missing below the counter."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counter = connection.execute("SELECT v FROM counter").fetchone()[0]
        groups = connection.execute(
            "SELECT n, group_concat(tag, '') FROM (SELECT n, tag FROM items WHERE n > 0 "
            "ORDER BY n, tag) GROUP BY n"
        ).fetchall()
    assert [n for n, _ in groups] == list(range(1, counter + 1))
    assert {tags for _, tags in groups} <= {"ab"}
    return counter


def mount_tmpfs(folder: Path, *options: str) -> bool:
    """Mount a small tmpfs on `folder` (root only); False when this system does not allow it."""
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)],
        capture_output=True,
    )
    return result.returncode == 0


def unmount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], check=True, capture_output=True)


def elapsed(since: float) -> float:
    return time.perf_counter() - since
