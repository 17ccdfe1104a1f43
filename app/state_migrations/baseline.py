"""The dashboard's schema as Cutover 1.0 left it: the first revision creates it, and a state
database made before revisions existed is completed to it (legacy.py) before it is stamped.

Frozen: a later change to app/models.py is a new revision, never an edit here (a database
stamped with the baseline must mean one schema). The SQLite details the models rely on are
kept: every id is INTEGER there (so that it is the rowid and numbers itself; BIGINT elsewhere),
and the one-active-job and one-open-run rules are partial unique indexes on both engines."""
from __future__ import annotations

from sqlalchemy import (BigInteger, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, text)

REVISION = "0001_baseline"


def whole_number():
    return BigInteger().with_variant(Integer(), "sqlite")


def primary_key() -> Column:
    return Column("id", whole_number(), primary_key=True)


def required(name: str, type_, *arguments, **options) -> Column:
    return Column(name, type_, *arguments, nullable=False, **options)


def optional(name: str, type_, *arguments, **options) -> Column:
    return Column(name, type_, *arguments, nullable=True, **options)


def workspace() -> Column:
    return required("workspace", String(1024), index=True)


def partial_unique(name: str, condition: str, *columns: str) -> Index:
    return Index(name, *columns, unique=True, sqlite_where=text(condition), postgresql_where=text(condition))


def baseline_metadata() -> MetaData:
    metadata = MetaData()
    Table("operator", metadata, primary_key(),
          required("username", String(64), unique=True), required("password_hash", String(256)),
          required("created_at", DateTime()), required("session_generation", whole_number()))
    Table("audit_entry", metadata, primary_key(),
          required("time", DateTime()), required("actor", String(64)), required("action", String(64)),
          required("target", String(256)), required("result", String(32)), required("detail", Text()),
          required("previous_hash", String(64)), required("entry_hash", String(64)))
    Table("run", metadata, primary_key(),
          required("environment", String(64), index=True), required("created_by", String(64)),
          required("created_at", DateTime()), optional("finished_at", DateTime()),
          required("status", String(16)), required("status_note", Text()), required("checklist", Text()),
          workspace(),
          partial_unique("one_open_run_per_workspace_environment", "status = 'open'", "workspace", "environment"))
    Table("job", metadata, primary_key(),
          required("kind", String(32)), required("environment", String(64)), required("params", Text()),
          required("state", String(16)), required("operator", String(64)), required("created_at", DateTime()),
          optional("started_at", DateTime()), optional("finished_at", DateTime()),
          optional("pid", whole_number()), optional("pid_start", String(32)),
          required("progress_done", whole_number()), required("progress_total", whole_number()),
          required("result", Text()), required("error", Text()),
          optional("run_id", whole_number(), ForeignKey("run.id"), index=True), optional("step", String(48)),
          workspace(),
          partial_unique("one_active_job_per_workspace_environment", "state IN ('queued', 'running')",
                         "workspace", "environment"))
    Table("log_line", metadata, primary_key(),
          required("job_id", whole_number(), ForeignKey("job.id"), index=True), required("level", String(16)),
          required("time", DateTime()), required("text", Text()),
          optional("run_id", whole_number()), optional("step", String(48)),
          Index("log_line_by_run", "run_id", "id"))
    Table("sign_off", metadata, primary_key(),
          required("run_id", whole_number(), ForeignKey("run.id"), index=True), required("step", String(48)),
          required("kind", String(16)), optional("job_id", whole_number(), ForeignKey("job.id")),
          required("operator", String(64)), required("time", DateTime()), required("note", Text()),
          required("log_sha256", String(64)), required("subject", Text()), required("subject_sha256", String(64)))
    Table("monitor_window", metadata, primary_key(),
          required("environment", String(64), index=True), required("started_at", DateTime()),
          required("ends_at", DateTime()), required("interval_seconds", whole_number()),
          required("started_by", String(64)), required("reason", Text()), required("state", String(16)),
          required("end_reason", Text()), required("baseline", Text()), required("log_offset", whole_number()),
          workspace())
    Table("health_sample", metadata, primary_key(),
          required("window_id", whole_number(), ForeignKey("monitor_window.id"), index=True),
          required("tick", whole_number()), required("due_at", DateTime()), optional("ran_at", DateTime()),
          required("state", String(16)), required("results", Text()), required("measurements", Text()),
          UniqueConstraint("window_id", "tick", name="one_sample_per_tick"))
    return metadata
