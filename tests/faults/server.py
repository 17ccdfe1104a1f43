"""A real dashboard server (`python run.py` in a subprocess, gunicorn gthread) and raw-socket
clients for the server fault tests: nothing between the test and the server's sockets."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
PASSWORD = "server-test-password"
TOKEN = "server-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunPy:
    """`python run.py` on its own port, instance folder and state database."""

    def __init__(self, folder: Path, config: Path, extra_env: dict | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.port = folder, free_port()
        env = {**os.environ, "CUTOVER_CONFIG": str(config), "CUTOVER_PORT": str(self.port),
               "CUTOVER_INSTANCE_DIR": str(folder / "instance"), "CUTOVER_ADMIN_PASSWORD": PASSWORD,
               "CUTOVER_SECRET_KEY": "server-test-secret-key", "CUTOVER_API_TOKEN": TOKEN, **(extra_env or {})}
        for name in ("CUTOVER_STATE_DATABASE_URL", "CUTOVER_DEMO_DIR"):
            env.pop(name, None)
        self.log_path = folder / "server.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen([sys.executable, "run.py"], cwd=PROJECT, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        self._wait_until_it_answers()

    def _wait_until_it_answers(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"python run.py exited early:\n{self.log()}")
            try:
                if get(self.port, "/login", timeout=2)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"python run.py did not answer /login:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def request(port: int, raw: bytes, timeout: float = 30.0) -> tuple[int, dict, bytes]:
    """Send one raw HTTP/1.1 request (Connection: close) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def get(port: int, path: str, headers: dict | None = None, timeout: float = 30.0) -> tuple[int, dict, bytes]:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    raw = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n".encode()
    return request(port, raw, timeout)


def api_get(port: int, path: str, timeout: float = 30.0) -> tuple[int, dict, dict]:
    status, headers, body = get(port, path, {"Authorization": f"Bearer {TOKEN}"}, timeout)
    return status, headers, json.loads(body or b"null")


def half_open(port: int, partial: bytes = b"GET /login HT") -> socket.socket:
    """A connection that sends the start of a request line, then nothing more."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(partial)
    return sock


def api_post(port: int, path: str, document: dict | None = None, timeout: float = 30.0) -> tuple[int, dict, dict]:
    body = json.dumps(document or {}).encode()
    raw = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    status, headers, answer = request(port, raw, timeout)
    return status, headers, json.loads(answer or b"null")


def open_stream(port: int, path: str, timeout: float = 30.0) -> tuple[socket.socket, int, dict, bytes]:
    """Start following a live log: (the open socket, status, headers, what came after the head)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Accept: text/event-stream\r\n\r\n").encode())
    received = b""
    while b"\r\n\r\n" not in received:
        data = sock.recv(65536)
        if not data:
            break
        received += data
    head, _, rest = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
    while len(rest) < int(headers.get("content-length", 0)):  # a refusal's whole message
        data = sock.recv(65536)
        if not data:
            break
        rest += data
    return sock, int(lines[0].split()[1]), headers, rest


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed the connection (read until it does, or the socket's timeout)."""
    try:
        while sock.recv(65536):
            pass
    except socket.timeout:
        return False
    except ConnectionResetError:
        pass
    return True


def kept_alive_then_half_open(port: int) -> socket.socket:
    """A connection that gets one whole answer (kept alive), then sends half of its next request."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    sock.sendall(b"GET /login HT")
    return sock
