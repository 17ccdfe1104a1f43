"""Serve the app with gunicorn: one process (the run registry and scheduler live in memory),
many threads (each live log viewer holds one).

No client can hold a thread by being slow to send its request. gunicorn's threaded worker
gives a connection a thread as soon as it has sent a byte, and that thread then waits for
the rest of the request with no time limit: 256 connections that sent half a request line
and went silent took every thread, and the dashboard stopped answering. Here the worker's
event loop gathers each request's line and headers itself, without a thread, and closes a
connection that has not sent them within CUTOVER_REQUEST_HEAD_TIMEOUT; a thread gets only
complete heads, and reads the body within CUTOVER_REQUEST_BODY_TIMEOUT (408 after).
"""
from __future__ import annotations

import errno
import gc
import selectors
import socket
import time
from collections import deque
from functools import partial

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import TConn, ThreadWorker
from werkzeug.exceptions import RequestTimeout

HEAD_LIMIT = 1024 * 1024  # bytes gathered at most before a thread parses (gunicorn's own limits refuse more)


class BodyTimedOut(RequestTimeout, TimeoutError):
    """The body did not arrive in time: the app answers 408, gunicorn closes the connection."""


class TimedSocket:
    """A client socket as gunicorn's request parser sees it: first the bytes the event loop
    gathered, then reads that end at a deadline. Everything else is the socket itself."""

    def __init__(self, sock: socket.socket, head_seconds: float):
        self._sock = sock
        self._gathered = bytearray()
        self.start(head_seconds, "CUTOVER_REQUEST_HEAD_TIMEOUT")

    def start(self, seconds: float, setting: str) -> None:
        """Reads from now on end `seconds` from now (`setting` names the limit in the message)."""
        self.deadline, self.allowed, self.setting = time.monotonic() + seconds, seconds, setting

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def gather(self) -> str:
        """Read what has arrived (non-blocking): "head" once a whole request head is here,
        "closed" if the client went away, "more" otherwise."""
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return "closed"
            if not data:
                return "closed"
            self._gathered += data
            if len(self._gathered) >= HEAD_LIMIT:
                break
        if b"\r\n\r\n" in self._gathered or b"\n\n" in self._gathered or len(self._gathered) >= HEAD_LIMIT:
            return "head"
        return "more"

    def recv(self, size: int, flags: int = 0) -> bytes:
        if flags:  # a look at the socket (MSG_PEEK: has the viewer of a live log left?)
            return self._sock.recv(size, flags)
        if self._gathered:
            data = bytes(self._gathered[:size])
            del self._gathered[:size]
            return data
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self.timed_out()
        before = self._sock.gettimeout()
        self._sock.settimeout(remaining if before is None else min(before, remaining))
        try:
            return self._sock.recv(size)
        except socket.timeout:
            raise self.timed_out() from None
        finally:
            self._sock.settimeout(before)

    def timed_out(self) -> BodyTimedOut:
        return BodyTimedOut(f"The request did not arrive within {self.allowed:g} s ({self.setting}); nothing was "
                            "done. Send it again from a faster connection, or raise the limit.")


class CutoverWorker(ThreadWorker):
    """gunicorn's gthread worker, with request heads gathered by the event loop (no thread)
    under a deadline, and request bodies read under another."""

    head_seconds = 10.0  # set from the app's config by server_options
    body_seconds = 30.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.heads = deque()  # connections whose request head is not complete, oldest first

    def accept(self, listener):
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, TimedSocket(client, self.head_seconds), address, listener.getsockname())
        self._await_head(conn)

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection's next request: its head is gathered the same way."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        conn.sock.start(self.head_seconds, "CUTOVER_REQUEST_HEAD_TIMEOUT")
        self._await_head(conn)
        self._on_head_bytes(conn, conn.sock)

    def _await_head(self, conn) -> None:
        conn.sock.setblocking(False)
        conn.timeout = conn.sock.deadline
        self.heads.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_bytes, conn))

    def _on_head_bytes(self, conn, _sock) -> None:
        state = conn.sock.gather()
        if state == "more":
            return
        self.poller.unregister(conn.sock)
        self.heads.remove(conn)
        if state == "closed":
            self.nr_conns -= 1
            conn.close()
            return
        conn.data_ready = True  # the thread must not wait for data: it is here
        conn.sock.setblocking(True)
        self.enqueue_req(conn)

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        while self.heads and self.heads[0].timeout <= now:
            conn = self.heads.popleft()
            try:
                self.poller.unregister(conn.sock)
            except (OSError, KeyError, ValueError):
                pass
            self.nr_conns -= 1
            conn.close()

    def handle_request(self, req, conn):
        conn.sock.start(self.body_seconds, "CUTOVER_REQUEST_BODY_TIMEOUT")  # the head is parsed: now the body
        return super().handle_request(req, conn)


class CutoverServer(BaseApplication):
    def __init__(self, app: Flask, options: dict):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def server_options(app: Flask) -> dict:
    host, port = app.config["CUTOVER_HOST"], app.config["CUTOVER_PORT"]
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {
        "bind": bind,
        "workers": 1,
        "worker_class": worker_class(app),
        "threads": app.config["CUTOVER_THREADS"],
        # Log streams stay open for a whole cutover; gthread's timeout is only a heartbeat.
        "timeout": 120,
        "graceful_timeout": 10,
        "accesslog": "-",
        "loglevel": "info",
        # gunicorn's control socket (for gunicornc, which Cutover does not use) is one path per
        # user: a second dashboard took it over and the first one's exit deleted it.
        "control_socket_disable": True,
        # The monitoring scheduler runs in the worker (where the app lives), exactly once.
        "post_worker_init": lambda worker: worker_ready(app),
    }


def worker_class(app: Flask) -> type:
    """The worker, with this app's request deadlines."""
    return type("CutoverWorker", (CutoverWorker,), {
        "head_seconds": float(app.config["CUTOVER_REQUEST_HEAD_TIMEOUT"]),
        "body_seconds": float(app.config["CUTOVER_REQUEST_BODY_TIMEOUT"]),
    })


def worker_ready(app: Flask) -> None:
    start_scheduler(app)
    # Everything loaded so far lives as long as the process: keep it out of the garbage
    # collector's full passes, which otherwise stopped every thread (pages, live logs) for
    # 50-90 ms each (bench/bench_sse.py).
    gc.freeze()


def start_scheduler(app: Flask) -> None:
    from app.actions.monitoring import MonitorScheduler

    app.extensions["cutover.scheduler"] = MonitorScheduler(app, app.config["CUTOVER_MONITOR_POLL_SECONDS"]).start()


def serve_forever(app: Flask) -> None:
    options = server_options(app)
    compile_templates(app)
    print(f"Cutover is serving on http://{options['bind']}/  (Ctrl+C to stop)", flush=True)
    CutoverServer(app, options).run()


def compile_templates(app: Flask) -> None:
    """Compile every template before the first request: otherwise the first page an operator
    opens pays for compiling each template it uses (about a second on this project's pages)."""
    with app.app_context():
        for name in app.jinja_env.list_templates(extensions=("html",)):
            app.jinja_env.get_template(name)
