"""The post-migration watch: a window of ticks, run by exactly one scheduler.

Tick k of a window is due at started_at + k * interval. A tick is claimed by inserting its
sample row (unique per window and tick) before it runs, so two schedulers, or a scheduler
and `flask cutover monitor-tick` from cron, never run it twice. Ticks whose time passed while
nothing ran (the dashboard was down) are recorded as "missed": the gap is shown, and only the
latest due tick runs.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import Callable

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.actions.guards import require_capability
from app.actions.verification import tick_checks
from app.core.checks import foreign_key_violations_of
from app.core.errors import Conflict, CutoverError
from app.core.newrows import capture_baseline
from app.core.workspace import Environment
from app.extensions import db
from app.models import HealthSample, MonitorWindow, utcnow
from app.targets import Targets

POLL_SECONDS = 5.0

# Who hears that a window ended clean or not (the checklist: its monitor step passes then).
_END_HOOKS: list[Callable[[Targets, MonitorWindow], None]] = []


def when_a_window_ends(hook: Callable[[Targets, MonitorWindow], None]) -> None:
    if hook not in _END_HOOKS:
        _END_HOOKS.append(hook)


def active_window(environment: str) -> MonitorWindow | None:
    return db.session.scalars(select(MonitorWindow).where(
        MonitorWindow.environment == environment, MonitorWindow.state == "active")).first()


def latest_window(environment: str) -> MonitorWindow | None:
    return db.session.scalars(select(MonitorWindow).where(MonitorWindow.environment == environment)
                              .order_by(MonitorWindow.id.desc()).limit(1)).first()


def start_window(targets: Targets, env: Environment, operator: str, *, reason: str = "",
                 hours: float | None = None, interval_minutes: float | None = None) -> MonitorWindow:
    """Start watching `env` now (an active window of the same environment is stopped first)."""
    require_capability(env, "monitor")
    settings = targets.workspace.verification
    hours = hours or settings.monitor_hours
    interval = timedelta(minutes=interval_minutes or settings.monitor_interval_minutes)
    previous = active_window(env.name)
    if previous:
        previous.state = "stopped"
    now = utcnow()
    window = MonitorWindow(environment=env.name, started_at=now, ends_at=now + timedelta(hours=hours),
                           interval_seconds=max(int(interval.total_seconds()), 1), started_by=operator,
                           reason=reason, baseline=json.dumps(_baseline(env, targets.cache.busy_timeout)))
    db.session.add(window)
    db.session.commit()
    audit.record(operator, "monitor-start", target=env.name, detail=f"window {window.id}: {hours} h every {interval}")
    return window


def _baseline(env: Environment, busy_timeout: float) -> dict:
    violations = foreign_key_violations_of(env.target, busy_timeout=busy_timeout).total
    return {"new_rows": capture_baseline(env.target, busy_timeout=busy_timeout), "fk_violations": violations}


def stop_window(window: MonitorWindow, operator: str, reason: str = "") -> MonitorWindow:
    if window.state != "active":
        raise Conflict(f"Window {window.id} is {window.state}; only an active window can be stopped.")
    window.state, window.end_reason = "stopped", reason
    db.session.commit()
    audit.record(operator, "monitor-stop", target=window.environment,
                 detail=f"window {window.id}" + (f": {reason}" if reason else ""))
    return window


def end_watch_after_restore(env: Environment, operator: str, backup_id: str) -> MonitorWindow | None:
    """A restore replaced the database the active window watches: its baseline and its ticks
    describe the file that is gone, so every tick from now on would alarm about the rollback
    itself. The window is stopped, saying why; start a new one to watch the restored database."""
    window = active_window(env.name)
    if window is None:
        return None
    reason = (f"{env.name} was restored from backup {backup_id}: the window watched the database "
              "that was replaced. Start a new window to watch the restored one.")
    return stop_window(window, operator, reason)


def due_ticks(window: MonitorWindow, now: datetime) -> list[int]:
    elapsed = (min(now, window.ends_at) - window.started_at).total_seconds()
    return list(range(0, min(int(elapsed // window.interval_seconds), window.last_tick) + 1)) if elapsed >= 0 else []


def tick_window(targets: Targets, window: MonitorWindow, now: datetime | None = None) -> HealthSample | None:
    """Record missed ticks, run the latest due one if nobody has, finish a window that is over."""
    now = now or utcnow()
    due = due_ticks(window, now)
    taken = set(db.session.scalars(select(HealthSample.tick).where(HealthSample.window_id == window.id)))
    for tick in due[:-1]:
        if tick not in taken:
            _claim(window, tick, "missed")
    sample = _claim(window, due[-1], "running") if due and due[-1] not in taken else None
    if sample is not None:
        _run(targets, window, sample)
    if now >= window.ends_at and window.state == "active" and (not due or due[-1] in taken or sample):
        window.state = "finished"
        db.session.commit()
        for hook in _END_HOOKS:
            hook(targets, window)
    return sample


def _claim(window: MonitorWindow, tick: int, state: str) -> HealthSample | None:
    sample = HealthSample(window_id=window.id, tick=tick, due_at=window.due_at(tick), state=state)
    db.session.add(sample)
    try:
        db.session.commit()
    except IntegrityError:  # another scheduler claimed it first: it runs it, not us
        db.session.rollback()
        return None
    return sample


def _run(targets: Targets, window: MonitorWindow, sample: HealthSample) -> None:
    env = targets.environment(window.environment)
    baseline = json.loads(window.baseline or "{}")
    try:
        results, measurements = tick_checks(targets, env, baseline.get("new_rows", {}), window.log_offset,
                                            baseline.get("fk_violations"))
    except CutoverError as error:
        results, measurements = [], {"error": error.message}
    measurements.update(_size_and_counts(targets, env))
    failed = [r.name for r in results if not r.passed] or (["inspection"] if "error" in measurements else [])
    sample.ran_at, sample.state = utcnow(), "failed" if failed else "passed"
    sample.results = json.dumps([r.to_dict() for r in results])
    sample.measurements = json.dumps(measurements)
    window.log_offset = measurements.get("log_offset", window.log_offset) or 0
    db.session.commit()
    if failed:
        audit.record("monitor", "health-alert", target=env.name, result="failed",
                     detail=f"window {window.id} tick {sample.tick}: {', '.join(failed)}")


def _size_and_counts(targets: Targets, env: Environment) -> dict:
    inspection = targets.inspect(env)
    if not inspection.ok:
        return {"error": inspection.error.message}
    return {"size_bytes": inspection.snapshot.facts.size_bytes, "row_counts": inspection.snapshot.row_counts()}


def tick_all(targets: Targets, now: datetime | None = None) -> list[HealthSample]:
    windows = db.session.scalars(select(MonitorWindow).where(MonitorWindow.state == "active")).all()
    return [sample for window in windows if (sample := tick_window(targets, window, now))]


def window_summary(window: MonitorWindow) -> dict:
    samples = db.session.scalars(select(HealthSample).where(HealthSample.window_id == window.id)
                                 .order_by(HealthSample.tick)).all()
    counts = {state: sum(1 for s in samples if s.state == state) for state in ("passed", "failed", "missed", "running")}
    return {
        "id": window.id, "environment": window.environment, "state": window.state,
        "started_at": window.started_at.isoformat() + "Z", "ends_at": window.ends_at.isoformat() + "Z",
        "interval_seconds": window.interval_seconds, "started_by": window.started_by, "reason": window.reason,
        "end_reason": window.end_reason or None,
        "ticks": window.last_tick + 1, "counts": counts,
        "clean": window.state == "finished" and counts["failed"] == 0 and counts["passed"] > 0,
    }


class MonitorScheduler:
    """The one scheduler: a daemon thread in the serving process (see app.server)."""

    def __init__(self, app: Flask, poll_seconds: float = POLL_SECONDS):
        self.app, self.poll_seconds = app, poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cutover-monitor", daemon=True)

    def start(self) -> "MonitorScheduler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            with self.app.app_context():
                try:
                    tick_all(self.app.extensions["cutover.targets"])
                except Exception:  # a failing tick must not end the watch; it is logged, then retried
                    self.app.logger.exception("monitoring tick failed")
                finally:
                    db.session.remove()
