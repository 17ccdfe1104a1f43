"""The dashboard's own state. A target database is never a model or a bind: core reaches it by path."""
from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import datetime, timezone

from flask import current_app, has_app_context
from flask_login import UserMixin
from sqlalchemy import Insert, String, Text, event
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, with_loader_criteria
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def workspace_key(config_path) -> str:
    """A workspace's identity: the real path of its cutover.toml. Environment names repeat
    across workspaces (every one has a "production"), so the dashboard's state about an
    environment (jobs, runs, monitoring windows) is kept per workspace."""
    return os.path.realpath(config_path)


def current_workspace() -> str | None:
    """The workspace this app serves, or None outside an app (or before its workspace is loaded)."""
    if not has_app_context():
        return None
    extensions = current_app.extensions
    if "cutover.workspace" not in extensions:
        targets = extensions.get("cutover.targets")
        if targets is None:
            return None
        extensions["cutover.workspace"] = workspace_key(targets.workspace.config_path)
    return extensions["cutover.workspace"]


class WorkspaceScoped:
    """Rows about an environment of one workspace: stamped with it when written, and every
    ORM query in an app sees only its own workspace's rows (see _only_this_workspace), so two
    workspaces sharing a state database never read each other's history as their own."""

    @declared_attr
    def workspace(cls) -> Mapped[str]:
        return mapped_column(String(1024), default=lambda: current_workspace() or "", index=True)


# Execution option of a query that must see every workspace's rows (a protection that errs on
# the side of keeping things): statement.execution_options(ALL_WORKSPACES=True).
ALL_WORKSPACES = "all_workspaces"


@event.listens_for(db.session, "do_orm_execute")
def _only_this_workspace(state) -> None:
    workspace = current_workspace()
    if workspace is None or state.execution_options.get(ALL_WORKSPACES):
        return
    if state.is_select and not state.is_column_load and not state.is_relationship_load:
        state.statement = state.statement.options(with_loader_criteria(
            WorkspaceScoped, lambda cls: cls.workspace == workspace, include_aliases=True))


class Operator(UserMixin, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bumped at logout so a replayed session cookie stops working (see load_operator).
    session_generation: Mapped[int] = mapped_column(default=0)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def get_id(self) -> str:
        return f"{self.id}:{self.session_generation}"


class AuditEntry(db.Model):
    """Append-only; each row's hash covers the previous row's, so an edit breaks the chain."""

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256), default="")
    result: Mapped[str] = mapped_column(String(32), default="ok")
    detail: Mapped[str] = mapped_column(Text, default="")
    previous_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


ACTIVE_JOB_STATES = ("queued", "running")


class Job(WorkspaceScoped, db.Model):
    """One operation on one environment (backup, verify, restore, rehearse, migrate, ...).

    It runs in a child process so a closed browser or a restarted dashboard does not stop
    it; the partial unique index makes "one active job per environment" a database fact,
    so a double click or two operators give exactly one execution.
    """

    __table_args__ = (
        db.Index("one_active_job_per_workspace_environment", "workspace", "environment", unique=True,
                 sqlite_where=db.text("state IN ('queued', 'running')"),
                 postgresql_where=db.text("state IN ('queued', 'running')")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    environment: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text, default="{}")
    state: Mapped[str] = mapped_column(String(16), default="queued")
    operator: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    pid: Mapped[int | None]
    # The kernel's start time of `pid`, so a recycled pid is never mistaken for our child.
    pid_start: Mapped[str | None] = mapped_column(String(32))
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    result: Mapped[str] = mapped_column(Text, default="{}")
    error: Mapped[str] = mapped_column(Text, default="")
    # Set when the job is one attempt at a checklist step of a run.
    run_id: Mapped[int | None] = mapped_column(db.ForeignKey("run.id"), index=True)
    step: Mapped[str | None] = mapped_column(String(48))

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_JOB_STATES

    @property
    def result_document(self) -> dict:
        import json

        return json.loads(self.result or "{}")

    @property
    def progress_percent(self) -> int:
        return int(100 * self.progress_done / self.progress_total) if self.progress_total else 0

    def to_dict(self) -> dict:
        import json

        return {
            "id": self.id, "kind": self.kind, "environment": self.environment, "state": self.state,
            "operator": self.operator, "params": json.loads(self.params or "{}"),
            "created_at": iso_time(self.created_at), "started_at": iso_time(self.started_at),
            "finished_at": iso_time(self.finished_at),
            "progress": {"done": self.progress_done, "total": self.progress_total, "percent": self.progress_percent},
            "result": json.loads(self.result or "{}"), "error": self.error or None,
            "run": self.run_id, "step": self.step,
        }


class LogLine(db.Model):
    """A line a job emitted. The id is the sequence number: ids grow in commit order (SQLite
    serialises writers; on PostgreSQL, see serialise_log_lines), so a reader that resumes
    after id N misses and repeats nothing."""

    __table_args__ = (db.Index("log_line_by_run", "run_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(db.ForeignKey("job.id"), index=True)
    level: Mapped[str] = mapped_column(String(16))
    time: Mapped[datetime] = mapped_column(default=utcnow)
    text: Mapped[str] = mapped_column(Text)
    # Copied from the job so a run's stream reads one index, not a join.
    run_id: Mapped[int | None]
    step: Mapped[str | None] = mapped_column(String(48))

    def to_dict(self) -> dict:
        document = {"seq": self.id, "job": self.job_id, "level": self.level, "time": iso_time(self.time), "text": self.text}
        if self.run_id is not None:
            document.update(run=self.run_id, step=self.step)
        return document


OPEN_RUN = "open"


class Run(WorkspaceScoped, db.Model):
    """One pass of the checklist against one environment.

    The step definitions are copied in at creation, so editing cutover.toml never changes a
    run in progress. Step states are derived from the run's jobs, sign-offs and monitoring
    window (app.checklist.progress), so a killed worker or a restart can never leave a stale "running".
    """

    __table_args__ = (
        db.Index("one_open_run_per_workspace_environment", "workspace", "environment", unique=True,
                 sqlite_where=db.text("status = 'open'"), postgresql_where=db.text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    environment: Mapped[str] = mapped_column(String(64), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default=OPEN_RUN)  # open | finished | abandoned
    status_note: Mapped[str] = mapped_column(Text, default="")
    checklist: Mapped[str] = mapped_column(Text)  # the step definitions, JSON


class SignOff(db.Model):
    """An operator's signature on what a step showed ("signoff"), or a second operator's
    approval before a step runs ("approval"). The hashes pin what was signed: if the step's
    log or the plan/schema it showed changes, the signature no longer counts."""

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(db.ForeignKey("run.id"), index=True)
    step: Mapped[str] = mapped_column(String(48))
    kind: Mapped[str] = mapped_column(String(16), default="signoff")  # signoff | approval
    job_id: Mapped[int | None] = mapped_column(db.ForeignKey("job.id"))
    operator: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")
    log_sha256: Mapped[str] = mapped_column(String(64), default="")
    subject: Mapped[str] = mapped_column(Text, default="")  # what the subject hash is of, in words
    subject_sha256: Mapped[str] = mapped_column(String(64), default="")


# PostgreSQL's advisory lock keys of the state database (any two numbers no other user of the
# database takes): one writer of log lines at a time, one writer of the audit chain at a
# time, one process at a time creating or upgrading the tables.
LOG_SEQUENCE_LOCK = 0x6375_7401
AUDIT_CHAIN_LOCK = 0x6375_7402
SCHEMA_LOCK = 0x6375_7403


def serialise_log_lines(engine) -> None:
    """Make log-line ids commit-ordered on a PostgreSQL state database.

    PostgreSQL hands out ids when a line is inserted, and transactions commit in any order:
    a reader following `id > last` could pass a smaller id that commits later, and miss it
    for ever. Every insert into log_line therefore first takes a transaction-scoped advisory
    lock (released at commit or rollback): the next writer's ids are drawn only once the
    previous writer's lines are visible. SQLite serialises writers itself; nothing is added."""
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "before_execute")
    def lock_before_inserting_lines(connection, statement, *_arguments):
        # By name: an ORM insert(LogLine) carries an annotated copy of the table.
        if isinstance(statement, Insert) and statement.table.name == LogLine.__tablename__:
            take_transaction_lock(connection, LOG_SEQUENCE_LOCK)


def take_transaction_lock(connection, key: int) -> None:
    """PostgreSQL's advisory lock `key`, held until this connection's transaction ends."""
    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({int(key)})")


@contextmanager
def schema_lock(engine):
    """On PostgreSQL, one process at a time migrates the schema (a server and a job's worker, or
    two dashboards, may start together: CREATE TABLE and CREATE INDEX of one name at once fail in
    the second). SQLite needs none: the migration's BEGIN IMMEDIATE (app/state_schema.py) is its lock."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({SCHEMA_LOCK})")
        connection.commit()
        try:
            yield
        finally:
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({SCHEMA_LOCK})")
            connection.commit()


def iso_time(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") + "Z" if moment else None


class MonitorWindow(WorkspaceScoped, db.Model):
    """A watch over one environment after a migration (24 hours by default).

    Ticks are numbered from the start (tick k is due at started_at + k * interval), so a
    restart knows exactly which ticks it missed: those are recorded as a gap, not run late.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    environment: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[datetime]
    interval_seconds: Mapped[int]
    started_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="active")  # active | finished | stopped
    # Why it was stopped, when not by an operator's click: e.g. a restore replaced the database it watched.
    end_reason: Mapped[str] = mapped_column(Text, default="")
    baseline: Mapped[str] = mapped_column(Text, default="{}")  # facts at the start, JSON
    log_offset: Mapped[int] = mapped_column(default=0)

    def due_at(self, tick: int):
        from datetime import timedelta

        return self.started_at + timedelta(seconds=tick * self.interval_seconds)

    @property
    def last_tick(self) -> int:
        return int((self.ends_at - self.started_at).total_seconds() // self.interval_seconds)


class HealthSample(db.Model):
    """One tick of a window: what every check said then, or that the tick was missed."""

    __table_args__ = (db.UniqueConstraint("window_id", "tick", name="one_sample_per_tick"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    window_id: Mapped[int] = mapped_column(db.ForeignKey("monitor_window.id"), index=True)
    tick: Mapped[int]
    due_at: Mapped[datetime]
    ran_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(16))  # running | passed | failed | missed
    results: Mapped[str] = mapped_column(Text, default="[]")
    measurements: Mapped[str] = mapped_column(Text, default="{}")
