"""Applying a plan set to a target: all of it in one transaction, or none of it.

The real production failure committed every statement before `no such column: group_id`
and left a half-migrated database. Here, one connection takes the write lock with
BEGIN IMMEDIATE (transaction.py), and inside that one transaction:

1. the schema fingerprint, PRAGMA quick_check and PRAGMA foreign_key_check are taken;
2. each statement is reconciled against the LIVE schema (reconcile.decide), then skipped
   ("already exists, skipping (expected)") or executed, one log line each;
3. an index, trigger or view the statements destroyed without re-creating it stops the
   run unless the plan accepts it (`-- accept-drop: KIND NAME`, losses.py);
   quick_check and foreign_key_check are taken again: damage, or a foreign-key violation
   that was not there before, stops the run (real data is dirty: pre-existing orphans
   are reported, not fatal);
4. COMMIT. Any error before it rolls everything back: the file is exactly as it was.

A rehearsal takes a consistent snapshot of the target into a temporary file and runs the
very same `apply_plan` there, then checks what the run did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone

from app.core.baseline import Baseline, accept_current_state, refuse_if_changed
from app.core.engines import Engine, engine_for
from app.core.errors import Conflict, CutoverError, MigrationFailed, RehearsalMismatch, TargetChanged
from app.core.events import Emit, collecting, discard
from app.core.losses import LossWatch
from app.core.plans import PlanSet, PlanStatement
from app.core.results import CheckResult
from app.core.reconcile import PlanContext, creates_something, decide, schema_fingerprint
from app.core.schema import Schema
from app.core.sql import ascii_lower
from app.core.violations import SAMPLE_LIMIT, Violations, new_violations  # noqa: F401

DEFAULT_BUSY_TIMEOUT = 5.0
_ROW_VERBS = {"insert": "inserted", "update": "updated", "delete": "deleted"}


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class StatementResult:
    statement: PlanStatement
    outcome: str  # applied | skipped | failed | not_run
    message: str
    duration_ms: float | None = None
    rows: int | None = None  # rows changed by a data statement

    def to_dict(self) -> dict:
        s = self.statement
        return {
            "index": s.index, "file": s.file, "line": s.line, "phase": s.phase,
            "phase_number": s.phase_number, "description": s.description,
            "outcome": self.outcome, "message": self.message,
            "duration_ms": _round(self.duration_ms), "rows": self.rows,
        }


@dataclass(frozen=True)
class ApplyResult:
    path: str
    plan_hash: str
    committed: bool
    started_at: str
    duration_ms: float
    fingerprint_before: str | None
    fingerprint_after: str | None  # None when nothing was committed
    statements: tuple[StatementResult, ...]
    failure: dict | None = None  # {"reason", "message", "statement": {...} | None, "error"}
    quick_check_before: str | None = None
    quick_check_after: str | None = None
    foreign_keys: dict | None = None  # {"before", "after", "new", "pre_existing", "new_samples"}
    timings: dict = field(default_factory=dict)
    # Where the commit landed, read just before it ({"at", "wal_lsn"} on PostgreSQL: a
    # point-in-time-recovery target); None for an engine without one.
    commit_point: dict | None = None
    # Phases declared `(no transaction)`: run one statement at a time after the commit.
    outside_transaction: dict | None = None

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("applied", "skipped", "failed", "not_run"), 0)
        for result in self.statements:
            counts[result.outcome] += 1
        return counts

    def to_dict(self) -> dict:
        return {
            "path": self.path, "plan_hash": self.plan_hash, "committed": self.committed,
            "started_at": self.started_at, "duration_ms": _round(self.duration_ms),
            "fingerprint_before": self.fingerprint_before,
            "fingerprint_after": self.fingerprint_after,
            "counts": self.counts(), "failure": self.failure,
            "quick_check_before": self.quick_check_before,
            "quick_check_after": self.quick_check_after,
            "foreign_keys": self.foreign_keys,
            "commit_point": self.commit_point,
            "outside_transaction": self.outside_transaction,
            "timings": {name: _round(value) for name, value in self.timings.items()},
            "statements": [result.to_dict() for result in self.statements],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class _Abort(Exception):
    """Stops the run inside the transaction; apply_plan turns it into MigrationFailed."""

    def __init__(self, message: str, reason: str, error: str | None = None):
        super().__init__(message)
        self.message, self.reason, self.error = message, reason, error


class _Run:
    """What one apply has done so far: lines emitted, statement results, checks."""

    def __init__(self, engine: Engine, plan_set: PlanSet, emit: Emit, label: str | None = None):
        self.engine, self.plan_set, self.emit = engine, plan_set, emit
        # How the log names the database: a rehearsal's copy is "the snapshot of <target>",
        # so an operator never reads a temporary path and wonders what it is.
        self.name = label or engine.label
        self.started = time.perf_counter()
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.results: dict[int, StatementResult] = {}
        self.failed: PlanStatement | None = None
        self.facts: dict = {"timings": {}}

    def say(self, level: str, text: str) -> None:
        self.emit(level, text)

    def record(self, result: StatementResult) -> None:
        self.results[result.statement.index] = result
        if result.outcome == "failed":
            self.failed = result.statement

    def timed(self, name: str, started: float) -> None:
        self.facts["timings"][name] = (time.perf_counter() - started) * 1000

    def result(self, committed: bool, failure: dict | None = None) -> ApplyResult:
        statements = tuple(
            self.results.get(s.index) or StatementResult(s, "not_run", "not run")
            for s in self.plan_set.statements()
        )
        facts = dict(self.facts)
        before = facts.pop("fingerprint_before", None)
        after = facts.pop("fingerprint_after", None)
        return ApplyResult(
            path=self.engine.label, plan_hash=self.plan_set.hash, committed=committed,
            started_at=self.started_at,
            duration_ms=(time.perf_counter() - self.started) * 1000,
            fingerprint_before=before,
            fingerprint_after=after if committed else None,  # rolled back: nothing changed
            statements=statements, failure=failure, **facts,
        )


# --------------------------------------------------------------------------- apply


def apply_plan(
    path,
    plan_set: PlanSet,
    *,
    emit: Emit = discard,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    rehearsal: dict | None = None,
    label: str | None = None,
    precondition: Callable[[], None] | None = None,
    baseline: Baseline | None = None,
) -> ApplyResult:
    """Apply `plan_set` to the database at `path` in one transaction; all of it or none.

    `baseline` names the backup that is the way back from this migration and the target's
    stamp when it was taken: once the write lock is held, a target written since refuses
    the migration (TargetChanged naming the backup), with no gap in which another writer
    could slip in. Every apply to a real target passes one; only a rehearsal's private
    snapshot has none. `precondition` runs under the lock too, before anything changes.

    Raises MigrationFailed (carrying the ApplyResult) after rolling back; RehearsalMismatch
    when `rehearsal` (a RehearsalResult.to_dict()) is not a passing rehearsal of this plan
    on this schema; TargetChanged when the target changed since `baseline`; the Conflict or
    TargetChanged `precondition` raised; TargetUnavailable when the file cannot be opened.
    """
    engine = engine_for(path)
    run = _Run(engine, plan_set, emit, label)
    statements, phases = len(plan_set.statements()), len(plan_set.phases())
    outside = _phases_outside(plan_set)
    run.say("info", f"Migrating {run.name}: plan {plan_set.hash[:12]}, "
                    f"{_count(statements, 'statement')} in {_count(phases, 'phase')}, "
                    "one transaction" + (f", then {_count(len(outside), 'phase')} outside it" if outside else ""))
    try:
        if baseline is not None:
            baseline = accept_current_state(engine, baseline, emit=emit, busy_timeout=busy_timeout)
        with closing(run.engine.open_for_writing(busy_timeout=busy_timeout)) as connection:
            try:
                with run.engine.write_transaction(connection):
                    _migrate(connection, run, rehearsal, precondition, baseline)
            except _REFUSALS:
                raise
            except Exception as exc:
                raise _migration_failed(run, connection, exc, busy_timeout) from exc
    except _REFUSALS as exc:
        run.say("error", f"Refused: {exc.message}")
        raise
    counts = run.result(committed=True).counts()
    run.say("ok", f"Committed: {counts['applied']} statements applied, {counts['skipped']} "
                  f"skipped, in {(time.perf_counter() - run.started) * 1000:.0f} ms; schema "
                  f"{run.facts['fingerprint_before'][:12]} → {run.facts['fingerprint_after'][:12]}")
    if outside:
        _run_outside_transaction(run, outside, busy_timeout)
    return run.result(committed=True)


# Raised before anything changed (immediate_transaction rolled back an empty transaction):
# the caller's refusal, passed on as it is rather than as a failed migration.
_REFUSALS = (RehearsalMismatch, TargetChanged, Conflict)


def _migrate(connection, run: _Run, rehearsal: dict | None, precondition,
             baseline: Baseline | None) -> None:
    run.say("info", run.engine.transaction_opened_line())
    if baseline is not None:
        refuse_if_changed(run.engine, baseline)
        run.say("ok", f"✓ {run.name} is unchanged since {baseline.moment}: backup "
                      f"{baseline.backup_id} is the way back")
    if precondition is not None:
        precondition()
    started = time.perf_counter()
    run.facts["fingerprint_before"] = schema_fingerprint(run.engine, connection)
    if rehearsal is not None:
        check_rehearsal(rehearsal, run.plan_set, run.facts["fingerprint_before"],
                        run.engine.schema_text_sha256(connection))
    run.facts["quick_check_before"] = _require_integrity(connection, run, "before")
    before = run.engine.foreign_key_violations(connection)
    _report_pre_existing(run, before)
    run.timed("checks_before_ms", started)
    started = time.perf_counter()
    context = PlanContext.of(run.plan_set.statements())
    watch = LossWatch(run.engine, connection)
    for phase in _phases_inside(run.plan_set):
        run.say("info", f"Phase {phase.number}: {phase.title} "
                        f"({_count(len(phase.statements), 'statement')})")
        for statement in phase.statements:
            _apply_statement(connection, statement, context, run)
            watch.saw(statement)
    run.timed("statements_ms", started)
    started = time.perf_counter()
    _refuse_unaccepted_losses(run, watch)
    run.facts["quick_check_after"] = _require_integrity(connection, run, "after")
    _compare_foreign_keys(run, before, run.engine.foreign_key_violations(connection))
    run.facts["fingerprint_after"] = schema_fingerprint(run.engine, connection)
    run.timed("checks_after_ms", started)
    run.facts["commit_point"] = run.engine.commit_point(connection)
    if run.facts["commit_point"]:
        point = run.facts["commit_point"]
        run.say("info", f"Committing at {point['at']}, WAL {point['wal_lsn']} (a point-in-time-recovery target "
                        "just before this migration)")


def _phases_inside(plan_set: PlanSet) -> list:
    return [phase for phase in plan_set.phases() if phase.transactional]


def _phases_outside(plan_set: PlanSet) -> list:
    return [phase for phase in plan_set.phases() if not phase.transactional]


def _run_outside_transaction(run: _Run, phases: list, busy_timeout: float) -> None:
    """Phases declared `(no transaction)`: each statement on its own, after the commit, not atomic.

    The plan's transaction is committed by now; what fails here stops the run and says exactly
    what ran, what did not, and that the committed part stays (rolling it back is a restore)."""
    run.say("warning", f"Now {_count(len(phases), 'phase')} declared (no transaction): each statement "
                       "commits on its own; this part is NOT atomic")
    done = {"phases": [phase.number for phase in phases], "completed": False}
    run.facts["outside_transaction"] = done
    context = PlanContext.of(run.plan_set.statements())
    with closing(run.engine.open_for_writing(busy_timeout=busy_timeout)) as connection:
        for phase in phases:
            run.say("info", f"Phase {phase.number}: {phase.title} ({_count(len(phase.statements), 'statement')}, "
                            "no transaction)")
            for statement in phase.statements:
                try:
                    with run.engine.outside_transaction(connection):
                        _apply_statement(connection, statement, context, run)
                except Exception as exc:
                    done["failure"] = str(getattr(exc, "message", exc))
                    run.say("error", f"Stopped in phase {phase.number}: the transaction's part stays committed; "
                                     "what ran before this statement stays too. Fix the cause and run the plan "
                                     "again (reconciliation skips what is done), or restore the backup.")
                    raise MigrationFailed(
                        f"{_where(statement)} failed outside the transaction: {done['failure']} The plan's "
                        "transactional part was committed and stays.", result=run.result(True, {
                            "reason": "outside_transaction", "message": done["failure"],
                            "statement": statement.to_dict(), "error": done["failure"]}),
                        path=run.engine.label, reason="outside_transaction") from exc
    done["completed"] = True
    run.say("ok", f"Phases outside the transaction done: {', '.join(str(p) for p in done['phases'])}")


def _refuse_unaccepted_losses(run: _Run, watch: LossWatch) -> None:
    """The last line of defence: nothing commits that silently lost an index, trigger or view."""
    losses = watch.losses(run.plan_set.acceptances())
    for loss in losses:
        if loss.accepted:
            run.say("warning", f"Accepted by the plan ({loss.acceptance.file}:{loss.acceptance.line}): "
                               f"{loss.message()}")
    refused = [loss for loss in losses if not loss.accepted]
    if not refused:
        return
    for loss in refused:
        run.say("error", f"✗ Lost: {loss.message()}")
    names = ", ".join(loss.object.label() for loss in refused)
    lines = "; ".join(f"`{loss.acceptance_line}`" for loss in refused)
    raise _Abort(f"The plan destroys {names} and does not re-create {'it' if len(refused) == 1 else 'them'}. "
                 f"Re-create {'it' if len(refused) == 1 else 'them'} in the plan, or accept the loss with "
                 f"{lines} in the plan.", "lost_objects", names)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def statement_line(statement: PlanStatement, outcome: str, duration_ms: float) -> str:
    """`[Phase 3] CREATE INDEX idx_x ON t(c) … ✓ Success (new) 3 ms`, as the runbook reads."""
    phase, description = statement.phase_number, statement.description
    between = " " if description.endswith("…") else " … "  # a shortened one already ends in "…"
    return f"[Phase {phase}] {description}{between}{outcome} {duration_ms:.0f} ms"


def _apply_statement(connection, statement: PlanStatement, context: PlanContext, run: _Run) -> None:
    started = time.perf_counter()
    decision = decide(run.engine, connection, statement.sql, context)
    if decision.action == "skip":
        elapsed = (time.perf_counter() - started) * 1000
        run.record(StatementResult(statement, "skipped", decision.message, elapsed))
        run.say("expected", statement_line(statement, f"⚠ {decision.message}", elapsed))
        return
    if decision.action == "conflict":
        raise _conflict(statement, decision, (time.perf_counter() - started) * 1000, run)
    changes_before = run.engine.changes(connection)
    try:
        cursor = connection.execute(statement.sql)
    except run.engine.Error as exc:
        if run.engine.error_reason(exc) == "locked":
            # A lock not granted in time: the engine's transaction names who held it.
            run.record(StatementResult(statement, "failed", f"Error: {exc}", (time.perf_counter() - started) * 1000))
            raise
        raise _statement_error(statement, exc, (time.perf_counter() - started) * 1000, run) from exc
    rows = None
    if statement.shape.is_data:
        # Python's sqlite3 reports no rowcount for `WITH ... UPDATE`; total_changes knows (it
        # also counts rows changed by triggers, which rowcount would not).
        rows = cursor.rowcount
        if rows < 0 and changes_before is not None:
            rows = run.engine.changes(connection) - changes_before
    cursor.close()  # a plan's SELECT must not keep a statement open across COMMIT
    elapsed = (time.perf_counter() - started) * 1000
    run.record(StatementResult(statement, "applied", _success_text(statement, rows), elapsed, rows))
    run.say("ok", statement_line(statement, f"✓ {_success_text(statement, rows)}", elapsed))


def _success_text(statement: PlanStatement, rows: int | None) -> str:
    if rows is None:
        return "Success (new)" if creates_something(statement.shape) else "Success"
    verb = _ROW_VERBS.get(statement.shape.verb, "affected")
    noun = "row" if rows == 1 else "rows"
    return f"Success: {rows:,} {noun} {verb} (data statement, idempotent by design)"


def _where(statement: PlanStatement) -> str:
    return (f"statement {statement.index + 1} (phase {statement.phase_number} "
            f"\"{statement.phase}\", {statement.file}:{statement.line})")


def _conflict(statement, decision, elapsed: float, run: _Run) -> _Abort:
    run.record(StatementResult(statement, "failed", f"Conflict: {decision.message}", elapsed))
    run.say("error", statement_line(statement, f"✗ Conflict: {decision.message}", elapsed))
    run.say("error", f"  existing: {decision.existing}")
    run.say("error", f"  plan:     {decision.planned}")
    return _Abort(f"{_where(statement)} conflicts with the database: {decision.message}. "
                 "Make the plan and the database agree, then reconcile again.",
                 "conflict", decision.message)


def _statement_error(statement, exc: Exception, elapsed: float, run: _Run) -> _Abort:
    run.record(StatementResult(statement, "failed", f"Error: {exc}", elapsed))
    run.say("error", statement_line(statement, f"✗ Error: {exc}", elapsed))
    return _Abort(f"{_where(statement)} failed: {exc}.", "statement_failed", str(exc))


def _migration_failed(run: _Run, connection, exc: Exception,
                      busy_timeout: float) -> MigrationFailed:
    # immediate_transaction has rolled back by now (or SQLite did, for some errors). If even
    # ROLLBACK failed, closing the connection is what undoes the transaction.
    if getattr(connection, "in_transaction", False):
        connection.close()
    reason, message, error = _explain(run, exc, busy_timeout)
    run.say("error", f"Rolled back: {run.name} is exactly as it was before the migration.")
    statement = run.failed.to_dict() if run.failed else None
    failure = {"reason": reason, "message": message, "statement": statement, "error": error}
    full = f"{message} The transaction was rolled back: nothing was changed."
    result = run.result(False, failure)
    return MigrationFailed(full, result=result, path=run.engine.label, reason=reason)


def _explain(run: _Run, exc: Exception, busy_timeout: float) -> tuple[str, str, str | None]:
    if isinstance(exc, _Abort):
        return exc.reason, exc.message, exc.error
    if isinstance(exc, run.engine.Error) and run.engine.error_reason(exc) == "locked":
        if "fingerprint_after" in run.facts:  # everything ran; COMMIT could not get the lock
            return "locked", (
                f"{run.name}: the database is in use by another connection, which kept the "
                f"migration from committing (Cutover waited {busy_timeout:g} s); stop the "
                "application and retry."
            ), str(exc)
        return "locked", (
            f"{run.name}: the database is locked by another writer; stop the application and "
            f"retry (Cutover waited {busy_timeout:g} s for the lock)."
        ), str(exc)
    if isinstance(exc, CutoverError):
        return exc.code, exc.message, None
    return "error", f"{run.name}: the migration stopped: {exc}.", str(exc)


# --------------------------------------------------------------------------- checks


def _require_integrity(connection, run: _Run, when: str) -> str | None:
    result = run.engine.integrity_in_transaction(connection)
    if result is None:
        if when == "before":
            run.say("info", f"Integrity: {run.engine.title} checks every constraint as each statement runs")
        return None
    if result == "ok":
        run.say("info", f"Integrity {when}: quick_check ok")
        return result
    run.say("error", f"Integrity {when}: quick_check reports: {result}")
    if when == "before":
        raise _Abort(f"{run.name} is damaged (quick_check: {result.splitlines()[0]}); do not "
                     "migrate it: restore it from a backup first.", "integrity", result)
    raise _Abort(f"The migration would leave {run.name} damaged (quick_check: "
                 f"{result.splitlines()[0]}).", "integrity", result)


def _report_pre_existing(run: _Run, before: Violations) -> None:
    if before.unavailable:
        run.say("warning", f"Foreign keys before: cannot be checked ({before.unavailable})")
    elif not before.total:
        run.say("info", "Foreign keys before: no violations")
    else:
        run.say("warning", f"Foreign keys before: {_count(before.total, 'pre-existing violation')} "
                           "(reported, not fatal: only new ones stop the migration)")
        for sample in before.samples():
            run.say("warning", f"  pre-existing: {sample}")


def _compare_foreign_keys(run: _Run, before: Violations, after: Violations) -> None:
    new, samples = new_violations(before, after)
    run.facts["foreign_keys"] = {
        "before": before.total, "after": after.total, "new": new,
        "pre_existing": before.total, "new_samples": samples,
        "unavailable": after.unavailable,
    }
    if after.unavailable and not before.unavailable:
        run.say("error", f"Foreign keys after: the check cannot run any more ({after.unavailable})")
        raise _Abort(f"The migration breaks foreign keys: {after.unavailable}.", "foreign_keys",
                     after.unavailable)
    if new:
        run.say("error", f"Foreign keys after: {_count(new, 'new violation')}")
        for sample in samples:
            run.say("error", f"  new: {sample}")
        example = samples[0] if samples else "see the log"
        raise _Abort(f"The migration would add {_count(new, 'foreign-key violation')} "
                     f"(e.g. {example}).", "foreign_keys", None)
    run.say("ok", f"Foreign keys after: no new violations ({before.total:,} pre-existing)")


# --------------------------------------------------------------------------- rehearsal


@dataclass(frozen=True)
class RehearsalResult:
    passed: bool
    plan_hash: str
    target_fingerprint: str  # of the snapshot, i.e. of the target when it was taken
    failure: dict | None  # {"check", "message", "statement", "error"}
    lines: tuple[tuple[str, str], ...]  # every (level, text) the rehearsal emitted
    timings: dict  # snapshot_ms, apply_ms, verify_ms, total_ms
    target: str = ""
    rehearsed_at: str = ""
    checks: tuple[CheckResult, ...] = ()
    remaining_differences: tuple[dict, ...] = ()
    apply: ApplyResult | None = None
    target_schema_sha256: str = ""  # of the snapshot's schema text, exactly as stored

    def to_dict(self) -> dict:
        return {
            "passed": self.passed, "plan_hash": self.plan_hash,
            "target": self.target, "target_fingerprint": self.target_fingerprint,
            "target_schema_sha256": self.target_schema_sha256,
            "rehearsed_at": self.rehearsed_at, "failure": self.failure,
            "checks": [check.to_rehearsal_dict() for check in self.checks],
            "remaining_differences": list(self.remaining_differences),
            "timings": {name: _round(value) for name, value in self.timings.items()},
            "lines": [list(line) for line in self.lines],
            "apply": self.apply.to_dict() if self.apply else None,
        }


def snapshot_database(source, destination, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
    """Copy `source` to a new file `destination` as one consistent moment (the engine's scratch copy)."""
    engine_for(source).scratch_copy(destination, busy_timeout=busy_timeout)


def rehearse(
    path,
    plan_set: PlanSet,
    *,
    reference_schema: Schema | None = None,
    emit: Emit = discard,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    workdir=None,
) -> RehearsalResult:
    """Apply `plan_set` to a snapshot of `path` exactly as a real run would, then verify it.

    The target is only read. The snapshot lives in a temporary folder (in `workdir` when
    given: pick one with room for a copy of the database) and is deleted afterwards.
    """
    lines: list[tuple[str, str]] = []
    keep = collecting(lines)

    def say(level: str, text: str) -> None:
        keep(level, text)
        emit(level, text)

    started, timings = time.perf_counter(), {}
    rehearsed_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    target = engine_for(path)
    say("info", f"Rehearsal: taking a consistent snapshot of {target.label}")
    outcome = _rehearse_in(target, plan_set, reference_schema, say, busy_timeout, timings, workdir)
    timings["total_ms"] = (time.perf_counter() - started) * 1000
    fingerprint, checks, differences, applied, schema_sha256 = outcome
    failure = _first_failure(checks, applied)
    passed = failure is None
    say("ok" if passed else "error", _verdict(passed, checks, timings))
    return RehearsalResult(passed, plan_set.hash, fingerprint, failure, tuple(lines), timings,
                           target.label, rehearsed_at, tuple(checks), tuple(differences), applied,
                           schema_sha256)


def _rehearse_in(target: Engine, plan_set, reference, say, busy_timeout, timings, workdir):
    started = time.perf_counter()
    with target.rehearsal_copy(workdir=workdir, busy_timeout=busy_timeout,
                               say=lambda text: say("info", f"Snapshot: {text}")) as copy:
        return _rehearse_on(copy, target, plan_set, reference, say, busy_timeout, timings, started)


def _rehearse_on(copy: Engine, target: Engine, plan_set, reference, say, busy_timeout, timings, started):
    before, schema_sha256 = _read_copy(copy, lambda engine, connection: (
        engine.read_schema_exactly(connection), engine.schema_text_sha256(connection)))
    timings["snapshot_ms"] = (time.perf_counter() - started) * 1000
    say("info", f"Snapshot taken ({copy.backup_size() / 1e6:,.1f} MB) in "
                f"{timings['snapshot_ms']:.0f} ms; applying the plan to it")
    started = time.perf_counter()
    applied = _apply_quietly(copy, plan_set, say, busy_timeout, f"the snapshot of {target.label}")
    timings["apply_ms"] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    checks = _apply_checks(applied)
    differences = []
    if applied.committed:
        after = _read_copy(copy, lambda engine, connection: engine.read_schema_exactly(connection))
        checks.append(_row_count_check(before, after, plan_set))
        if reference is not None:
            differences = [d.to_dict() for d in target.compare(
                reference, after, left_label="reference", right_label="rehearsed target")]
            checks.append(_reference_check(differences))
    for check in checks:
        say("ok" if check.passed else "error" if check.blocking else "warning",
            f"Check {check.name}: {'passed' if check.passed else 'FAILED'}: {check.detail}")
    timings["verify_ms"] = (time.perf_counter() - started) * 1000
    return before.fingerprint(), checks, differences, applied, schema_sha256


def _read_copy(copy: Engine, read):
    """Read the rehearsal's private copy (nobody else writes it)."""
    with closing(copy.open_readonly()) as connection:
        return read(copy, connection)


def _apply_quietly(copy: Engine, plan_set, say, busy_timeout, label: str) -> ApplyResult:
    try:
        return apply_plan(copy, plan_set, emit=say, busy_timeout=busy_timeout, label=label)
    except MigrationFailed as exc:
        return exc.result


def _apply_checks(applied: ApplyResult) -> list[CheckResult]:
    if not applied.committed:
        message = (applied.failure or {}).get("message", "the plan did not apply")
        return [CheckResult("apply", False, message)]
    counts = applied.counts()
    keys = applied.foreign_keys or {}
    return [
        CheckResult("apply", True, f"{counts['applied']} applied, {counts['skipped']} skipped"),
        _integrity_check(applied),
        CheckResult("foreign_keys", not keys.get("new"),
                    f"{keys.get('new', 0):,} new violations, "
                    f"{keys.get('before', 0):,} pre-existing"),
    ]


def _integrity_check(applied: ApplyResult) -> CheckResult:
    if applied.quick_check_after is None:
        return CheckResult("integrity", True, "constraints checked by the server as each statement ran")
    return CheckResult("integrity", applied.quick_check_after == "ok", f"quick_check {applied.quick_check_after}")


def _row_count_check(before: Schema, after: Schema, plan_set: PlanSet) -> CheckResult:
    """Row counts change only in tables the plan inserts into or deletes from (or creates)."""
    writes = {ascii_lower(s.shape.table or "") for s in plan_set.statements()
              if s.shape.verb in ("insert", "delete")}
    drops = {ascii_lower(s.shape.name or "") for s in plan_set.statements()
             if s.shape.verb == "drop" and s.shape.object == "table"}
    changed = []
    for table in before.tables:
        name = ascii_lower(table.name)
        now = after.table(table.name)
        if now is None and name not in drops:
            changed.append(f"{table.name} disappeared")
        elif now is not None and table.row_count is not None and name not in writes:
            # A table that could not be counted before (an unreadable virtual table) has
            # nothing to compare with; one that cannot be counted now has changed.
            if now.row_count is None:
                changed.append(f"{table.name} {table.row_count:,} → unreadable ({getattr(now, 'unreadable', '')})")
            elif now.row_count != table.row_count:
                changed.append(f"{table.name} {table.row_count:,} → {now.row_count:,}")
    if changed:
        return CheckResult("row_counts", False, "changed although the plan does not write to "
                                                "them: " + "; ".join(changed))
    return CheckResult("row_counts", True, "unchanged except where the plan inserts or deletes")


def _reference_check(differences: list[dict]) -> CheckResult:
    if not differences:
        return CheckResult("schema_vs_reference", True, "no differences", blocking=False)
    names = ", ".join(f"{d['object']} {d['name']}" for d in differences[:SAMPLE_LIMIT])
    return CheckResult("schema_vs_reference", False,
                       f"{len(differences)} differences remain ({names})", blocking=False)


def _first_failure(checks: list[CheckResult], applied: ApplyResult) -> dict | None:
    failed = next((check for check in checks if check.blocking and not check.passed), None)
    if failed is None:
        return None
    apply_failure = applied.failure or {}
    return {
        "check": failed.name,
        "message": failed.detail,
        "statement": apply_failure.get("statement") if failed.name == "apply" else None,
        "error": apply_failure.get("error") if failed.name == "apply" else None,
    }


def _verdict(passed: bool, checks: list[CheckResult], timings: dict) -> str:
    took = f"in {timings['total_ms']:.0f} ms"
    if passed:
        return f"Rehearsal passed {took}: the plan applies cleanly to a copy of the target"
    failed = ", ".join(c.name for c in checks if c.blocking and not c.passed)
    return f"Rehearsal FAILED {took} ({failed}); the target itself was not touched"


def check_rehearsal(record: dict, plan_set: PlanSet, current_fingerprint: str,
                    current_schema_sha256: str | None = None) -> None:
    """Refuse to migrate without a passing rehearsal of this very plan on this very schema.

    `current_schema_sha256` (schema_text_sha256 of the target now) is compared with the
    rehearsal's when both are known: rehearsals recorded before it existed carry none."""
    if not record or not record.get("passed"):
        raise RehearsalMismatch(
            "The rehearsal of this plan did not pass: fix what it reported and rehearse again "
            "before migrating.")
    if record.get("plan_hash") != plan_set.hash:
        raise RehearsalMismatch(
            f"The plan changed since its rehearsal (rehearsed {str(record.get('plan_hash'))[:12]}, "
            f"now {plan_set.hash[:12]}): rehearse the plan as it is now before migrating.",
            rehearsed=record.get("plan_hash"), current=plan_set.hash)
    if record.get("target_fingerprint") != current_fingerprint:
        raise RehearsalMismatch(
            "The target changed since its rehearsal (schema "
            f"{str(record.get('target_fingerprint'))[:12]} then, {current_fingerprint[:12]} now): "
            "rehearse again against the target as it is now.",
            rehearsed=record.get("target_fingerprint"), current=current_fingerprint)
    recorded = record.get("target_schema_sha256")
    if recorded and current_schema_sha256 and recorded != current_schema_sha256:
        raise RehearsalMismatch(
            "The target changed since its rehearsal: the text of its schema differs although its "
            "fingerprint does not (a double-quoted string, a view's spacing or a comment in a "
            "definition changed). Rehearse again against the target as it is now.",
            rehearsed=recorded, current=current_schema_sha256)
