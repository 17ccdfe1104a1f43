"""Live log streaming benchmark: the real server (`python run.py`) against a bare Flask generator.

    python -m bench.bench_sse                          # the default sizes (about 3 minutes)
    python -m bench.bench_sse --replay-lines 20000 --viewers 1,10 --load-seconds 4   # quick
    python -m bench.bench_sse --sections 3 --viewers 200          # one measurement only

One run starts, side by side on 127.0.0.1:

- Cutover: `python run.py` in a subprocess, with CUTOVER_CONFIG pointing at a generated
  cutover.toml whose checklist has one `command` step running a small emitter script (it
  prints numbered lines carrying `time.time()`, at a given rate or flat out), a fresh
  CUTOVER_INSTANCE_DIR and a CUTOVER_API_TOKEN for the API;
- the baseline: a tiny Flask app defined here, served by gunicorn with exactly the options
  of app.server.server_options (one process, gthread, CUTOVER_THREADS threads), whose
  generator yields the same SSE events from memory, one `yield` per line, and a /page route
  returning a small JSON document.

and measures

1. line latency: print in the step -> event parsed by an SSE client (same machine, same
   clock), p50 and p99, at a moderate rate, split into "written" (print -> the line's
   stored `time`, i.e. the step's worker) and "delivered" (stored -> client);
2. lines per second to one viewer: the replay of a finished run of --replay-lines lines
   (inserted directly into the state database; one warm-up each side, then the median of
   --rounds alternated rounds), live following of a command step printing flat out
   (bounded by how fast the step's worker stores lines: also run with no viewer), and live
   following of a writer inserting batches directly (what the streaming path can carry);
3. a plain page's latency (GET /api/v1/runs with the token; the baseline's /page) while 1,
   10, 50, 200 viewers follow a run printing --load-rate lines a second. One viewer, timed,
   is a thread of this process beside the prober; the others run in a child process, so
   neither the prober nor the timed viewer queues behind their parsing (all of them still
   share the machine's cores with the server, as the baseline's do);
4. abuse: /login's latency (a new connection per request) while --half-open connections
   (a partial request line, then silence; one more than the server's threads) are held, beside
   the baseline app served by gunicorn's stock gthread worker (what `python run.py` used
   before its request deadlines); and while --job-viewers viewers try to follow one job's log
   (the cap per client and in total refuses the surplus with 503: the count is printed).

All viewers come from 127.0.0.1, so the Cutover server is started with
CUTOVER_MAX_VIEWERS_PER_CLIENT=200 (its total cap, CUTOVER_MAX_VIEWERS, stays 200).

Every Cutover stream is also checked: the ids streamed are exactly the run's LogLine ids,
in order, none twice, then one end event; a Last-Event-ID resume gives exactly the rest.
Other load on the machine skews every figure: the run prints the CPU idle share before it
starts and the load average at the end.

Clients are raw sockets (HTTP/1.1, chunked) and threads; nothing beyond requirements-dev.txt.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
TOKEN = "bench-sse-token-0123456789"
STEP = "emit"

EMITTER = """\
import json, sys, time
params = json.load(open(sys.argv[1]))
lines, rate, pad = params["lines"], params["rate"], "x" * params["width"]
out = sys.stdout
time.sleep(params["delay"])  # the viewers connect meanwhile
start = time.time()
for i in range(1, lines + 1):
    if rate:
        delay = start + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        out.write(f"L {i} {time.time():.6f} {pad}\\n")
        out.flush()
    else:
        out.write(f"L {i} {time.time():.6f} {pad}\\n")
out.flush()
"""

CONFIG = """\
[environments.reference]
database = "reference.db"
reference = true

[environments.production]
database = "production.db"

[checklist]
order = ["emit", "hold"]

[checklist.steps.emit]
kind = "command"
argv = [{python}, {emitter}, {params}]
timeout = 600

[checklist.steps.hold]
kind = "manual"
instructions = "Keeps the run open so the benchmark can abandon it."
"""


# --------------------------------------------------------------------------- percentiles


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


# --------------------------------------------------------------------------- servers


def system_idle(seconds: float = 2.0) -> float:
    """Share of CPU time idle over a short sample (Linux), before the benchmark starts."""
    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]
    try:
        total, idle = sample()
        time.sleep(seconds)
        total2, idle2 = sample()
    except OSError:
        return float("nan")
    return (idle2 - idle) / max(1, total2 - total)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, name: str, argv: list[str], env: dict, log_path: Path, port: int):
        self.name, self.port, self.log_path = name, port, log_path
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(argv, cwd=PROJECT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{name} did not start listening")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def make_workspace(folder: Path) -> Path:
    for name in ("reference.db", "production.db"):
        with closing(sqlite3.connect(folder / name)) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY)")
    (folder / "emitter.py").write_text(EMITTER)
    config = folder / "cutover.toml"
    config.write_text(CONFIG.format(python=json.dumps(sys.executable), emitter=json.dumps(str(folder / "emitter.py")),
                                    params=json.dumps(str(folder / "params.json"))))
    return config


def start_cutover(folder: Path, threads: int | None) -> Server:
    port = free_port()
    env = {**os.environ, "CUTOVER_CONFIG": str(make_workspace(folder)), "CUTOVER_PORT": str(port),
           "CUTOVER_INSTANCE_DIR": str(folder / "instance"), "CUTOVER_API_TOKEN": TOKEN,
           "CUTOVER_ADMIN_PASSWORD": "bench-password", "CUTOVER_SECRET_KEY": "bench-secret-key"}
    for name in ("CUTOVER_STATE_DATABASE_URL", "CUTOVER_DEMO_DIR"):
        env.pop(name, None)
    env["CUTOVER_MAX_VIEWERS_PER_CLIENT"] = "200"  # every viewer here is 127.0.0.1
    if threads:
        env["CUTOVER_THREADS"] = str(threads)
    return Server("cutover", [sys.executable, "run.py"], env, folder / "cutover-server.log", port)


def start_baseline(folder: Path, threads: int | None, stock: bool = False) -> Server:
    """The bare generator; `stock`: served by gunicorn's own gthread worker (no request deadlines)."""
    port = free_port()
    env = {**os.environ, **({"BENCH_STOCK_GTHREAD": "1"} if stock else {})}
    if threads:
        env["CUTOVER_THREADS"] = str(threads)
    name = "stock baseline" if stock else "baseline"
    return Server(name, [sys.executable, "-m", "bench.bench_sse", "--serve-baseline", str(port)], env,
                  folder / f"{name.replace(' ', '-')}-server.log", port)


# --------------------------------------------------------------------------- the baseline app


def baseline_app():
    from datetime import datetime, timezone

    from flask import Flask, Response, jsonify, request

    app = Flask("bench_sse_baseline")

    @app.get("/page")
    def page():
        return jsonify(runs=[{"id": i, "environment": "production", "status": "open", "created_by": "bench"}
                             for i in range(1, 4)])

    @app.get("/stream")
    def stream():
        lines, rate = int(request.args["lines"]), float(request.args.get("rate", 0))
        pad = "x" * int(request.args.get("width", 0))

        def generate():
            yield "retry: 2000\n\n"
            start = time.time()
            for i in range(1, lines + 1):
                if rate:
                    delay = start + i / rate - time.time()
                    if delay > 0:
                        time.sleep(delay)
                now = time.time()
                moment = datetime.fromtimestamp(now, timezone.utc).replace(tzinfo=None)
                data = {"seq": i, "run": 1, "job": 1, "step": STEP, "level": "info",
                        "time": moment.isoformat(timespec="milliseconds") + "Z", "text": f"L {i} {now:.6f} {pad}"}
                yield f"id: {i}\nevent: line\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            yield f"event: end\ndata: {json.dumps({'run': 1, 'last': lines})}\n\n"

        return Response(generate(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return app


def serve_baseline(port: int) -> None:
    """The baseline under the very options `python run.py` uses (minus the scheduler)."""
    import gc

    from config import Config

    from app.server import CutoverServer, server_options

    app = baseline_app()
    app.config.update(CUTOVER_HOST="127.0.0.1", CUTOVER_PORT=port,
                      CUTOVER_THREADS=int(os.environ.get("CUTOVER_THREADS", Config.CUTOVER_THREADS)),
                      CUTOVER_REQUEST_HEAD_TIMEOUT=Config.CUTOVER_REQUEST_HEAD_TIMEOUT,
                      CUTOVER_REQUEST_BODY_TIMEOUT=Config.CUTOVER_REQUEST_BODY_TIMEOUT)
    options = server_options(app)
    options["post_worker_init"] = lambda worker: gc.freeze()  # as worker_ready does, without the scheduler
    if os.environ.get("BENCH_STOCK_GTHREAD"):
        options["worker_class"] = "gthread"
    CutoverServer(app, options).run()


# --------------------------------------------------------------------------- HTTP clients


def api(port: int, method: str, path: str, body: dict | None = None) -> dict:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
    return json.loads(payload) if payload else {}


class Stream:
    """An SSE response read from a raw socket: HTTP/1.1, chunked transfer decoded by hand."""

    def __init__(self, port: int, path: str, token: str | None = TOKEN, last_event_id: int | None = None,
                 timeout: float = 120):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        headers = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        if token:
            headers.append(f"Authorization: Bearer {token}")
        if last_event_id is not None:
            headers.append(f"Last-Event-ID: {last_event_id}")
        self.sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError(f"{path}: connection closed before the headers")
            raw += data
        head, _, self.raw = raw.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        if self.status != 200:
            raise RuntimeError(f"{path}: HTTP {self.status}")
        self.chunked = b"transfer-encoding: chunked" in head.lower()
        self.done = False
        self.pending = b""

    def _body(self) -> bytes:
        """Decoded body bytes from what has arrived (b"" at the end of the response)."""
        if not self.chunked:
            data, self.raw = self.raw, b""
            return data
        out = []
        while True:
            line_end = self.raw.find(b"\r\n")
            if line_end < 0:
                break
            size = int(self.raw[:line_end].split(b";")[0], 16)
            if size == 0:
                self.done = True
                break
            if len(self.raw) < line_end + 2 + size + 2:
                break
            out.append(self.raw[line_end + 2:line_end + 2 + size])
            self.raw = self.raw[line_end + 2 + size + 2:]
        return b"".join(out)

    def events(self):
        """Yield (arrival time.time(), [raw event blocks]) per receive, until the response ends."""
        while not self.done:
            body = self._body()
            if body:
                self.pending += body
                *blocks, self.pending = self.pending.split(b"\n\n")
                if blocks:
                    yield time.time(), blocks
                continue
            if self.done:
                break
            data = self.sock.recv(1 << 20)
            if not data:
                if self.chunked:
                    raise RuntimeError("connection closed in the middle of the stream")
                self.done = True
                break
            self.raw += data
        if self.pending.strip():
            yield time.time(), [self.pending]

    def close(self) -> None:
        self.sock.close()


def event_id(block: bytes) -> int | None:
    if block.startswith(b"id: "):
        return int(block[4:block.index(b"\n")])
    return None


def is_end(block: bytes) -> bool:
    return b"event: end\n" in block or block.startswith(b"event: end")


def line_data(block: bytes) -> dict:
    return json.loads(block[block.index(b"\ndata: ") + 7:])


def stored_at(iso: str | None) -> float | None:
    """The line's `time` (when the step's worker stored it, UTC, milliseconds) as time.time()."""
    if not iso or not iso.endswith("Z"):
        return None
    from datetime import datetime, timezone

    return datetime.fromisoformat(iso[:-1]).replace(tzinfo=timezone.utc).timestamp() + 0.0005


class Follow:
    """One viewer: read a stream to its end, checking ids; optionally time every line."""

    def __init__(self, port: int, path: str, timed: bool = False, last_event_id: int | None = None):
        self.stream = Stream(port, path, last_event_id=last_event_id)
        self.timed = timed
        self.ids: list[int] = []
        self.latencies: list[float] = []
        self.split: list[tuple[float, float]] = []  # (print -> stored, stored -> arrived) per line
        self.first_at = self.last_at = None
        self.ended = False
        self.end_at = None
        self.error = ""

    def run(self) -> Follow:
        try:
            return self._read()
        except (OSError, RuntimeError) as error:
            self.error = f"{type(error).__name__}: {error}"
            return self

    def stop(self) -> None:
        try:
            self.stream.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read(self) -> Follow:
        ids, latencies = self.ids, self.latencies
        try:
            for arrived, blocks in self.stream.events():
                for block in blocks:
                    seq = event_id(block)
                    if seq is not None:
                        ids.append(seq)
                        if b'"text": "L ' in block:  # the emitter's lines, not the step's own
                            if self.first_at is None:
                                self.first_at = arrived
                            self.last_at = arrived
                        if self.timed:
                            data = line_data(block)
                            parts = data["text"].split()
                            if parts and parts[0] == "L":
                                printed = float(parts[2])
                                latencies.append(arrived - printed)
                                stored = stored_at(data["time"])
                                if stored is not None:
                                    self.split.append((stored - printed, arrived - stored))
                    elif is_end(block):
                        self.ended, self.end_at = True, arrived
                        return self
        finally:
            self.stream.close()
        return self

    def check(self, expected: list[int]) -> str:
        if self.error:
            return f"FAILED: {self.error} after {len(self.ids)} lines"
        if self.ids != expected:
            missing = len(set(expected) - set(self.ids))
            twice = len(self.ids) - len(set(self.ids))
            return f"MISMATCH: {len(self.ids)} streamed, {len(expected)} stored, {missing} missing, {twice} twice"
        return "exact" if self.ended else "exact, but no end event"


def in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------- Cutover runs


class Cutover:
    def __init__(self, server: Server, folder: Path):
        self.server, self.port, self.folder = server, server.port, folder
        self.state_db = folder / "instance" / "cutover.db"

    def new_run(self) -> int:
        return api(self.port, "POST", "/api/v1/runs", {"environment": "production"})["id"]

    def start_emitter(self, run_id: int, lines: int, rate: float, width: int, delay: float = 1.0) -> int:
        """Start the command step; it prints after `delay` s (a run's stream ends while no step is active,
        so viewers connect after the start, and the delay lets them be there for the first line)."""
        params = {"lines": lines, "rate": rate, "width": width, "delay": delay}
        (self.folder / "params.json").write_text(json.dumps(params))
        return api(self.port, "POST", f"/api/v1/runs/{run_id}/steps/{STEP}/start")["job"]["id"]

    def wait_job(self, job_id: int, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with closing(self.connect()) as connection:
                state = connection.execute("SELECT state FROM job WHERE id = ?", (job_id,)).fetchone()[0]
            if state not in ("queued", "running"):
                return state
            time.sleep(0.05)
        raise RuntimeError(f"job {job_id} still running after {timeout} s")

    def abandon(self, run_id: int) -> None:
        api(self.port, "POST", f"/api/v1/runs/{run_id}/abandon", {"reason": "benchmark"})

    def connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.state_db, timeout=30, isolation_level=None)
        connection.execute("PRAGMA busy_timeout = 30000")
        return connection

    def stored_ids(self, run_id: int) -> list[int]:
        with closing(self.connect()) as connection:
            rows = connection.execute("SELECT id FROM log_line WHERE run_id = ? ORDER BY id", (run_id,))
            return [row[0] for row in rows]

    def insert_job(self, connection: sqlite3.Connection, run_id: int, state: str) -> int:
        now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
        cursor = connection.execute(
            "INSERT INTO job (kind, environment, params, state, operator, created_at, started_at, progress_done, "
            "progress_total, result, error, run_id, step) VALUES ('command', 'production', '{}', ?, 'bench', ?, ?, "
            "0, 0, '{}', '', ?, ?)", (state, now, now, run_id, STEP))
        return cursor.lastrowid

    def insert_lines(self, connection: sqlite3.Connection, run_id: int, job_id: int, first: int, count: int,
                     width: int) -> None:
        now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
        pad = "x" * width
        connection.executemany(
            "INSERT INTO log_line (job_id, level, time, text, run_id, step) VALUES (?, 'info', ?, ?, ?, ?)",
            ((job_id, now, f"L {i} {time.time():.6f} {pad}", run_id, STEP) for i in range(first, first + count)))

    def finished_run(self, lines: int, width: int) -> int:
        """A run holding one finished job of `lines` lines, written straight into the state database."""
        run_id = self.new_run()
        with closing(self.connect()) as connection:
            connection.execute("BEGIN IMMEDIATE")
            job_id = self.insert_job(connection, run_id, "passed")
            for first in range(1, lines + 1, 50_000):
                self.insert_lines(connection, run_id, job_id, first, min(50_000, lines + 1 - first), width)
            connection.execute("COMMIT")
        self.abandon(run_id)
        return run_id


# --------------------------------------------------------------------------- 1. latency


def measure_latency(cutover: Cutover, baseline: Server, lines: int, rate: float, width: int) -> dict:
    run_id = cutover.new_run()
    job_id = cutover.start_emitter(run_id, lines, rate, width)
    viewer = Follow(cutover.port, f"/api/v1/runs/{run_id}/events", timed=True)
    thread = in_thread(viewer.run)
    cutover.wait_job(job_id)
    thread.join(timeout=60)
    check = viewer.check(cutover.stored_ids(run_id))
    cutover.abandon(run_id)

    base = Follow(baseline.port, f"/stream?lines={lines}&rate={rate}&width={width}", timed=True).run()
    return {"ours": viewer, "base": base, "check": check}


# --------------------------------------------------------------------------- 2. throughput


def rate_of(viewer: Follow, count: int) -> float:
    """Lines per second between the first and the last of the emitter's lines."""
    elapsed = (viewer.last_at or 0) - (viewer.first_at or 0)
    return count / elapsed if elapsed > 0 else float("nan")


def measure_replay(cutover: Cutover, baseline: Server, lines: int, width: int, rounds: int) -> dict:
    run_id = cutover.finished_run(lines, width)
    expected = cutover.stored_ids(run_id)
    ours, base, checks = [], [], []
    path = f"/api/v1/runs/{run_id}/events"
    Follow(cutover.port, path).run(), Follow(baseline.port, f"/stream?lines={lines}&width={width}").run()  # warm-up
    for _ in range(rounds):
        started = time.time()
        viewer = Follow(cutover.port, path).run()
        ours.append(len(viewer.ids) / (viewer.last_at - started))
        checks.append(viewer.check(expected))
        started = time.time()
        plain = Follow(baseline.port, f"/stream?lines={lines}&width={width}").run()
        base.append(len(plain.ids) / (plain.last_at - started))
    # Resume from the middle with Last-Event-ID: exactly the rest, nothing twice.
    middle = expected[len(expected) // 2]
    resumed = Follow(cutover.port, path, last_event_id=middle).run()
    checks.append("resume " + resumed.check([i for i in expected if i > middle]))
    return {"ours": statistics.median(ours), "base": statistics.median(base), "checks": checks, "lines": len(expected)}


def measure_live_step(cutover: Cutover, baseline: Server, lines: int, width: int) -> dict:
    """A command step printing flat out, once alone (what the step's writer manages), once
    followed by a viewer from its start."""
    def run_step(viewed: bool) -> tuple[int, Follow | None, float]:
        run_id = cutover.new_run()
        job_id = cutover.start_emitter(run_id, lines, 0, width)
        viewer = Follow(cutover.port, f"/api/v1/runs/{run_id}/events") if viewed else None
        thread = in_thread(viewer.run) if viewer else None
        cutover.wait_job(job_id)
        if thread:
            thread.join(timeout=120)
        with closing(cutover.connect()) as connection:
            first, last, count = connection.execute(
                "SELECT MIN(time), MAX(time), COUNT(*) FROM log_line WHERE run_id = ? AND text LIKE 'L %'",
                (run_id,)).fetchone()
        cutover.abandon(run_id)
        return run_id, viewer, count / (epoch(last) - epoch(first))

    _, _, alone = run_step(False)
    run_id, viewer, written = run_step(True)
    with closing(cutover.connect()) as connection:
        finished = connection.execute("SELECT MAX(finished_at) FROM job WHERE run_id = ?", (run_id,)).fetchone()[0]
    base = Follow(baseline.port, f"/stream?lines={lines}&width={width}").run()
    return {"ours": rate_of(viewer, lines), "writer": written, "alone": alone, "base": rate_of(base, lines),
            "check": viewer.check(cutover.stored_ids(run_id)),
            "tail": (viewer.end_at - epoch(finished)) if viewer.end_at else float("nan")}


def epoch(stored: str) -> float:
    """A naive UTC datetime as SQLAlchemy stores it in SQLite, as time.time()."""
    from datetime import datetime, timezone

    return datetime.fromisoformat(stored).replace(tzinfo=timezone.utc).timestamp()


def measure_live_batches(cutover: Cutover, baseline: Server, lines: int, width: int, batch: int) -> dict:
    """A writer inserting `batch` lines per commit into a running job, as fast as it can."""
    run_id = cutover.new_run()
    with closing(cutover.connect()) as connection:
        job_id = cutover.insert_job(connection, run_id, "running")
    viewer = Follow(cutover.port, f"/api/v1/runs/{run_id}/events")
    thread = in_thread(viewer.run)
    time.sleep(0.3)
    started = time.time()
    with closing(cutover.connect()) as connection:
        for first in range(1, lines + 1, batch):
            connection.execute("BEGIN IMMEDIATE")
            cutover.insert_lines(connection, run_id, job_id, first, min(batch, lines + 1 - first), width)
            connection.execute("COMMIT")
        written = time.time() - started
        connection.execute("UPDATE job SET state = 'passed' WHERE id = ?", (job_id,))
    thread.join(timeout=120)
    check = viewer.check(cutover.stored_ids(run_id))
    cutover.abandon(run_id)
    return {"ours": rate_of(viewer, lines), "writer": lines / written, "check": check}


# --------------------------------------------------------------------------- 3. pages under viewers


def viewers_child(port: int, path: str, count: int) -> None:
    """Child process: `count` viewers of one stream (they only check their ids); prints
    "ready" once all are connected, then one JSON summary when the parent writes a line on
    stdin or every stream has ended."""
    viewers, refused = [], 0
    for _ in range(count):
        try:
            viewers.append(Follow(port, path))
        except RuntimeError as error:  # a viewer beyond the caps: 503
            if "HTTP 503" not in str(error):
                raise
            refused += 1
    threads = [in_thread(viewer.run) for viewer in viewers]
    print("ready", flush=True)
    stop = in_thread(sys.stdin.readline)
    while any(t.is_alive() for t in threads) and stop.is_alive():
        time.sleep(0.05)
    for viewer in viewers:
        viewer.stop()
    for t in threads:
        t.join(timeout=5)
    print(json.dumps({"viewers": count, "refused": refused, "ended": sum(v.ended for v in viewers),
                      "ordered": all(v.ids == sorted(set(v.ids)) for v in viewers),
                      "lines_min": min((len(v.ids) for v in viewers), default=0),
                      "lines_max": max((len(v.ids) for v in viewers), default=0)}), flush=True)


def probe_pages(port: int, path: str, headers: dict, seconds: float, interval: float) -> list[float]:
    """Sequential GETs on one keep-alive connection, one every `interval` seconds."""
    import http.client

    samples = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status}")
        except (http.client.HTTPException, ConnectionError):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        samples.append(time.perf_counter() - started)
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    connection.close()
    return samples


def page_under_viewers(port: int, stream_path: str, count: int, page: str, headers: dict, seconds: float,
                       interval: float) -> tuple[list[float], Follow, dict]:
    """Page latency while `count` viewers follow: one timed viewer here (a thread beside the
    prober, so its clock readings do not queue behind the others), count - 1 in a child."""
    timed = Follow(port, stream_path, timed=True)
    timed_thread = in_thread(timed.run)
    summary = {"viewers": 0, "ordered": True, "lines_min": 1}
    child = None
    if count > 1:
        child = subprocess.Popen([sys.executable, "-m", "bench.bench_sse", "--viewers-child", str(port), stream_path,
                                  str(count - 1)], cwd=PROJECT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
    try:
        if child and child.stdout.readline().strip() != "ready":
            raise RuntimeError("the viewers did not connect")
        time.sleep(0.5)  # let them settle into following
        samples = probe_pages(port, page, headers, seconds, interval)
        if child:
            child.stdin.write("stop\n")
            child.stdin.flush()
            summary = json.loads(child.stdout.readline())
    finally:
        timed.stop()
        timed_thread.join(timeout=10)
        if child:
            child.wait(timeout=30)
    return samples, timed, summary


def split_p99(viewer: Follow) -> str:
    written = [w for w, _ in viewer.split]
    delivered = [d for _, d in viewer.split]
    if not written:
        return ""
    return f"(written p99 {ms(percentile(written, 99)).strip()}, delivered p99 {ms(percentile(delivered, 99)).strip()})"


def measure_pages(cutover: Cutover, baseline: Server, counts: list[int], rate: float, width: int,
                  seconds: float, interval: float) -> list[dict]:
    results = []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for count in counts:
        producing = seconds + 4.0
        run_id = cutover.new_run()
        job_id = cutover.start_emitter(run_id, int(producing * rate), rate, width, delay=0)
        ours, ours_timed, ours_summary = page_under_viewers(
            cutover.port, f"/api/v1/runs/{run_id}/events", count, "/api/v1/runs", auth, seconds, interval)
        try:
            api(cutover.port, "POST", f"/api/v1/runs/{run_id}/steps/{STEP}/cancel")
        except RuntimeError:
            pass  # it had printed all its lines already
        cutover.wait_job(job_id)
        cutover.abandon(run_id)
        base, base_timed, base_summary = page_under_viewers(
            baseline.port, f"/stream?lines={int(producing * rate)}&rate={rate}&width={width}", count, "/page", {},
            seconds, interval)
        results.append({"viewers": count, "ours": ours, "base": base, "ours_line": ours_timed.latencies,
                        "base_line": base_timed.latencies, "ours_viewers": ours_summary,
                        "base_viewers": base_summary})
        print(f"  {count:>4} viewers: page p50 {ms(percentile(ours, 50))} p99 {ms(percentile(ours, 99))}   "
              f"baseline p50 {ms(percentile(base, 50))} p99 {ms(percentile(base, 99))}   "
              f"line p99 {ms(percentile(ours_timed.latencies, 99))} {split_p99(ours_timed)} "
              f"baseline {ms(percentile(base_timed.latencies, 99))}", flush=True)
        for side, summary in (("cutover", ours_summary), ("baseline", base_summary)):
            if not summary["ordered"] or summary["lines_min"] == 0:
                print(f"  WARNING {side} viewers: {summary}")
    return results


# --------------------------------------------------------------------------- 4. abuse


def half_open(port: int) -> socket.socket:
    """A connection that sent the start of a request line and then nothing more."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /login HT")
    return sock


def probe_new_connections(port: int, path: str, seconds: float, interval: float,
                          timeout: float) -> tuple[list[float], int]:
    """GETs each on a new connection (as a browser arriving), one every `interval` seconds:
    (latencies of the answered ones, how many got no answer within `timeout`)."""
    samples, unanswered = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                answer = sock.recv(64)
            if not answer.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"GET {path}: {answer[:40]!r}")
            samples.append(time.perf_counter() - started)
        except socket.timeout:
            unanswered += 1
        time.sleep(interval)
    return samples, unanswered


def measure_half_open(port: int, page: str, count: int, seconds: float, interval: float) -> tuple[list[float], int]:
    held = []
    try:
        for _ in range(count):
            held.append(half_open(port))
        time.sleep(0.5)  # let the server take them in
        return probe_new_connections(port, page, seconds, interval, timeout=5.0)
    finally:
        for sock in held:
            sock.close()


def section_abuse(args, cutover: Cutover, folder: Path) -> None:
    threads = args.threads or 256
    count = args.half_open or threads + 1
    print(f"\n4. abuse: GET on a new connection every {args.page_interval * 1000:g} ms for {args.load_seconds:g} s "
          f"(no answer within 5 s counts as unanswered)", flush=True)
    stock = start_baseline(folder, args.threads, stock=True)
    try:
        for label, port, page in (("cutover /login", cutover.port, "/login"),
                                  ("stock gthread /page", stock.port, "/page")):
            idle, _ = probe_new_connections(port, page, min(2.0, args.load_seconds), args.page_interval, 5.0)
            samples, unanswered = measure_half_open(port, page, count, args.load_seconds, args.page_interval)
            print(f"  {label:<20} idle p50 {ms(percentile(idle, 50))}   with {count} half-open connections: "
                  f"p50 {ms(percentile(samples, 50))} p99 {ms(percentile(samples, 99))}, "
                  f"{len(samples)} answered, {unanswered} unanswered", flush=True)
    finally:
        stock.stop()

    producing = args.load_seconds + 4.0
    run_id = cutover.new_run()
    job_id = cutover.start_emitter(run_id, int(producing * args.load_rate), args.load_rate, args.width, delay=0)
    try:
        samples, timed, summary = page_under_viewers(
            cutover.port, f"/api/v1/jobs/{job_id}/events", args.job_viewers, "/login", {}, args.load_seconds,
            args.page_interval)
    finally:
        try:
            api(cutover.port, "POST", f"/api/v1/runs/{run_id}/steps/{STEP}/cancel")
        except RuntimeError:
            pass
        cutover.wait_job(job_id)
        cutover.abandon(run_id)
    followed = 1 + summary["viewers"] - summary.get("refused", 0)
    print(f"  {args.job_viewers} viewers of one job's log ({args.load_rate:g} lines/s): {followed} followed, "
          f"{summary.get('refused', 0)} refused (503, Retry-After); GET /login p50 {ms(percentile(samples, 50))} "
          f"p99 {ms(percentile(samples, 99))}; line p99 {ms(percentile(timed.latencies, 99))}", flush=True)


# --------------------------------------------------------------------------- main


def section_latency(args, cutover: Cutover, baseline: Server) -> None:
    print(f"\n1. line latency, print in a step -> parsed by one SSE client ({args.latency_lines} lines at "
          f"{args.latency_rate:g}/s; written = print -> stored by the step's worker, delivered = stored -> client)",
          flush=True)
    latency = measure_latency(cutover, baseline, args.latency_lines, args.latency_rate, args.width)
    for label, viewer in (("cutover", latency["ours"]), ("bare generator", latency["base"])):
        values = viewer.latencies
        print(f"  {label:<16} p50 {ms(percentile(values, 50))}  p99 {ms(percentile(values, 99))}  "
              f"max {ms(max(values, default=float('nan')))}  ({len(values)} lines) {split_p99(viewer)}")
    print(f"  stream check: {latency['check']}   target: p99 < 50 ms", flush=True)


def section_throughput(args, cutover: Cutover, baseline: Server) -> None:
    print("\n2. lines per second to one viewer", flush=True)
    replay = measure_replay(cutover, baseline, args.replay_lines, args.width, args.rounds)
    print(f"  replay of a finished run ({replay['lines']:,} lines, median of {args.rounds}): "
          f"cutover {replay['ours']:,.0f}/s   bare generator {replay['base']:,.0f}/s   "
          f"ratio {replay['ours'] / replay['base']:.2f}x   target >= 20,000/s")
    print(f"  checks: {', '.join(sorted(set(replay['checks'])))}", flush=True)
    live = measure_live_step(cutover, baseline, args.live_lines, args.width)
    print(f"  live, a command step printing flat out ({args.live_lines:,} lines): cutover {live['ours']:,.0f}/s "
          f"= what the step stored ({live['writer']:,.0f}/s; {live['alone']:,.0f}/s with no viewer: the step's "
          f"worker writes them); end event {ms(live['tail']).strip()} after the job ended   "
          f"bare generator {live['base']:,.0f}/s")
    print(f"  check: {live['check']}", flush=True)
    batches = measure_live_batches(cutover, baseline, args.batch_lines, args.width, args.batch)
    print(f"  live, a writer committing {args.batch} lines at a time ({args.batch_lines:,} lines): "
          f"cutover {batches['ours']:,.0f}/s (written at {batches['writer']:,.0f}/s)")
    print(f"  check: {batches['check']}", flush=True)


def section_pages(args, cutover: Cutover, baseline: Server) -> None:
    counts = [int(n) for n in args.viewers.split(",") if n]
    print(f"\n3. page latency (GET /api/v1/runs with the token; baseline GET /page), one every "
          f"{args.page_interval * 1000:g} ms for {args.load_seconds:g} s, while N viewers follow a run "
          f"printing {args.load_rate:g} lines/s (line = one of the N, timed)", flush=True)
    measure_pages(cutover, baseline, counts, args.load_rate, args.width, args.load_seconds, args.page_interval)
    print(f"  target: page p99 < 50 ms with {max(counts)} viewers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-lines", type=int, default=1000, help="lines timed end to end (default 1000)")
    parser.add_argument("--latency-rate", type=float, default=100, help="their rate, lines/s (default 100)")
    parser.add_argument("--replay-lines", type=int, default=200_000, help="lines of the finished run replayed")
    parser.add_argument("--live-lines", type=int, default=20_000, help="lines printed flat out by a live step")
    parser.add_argument("--batch-lines", type=int, default=200_000, help="lines a batched writer inserts live")
    parser.add_argument("--batch", type=int, default=500, help="lines per commit of the batched writer")
    parser.add_argument("--rounds", type=int, default=3, help="replay rounds per side (median)")
    parser.add_argument("--viewers", default="1,10,50,200", help="viewer counts for the page test")
    parser.add_argument("--load-rate", type=float, default=100, help="lines/s of the run they follow")
    parser.add_argument("--load-seconds", type=float, default=10, help="probing time per viewer count")
    parser.add_argument("--page-interval", type=float, default=0.02, help="seconds between page requests")
    parser.add_argument("--width", type=int, default=60, help="padding characters per line (default 60)")
    parser.add_argument("--threads", type=int, default=None, help="CUTOVER_THREADS for both servers")
    parser.add_argument("--half-open", type=int, default=None, help="half-open connections (default: threads + 1)")
    parser.add_argument("--job-viewers", type=int, default=300, help="viewers of one job's log in part 4")
    parser.add_argument("--sections", default="1,2,3,4", help="which measurements to run (default 1,2,3,4)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (server logs)")
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--viewers-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        return serve_baseline(args.serve_baseline)
    if args.viewers_child:
        port, path, count = args.viewers_child
        return viewers_child(int(port), path, int(count))

    folder = Path(tempfile.mkdtemp(prefix="bench-sse-"))
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}; "
          f"CPU idle before the run {system_idle():.0%} (other load skews every figure)", flush=True)
    servers = []
    started = time.monotonic()
    try:
        server = start_cutover(folder, args.threads)
        servers.append(server)
        cutover = Cutover(server, folder)
        baseline = start_baseline(folder, args.threads)
        servers.append(baseline)
        # Warm both (imports, first connections, the bus's reader thread).
        measure_latency(cutover, baseline, 20, 200, args.width)

        sections = set(args.sections.split(","))
        if "1" in sections:
            section_latency(args, cutover, baseline)
        if "2" in sections:
            section_throughput(args, cutover, baseline)
        if "3" in sections:
            section_pages(args, cutover, baseline)
        if "4" in sections:
            section_abuse(args, cutover, folder)
    finally:
        for server in servers:
            server.stop()
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
        print(f"\ntotal {time.monotonic() - started:.0f} s, load average now {load}"
              + (f"; server logs in {folder}" if args.keep else ""))
        if not args.keep:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
