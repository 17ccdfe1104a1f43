"""The real server (`python run.py`, gunicorn gthread) under abuse: what one instance or one
client does never takes the dashboard away from the others.

Clients are raw sockets, so a test can be the slow or silent client it describes. No timing
is asserted: a request that should be answered is given 30 s, far beyond what it needs, and
before the fixes these requests were not answered at all."""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.faults.run_helpers import write_workspace
from tests.faults.server import (
    TOKEN,
    RunPy,
    api_get,
    api_post,
    closed_by_server,
    get,
    half_open,
    kept_alive_then_half_open,
    open_stream,
    request,
)

pytestmark = pytest.mark.timeout(240)


def control_sockets(*folders: Path) -> list[Path]:
    return sorted(path for folder in folders for path in folder.rglob("*") if path.is_socket())


def test_two_servers_share_no_control_socket_and_one_stopping_leaves_the_other_whole(tmp_path, demo_config):
    """gunicorn's default control socket is one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl or
    ~/.gunicorn/gunicorn.ctl): a second instance took it over and the first one's exit deleted it."""
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    home.mkdir(), runtime.mkdir()
    shared = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    first = RunPy(tmp_path / "first", demo_config, shared)
    try:
        second = RunPy(tmp_path / "second", demo_config, shared)
        try:
            assert control_sockets(home, runtime, first.folder, second.folder) == []
            first.stop()
            assert first.process.returncode is not None
            assert get(second.port, "/login")[0] == 200
            assert control_sockets(home, runtime, second.folder) == []
        finally:
            second.stop()
    finally:
        first.stop()


# --------------------------------------------------------------------------- slow and silent clients

THREADS = 8  # the server's threads: the abuse below is several times as many connections


def test_half_open_connections_beyond_the_thread_count_do_not_stop_the_login_page(tmp_path, demo_config):
    server = RunPy(tmp_path / "server", demo_config,
                   {"CUTOVER_THREADS": str(THREADS), "CUTOVER_REQUEST_HEAD_TIMEOUT": "600",
                    "CUTOVER_REQUEST_BODY_TIMEOUT": "600"})
    silent = []
    try:
        for partial in (b"GET /login HT", b"POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"G"):
            silent += [half_open(server.port, partial) for _ in range(THREADS + 1)]
        silent += [kept_alive_then_half_open(server.port) for _ in range(THREADS + 1)]
        status, _, body = get(server.port, "/login")
        assert status == 200 and b"csrf-token" in body
        assert api_get(server.port, "/api/v1/runs")[0] == 200
    finally:
        for sock in silent:
            sock.close()
        server.stop()


def test_a_silent_connection_is_closed_after_the_head_timeout_and_a_slow_body_gets_408(tmp_path, demo_config):
    server = RunPy(tmp_path / "server", demo_config,
                   {"CUTOVER_REQUEST_HEAD_TIMEOUT": "1", "CUTOVER_REQUEST_BODY_TIMEOUT": "1"})
    try:
        silent = half_open(server.port)
        assert closed_by_server(silent)
        silent.close()

        head = (f"POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Content-Type: application/json\r\nContent-Length: 200\r\nConnection: close\r\n\r\n")
        status, _, body = request(server.port, head.encode() + b'{"environment": "produ')
        assert status == 408, body
        answer = json.loads(body)
        assert answer["error"] == "request_timeout"
        assert "did not arrive within 1 s (CUTOVER_REQUEST_BODY_TIMEOUT)" in answer["message"]
        assert api_get(server.port, "/api/v1/runs")[2] == {"runs": []}  # no run was created
    finally:
        server.stop()


def test_an_oversized_body_gets_413_and_nothing_is_recorded(tmp_path, demo_config):
    server = RunPy(tmp_path / "server", demo_config)
    try:
        body = json.dumps({"environment": "production", "note": "x" * 50_000_000}).encode()
        head = (f"POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(head.encode())
            sender = threading.Thread(target=send_ignoring_errors, args=(sock, body), daemon=True)
            sender.start()
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        status_line, _, rest = answer.partition(b"\r\n")
        assert b" 413 " in status_line, answer[:300]
        document = json.loads(rest.partition(b"\r\n\r\n")[2])
        assert document["error"] == "request_entity_too_large"
        assert "larger than the 1,048,576 bytes" in document["message"] and "CUTOVER_MAX_REQUEST_BYTES" in document["message"]
        assert api_get(server.port, "/api/v1/runs")[2] == {"runs": []}
        assert get(server.port, "/login")[0] == 200
    finally:
        server.stop()


def send_ignoring_errors(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # the server answered 413 and closed: what it read was never acted on


# --------------------------------------------------------------------------- live log viewers

SLEEPING_STEP = """
[checklist]
order = ["wait"]
[checklist.steps.wait]
kind = "command"
argv = ["sleep", "120"]
timeout = 150
"""


@pytest.fixture
def waiting_step(tmp_path):
    """A server whose checklist's only step sleeps: its job's and run's streams stay open."""
    servers = []

    def start(**env):
        database = tmp_path / "production.db"
        database.touch()
        config = write_workspace(tmp_path / "workspace", database, checklist=SLEEPING_STEP)
        server = RunPy(tmp_path / f"server{len(servers)}", config, {k: str(v) for k, v in env.items()})
        run = api_post(server.port, "/api/v1/runs", {"environment": "production"})
        assert run[0] == 201, run
        started = api_post(server.port, f"/api/v1/runs/{run[2]['id']}/steps/wait/start")
        assert started[0] == 202, started
        servers.append((server, run[2]["id"]))
        return server, run[2]["id"], started[2]["job"]["id"]

    yield start
    for server, run_id in servers:
        api_post(server.port, f"/api/v1/runs/{run_id}/steps/wait/cancel")
        server.stop()


def test_live_viewers_beyond_the_cap_per_client_are_refused_clearly_and_pages_still_answer(waiting_step):
    server, run_id, job_id = waiting_step(CUTOVER_MAX_VIEWERS_PER_CLIENT=3, CUTOVER_MAX_VIEWERS=100)
    following = []
    try:
        for path in (f"/api/v1/jobs/{job_id}/events", f"/api/v1/runs/{run_id}/events", f"/api/v1/jobs/{job_id}/events"):
            sock, status, headers, _ = open_stream(server.port, path)
            following.append(sock)
            assert status == 200 and headers["content-type"].startswith("text/event-stream")
        sock, status, headers, rest = open_stream(server.port, f"/api/v1/jobs/{job_id}/events")
        following.append(sock)
        assert status == 503 and headers["retry-after"] == "10"
        assert "already follows 3 live logs" in rest.decode() and "CUTOVER_MAX_VIEWERS_PER_CLIENT" in rest.decode()
        assert get(server.port, "/login")[0] == 200
        assert api_get(server.port, f"/api/v1/runs/{run_id}")[0] == 200

        following.pop(0).close()  # a viewer leaves while its log is quiet: its place is freed
        for _ in range(300):
            sock, status, _, _ = open_stream(server.port, f"/api/v1/runs/{run_id}/events")
            following.append(sock)
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
    finally:
        for sock in following:
            sock.close()


def test_live_viewers_beyond_the_total_cap_are_refused_clearly(waiting_step):
    server, run_id, job_id = waiting_step(CUTOVER_MAX_VIEWERS=2, CUTOVER_MAX_VIEWERS_PER_CLIENT=50)
    following = []
    try:
        for _ in range(2):
            sock, status, _, _ = open_stream(server.port, f"/api/v1/jobs/{job_id}/events")
            following.append(sock)
            assert status == 200
        sock, status, headers, rest = open_stream(server.port, f"/api/v1/runs/{run_id}/events")
        following.append(sock)
        assert status == 503 and headers["retry-after"] == "10"
        assert "2 live logs are being followed" in rest.decode() and "CUTOVER_MAX_VIEWERS=2" in rest.decode()
        assert get(server.port, "/login")[0] == 200
    finally:
        for sock in following:
            sock.close()
