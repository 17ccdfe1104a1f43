"""Something keeps writing to production during `cutover migrate` (a cron job, a second instance
that opens the database per request: no process holds it open for the "application stopped"
check to see). Each of its rows lands after the migration's backup and before its apply; the
migration must refuse, never commit a production whose way back lacks those rows, and every
committed row must still be there.

A real writer process, the real CLI in a subprocess, real files; no mocks.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests.faults.helpers import wait_for_line
from tests.faults.run_helpers import REPO, make_items_database, write_workspace

# Opens the database for each write and closes it again, as a per-request web application or a
# cron job does; prints how many rows it committed when told to stop.
PER_REQUEST_WRITER = """
import json, signal, sqlite3, sys, time
path, stop, n = sys.argv[1], [False], 0
signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
while not stop[0]:
    connection = sqlite3.connect(path, timeout=60)
    connection.execute("INSERT INTO items (group_id, n, tag) VALUES (1, ?, 'written late')", (n + 1,))
    connection.commit()
    connection.close()
    n += 1
    if n == 3:
        print("ready", flush=True)
    time.sleep(0.1)
print(json.dumps({"commits": n}), flush=True)
"""


def late_rows(path: Path) -> int:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return connection.execute("SELECT count(*) FROM items WHERE tag = 'written late'").fetchone()[0]


def columns(path: Path) -> list[str]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return [row[1] for row in connection.execute("PRAGMA table_info(items)")]


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_migrate_under_a_per_request_writer_refuses_and_keeps_every_row(tmp_path, journal_mode):
    target = make_items_database(tmp_path / "goals.db", rows=30_000, pad_bytes=300)
    with closing(sqlite3.connect(target)) as connection:
        connection.execute(f"PRAGMA journal_mode = {journal_mode}")
    config = write_workspace(tmp_path / "workspace", target)
    writer = subprocess.Popen([sys.executable, "-c", PER_REQUEST_WRITER, str(target)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for_line(writer, "ready") is not None, writer.stderr.read()
        env = {**os.environ, "CUTOVER_CONFIG": str(config), "CUTOVER_INSTANCE_DIR": str(tmp_path / "instance"),
               "CUTOVER_STATE_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "run", "cutover", "migrate", "production",
                                 "--yes"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    finally:
        writer.send_signal(signal.SIGTERM)
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    commits = json.loads(out.strip().splitlines()[-1])["commits"]

    assert result.returncode == 1, result.stdout + result.stderr
    # Refused either because the writer was caught holding the file open, or, every other time,
    # because the target changed after the backup. Never committed.
    assert ("changed after backup" in result.stderr and "does not hold that write" in result.stderr
            or "The application is still running" in result.stderr), result.stdout + result.stderr
    assert "Migration of production committed" not in result.stdout
    assert "doubled" not in columns(target) and "label" not in columns(target)
    assert late_rows(target) == commits  # not one of the writer's rows was lost
