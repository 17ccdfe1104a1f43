"""Finding the application from /proc, with real child processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing

import pytest

from app.core.processes import (
    ProcessInfo,
    application_running,
    find_processes,
    parent_pid,
    processes_holding,
    read_cmdline,
)
from tests.faults.helpers import kill_hard, make_database, wait_for_line

# A stand-in for the application: opens the database, reads it, then idles.
HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1])
connection.execute("SELECT count(*) FROM goals").fetchone()
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path):
    database = make_database(tmp_path / "goals.db", rows=10)
    marker = f"cutover-test-app-{uuid.uuid4().hex}"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database), marker],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert wait_for_line(child, "ready") is not None
    yield database, marker, child
    kill_hard(child)


def test_a_process_holding_the_database_is_found(holder):
    database, _, child = holder

    found = processes_holding(database)

    assert [info.pid for info in found] == [child.pid]
    assert found[0].reason == f"holds {database} open"
    assert found[0].cmdline.startswith(sys.executable + " -c ")


def test_a_process_still_holding_a_replaced_file_is_found(holder, tmp_path):
    database, _, child = holder
    replacement = make_database(tmp_path / "new.db", rows=1)
    os.replace(replacement, database)

    found = processes_holding(database)

    assert [(info.pid, info.reason) for info in found] == [(child.pid, f"holds {database} (deleted) open")]


def test_a_process_holding_only_the_wal_is_found(tmp_path):
    database = make_database(tmp_path / "goals.db", rows=10, journal_mode="wal")
    wal = tmp_path / "goals.db-wal"
    wal.write_bytes(b"")
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; f = open(sys.argv[1]); print('ready', flush=True); time.sleep(60)",
         str(wal)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert wait_for_line(child, "ready") is not None
        assert [(info.pid, info.reason) for info in processes_holding(database)] == [
            (child.pid, f"holds {wal} open")]
    finally:
        kill_hard(child)


def test_command_line_patterns_find_the_process_but_never_ourselves(holder):
    database, marker, child = holder

    found = find_processes([marker])

    assert [(info.pid, info.reason) for info in found] == [(child.pid, f'command line contains "{marker}"')]
    assert marker in found[0].cmdline
    ours = read_cmdline(os.getpid())
    assert os.getpid() not in [info.pid for info in find_processes([ours])]
    assert os.getppid() not in [info.pid for info in find_processes([ours])]
    assert find_processes([]) == find_processes([""]) == []


def test_application_running_reports_each_process_once(holder):
    database, marker, child = holder

    running = application_running(database, [marker, "no-such-program-anywhere"])

    assert [info.pid for info in running] == [child.pid]
    kill_hard(child)
    assert application_running(database, [marker]) == []


def test_our_own_connections_do_not_count(tmp_path):
    database = make_database(tmp_path / "goals.db", rows=10)
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("SELECT 1 FROM goals").fetchone()
        assert processes_holding(database) == []


def test_a_missing_file_is_held_by_nobody(tmp_path):
    assert processes_holding(tmp_path / "absent.db") == []


def test_parent_pid_and_to_dict():
    assert parent_pid(os.getpid()) == os.getppid()
    assert parent_pid(2**22 + 12345) is None
    assert ProcessInfo(1, "init", "x").to_dict() == {"pid": 1, "cmdline": "init", "reason": "x"}
