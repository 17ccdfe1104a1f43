"""Live log lines of runs, fanned out to every viewer from one reader.

Steps run in child processes and write their lines to the dashboard's database; the
database is the channel. Instead of every viewer polling it (200 viewers would be 10,000
queries a second), one thread per serving process reads what is new every few
milliseconds, formats each line as a Server-Sent Event once, and wakes the viewers, which
take the events from memory.

No line is missed or repeated: log-line ids grow in commit order (SQLite has one writer at
a time), a viewer first replays from the database up to the reader's watermark, then takes
only events above it. A viewer that falls behind the in-memory buffer reads the gap from
the database again.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator

from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models import ACTIVE_JOB_STATES, Job, LogLine, iso_time

POLL_SECONDS = 0.005
KEEPALIVE_SECONDS = 15.0
BUFFER_EVENTS = 20_000  # per followed run; older events are re-read from the database
REPLAY_BATCH = 5_000
IDLE_STOP_SECONDS = 30.0  # the reader thread ends after this long without viewers


def format_event(seq: int, run_id: int, job_id: int, step: str | None, level: str, moment, text: str) -> str:
    data = {"seq": seq, "run": run_id, "job": job_id, "step": step, "level": level,
            "time": iso_time(moment), "text": text}
    return f"id: {seq}\nevent: line\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


LINE_COLUMNS = (LogLine.id, LogLine.run_id, LogLine.job_id, LogLine.step, LogLine.level, LogLine.time, LogLine.text)


def read_events(connection, run_id: int, after: int, up_to: int | None = None, limit: int = REPLAY_BATCH) -> list[tuple[int, str]]:
    query = select(*LINE_COLUMNS).where(LogLine.run_id == run_id, LogLine.id > after)
    if up_to is not None:
        query = query.where(LogLine.id <= up_to)
    rows = connection.execute(query.order_by(LogLine.id).limit(limit)).all()
    return [(row[0], format_event(*row)) for row in rows]


@dataclass
class Feed:
    """What the reader knows of one followed run."""

    events: deque = field(default_factory=lambda: deque(maxlen=BUFFER_EVENTS))
    floor: int = 0  # every event of this run with id <= floor was dropped or predates the feed
    active: bool | None = None  # a step of the run is queued or running (None: not read yet)
    viewers: int = 0

    def add(self, seq: int, text: str) -> None:
        if len(self.events) == self.events.maxlen:
            self.floor = self.events[0][0]
        self.events.append((seq, text))

    def after(self, seq: int) -> list[tuple[int, str]]:
        # Viewers are nearly always at the end: walk back only over what is new to them.
        newer = []
        for event in reversed(self.events):
            if event[0] <= seq:
                break
            newer.append(event)
        newer.reverse()
        return newer


class LogBus:
    def __init__(self, app: Flask, poll_seconds: float = POLL_SECONDS):
        self.app, self.poll_seconds = app, poll_seconds
        self._changed = threading.Condition()
        self._feeds: dict[int, Feed] = {}
        self._watermark = 0
        self._thread: threading.Thread | None = None

    # -- viewers ---------------------------------------------------------------------

    def follow(self, run_id: int, after: int) -> Iterator[str]:
        """Every event of the run after `after`, then live ones, then an `end` event once no
        step of the run is running (it finished, or waits for an operator)."""
        feed, watermark = self._subscribe(run_id)
        try:
            yield "retry: 2000\n\n"
            last = after
            for chunk, last in self._replay(run_id, last, watermark):
                yield chunk
            yield from self._live(run_id, feed, last)
        finally:
            self._unsubscribe(run_id)

    def _subscribe(self, run_id: int) -> tuple[Feed, int]:
        with self._changed:
            feed = self._feeds.get(run_id)
            if feed is None:
                feed = self._feeds[run_id] = Feed(floor=self._watermark)
            feed.viewers += 1
            self._ensure_reader()
            return feed, feed.floor if feed.active is None else self._watermark

    def _unsubscribe(self, run_id: int) -> None:
        with self._changed:
            feed = self._feeds[run_id]
            feed.viewers -= 1
            if feed.viewers == 0:
                del self._feeds[run_id]

    def _replay(self, run_id: int, after: int, up_to: int) -> Iterator[tuple[str, int]]:
        while after < up_to:
            with self.app.app_context(), db.engine.connect() as connection:
                events = read_events(connection, run_id, after, up_to)
            if not events:
                return
            after = events[-1][0]
            yield "".join(text for _, text in events), after

    def _live(self, run_id: int, feed: Feed, last: int) -> Iterator[str]:
        quiet_since = time.monotonic()
        while True:
            with self._changed:
                events, gap, finished = self._take(feed, last)
                if not events and not gap and not finished:
                    self._changed.wait(timeout=1.0)
                    events, gap, finished = self._take(feed, last)
            if gap:
                for chunk, last in self._replay(run_id, last, gap):
                    yield chunk
                continue
            if events:
                last = events[-1][0]
                quiet_since = time.monotonic()
                yield "".join(text for _, text in events)
                continue
            if finished:
                yield f"event: end\ndata: {json.dumps({'run': run_id, 'last': last})}\n\n"
                return
            if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield ": keepalive\n\n"

    @staticmethod
    def _take(feed: Feed, last: int) -> tuple[list, int, bool]:
        """(events after `last`, the id up to which the database must be re-read, finished?)."""
        if last < feed.floor:
            return [], feed.floor, False
        events = feed.after(last)
        return events, 0, not events and feed.active is False

    # -- the reader ------------------------------------------------------------------

    def _ensure_reader(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._read_forever, name="cutover-logbus", daemon=True)
            self._thread.start()

    def _read_forever(self) -> None:
        idle_since = None
        while True:
            with self._changed:
                followed = list(self._feeds)
                if not followed:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > IDLE_STOP_SECONDS:
                        self._thread = None
                        return
                else:
                    idle_since = None
            if followed:
                try:
                    self._read_once(followed)
                except Exception:  # a locked or briefly unavailable database: try again next poll
                    self.app.logger.exception("reading new log lines failed")
                    time.sleep(0.5)
            time.sleep(self.poll_seconds)

    def _read_once(self, followed: list[int]) -> None:
        with self.app.app_context(), db.engine.connect() as connection, connection.begin():
            # One read transaction: the lines and the job states are of the same moment.
            newest = connection.execute(select(func.max(LogLine.id))).scalar() or 0
            rows = connection.execute(
                select(*LINE_COLUMNS).where(LogLine.run_id.in_(followed), LogLine.id > self._watermark,
                                            LogLine.id <= newest).order_by(LogLine.id)).all()
            active = set(connection.execute(select(Job.run_id).where(
                Job.run_id.in_(followed), Job.state.in_(ACTIVE_JOB_STATES))).scalars())
        with self._changed:
            for row in rows:
                feed = self._feeds.get(row[1])
                if feed is not None and row[0] > feed.floor:
                    feed.add(row[0], format_event(*row))
            for run_id, feed in self._feeds.items():
                if run_id in followed:
                    feed.active = run_id in active
                else:
                    # Followed only since this read began: its viewers re-read up to here.
                    feed.floor = max(feed.floor, newest)
            self._watermark = max(self._watermark, newest)
            self._changed.notify_all()


def log_bus(app: Flask) -> LogBus:
    bus = app.extensions.get("cutover.logbus")
    if bus is None:
        bus = app.extensions["cutover.logbus"] = LogBus(app)
    return bus
