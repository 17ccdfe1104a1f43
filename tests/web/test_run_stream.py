"""A run's live log as Server-Sent Events (/api/v1/runs/ID/events) and the bus behind it.

Steps are real command steps run by real worker processes; the stream is compared with
what the database holds: every line once, in order, with one sequence across the steps.
"""
import json
import sys
import threading
import time

import pytest
from sqlalchemy import select

from app.extensions import db
from app.jobs import logbus
from app.jobs.logbus import LogBus
from app.jobs.runner import create_job, run_job
from app.models import LogLine
from tests.web.test_runs_api import checklist_app, command, step_of, wait_until_not_running  # noqa: F401

XSS = "<img src=x onerror=alert(1)>"
TALK_LINES = 40
# The stream tests follow real processes; a stream that never ends must fail, not stall the suite.
pytestmark = pytest.mark.timeout(60)


def talk(lines: int = TALK_LINES, pause: float = 0.04) -> dict:
    return command(f"import time\nfor i in range({lines}):\n    print('talk', i, flush=True)\n    time.sleep({pause})")


FIRST = command(f"print('first 0', flush=True)\nprint({XSS!r}, flush=True)\nprint('naïve ✓ \"quoted\"', flush=True)")


@pytest.fixture
def stream_app(checklist_app):
    """Build an app whose checklist is the given steps; returns (app, client)."""

    def build(steps: dict):
        app = checklist_app(steps)
        return app, app.test_client()

    return build


def parse_block(block: str) -> dict:
    event = {"event": "message"}
    for field in block.split("\n"):
        name, _, value = field.partition(": ")
        event[name or "comment"] = value
    return event


def events_of(response):
    """Events as the server sends them, one at a time (comments are kept as keepalives)."""
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            if block.strip():
                yield parse_block(block)


def line_events(events) -> list[dict]:
    return [{**json.loads(e["data"]), "id": int(e["id"])} for e in events if e["event"] == "line"]


def stored(app, run_id: int) -> list[LogLine]:
    with app.app_context():
        lines = list(db.session.scalars(select(LogLine).where(LogLine.run_id == run_id).order_by(LogLine.id)))
        db.session.expunge_all()
        return lines


def open_stream(client, auth: dict, run_id: int, headers: dict | None = None, **extra):
    response = client.get(f"/api/v1/runs/{run_id}/events", headers={**auth, **(headers or {})}, buffered=False,
                          **extra)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/event-stream"
    return response


def new_run(client, headers) -> int:
    response = client.post("/api/v1/runs", headers=headers, json={"environment": "production"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def run_step(client, headers, run_id: int, step_id: str) -> None:
    assert client.post(f"/api/v1/runs/{run_id}/steps/{step_id}/start", headers=headers).status_code == 202
    assert wait_until_not_running(client, headers, run_id, step_id)["state"] == "passed"


def test_a_finished_step_is_replayed_as_json_then_ended(stream_app, api_headers):
    app, client = stream_app({"first": FIRST})
    run_id = new_run(client, api_headers)
    run_step(client, api_headers, run_id, "first")

    response = open_stream(client, api_headers, run_id)
    assert response.headers["Cache-Control"] == "no-store"
    events = list(events_of(response))
    assert events[0] == {"event": "message", "retry": "2000"}
    lines = line_events(events)
    rows = stored(app, run_id)
    assert [line["id"] for line in lines] == [row.id for row in rows] and len(rows) == 5
    for line, row in zip(lines, rows):
        assert set(line) == {"id", "seq", "run", "job", "step", "level", "time", "text"}
        assert (line["seq"], line["run"], line["job"], line["step"], line["level"], line["text"]) == (
            row.id, run_id, row.job_id, "first", row.level, row.text)
        assert line["time"].endswith("Z")
    assert [line["text"] for line in lines[1:4]] == ["first 0", XSS, 'naïve ✓ "quoted"']
    # The markup arrives as JSON text, untouched: escaping it is the page's job.
    assert f'"text": "{XSS}"' in "".join(e.get("data", "") for e in events)
    assert events[-1]["event"] == "end"
    assert json.loads(events[-1]["data"]) == {"run": run_id, "last": rows[-1].id}
    assert sum(e["event"] == "end" for e in events) == 1


def test_a_live_step_is_followed_every_line_once_in_order_after_the_replay(stream_app, api_headers):
    app, client = stream_app({"first": FIRST, "talk": talk()})
    run_id = new_run(client, api_headers)
    run_step(client, api_headers, run_id, "first")
    replayed = [row.id for row in stored(app, run_id)]

    assert client.post(f"/api/v1/runs/{run_id}/steps/talk/start", headers=api_headers).status_code == 202
    events, seen_live = [], None
    for event in events_of(open_stream(client, api_headers, run_id)):
        events.append(event)
        if event["event"] == "line" and json.loads(event["data"])["text"] == "talk 0" and seen_live is None:
            # Received while the step still runs and before its later lines exist: followed, not replayed.
            document = client.get(f"/api/v1/runs/{run_id}", headers=api_headers).get_json()
            seen_live = (step_of(document, "talk")["state"], len(stored(app, run_id)))
    assert seen_live is not None and seen_live[0] == "running"
    assert seen_live[1] < len(replayed) + TALK_LINES

    lines = line_events(events)
    rows = stored(app, run_id)
    assert [line["id"] for line in lines] == [row.id for row in rows]  # every stored line, once, in order
    assert [line["id"] for line in lines[:len(replayed)]] == replayed
    # Both steps' lines share one strictly increasing sequence.
    assert {line["step"] for line in lines} == {"first", "talk"}
    assert all(a["id"] < b["id"] for a, b in zip(lines, lines[1:]))
    talked = [line["text"] for line in lines if line["step"] == "talk"]
    assert talked[1:TALK_LINES + 1] == [f"talk {i}" for i in range(TALK_LINES)]
    assert events[-1]["event"] == "end" and json.loads(events[-1]["data"])["last"] == rows[-1].id
    assert step_of(client.get(f"/api/v1/runs/{run_id}", headers=api_headers).get_json(), "talk")["state"] == "passed"


def test_a_viewer_that_reconnects_mid_step_misses_and_repeats_nothing(stream_app, api_headers):
    app, client = stream_app({"first": FIRST, "talk": talk()})
    run_id = new_run(client, api_headers)
    run_step(client, api_headers, run_id, "first")
    assert client.post(f"/api/v1/runs/{run_id}/steps/talk/start", headers=api_headers).status_code == 202

    received = []
    response = open_stream(client, api_headers, run_id)
    for event in events_of(response):
        if event["event"] == "line":
            received.append(int(event["id"]))
            if json.loads(event["data"])["text"] == "talk 9":
                break
    response.close()  # the browser lost the connection mid-step
    cut = received[-1]
    # EventSource reconnects with Last-Event-ID; a page reload uses ?after=.
    again = line_events(events_of(open_stream(client, api_headers, run_id, headers={"Last-Event-ID": str(cut)})))
    rows = [row.id for row in stored(app, run_id)]
    assert received + [line["id"] for line in again] == rows

    middle = rows[len(rows) // 2]
    by_query = line_events(events_of(open_stream(client, api_headers, run_id, query_string={"after": middle})))
    assert [line["id"] for line in by_query] == [row for row in rows if row > middle]
    assert not logbus.log_bus(app)._feeds  # every viewer that left was let go


def test_resume_points_of_a_finished_run(stream_app, api_headers):
    app, client = stream_app({"first": FIRST, "talk": talk(6, 0)})
    run_id = new_run(client, api_headers)
    run_step(client, api_headers, run_id, "first")
    run_step(client, api_headers, run_id, "talk")
    rows = [row.id for row in stored(app, run_id)]

    def ids(**extra):
        events = list(events_of(open_stream(client, api_headers, run_id, **extra)))
        assert events[-1]["event"] == "end"
        return [line["id"] for line in line_events(events)]

    assert ids() == rows
    for cut in (rows[0], rows[4], rows[-2]):
        assert ids(headers={"Last-Event-ID": str(cut)}) == [r for r in rows if r > cut]
        assert ids(query_string={"after": str(cut)}) == [r for r in rows if r > cut]
    # The header wins over the query (it is where the browser's EventSource actually stopped).
    assert ids(headers={"Last-Event-ID": str(rows[5])}, query_string={"after": str(rows[1])}) == rows[6:]
    assert ids(headers={"Last-Event-ID": str(rows[-1])}) == []
    assert ids(headers={"Last-Event-ID": "99999999"}) == []
    # What is not a sequence number is no resume point: the whole log again, never an error.
    for bad in ("", "abc", "-3", "1.5", "²", "٣", "9" * 5000, "99999999999999999999999999"):
        assert ids(headers={"Last-Event-ID": bad}) in (rows, []), bad
        assert ids(query_string={"after": bad}) in (rows, []), bad


def test_keepalive_comments_while_a_step_is_quiet(stream_app, api_headers, monkeypatch):
    monkeypatch.setattr(logbus, "KEEPALIVE_SECONDS", 0.2)
    app, client = stream_app({"quiet": command("import time\nprint('start', flush=True)\ntime.sleep(1.5)\nprint('done')")})
    run_id = new_run(client, api_headers)
    assert client.post(f"/api/v1/runs/{run_id}/steps/quiet/start", headers=api_headers).status_code == 202
    events = list(events_of(open_stream(client, api_headers, run_id)))
    kinds = [e.get("comment") or e["event"] for e in events]
    start = next(i for i, e in enumerate(events) if e["event"] == "line" and '"start"' in e["data"])
    done = next(i for i, e in enumerate(events) if e["event"] == "line" and '"done"' in e["data"])
    assert "keepalive" in kinds[start:done]
    assert kinds[-1] == "end"
    assert [line["id"] for line in line_events(events)] == [row.id for row in stored(app, run_id)]


def test_the_stream_needs_authentication_and_an_existing_run(stream_app, api_headers):
    app, client = stream_app({"first": FIRST})
    run_id = new_run(client, api_headers)
    for headers in ({}, {"Accept": "text/event-stream"}, {"Authorization": "Bearer nope"},
                    {"Accept": "text/event-stream", "Last-Event-ID": "0"}):
        response = client.get(f"/api/v1/runs/{run_id}/events", headers=headers)
        assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"
        assert b"event:" not in response.get_data()
    missing = client.get("/api/v1/runs/4242/events", headers=api_headers)
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    assert not logbus.log_bus(app)._feeds


def outside_job(app, text: str) -> int:
    """A job that is not part of the run (a backup, a verify) logs a line: ids are global."""
    with app.app_context():
        job = run_job(create_job("command", "development", "admin",
                                 {"argv": [sys.executable, "-c", f"print({text!r})"]}).id)
        return job.id


@pytest.mark.timeout(20)
def test_a_run_whose_lines_are_not_the_newest_is_still_replayed_and_ended(stream_app, api_headers):
    app, client = stream_app({"first": FIRST, "talk": talk(20, 0.03)})
    run_id = new_run(client, api_headers)
    run_step(client, api_headers, run_id, "first")
    outside_job(app, "another environment's job")
    rows = [row.id for row in stored(app, run_id)]
    for viewer in range(3):  # each viewer after the last one left: a fresh feed every time
        events = list(events_of(open_stream(client, api_headers, run_id)))
        assert [line["id"] for line in line_events(events)] == rows, viewer
        assert events[-1]["event"] == "end"

    # The same while a step runs: the viewer joins with other jobs' lines above the run's.
    assert client.post(f"/api/v1/runs/{run_id}/steps/talk/start", headers=api_headers).status_code == 202
    events = list(events_of(open_stream(client, api_headers, run_id)))
    assert [line["id"] for line in line_events(events)] == [row.id for row in stored(app, run_id)]
    assert events[-1]["event"] == "end"


# --------------------------------------------------------------------------- the bus itself


def follow_ids(bus: LogBus, run_id: int, after: int, into: list, slow_chunks: int = 0) -> None:
    for number, chunk in enumerate(bus.follow(run_id, after)):
        for block in chunk.split("\n\n"):
            event = parse_block(block) if block.strip() else None
            if event and event["event"] == "line":
                into.append(int(event["id"]))
            elif event and event["event"] == "end":
                into.append("end")
        if number < slow_chunks:
            time.sleep(0.2)  # a slow viewer: falls behind the in-memory buffer


def bursts(count: int, size: int, pause: float) -> dict:
    """Lines in bursts: the bus hands them out in chunks of several lines."""
    return command(f"import time\nfor b in range({count}):\n    for i in range({size}):\n"
                   f"        print('burst', b, 'line', i, flush=True)\n    time.sleep({pause})")


@pytest.mark.parametrize("buffer_events,replay_batch", [(20_000, 5_000), (4, 3)], ids=["defaults", "tiny-buffer"])
def test_viewers_joining_while_lines_are_written_all_get_the_same_sequence(
        stream_app, api_headers, monkeypatch, buffer_events, replay_batch):
    monkeypatch.setattr(logbus, "BUFFER_EVENTS", buffer_events)
    monkeypatch.setattr(logbus, "REPLAY_BATCH", replay_batch)
    app, client = stream_app({"first": FIRST, "talk": bursts(8, 20, 0.1)})
    run_id = new_run(client, api_headers)
    run_step(client, api_headers, run_id, "first")
    first_rows = [row.id for row in stored(app, run_id)]
    bus = LogBus(app)
    assert client.post(f"/api/v1/runs/{run_id}/steps/talk/start", headers=api_headers).status_code == 202

    viewers = []  # (after, received, thread)

    def join(after: int = 0, slow_chunks: int = 0) -> None:
        received: list = []
        thread = threading.Thread(target=follow_ids, args=(bus, run_id, after, received, slow_chunks), daemon=True)
        thread.start()
        viewers.append((after, received, thread))

    join()
    join(after=first_rows[-2])
    deadline = time.monotonic() + 20
    while len(stored(app, run_id)) < len(first_rows) + 3:  # the worker is writing
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for moment in range(14):  # join at staggered moments while the worker writes
        time.sleep(0.07 if moment % 3 else 0.003)
        join(slow_chunks=4 if moment == 2 else 0)  # one slow viewer: falls behind the buffer
        # Resume from a line just written: often inside a chunk the bus already holds.
        written = [row.id for row in stored(app, run_id)]
        join(after=written[-2 - moment % 3])
    for _, _, thread in viewers:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a viewer never got its end event"

    rows = [row.id for row in stored(app, run_id)]
    assert len(rows) > len(first_rows) + 160
    for after, received, _ in viewers:
        assert received == [r for r in rows if r > after] + ["end"], after
    assert not bus._feeds  # every viewer unsubscribed


# --------------------------------------------------------------------------- job streams share the bus


def test_the_viewers_of_a_job_share_the_one_reader_with_the_viewers_of_its_run(stream_app, api_headers):
    """A job's live log is a feed of the same bus as runs' (no viewer polls the database on
    its own): every viewer of the job and of its run gets every line once, in order."""
    app, client = stream_app({"first": FIRST, "talk": talk(30, 0.03)})
    run_id = new_run(client, api_headers)
    run_step(client, api_headers, run_id, "first")
    started = client.post(f"/api/v1/runs/{run_id}/steps/talk/start", headers=api_headers)
    assert started.status_code == 202
    job_id = started.get_json()["job"]["id"]
    bus = logbus.log_bus(app)

    received = {}

    def view(name: str, path: str) -> None:
        response = app.test_client().get(path, headers=api_headers, buffered=False)
        received[name] = list(events_of(response))
        response.close()

    paths = {f"job {i}": f"/api/v1/jobs/{job_id}/events" for i in range(3)}
    paths["run"] = f"/api/v1/runs/{run_id}/events"
    threads = [threading.Thread(target=view, args=item, daemon=True) for item in paths.items()]
    [thread.start() for thread in threads]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with bus._lock:
            feeds = {topic: feed.viewers for topic, feed in bus._feeds.items()}
        if feeds == {("job", job_id): 3, ("run", run_id): 1}:
            break
        time.sleep(0.005)
    assert feeds == {("job", job_id): 3, ("run", run_id): 1}
    [thread.join(timeout=30) for thread in threads]

    with app.app_context():
        job_lines = [(row.id, row.text) for row in db.session.scalars(
            select(LogLine).where(LogLine.job_id == job_id).order_by(LogLine.id))]
    for i in range(3):
        events = received[f"job {i}"]
        assert [(line["id"], line["text"]) for line in line_events(events)] == job_lines
        assert set(line_events(events)[0]) == {"id", "seq", "run", "job", "step", "level", "time", "text"}
        assert json.loads(events[-1]["data"]) == {"job": job_id, "state": "passed"}
    assert [line["id"] for line in line_events(received["run"])] == [row.id for row in stored(app, run_id)]
    assert not bus._feeds and bus.viewers() == 0  # every viewer let go, every place given back
