"""Live log lines of runs and of jobs, fanned out to every viewer from one reader.

Steps run in child processes and write their lines to the dashboard's database; the
database is the channel. Instead of every viewer polling it (200 viewers would be 10,000
queries a second), one thread per serving process watches it: every POLL_SECONDS it asks
SQLite whether another connection committed anything (`PRAGMA data_version`, a few
microseconds, no query), and only then reads what is new. PostgreSQL is asked the same with
its current snapshot (`pg_current_snapshot()`, a query that reads no table: it changes
whenever a transaction commits), every POSTGRES_POLL_SECONDS, a round trip to the server. Each read turns a run's new
lines into one pre-formatted chunk of Server-Sent Events, shared by every viewer of that
run, and wakes only that run's viewers, once each (a token in the viewer's own queue, put
after the bus's lock is released). Every viewer holds a server thread, and waking one costs
about 0.1 ms of the single interpreter lock, so after a read that found lines the reader
waits a little before the next one, longer with more viewers (BATCH_SECONDS and
BATCH_SECONDS_PER_VIEWER, at most MAX_BATCH_SECONDS): a step printing flat out reaches its
viewers in a few dozen chunks a second, and pages stay quick with 200 viewers.

No line is missed or repeated: log-line ids grow in commit order (SQLite has one writer at
a time; on PostgreSQL, writers of lines take turns: app.models.serialise_log_lines); the reader reads a run's state *before* the newest id and the lines up to it (the
driver gives each SELECT its own snapshot, so the order is what makes "no step runs" imply
"every line of the run is at or below newest"). A viewer first replays from the database up
to its feed's floor, then takes whole chunks above it; a viewer that falls behind the
in-memory buffer, or resumes inside a chunk, reads that part from the database again.

A feed follows a topic: a run (every step's lines, one sequence) or a single job; both are
read by the same reader in the same query, so a job's viewers cost no more than a run's.
Every viewer holds a server thread for as long as it follows: `admit` caps them per client
address and in total (503 with Retry-After beyond), so pages and the API keep theirs.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator

from flask import Flask
from sqlalchemy import func, or_, select
from sqlalchemy.pool import StaticPool
from werkzeug.exceptions import ServiceUnavailable

from app.extensions import db
from app.models import ACTIVE_JOB_STATES, Job, LogLine, iso_time

POLL_SECONDS = 0.002  # how often the reader asks whether anything was committed
FALLBACK_POLL_SECONDS = 0.005  # how often it reads when it cannot ask (no data_version)
POSTGRES_POLL_SECONDS = 0.010  # how often it asks a PostgreSQL server (each asking is a round trip)
BATCH_SECONDS = 0.004  # after a read that found lines, the least wait before the next read...
BATCH_SECONDS_PER_VIEWER = 0.00015  # ...plus this per viewer (wake-ups cost CPU per viewer)
MAX_BATCH_SECONDS = 0.040  # ...and never more than this (it is added to every line's latency)
KEEPALIVE_SECONDS = 15.0
BUFFER_EVENTS = 20_000  # per followed run; older events are re-read from the database
REPLAY_BATCH = 5_000
READ_LIMIT = 20_000  # lines one read takes at most; the next read follows at once
IDLE_STOP_SECONDS = 30.0  # the reader thread ends after this long without viewers
IDLE_POLL_SECONDS = 0.5  # without viewers the reader only waits (a new viewer wakes it)
WAIT_SECONDS = 1.0  # a waiting viewer checks the reader is alive this often
RETRY_AFTER_SECONDS = 10  # what a refused viewer is told to wait
RESERVED_PAGE_THREADS = 32  # server threads viewers never take, whatever CUTOVER_MAX_VIEWERS says

RUN, JOB = "run", "job"  # what a feed follows: (RUN, run id) or (JOB, job id)


def batch_seconds(viewers: int) -> float:
    """How long the reader waits after publishing lines: wake-ups cost CPU per viewer."""
    return min(MAX_BATCH_SECONDS, BATCH_SECONDS + viewers * BATCH_SECONDS_PER_VIEWER)


def format_event(seq: int, run_id: int | None, job_id: int, step: str | None, level: str, moment, text: str) -> str:
    """One line as an SSE event; its data is LogLine.to_dict() (a line of no run has no run or step)."""
    data = {"seq": seq, "run": run_id, "job": job_id, "step": step, "level": level,
            "time": iso_time(moment), "text": text}
    if run_id is None:
        del data["run"], data["step"]
    return f"id: {seq}\nevent: line\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


LINE_COLUMNS = (LogLine.id, LogLine.run_id, LogLine.job_id, LogLine.step, LogLine.level, LogLine.time, LogLine.text)


def topic_column(kind: str):
    return LogLine.run_id if kind == RUN else LogLine.job_id


def read_events(connection, topic: tuple[str, int], after: int, up_to: int | None = None,
                limit: int | None = None) -> list[tuple[int, str]]:
    kind, key = topic
    query = select(*LINE_COLUMNS).where(topic_column(kind) == key, LogLine.id > after)
    if up_to is not None:
        query = query.where(LogLine.id <= up_to)
    rows = connection.execute(query.order_by(LogLine.id).limit(limit or REPLAY_BATCH)).all()
    return [(row[0], format_event(*row)) for row in rows]


@dataclass
class Chunk:
    """Every event of one topic with an id in (lo, hi], formatted once for all its viewers."""

    lo: int
    hi: int
    last_id: int  # the id of the last event in `text`
    count: int
    text: str


@dataclass
class Feed:
    """What the reader knows of one followed topic (a run, or a job).

    Invariant: every event of the topic with floor < id <= the bus's watermark is in `chunks`,
    once the feed is primed (the first read that saw it only sets `floor` and `active`)."""

    chunks: deque = field(default_factory=deque)
    floor: int = 0  # every event of this topic with id <= floor was dropped or predates the feed
    events: int = 0  # lines held in `chunks`
    active: bool | None = None  # a job of the topic is queued or running (None: not read yet)
    primed: bool = False
    viewers: int = 0
    waiters: set = field(default_factory=set)  # one wake-up queue per viewer

    def add(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        self.events += chunk.count
        while self.events > BUFFER_EVENTS and len(self.chunks) > 1:
            dropped = self.chunks.popleft()
            self.events -= dropped.count
            self.floor = dropped.hi


class LogBus:
    def __init__(self, app: Flask, poll_seconds: float = POLL_SECONDS):
        self.app, self.poll_seconds = app, poll_seconds
        self._lock = threading.Lock()
        self._feeds: dict[int, Feed] = {}
        self._watermark = 0  # every line with id <= watermark has been read (for the feeds then followed)
        self._wanted = False  # a new feed waits for its first read
        self._wake = threading.Event()  # set by a new feed: read now, do not finish a pause
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._admitted: dict[str, int] = {}  # live viewers per client address

    # -- admission -------------------------------------------------------------------

    def admit(self, client: str | None) -> Callable[[], None]:
        """Take a viewer's place for `client`, or refuse (TooManyViewers: 503, Retry-After).
        Returns the function that gives the place back (once, when the response closes)."""
        client = client or "unknown"
        total_cap, client_cap = viewer_caps(self.app.config)
        with self._lock:
            total = sum(self._admitted.values())
            if total >= total_cap:
                raise TooManyViewers(
                    f"{total} live logs are being followed, the most this dashboard serves at once "
                    f"(CUTOVER_MAX_VIEWERS={total_cap}), so that its pages and API keep their threads. "
                    f"Close a live log you no longer watch, or retry in {RETRY_AFTER_SECONDS} s.")
            if self._admitted.get(client, 0) >= client_cap:
                raise TooManyViewers(
                    f"Your address {client} already follows {client_cap} live logs, the most one client may "
                    f"(CUTOVER_MAX_VIEWERS_PER_CLIENT). Close one of them, or retry in {RETRY_AFTER_SECONDS} s.")
            self._admitted[client] = self._admitted.get(client, 0) + 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return
                released.set()
                self._admitted[client] -= 1
                if not self._admitted[client]:
                    del self._admitted[client]

        return release

    def viewers(self) -> int:
        with self._lock:
            return sum(self._admitted.values())

    # -- viewers ---------------------------------------------------------------------

    def follow(self, run_id: int, after: int, left: Callable[[], bool] = lambda: False) -> Iterator[str]:
        """Every event of the run after `after`, then live ones, then an `end` event once no
        step of the run is running (it finished, or waits for an operator). `left` tells
        whether the viewer went away (checked while nothing is sent; its thread is then freed)."""
        return self._follow((RUN, run_id), after, left)

    def follow_job(self, job_id: int, after: int, left: Callable[[], bool] = lambda: False) -> Iterator[str]:
        """Every event of the job after `after`, then live ones, then an `end` event with
        the job's final state once it is over."""
        return self._follow((JOB, job_id), after, left)

    def _follow(self, topic: tuple[str, int], after: int, left: Callable[[], bool]) -> Iterator[str]:
        wake = queue.SimpleQueue()
        feed, up_to = self._subscribe(topic, wake)
        try:
            yield "retry: 2000\n\n"
            position = last_sent = after  # position: every event of the topic <= it has been sent
            if position < up_to:
                for text, last_sent in self._replay(topic, position, up_to):
                    yield text
                position = up_to
            yield from self._live(topic, feed, wake, position, last_sent, left)
        finally:
            self._unsubscribe(topic, wake)

    def _subscribe(self, topic: tuple[str, int], wake: queue.SimpleQueue) -> tuple[Feed, int]:
        with self._lock:
            feed = self._feeds.get(topic)
            if feed is None:
                feed = self._feeds[topic] = Feed(floor=self._watermark)
                self._wanted = True
                self._wake.set()
            feed.viewers += 1
            feed.waiters.add(wake)
            self._ensure_reader()
            return feed, feed.floor

    def _unsubscribe(self, topic: tuple[str, int], wake: queue.SimpleQueue) -> None:
        with self._lock:
            feed = self._feeds[topic]
            feed.viewers -= 1
            feed.waiters.discard(wake)
            if feed.viewers == 0:
                del self._feeds[topic]

    def _replay(self, topic: tuple[str, int], after: int, up_to: int) -> Iterator[tuple[str, int]]:
        """The topic's events in (after, up_to] from the database, in batches: (text, last id)."""
        while after < up_to:
            with self.app.app_context(), db.engine.connect() as connection:
                events = read_events(connection, topic, after, up_to, REPLAY_BATCH)
            if not events:
                return
            after = events[-1][0]
            yield "".join(text for _, text in events), after

    def _live(self, topic: tuple[str, int], feed: Feed, wake: queue.SimpleQueue, position: int,
              last_sent: int, left: Callable[[], bool]) -> Iterator[str]:
        quiet_since = time.monotonic()
        while True:
            while not wake.empty():  # wake-ups for what this take sees anyway
                wake.get_nowait()
            with self._lock:
                text, last_id, position, gap, finished = self._take(feed, position)
            if gap:
                for text, last_sent in self._replay(topic, position, gap):
                    yield text
                position = gap
                continue
            if text:
                last_sent, quiet_since = last_id, time.monotonic()
                yield text
            if finished:
                yield self._end_event(topic, last_sent)
                return
            # Sleep until the reader publishes something for this run: it puts a token after
            # publishing, so whatever came after the take above wakes us (none is lost).
            wait = min(WAIT_SECONDS, quiet_since + KEEPALIVE_SECONDS - time.monotonic())
            try:
                if wait <= 0:
                    raise queue.Empty
                wake.get(timeout=wait)
            except queue.Empty:
                if left():
                    return
                if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                    quiet_since = time.monotonic()
                    yield ": keepalive\n\n"
                with self._lock:
                    self._ensure_reader()

    def _end_event(self, topic: tuple[str, int], last_sent: int) -> str:
        kind, key = topic
        if kind == RUN:
            data = {"run": key, "last": last_sent}
        else:
            with self.app.app_context(), db.engine.connect() as connection:
                data = {"job": key, "state": connection.execute(select(Job.state).where(Job.id == key)).scalar()}
        return f"event: end\ndata: {json.dumps(data)}\n\n"

    def _take(self, feed: Feed, position: int) -> tuple[str, int, int, int, bool]:
        """Under the lock: (new events' text, their last id, the new position, the id up to
        which the database must be re-read first (0: none), finished: no job of the topic
        runs and the text is its last)."""
        if position < feed.floor:
            return "", 0, position, feed.floor, False
        newer = []
        for chunk in reversed(feed.chunks):
            if chunk.hi <= position:
                break
            if chunk.lo < position:  # a resume point inside a chunk: that part from the database
                return "", 0, position, chunk.hi, False
            newer.append(chunk)
        # Every event of the run up to the watermark is in the chunks: the viewer is now there.
        position = max(position, self._watermark)
        finished = feed.active is False
        if not newer:
            return "", 0, position, 0, finished
        if len(newer) == 1:
            return newer[0].text, newer[0].last_id, position, 0, finished
        newer.reverse()
        return "".join(chunk.text for chunk in newer), newer[-1].last_id, position, 0, finished

    # -- the reader ------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """End the reader now and close its connection (before the state database goes away)."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _ensure_reader(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._read_forever, name="cutover-logbus", daemon=True)
            self._thread.start()

    def _read_forever(self) -> None:
        with self.app.app_context():
            watcher = _Watcher()
            try:
                self._read_loop(watcher)
            finally:
                watcher.close()

    def _read_loop(self, watcher: _Watcher) -> None:
        idle_since = None
        while True:
            with self._lock:
                if self._stopping:
                    self._thread = None
                    return
                viewers = sum(feed.viewers for feed in self._feeds.values())
                if not self._feeds:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > IDLE_STOP_SECONDS:
                        self._thread = None
                        return
                else:
                    idle_since = None
                wanted, self._wanted = self._wanted, False
            pause = self.poll_seconds if viewers else IDLE_POLL_SECONDS
            if viewers:
                try:
                    version = watcher.version()  # before reading: a commit during the read is seen next time
                    if wanted or version is None or version != watcher.seen:
                        found, complete = self._read_once(watcher.connection())
                        watcher.seen = version if complete else None
                        if found and complete:
                            pause = max(pause, batch_seconds(viewers))
                        elif not complete:
                            pause = 0
                    if version is None:
                        pause = max(pause, FALLBACK_POLL_SECONDS)
                    elif watcher.on_postgres:
                        pause = max(pause, POSTGRES_POLL_SECONDS)
                except Exception:  # a locked or briefly unavailable database: try again soon
                    self.app.logger.exception("reading new log lines failed")
                    watcher.reset()
                    pause = 0.5
            if pause > 0 and self._wake.wait(pause):
                self._wake.clear()

    def _read_once(self, connection) -> tuple[bool, bool]:
        """Read what is new for the followed topics and publish it: (found lines?, read all?)."""
        with self._lock:
            snapshot = dict(self._feeds)
            watermark = self._watermark
        followed = {RUN: [k for kind, k in snapshot if kind == RUN], JOB: [k for kind, k in snapshot if kind == JOB]}
        primed = {kind: [k for k in keys if snapshot[(kind, k)].primed] for kind, keys in followed.items()}
        try:
            # Order matters (each SELECT is its own snapshot): states first, then the newest id.
            active = self._active_topics(connection, followed)
            newest = connection.execute(select(func.max(LogLine.id))).scalar() or 0
            rows = []
            if (primed[RUN] or primed[JOB]) and newest > watermark:
                rows = connection.execute(
                    select(*LINE_COLUMNS).where(
                        or_(LogLine.run_id.in_(primed[RUN]), LogLine.job_id.in_(primed[JOB])),
                        LogLine.id > watermark, LogLine.id <= newest).order_by(LogLine.id).limit(READ_LIMIT)).all()
        finally:
            connection.rollback()
        complete = len(rows) < READ_LIMIT
        if not complete:
            newest = rows[-1][0]
        lines: dict[tuple[str, int], list] = {}
        for row in rows:
            for topic in ((RUN, row[1]), (JOB, row[2])):
                if topic in snapshot:
                    lines.setdefault(topic, []).append(row)
        chunks = {topic: Chunk(watermark, newest, topic_rows[-1][0], len(topic_rows),
                               "".join(format_event(*row) for row in topic_rows))
                  for topic, topic_rows in lines.items()}
        woken = []
        with self._lock:
            for topic, feed in self._feeds.items():
                changed = False
                if snapshot.get(topic) is feed and feed.primed:
                    chunk = chunks.get(topic)
                    if chunk is not None:
                        feed.add(chunk)
                        changed = True
                elif newest > feed.floor:
                    # Not read for this feed (new, or followed only since this read began): its
                    # viewers read up to here from the database.
                    feed.floor = newest
                    changed = True
                if snapshot.get(topic) is feed:
                    feed.primed = True
                    if complete and feed.active != (topic in active):
                        feed.active = topic in active
                        changed = True
                if changed:
                    woken += feed.waiters
            self._watermark = max(self._watermark, newest)
        for wake in woken:  # outside the lock: woken viewers take it at once
            if wake.empty():
                wake.put(None)
        return bool(rows), complete

    @staticmethod
    def _active_topics(connection, followed: dict) -> set:
        """The followed topics with a job queued or running."""
        active = set()
        if followed[RUN]:
            active |= {(RUN, k) for k in connection.execute(select(Job.run_id).where(
                Job.run_id.in_(followed[RUN]), Job.state.in_(ACTIVE_JOB_STATES))).scalars()}
        if followed[JOB]:
            active |= {(JOB, k) for k in connection.execute(select(Job.id).where(
                Job.id.in_(followed[JOB]), Job.state.in_(ACTIVE_JOB_STATES))).scalars()}
        return active


class _Watcher:
    """The reader's own connection, and whether anything was committed since it last looked."""

    def __init__(self):
        self._connection = None
        self.seen = None  # the data_version of the last complete read

    @property
    def on_postgres(self) -> bool:
        return db.engine.dialect.name == "postgresql"

    def connection(self):
        if self._connection is None:
            self._connection = db.engine.connect()
            if self.on_postgres:  # every statement its own snapshot, no transaction left open between polls
                self._connection = self._connection.execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    def version(self) -> int | str | None:
        """SQLite's data_version, or PostgreSQL's current snapshot: either changes whenever
        another connection commits. None when it cannot tell (another database, or one shared
        in-memory connection): read every time."""
        engine = db.engine
        if self.on_postgres:
            return self.connection().exec_driver_sql("SELECT pg_current_snapshot()::text").scalar()
        if engine.dialect.name != "sqlite" or isinstance(engine.pool, StaticPool):
            return None
        cursor = self.connection().connection.driver_connection.execute("PRAGMA data_version")
        try:
            return cursor.fetchone()[0]
        finally:
            cursor.close()

    def reset(self) -> None:
        self.close()
        self.seen = None

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                pass
            self._connection = None


class TooManyViewers(ServiceUnavailable):
    """A live log refused because viewers would take the threads pages need."""

    def __init__(self, message: str):
        super().__init__(message, retry_after=RETRY_AFTER_SECONDS)


def viewer_caps(config) -> tuple[int, int]:
    """(live viewers in total, per client address); the total always leaves threads for pages."""
    total = min(int(config["CUTOVER_MAX_VIEWERS"]), int(config["CUTOVER_THREADS"]) - RESERVED_PAGE_THREADS)
    return max(1, total), max(1, int(config["CUTOVER_MAX_VIEWERS_PER_CLIENT"]))


def log_bus(app: Flask) -> LogBus:
    bus = app.extensions.get("cutover.logbus")
    if bus is None:
        bus = app.extensions["cutover.logbus"] = LogBus(app)
    return bus
