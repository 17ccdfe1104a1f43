"""Server-Sent Events: a job's log, replayed from the database then followed live.

Lines are persisted by the worker with a commit-ordered sequence id, which is the SSE `id:`;
a reconnect (`Last-Event-ID`), a second viewer or a reload therefore sees exactly the same
lines, none missing and none twice. The stream ends with an `end` event once the job is over.
"""
from __future__ import annotations

import json
import time
from typing import Iterator

from flask import Response, request, stream_with_context

from app.extensions import db
from app.models import Job
from app.runner import log_lines

POLL_SECONDS = 0.02  # the writer is another process: the database is the channel
KEEPALIVE_SECONDS = 15.0


def resume_point() -> int:
    """Where the client stopped: the Last-Event-ID header, else ?after=, else the start.

    Only ASCII digits that fit SQLite's integer count: str.isdigit() also accepts "²" (which
    int() refuses) and int() refuses more than 4,300 digits, both a 500 before this check."""
    for value in (request.headers.get("Last-Event-ID"), request.args.get("after")):
        if value is not None and value.isascii() and value.isdigit() and len(value) <= 18:
            return int(value)
    return 0


def line_event(line) -> str:
    return f"id: {line.id}\nevent: line\ndata: {json.dumps(line.to_dict(), ensure_ascii=False)}\n\n"


def job_events(job_id: int, after: int) -> Iterator[str]:
    last_sent, quiet_since = after, time.monotonic()
    while True:
        finished = not db.session.get(Job, job_id).active  # read before the lines: none can follow
        lines = log_lines(job_id, after=last_sent)
        db.session.rollback()  # end the read so the next poll sees new commits
        for line in lines:
            yield line_event(line)
            last_sent, quiet_since = line.id, time.monotonic()
        if finished:
            job = db.session.get(Job, job_id)
            yield f"event: end\ndata: {json.dumps({'job': job_id, 'state': job.state})}\n\n"
            return
        if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            yield ": keepalive\n\n"
            quiet_since = time.monotonic()
        time.sleep(POLL_SECONDS)


def job_event_stream(job_id: int) -> Response:
    db.get_or_404(Job, job_id, description=f"No job {job_id}.")
    generator = stream_with_context(job_events(job_id, resume_point()))
    return Response(generator, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def run_event_stream(run_id: int) -> Response:
    """A run's lines from every step, one sequence: replayed, then followed (see app.logbus)."""
    from flask import current_app

    from app.logbus import log_bus
    from app.runs import get_run

    get_run(run_id)
    bus = log_bus(current_app._get_current_object())
    return Response(bus.follow(run_id, resume_point()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
