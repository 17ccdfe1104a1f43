"""Server-Sent Events: a job's or a run's log, replayed from the database then followed live.

Lines are persisted by the worker with a commit-ordered sequence id, which is the SSE `id:`;
a reconnect (`Last-Event-ID`), a second viewer or a reload therefore sees exactly the same
lines, none missing and none twice. The stream ends with an `end` event once the job is over.
"""
from __future__ import annotations

import socket

from flask import Response, current_app, request

from app.extensions import db
from app.jobs.logbus import log_bus
from app.models import Job


def resume_point() -> int:
    """Where the client stopped: the Last-Event-ID header, else ?after=, else the start.

    Only ASCII digits that fit SQLite's integer count: str.isdigit() also accepts "²" (which
    int() refuses) and int() refuses more than 4,300 digits, both a 500 before this check."""
    for value in (request.headers.get("Last-Event-ID"), request.args.get("after")):
        if value is not None and value.isascii() and value.isdigit() and len(value) <= 18:
            return int(value)
    return 0


def job_event_stream(job_id: int) -> Response:
    """A job's lines: replayed, then followed by the one reader every live log shares (app.jobs.logbus)."""
    db.get_or_404(Job, job_id, description=f"No job {job_id}.")
    return _live_log(lambda bus, after, left: bus.follow_job(job_id, after, left))


def run_event_stream(run_id: int) -> Response:
    """A run's lines from every step, one sequence: replayed, then followed (see app.jobs.logbus)."""
    from app.checklist.progress import get_run

    get_run(run_id)
    return _live_log(lambda bus, after, left: bus.follow(run_id, after, left))


def _live_log(follow) -> Response:
    """A viewer's place is taken before anything streams (refused: 503 with Retry-After) and
    given back when the server closes the response, however the viewer left."""
    bus = log_bus(current_app._get_current_object())
    release = bus.admit(request.remote_addr)
    try:
        events = follow(bus, resume_point(), viewer_left(request.environ.get("gunicorn.socket")))
        response = Response(events, mimetype="text/event-stream",
                            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    except BaseException:
        release()
        raise
    response.call_on_close(release)
    return response


def viewer_left(sock):
    """A test of whether the viewer closed its connection, for the quiet moments of a stream
    (nothing is written then, so nothing else would tell): a peek that finds the end of the
    stream. Without the server's socket (the test client), viewers are never seen leaving."""
    if sock is None:
        return lambda: False

    def left() -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    return left
