"""Liveness probes against real things: child processes, sockets, an HTTP server, files."""
from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.core.liveness import (
    LogScan,
    ProbeResult,
    health_url_check,
    liveness_checks,
    log_check,
    port_check,
    probe_health_url,
    process_check,
    scan_log,
)
from app.core.workspace import AppHooks

HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1])
connection.execute("SELECT count(*) FROM t").fetchone()
print("ready", flush=True)
time.sleep(30)
"""


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.kill()
    child.wait()
    if child.stdout is not None:
        child.stdout.close()


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "app.db"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE t (x)")
        connection.commit()
    return path


@pytest.fixture
def sleeper():
    marker = f"fractal-marker-{uuid.uuid4().hex}"
    child = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(30)",
                              marker, "x" * 200])
    time.sleep(0.05)  # the exec has happened once /proc shows the new command line
    yield marker, child
    _stop(child)


@pytest.fixture
def holder(database):
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(database)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().startswith("ready")
    yield child
    _stop(child)


# --- processes -------------------------------------------------------------------------


def _wait_for(predicate, seconds=3.0):
    deadline = time.monotonic() + seconds
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


def test_process_check_passes_for_a_process_matching_a_pattern(sleeper, database):
    marker, child = sleeper

    check = _wait_for(lambda: (c := process_check(database, [marker])).passed and c)

    assert check.name == "application_process" and check.passed
    assert "1 application process running (0 holding" in check.summary
    [line] = check.evidence
    assert line.startswith(f"pid {child.pid} (command line contains")
    command = line.split("): ", 1)[1]
    assert len(command) == 120 and command.endswith("…")


def test_process_check_passes_for_a_process_holding_the_database(holder, database):
    check = process_check(database, [f"no-such-app-{uuid.uuid4().hex}"])

    assert check.passed
    assert "(1 holding the database open)" in check.summary
    assert check.evidence[0].startswith(f"pid {holder.pid} (holds {database} open): ")


def test_process_check_fails_when_nothing_runs(database):
    marker = f"fractal-marker-{uuid.uuid4().hex}"

    check = process_check(database, [marker])

    assert not check.passed and check.evidence == ()
    assert "no application process running" in check.summary and marker in check.summary


def test_process_check_fails_after_the_process_ends(sleeper, database):
    marker, child = sleeper
    _stop(child)

    assert not process_check(database, [marker]).passed


# --- port ------------------------------------------------------------------------------


def test_port_check_passes_on_a_listening_socket():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        check = port_check(port)

    assert check.name == "application_port" and check.passed
    assert check.summary == f"127.0.0.1:{port} accepts connections"


def test_port_check_fails_on_a_closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: refused

        check = port_check(port)

    assert not check.passed
    assert "connection refused" in check.summary


def test_port_check_fails_on_an_invalid_port():
    check = port_check(70000)

    assert not check.passed and "cannot connect to 127.0.0.1:70000" in check.summary


# --- health URL ------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(1)
        status = {"/health": 200, "/slow": 200, "/broken": 500}.get(self.path, 404)
        body = b"ok" if status == 200 else b"no"
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (the timeout test)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_health_url_passes_on_200(server):
    probe = probe_health_url(f"{server}/health", timeout=5)

    assert isinstance(probe, ProbeResult)
    assert probe.status == 200 and probe.latency_ms is not None and probe.latency_ms >= 0
    assert probe.check.name == "health_url" and probe.check.passed
    assert probe.check.evidence[0] == "status 200"
    assert probe.check.evidence[1].startswith("latency ")
    assert health_url_check(f"{server}/health").passed


def test_health_url_fails_on_500(server):
    probe = probe_health_url(f"{server}/broken", timeout=5)

    assert not probe.check.passed and probe.status == 500
    assert "HTTP 500" in probe.check.summary
    assert probe.check.evidence[0] == "status 500"


def test_health_url_fails_on_timeout(server):
    started = time.monotonic()
    probe = probe_health_url(f"{server}/slow", timeout=0.2)

    assert time.monotonic() - started < 0.9
    assert not probe.check.passed and probe.status is None and probe.latency_ms is None
    assert "no response within 0.2 s" in probe.check.summary


def test_health_url_fails_on_connection_refused():
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]

        check = health_url_check(f"http://127.0.0.1:{port}/health", timeout=2)

    assert not check.passed and "connection refused" in check.summary


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/x", "http://", "", "http://[::1"])
def test_health_url_fails_on_an_invalid_url(url):
    check = health_url_check(url, timeout=1)

    assert not check.passed and "not a valid http(s) URL" in check.summary


def test_health_url_fails_on_an_unknown_host():
    check = health_url_check("http://no-such-host.invalid/health", timeout=2)

    assert not check.passed and check.summary.startswith("http://no-such-host.invalid/health: ")


# --- log -------------------------------------------------------------------------------

PATTERNS = ("ERROR", "Traceback")


def _append(path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as log:
        log.write(text)


def test_scan_log_reads_only_new_lines(tmp_path):
    log = tmp_path / "app.log"
    _append(log, "INFO start\nERROR one\n")

    first = scan_log(log, PATTERNS)
    _append(log, "INFO fine\nERROR two\nTraceback (most recent call last):\n")
    second = scan_log(log, PATTERNS, offset=first.offset_after)
    third = scan_log(log, PATTERNS, offset=second.offset_after)

    assert first == LogScan(offset_after=len("INFO start\nERROR one\n"),
                            error_lines=("ERROR one",), matched=1)
    assert second.error_lines == ("ERROR two", "Traceback (most recent call last):")
    assert second.offset_after == log.stat().st_size and not second.rotated
    assert third.error_lines == () and third.matched == 0
    assert third.offset_after == second.offset_after


def test_scan_log_is_case_sensitive_and_keeps_twenty_truncated_lines(tmp_path):
    log = tmp_path / "app.log"
    _append(log, "error lowercase\n" + "".join(f"ERROR {i} {'y' * 400}\n" for i in range(25)))

    scan = scan_log(log, PATTERNS)

    assert scan.matched == 25 and len(scan.error_lines) == 20
    assert scan.error_lines[0].startswith("ERROR 0 ")
    assert all(len(line) == 300 for line in scan.error_lines)


def test_scan_log_waits_for_a_partial_last_line(tmp_path):
    log = tmp_path / "app.log"
    _append(log, "INFO a\nERROR half")

    first = scan_log(log, PATTERNS)
    _append(log, " done\n")
    second = scan_log(log, PATTERNS, offset=first.offset_after)

    assert first.offset_after == len("INFO a\n") and first.matched == 0
    assert second.error_lines == ("ERROR half done",)
    assert second.offset_after == log.stat().st_size


def test_scan_log_restarts_after_rotation(tmp_path):
    log = tmp_path / "app.log"
    _append(log, "INFO " + "z" * 500 + "\nERROR old\n")
    first = scan_log(log, PATTERNS)
    replacement = tmp_path / "new.log"
    _append(replacement, "ERROR new\n")
    os.replace(replacement, log)

    second = scan_log(log, PATTERNS, offset=first.offset_after)

    assert first.error_lines == ("ERROR old",)
    assert second.rotated and second.error_lines == ("ERROR new",)
    assert second.offset_after == len("ERROR new\n")


def test_scan_log_reads_at_most_max_bytes_and_continues(tmp_path):
    log = tmp_path / "app.log"
    _append(log, "ERROR 1\nERROR 2\nERROR 3\n")  # 8 bytes a line

    first = scan_log(log, PATTERNS, max_bytes=20)
    second = scan_log(log, PATTERNS, offset=first.offset_after, max_bytes=20)

    assert first.error_lines == ("ERROR 1", "ERROR 2") and first.offset_after == 16
    assert second.error_lines == ("ERROR 3",) and second.offset_after == 24


def test_scan_log_reports_a_missing_file_or_a_directory(tmp_path):
    missing = scan_log(tmp_path / "nope.log", PATTERNS, offset=42)
    directory = scan_log(tmp_path, PATTERNS)

    assert missing.error == f"log file {tmp_path / 'nope.log'} does not exist"
    assert missing.offset_after == 42 and missing.matched == 0
    assert directory.error is not None and "directory" in directory.error


def test_log_check_fails_on_new_errors_and_passes_when_quiet(tmp_path):
    log = tmp_path / "app.log"
    _append(log, "INFO start\nERROR boom\n")

    failing, offset = log_check(log, PATTERNS, 0)
    quiet, offset_after = log_check(log, PATTERNS, offset)
    missing, kept = log_check(tmp_path / "nope.log", PATTERNS, 7)

    assert failing.name == "application_log" and not failing.passed
    assert failing.evidence == ("ERROR boom",) and "1 new error line" in failing.summary
    assert quiet.passed and offset_after == offset == log.stat().st_size
    assert not missing.passed and "does not exist" in missing.summary and kept == 7


# --- everything ------------------------------------------------------------------------


def test_liveness_checks_runs_only_what_is_configured(tmp_path, database, server, sleeper):
    marker, _ = sleeper
    log = tmp_path / "app.log"
    _append(log, "INFO up\n")
    hooks = AppHooks(health_url=f"{server}/health", process_patterns=(marker,),
                     log_file=log, port=int(server.rsplit(":", 1)[1]))

    checks, measurements = _wait_for(
        lambda: (r := liveness_checks(hooks, database))[0][0].passed and r)
    nothing, empty = liveness_checks(AppHooks(), database, log_offset=5)

    assert [c.name for c in checks] == ["application_process", "application_port",
                                        "health_url", "application_log"]
    assert all(c.passed for c in checks)
    assert measurements["health_latency_ms"] is not None
    assert measurements["log_offset"] == log.stat().st_size
    assert nothing == [] and empty == {"health_latency_ms": None, "log_offset": 5}
