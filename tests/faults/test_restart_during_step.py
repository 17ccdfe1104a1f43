"""The dashboard restarts while a long command step runs and a viewer follows its log.

A real server (`python run.py`), a real worker, a real Server-Sent Events client (what a
browser's EventSource does): the client reads part of the run's stream, the server is
stopped (SIGTERM, then waited for) and started again on the same port, and the client
reconnects with Last-Event-ID. Either the worker outlived the server (it runs in its own
session) and the step keeps running and passes, or the worker was killed while the server
was down and the restart marks the step interrupted. Both ways the client ends up with
every line of the run exactly once, in order, exactly as the LogLine table holds them.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest
import requests

from tests.browser.conftest import PASSWORD, PROJECT, LiveServer, free_port, stop_server, wait_for_port

TOKEN = "restart-test-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
LINES, PAUSE_AFTER = 300, 120  # the step prints PAUSE_AFTER lines, waits for a marker, prints the rest
DEMO_CHECKLIST = '[checklist.steps.hotfix]\nplans = ["plans/hotfix_activity_instances.sql"]\n'

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def counting_step(marker: Path) -> str:
    program = textwrap.dedent(f"""\
        import os, sys, time
        for i in range(1, {LINES} + 1):
            print(f"line {{i:03d}}", flush=True)
            time.sleep(0.005)
            if i == {PAUSE_AFTER}:
                while not os.path.exists({str(marker)!r}):
                    time.sleep(0.02)
        """)
    return textwrap.dedent(f"""
        [checklist]
        order = ["count"]
        [checklist.steps.count]
        kind = "command"
        argv = {json.dumps([sys.executable, "-c", program])}
        timeout = 100
        """)


class EventStream:
    """A minimal EventSource: keeps the id of the last event it dispatched."""

    def __init__(self):
        self.events: list[dict] = []  # every event dispatched, over every connection
        self.last_id: str | None = None
        self.ended: dict | None = None
        self.connections = 0

    def connect(self, url: str) -> requests.Response:
        headers = dict(HEADERS)
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        response = requests.get(url, headers=headers, stream=True, timeout=(5, 30))
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/event-stream")
        self.connections += 1
        return response

    def read(self, response: requests.Response, until=None) -> bool:
        """Dispatch events until `until(event)` holds (True), or the stream ends or breaks (False)."""
        buffer = ""
        try:
            for chunk in response.iter_content(chunk_size=None, decode_unicode=True):
                buffer += chunk
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    event = self.dispatch(block)
                    if event is not None and until is not None and until(event):
                        return True
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            pass  # the server went away mid-stream; whatever was not a whole event is lost, as in a browser
        return False

    def dispatch(self, block: str) -> dict | None:
        fields = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "id" in fields:
            self.last_id = fields["id"]
        kind = fields.get("event", "message")
        if kind == "line":
            event = {"id": int(fields["id"]), **json.loads(fields["data"])}
            self.events.append(event)
            return event
        if kind == "end":
            self.ended = json.loads(fields["data"])
            return self.ended
        return None


def start_server(tmp_path: Path, config: Path, port: int) -> LiveServer:
    """`python run.py` as tests/browser/conftest.py starts it, on a chosen port (a restart
    comes back on the same address, where the browser reconnects)."""
    env = {**os.environ, "CUTOVER_PORT": str(port), "CUTOVER_INSTANCE_DIR": str(tmp_path / "instance"),
           "CUTOVER_ADMIN_PASSWORD": PASSWORD, "CUTOVER_SECRET_KEY": "restart-test-key",
           "CUTOVER_API_TOKEN": TOKEN, "CUTOVER_CONFIG": str(config)}
    log_path = tmp_path / f"server-{time.monotonic_ns()}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "run.py"], cwd=PROJECT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    process.stdout = open(log_path)
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_for_port(port, process)
    except BaseException:
        stop_server(server)
        raise
    return server


def persisted(state_db: Path, run_id: int) -> list[tuple[int, str]]:
    with closing(sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)) as connection:
        return connection.execute("SELECT id, text FROM log_line WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()


def job_state(state_db: Path, job_id: int) -> tuple[str, str]:
    with closing(sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)) as connection:
        return connection.execute("SELECT state, error FROM job WHERE id = ?", (job_id,)).fetchone()


def group_alive(pgid: int) -> bool:
    from app.jobs.runner import living_group_members

    return bool(living_group_members(pgid))


@pytest.fixture
def workspace(tmp_path, demo_config):
    marker = tmp_path / "go-on"
    text = demo_config.read_text()
    assert DEMO_CHECKLIST in text
    demo_config.write_text(text.replace(DEMO_CHECKLIST, "") + counting_step(marker))
    return demo_config, marker


@pytest.mark.parametrize("worker", ["keeps-running", "killed"])
def test_a_restart_during_a_step_loses_and_repeats_no_line(tmp_path, workspace, worker):
    config, marker = workspace
    port = free_port()
    state_db = tmp_path / "instance" / "cutover.db"
    server = start_server(tmp_path, config, port)
    pgid = None
    try:
        created = requests.post(f"{server.url}/api/v1/runs", json={"environment": "production"}, headers=HEADERS,
                                timeout=10)
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        started = requests.post(f"{server.url}/api/v1/runs/{run_id}/steps/count/start", headers=HEADERS, timeout=10)
        assert started.status_code == 202, started.text
        job_id = started.json()["job"]["id"]
        events_url = f"{server.url}/api/v1/runs/{run_id}/events"

        client = EventStream()
        response = client.connect(events_url)
        assert client.read(response, until=lambda e: e.get("text") == "line 060")  # part of the stream
        with closing(sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)) as connection:
            pgid = connection.execute("SELECT pid FROM job WHERE id = ?", (job_id,)).fetchone()[0]

        stopping = time.monotonic()
        stop_server(server)  # SIGTERM, then wait
        stopped_in = time.monotonic() - stopping
        assert server.process.returncode is not None
        client.read(response)  # what the dying connection still delivered, then its end
        response.close()
        assert client.ended is None, client.ended
        seen_before_restart = len(client.events)

        if worker == "killed":
            assert group_alive(pgid)
            os.killpg(pgid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not group_alive(pgid)
        else:
            assert group_alive(pgid), "the worker died with the server"
        assert job_state(state_db, job_id)[0] == "running"  # nobody has looked yet

        server = start_server(tmp_path, config, port)  # the same address: the browser reconnects there
        run = requests.get(f"{server.url}/api/v1/runs/{run_id}", headers=HEADERS, timeout=10).json()
        step = run["steps"][0]
        if worker == "killed":
            assert step["state"] == "interrupted", step
            assert job_state(state_db, job_id) == (
                "interrupted", "The dashboard restarted or the worker was killed while this job ran.")
        else:
            assert step["state"] == "running", step  # reconcile found its worker alive
            marker.touch()

        response = client.connect(events_url)  # Last-Event-ID: the last event dispatched
        assert not client.read(response)  # to the end of the stream
        response.close()
        assert client.ended is not None, "the stream did not end with an end event"

        state, error = job_state(state_db, job_id)
        expected_state = "passed" if worker == "keeps-running" else "interrupted"
        assert state == expected_state, (state, error)
        rows = persisted(state_db, run_id)
        received = [(event["id"], event["text"]) for event in client.events]
        assert received == rows  # every line once, in order, as persisted, over both connections
        numbered = [text for _, text in received if text.startswith("line ")]
        last = LINES if worker == "keeps-running" else PAUSE_AFTER
        assert numbered == [f"line {i:03d}" for i in range(1, last + 1)]
        assert seen_before_restart < len(received)
        print(f"{worker}: {seen_before_restart} events before the restart, {len(received)} in all; "
              f"the server stopped in {stopped_in:.1f} s")
    finally:
        if pgid is not None and group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
        if server.process.poll() is None:
            stop_server(server)
