"""The job log as Server-Sent Events: replay, resume with Last-Event-ID, follow live, end."""
import json
import sys

from app.jobs.runner import create_job, launch, log_lines, run_job
from app.models import Job


def read_events(response) -> list[dict]:
    """Parse a text/event-stream body into events (comments are kept as keepalives)."""
    text = b"".join(response.response).decode()
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event = {"event": "message"}
        for field in block.split("\n"):
            name, _, value = field.partition(": ")
            event[name or "comment"] = value
        events.append(event)
    return events


def finished_job(app, script):
    with app.app_context():
        job = run_job(create_job("command", "production", "admin", {"argv": [sys.executable, "-c", script]}).id)
        return job.id, [line.id for line in log_lines(job.id)]


def test_a_finished_job_is_replayed_then_ended(app, client, api_headers):
    job_id, ids = finished_job(app, "print('one'); print('<b>two</b>')")
    response = client.get(f"/api/v1/jobs/{job_id}/events", headers=api_headers, buffered=False)
    assert response.mimetype == "text/event-stream"
    events = read_events(response)
    assert [int(e["id"]) for e in events if e["event"] == "line"] == ids
    texts = [json.loads(e["data"])["text"] for e in events if e["event"] == "line"]
    assert texts[1:3] == ["one", "<b>two</b>"]  # data is JSON; the page escapes it
    assert events[-1]["event"] == "end" and json.loads(events[-1]["data"]) == {"job": job_id, "state": "passed"}


def test_resume_with_last_event_id_misses_and_repeats_nothing(app, client, api_headers):
    job_id, ids = finished_job(app, "print('a'); print('b'); print('c')")
    response = client.get(f"/api/v1/jobs/{job_id}/events", headers={**api_headers, "Last-Event-ID": str(ids[1])},
                          buffered=False)
    assert [int(e["id"]) for e in read_events(response) if e["event"] == "line"] == ids[2:]
    by_query = client.get(f"/api/v1/jobs/{job_id}/events?after={ids[2]}", headers=api_headers, buffered=False)
    assert [int(e["id"]) for e in read_events(by_query) if e["event"] == "line"] == ids[3:]


def test_follows_a_running_job_live(app, client, api_headers):
    script = "import time\nfor i in range(6):\n    print('tick', i, flush=True)\n    time.sleep(0.15)"
    with app.app_context():
        job = launch(create_job("command", "production", "admin", {"argv": [sys.executable, "-c", script]}))
        job_id = job.id
    response = client.get(f"/api/v1/jobs/{job_id}/events", headers=api_headers, buffered=False)
    events = read_events(response)  # returns when the stream ends with the job
    with app.app_context():
        stored = [line.id for line in log_lines(job_id)]
        from app.extensions import db

        assert db.session.get(Job, job_id).state == "passed"
    streamed = [int(e["id"]) for e in events if e["event"] == "line"]
    assert streamed == stored  # every line once, in order
    assert [json.loads(e["data"])["text"] for e in events if e["event"] == "line"][1:7] == [f"tick {i}" for i in range(6)]


def test_streams_need_authentication_and_an_existing_job(app, client, api_headers):
    job_id, _ = finished_job(app, "print('x')")
    assert client.get(f"/api/v1/jobs/{job_id}/events").status_code == 401
    assert client.get(f"/api/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"}).status_code == 401
    missing = client.get("/api/v1/jobs/424242/events", headers=api_headers)
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
