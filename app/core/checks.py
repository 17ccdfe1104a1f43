"""Verification checks: each reads a database and returns a CheckResult, never raises.

Integrity, foreign keys (against a pre-migration baseline), operator assertions, the
schema against the reference, the row-count ledger against the pre-migration backup,
required indexes, and a smoke test whose writes are always rolled back.

Every check runs under a time limit (a progress handler interrupts SQLite, and the
result says "timed out after N s"), and a database that cannot be opened gives a failed
result with the reason instead of an exception, so a report always has every line.
Only smoke_test opens the file read-write, and it always ends with ROLLBACK.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import closing, contextmanager
from pathlib import Path

from app.core.assertions import single_statement, validate_assertion
from app.core.engines import engine_for
from app.core.engines.base import TimedOut, compare_schemas
from app.core.errors import CutoverError
from app.core.results import CheckResult, report  # noqa: F401  (report: callers outside the core)
from app.core.sql import ascii_lower, significant_tokens, tokenize
from app.core.violations import Violations, new_violations

INTEGRITY_MESSAGES = 100
DEFAULT_TIME_LIMIT = 10.0
EXAMPLE_ROWS = 5
EVIDENCE_LIMIT = 50  # lines of evidence kept per check (the summary gives the totals)
VALUE_WIDTH = 80  # characters of one value shown in an example row


to_dict = report


def _guarded(name: str, path, time_limit: float | None, work: Callable[[], CheckResult]) -> CheckResult:
    """Run one check; a timeout or an unreadable database becomes a failed CheckResult."""
    engine = engine_for(path)
    started = time.perf_counter()
    try:
        result = work()
    except TimedOut:
        result = CheckResult(name, False, f"{name}: timed out after {time_limit:g} s",
                             (f"the check was stopped after {time_limit:g} s; the database was "
                              "not changed. Run it when the database is idle or raise the limit.",))
    except CutoverError as exc:
        result = CheckResult(name, False, f"{name}: cannot run: {exc.message}")
    except engine.Error as exc:
        error = engine.unavailable(exc)
        result = CheckResult(name, False, f"{name}: cannot run: {error.message}")
    duration = round((time.perf_counter() - started) * 1000, 1)
    return CheckResult(result.name, result.passed, result.summary,
                       tuple(result.evidence), duration)


@contextmanager
def _reading(path, busy_timeout: float, time_limit: float | None, *, authorize: bool = False):
    """A read-only connection, in one read transaction, under the time limit."""
    engine = engine_for(path)
    with closing(engine.open_readonly(busy_timeout=busy_timeout)) as connection:
        with engine.time_limit(connection, time_limit), engine.read_transaction(connection):
            if not authorize:
                yield connection
                return
            # Set inside the transaction: BEGIN and ROLLBACK are not reads.
            with engine.reads_only(connection):
                yield connection


def _count(number: int, noun: str, plural: str | None = None) -> str:
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


# --------------------------------------------------------------------------- integrity


def integrity_check(path: Path, *, busy_timeout: float = 1.0,
                    time_limit: float | None = None) -> CheckResult:
    """The full `PRAGMA integrity_check` (quick_check skips index/content cross-checks).

    Raises TargetUnavailable when the file cannot be read (run_checks turns that into a
    failed result); with `time_limit`, a check that runs longer reports "timed out".
    """
    engine = engine_for(path)
    try:
        with closing(engine.open_readonly(busy_timeout=busy_timeout)) as conn:
            with engine.time_limit(conn, time_limit):
                rows = engine.integrity_problems(conn, INTEGRITY_MESSAGES)
                scope = engine.integrity_scope(conn)
    except TimedOut:
        return CheckResult("integrity_check", False,
                           f"integrity_check: timed out after {time_limit:g} s")
    except engine.Error as exc:
        raise engine.unavailable(exc) from None
    covered = (scope,) if scope else ()
    if rows == ["ok"]:
        return CheckResult("integrity_check", True, "integrity_check: ok", covered)
    return CheckResult("integrity_check", False, f"integrity_check found {len(rows)} problem(s)",
                       tuple(rows) + covered)


# --------------------------------------------------------------------------- assertions


def run_assertion(path, name: str, sql: str, *, time_limit: float = DEFAULT_TIME_LIMIT,
                  busy_timeout: float = 1.0) -> CheckResult:
    """Run an operator assertion: it passes when it returns no rows, or one row whose one
    value is 0 or NULL (e.g. `SELECT COUNT(*) ... WHERE root_id IS NULL`).

    Evidence: what it returned and up to EXAMPLE_ROWS offending rows. For a
    `SELECT COUNT(*) FROM ...` query the examples come from the same FROM ... WHERE.
    """
    def work() -> CheckResult:
        engine = engine_for(path)
        try:
            query = validate_assertion(name, sql, engine.dialect)
        except CutoverError as exc:
            return CheckResult(name, False, f"{name}: not run: {exc.message}")
        with _reading(path, busy_timeout, time_limit, authorize=True) as connection:
            try:
                cursor = connection.execute(query)
            except engine.DatabaseError as exc:
                if engine.is_interrupt(exc):
                    raise
                return CheckResult(name, False, f"{name}: the query failed: {exc}",
                                   (f"query: {query}",))
            columns = [d[0] for d in cursor.description or ()]
            examples, total = [], 0
            for row in cursor:
                total += 1
                if len(examples) < EXAMPLE_ROWS:
                    examples.append(row)
            if total == 0 or (total == 1 and len(examples[0]) == 1 and examples[0][0] in (0, None)):
                shown = "no rows" if total == 0 else repr(examples[0][0]).replace("None", "NULL")
                return CheckResult(name, True, f"{name}: passed (returned {shown})",
                                   (f"query: {query}",))
            if total == 1 and len(examples[0]) == 1 and _is_number(examples[0][0]):
                found = examples[0][0]
                summary = f"{name}: FAILED: found {found:,} (expected 0)"
                evidence = [f"query: {query}", f"offending count: {found:,}"]
                rows, columns = _count_examples(engine, connection, query)
                if rows:
                    evidence.append(f"first {len(rows)} offending row(s):")
                    evidence += [_row_text(columns, row) for row in rows]
                return CheckResult(name, False, summary, tuple(evidence))
            summary = f"{name}: FAILED: returned {_count(total, 'row')} (expected none)"
            evidence = [f"query: {query}", f"offending count: {total:,}",
                        f"first {len(examples)} offending row(s):"]
            evidence += [_row_text(columns, row) for row in examples]
            return CheckResult(name, False, summary, tuple(evidence))

    return _guarded(name, path, time_limit, work)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count_examples(engine, connection, query: str) -> tuple[list, list[str]]:
    """For `SELECT count(*) FROM rest`, the first rows of `SELECT * FROM rest`."""
    example = example_query(query)
    if example is None:
        return [], []
    try:
        cursor = connection.execute(example)
        return cursor.fetchmany(EXAMPLE_ROWS), [d[0] for d in cursor.description]
    except engine.Error as exc:
        if engine.is_interrupt(exc):
            raise
        return [], []


def example_query(query: str) -> str | None:
    """`SELECT * FROM x WHERE c LIMIT 5` for `SELECT COUNT(*) [AS n] FROM x WHERE c`, else None."""
    tokens = significant_tokens(query)
    words = [t.text.upper() if t.kind == "word" else t.text for t in tokens[:5]]
    if words != ["SELECT", "COUNT", "(", "*", ")"]:
        return None
    rest = tokens[5:]
    if rest[:1] and rest[0].is_word("AS"):
        rest = rest[2:]
    elif rest[:1] and rest[0].kind in ("word", "quoted") and not rest[0].is_word("FROM"):
        rest = rest[1:]
    if not rest or not rest[0].is_word("FROM"):
        return None
    depth = 0
    for token in rest:
        depth += token.kind == "lparen"
        depth -= token.kind == "rparen"
        if depth == 0 and token.is_word("GROUP", "HAVING", "UNION", "INTERSECT", "EXCEPT",
                                        "WINDOW", "LIMIT", "ORDER"):
            return None
    # Keep the original text after FROM (strings and names exactly as written).
    from_position = len(tokens) - len(rest)
    significant = [t for t in tokenize(query) if t.kind not in ("space", "comment")]
    if significant != tokens:
        return None
    all_tokens = tokenize(query)
    seen = 0
    for position, token in enumerate(all_tokens):
        if token.kind in ("space", "comment"):
            continue
        if seen == from_position:
            tail = "".join(" " if t.kind == "comment" else t.text
                           for t in all_tokens[position + 1:]).strip().rstrip(";")
            return f"SELECT * FROM {tail} LIMIT {EXAMPLE_ROWS}"
        seen += 1
    return None


def _row_text(columns: list[str], row) -> str:
    parts = []
    for index, value in enumerate(row):
        label = columns[index] if index < len(columns) else f"column {index + 1}"
        parts.append(f"{label}={_value_text(value)}")
    return "  " + ", ".join(parts)


def _value_text(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        text = f"x'{value[:VALUE_WIDTH // 2].hex()}'" + ("…" if len(value) > VALUE_WIDTH // 2 else "")
        return text
    text = repr(value)
    return text if len(text) <= VALUE_WIDTH else text[:VALUE_WIDTH - 1] + "…"


# --------------------------------------------------------------------------- foreign keys


def foreign_key_check(path, *, baseline: int | Violations | None, time_limit: float = DEFAULT_TIME_LIMIT,
                      busy_timeout: float = 1.0) -> CheckResult:
    """PRAGMA foreign_key_check against a baseline taken before the migration.

    `baseline` is the number of violations before (e.g. from the pre-migration backup's
    facts) or the Violations read then (compared row by row). More violations than the
    baseline fail; up to the baseline they are reported as pre-existing. With a count,
    one orphan fixed and another added look the same: pass Violations to tell them
    apart. Without a baseline any violation fails.
    """
    name = "foreign_key_check"

    def work() -> CheckResult:
        with _reading(path, busy_timeout, time_limit) as connection:
            now = engine_for(path).foreign_key_violations(connection)
        if now.unavailable:
            return CheckResult(name, False, f"{name}: cannot check foreign keys: {now.unavailable}")
        samples = tuple(now.samples())
        if isinstance(baseline, Violations):
            new, new_samples = new_violations(baseline, now)
            before = baseline.total
        else:
            before = baseline
            new = now.total if before is None else max(now.total - before, 0)
            new_samples = list(samples)
        if baseline is None:
            if now.total == 0:
                return CheckResult(name, True, f"{name}: no violations")
            return CheckResult(name, False, f"{name}: FAILED: {_count(now.total, 'violation')} "
                               "(no baseline: any violation fails)", samples)
        if new:
            evidence = (f"before: {before:,}, now: {now.total:,}",
                        *(f"new: {s}" for s in new_samples))
            return CheckResult(name, False, f"{name}: FAILED: {_count(new, 'new violation')} "
                               f"({now.total:,} now, {before:,} before the migration)", evidence)
        pre = now.total
        evidence = (f"before: {before:,}, now: {now.total:,}",
                    *(f"pre-existing: {s}" for s in samples))
        return CheckResult(name, True, f"{name}: no new violations ({pre:,} pre-existing)", evidence)

    return _guarded(name, path, time_limit, work)


def foreign_key_violations_of(path, *, busy_timeout: float = 1.0) -> Violations:
    """Every foreign-key violation of the target at `path` (e.g. a backup copy, for a baseline).

    Raises TargetUnavailable (a CutoverError) when it cannot be read, whatever the engine."""
    engine = engine_for(path)
    try:
        with closing(engine.open_readonly(busy_timeout=busy_timeout)) as connection:
            return engine.foreign_key_violations(connection)
    except engine.Error as exc:
        raise engine.unavailable(exc, busy_timeout=busy_timeout) from None


# --------------------------------------------------------------------------- schema


def schema_check(path, reference_path, *, accepted: Iterable[tuple] = (),
                 time_limit: float = DEFAULT_TIME_LIMIT, busy_timeout: float = 1.0) -> CheckResult:
    """No unexplained schema difference from the reference database (diff_schemas).

    `accepted` differences, given as (object, table, name) tuples (table None for a
    view), are listed in the evidence but do not fail the check.
    """
    name = "schema_check"
    accepted_keys = {_difference_key(item) for item in accepted}

    def work() -> CheckResult:
        with _reading(reference_path, busy_timeout, time_limit) as connection:
            reference = engine_for(reference_path).read_schema(connection)
        with _reading(path, busy_timeout, time_limit) as connection:
            target = engine_for(path).read_schema(connection)
        differences = compare_schemas(engine_for(reference_path), engine_for(path), reference, target,
                                      left_label="reference", right_label="target")
        unexplained, allowed = [], []
        for difference in differences:
            key = _difference_key((difference.object, difference.table, difference.name))
            (allowed if key in accepted_keys else unexplained).append(difference)
        evidence = [f"difference: {d.object} {_where(d)}: {d.explanation}" for d in unexplained]
        evidence += [f"accepted: {d.object} {_where(d)}: {d.explanation}" for d in allowed]
        evidence = evidence[:EVIDENCE_LIMIT]
        if unexplained:
            return CheckResult(name, False, f"{name}: FAILED: {_count(len(unexplained), 'difference')} "
                               f"from the reference ({len(allowed):,} accepted)", tuple(evidence))
        if allowed:
            return CheckResult(name, True, f"{name}: matches the reference except "
                               f"{_count(len(allowed), 'accepted difference')}", tuple(evidence))
        return CheckResult(name, True, f"{name}: matches the reference")

    return _guarded(name, path, time_limit, work)


def _difference_key(item: tuple) -> tuple:
    kind, table, name = item
    return (kind, ascii_lower(table) if table else None, ascii_lower(name))


def _where(difference) -> str:
    if difference.table and difference.table != difference.name:
        return f"{difference.table}.{difference.name}"
    return difference.name


# --------------------------------------------------------------------------- row counts


def row_count_ledger(path, manifest_row_counts: dict, *, declared: dict[str, int] | None = None,
                     time_limit: float = DEFAULT_TIME_LIMIT, busy_timeout: float = 1.0) -> CheckResult:
    """Exact row counts now against the pre-migration backup manifest's.

    Every table's delta must be 0 unless `declared` gives the expected delta (a table
    the migration creates counts from 0). A table that disappeared fails.
    """
    name = "row_count_ledger"
    declared = dict(declared or {})

    def work() -> CheckResult:
        with _reading(path, busy_timeout, time_limit) as connection:
            tables = engine_for(path).read_schema_exactly(connection).tables
        now = {table.name: table.row_count for table in tables}
        unreadable = {table.name: table.unreadable for table in tables if getattr(table, "unreadable", None)}
        evidence, wrong = [], []
        for table in sorted(set(manifest_row_counts) | set(now), key=ascii_lower):
            before, after = manifest_row_counts.get(table), now.get(table)
            expected = declared.get(table, 0)
            if table not in now:
                wrong.append(table)
                shown = "not countable" if before is None else f"{before:,}"
                evidence.append(f"{table}: before {shown}, now missing (the table disappeared)")
                continue
            if table in unreadable or (before is None and table in manifest_row_counts):
                if before is not None:  # countable at the backup, not any more
                    wrong.append(table)
                evidence.append(_uncounted(table, before, unreadable.get(table)))
                continue
            delta = after - (before or 0)
            mark = "ok" if delta == expected else "UNEXPECTED"
            if delta != expected:
                wrong.append(table)
            shown_before = "new table" if before is None else f"before {before:,}"
            evidence.append(f"{table}: {shown_before}, after {after:,}, delta {delta:+,} "
                            f"(expected {expected:+,}) {mark}")
        for table in sorted(set(declared) - set(manifest_row_counts) - set(now)):
            evidence.append(f"{table}: declared a delta of {declared[table]:+,} but no such table")
            wrong.append(table)
        if wrong:
            return CheckResult(name, False, f"{name}: FAILED: {_count(len(wrong), 'table')} changed "
                               f"unexpectedly ({', '.join(wrong[:10])})", tuple(evidence))
        return CheckResult(name, True, f"{name}: {_count(len(evidence), 'table')} as expected",
                           tuple(evidence))

    return _guarded(name, path, time_limit, work)


def _uncounted(table: str, before: int | None, problem: str | None) -> str:
    """Evidence for a table whose rows could not be counted (an unreadable virtual table)."""
    if before is not None:
        return f"{table}: before {before:,}, now unreadable ({problem}) UNEXPECTED"
    now = f"still unreadable ({problem})" if problem else "readable again"
    return f"{table}: not countable at the backup, now {now}; not compared"


# --------------------------------------------------------------------------- indexes


def required_indexes(path, names: Iterable[str], *, time_limit: float = DEFAULT_TIME_LIMIT,
                     busy_timeout: float = 1.0) -> CheckResult:
    """Every named index exists (names compare ASCII case-insensitively, as SQLite's do)."""
    name = "required_indexes"
    names = list(names)

    def work() -> CheckResult:
        engine = engine_for(path)
        with _reading(path, busy_timeout, time_limit) as connection:
            present = {ascii_lower(item.name): item.table for item in engine.schema_objects(connection)
                       if item.kind == "index"}
        missing = [index for index in names if ascii_lower(index) not in present]
        evidence = tuple(
            f"{index}: MISSING" if index in missing else f"{index}: present on {present[ascii_lower(index)]}"
            for index in names)
        if missing:
            return CheckResult(name, False, f"{name}: FAILED: {_count(len(missing), 'index', 'indexes')} "
                               f"missing ({', '.join(missing)})", evidence)
        return CheckResult(name, True, f"{name}: all {len(names):,} present", evidence)

    return _guarded(name, path, time_limit, work)


# --------------------------------------------------------------------------- smoke test


def smoke_test(path, statements: list[str], *, busy_timeout: float = 1.0,
               time_limit: float = DEFAULT_TIME_LIMIT) -> CheckResult:
    """Run configured writes in one transaction that is always rolled back.

    Proves that the application's writes (and their foreign-key cascades and triggers,
    with foreign_keys ON as the application has it) work on the migrated schema, and
    keeps nothing: BEGIN IMMEDIATE ... ROLLBACK. Only row writes are authorised, so a
    COMMIT, SAVEPOINT, DDL, PRAGMA or ATTACH in the list fails instead of running.
    """
    name = "smoke_test"

    def work() -> CheckResult:
        engine = engine_for(path)
        try:
            for number, statement in enumerate(statements, 1):
                single_statement(statement, f"smoke statement {number}", engine.dialect)
        except CutoverError as exc:
            return CheckResult(name, False, f"{name}: not run: {exc.message}")
        with closing(engine.open_for_writing(busy_timeout=busy_timeout)) as connection:
            return _smoke_in_transaction(engine, connection, statements, time_limit)

    return _guarded(name, path, time_limit, work)


def _smoke_in_transaction(engine, connection, statements: list[str], time_limit: float) -> CheckResult:
    name = "smoke_test"
    evidence, failure = [], None
    with engine.rolled_back_row_writes(connection), engine.time_limit(connection, time_limit):
        for number, statement in enumerate(statements, 1):
            before = engine.changes(connection)
            try:
                cursor = connection.execute(statement.strip().rstrip(";"))
                if cursor.description is not None:  # RETURNING rows: read them all, as the application would
                    cursor.fetchall()
            except engine.DatabaseError as exc:
                if engine.is_interrupt(exc):
                    raise
                failure = f"statement {number} failed: {exc}"
                evidence.append(f"{number}. {_short(statement)}: FAILED: {exc}")
                break
            direct = max(cursor.rowcount, 0)
            total = direct if before is None else engine.changes(connection) - before
            evidence.append(f"{number}. {_short(statement)}: {_count(direct, 'row')} changed"
                            + (f", {total:,} in all with cascades and triggers"
                               if total != direct else ""))
    evidence.append("rolled back: nothing was kept")
    if failure:
        return CheckResult(name, False, f"{name}: FAILED: {failure}", tuple(evidence))
    return CheckResult(name, True, f"{name}: {_count(len(statements), 'statement')} ran; "
                       "all rolled back", tuple(evidence))


def _short(statement: str, width: int = 100) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= width else text[:width - 1] + "…"


# --------------------------------------------------------------------------- all together


def run_checks(
    path,
    *,
    assertions: Iterable[tuple[str, str]] = (),
    fk_baseline: int | Violations | None = None,
    reference_path=None,
    accepted: Iterable[tuple] = (),
    manifest_row_counts: dict | None = None,
    declared: dict[str, int] | None = None,
    indexes: Iterable[str] = (),
    smoke_statements: list[str] | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
    busy_timeout: float = 1.0,
) -> list[CheckResult]:
    """Integrity and foreign keys always; the others when their inputs are given."""
    results = [_guarded("integrity_check", path, time_limit, lambda: integrity_check(
        path, busy_timeout=busy_timeout, time_limit=time_limit))]
    results.append(foreign_key_check(path, baseline=fk_baseline, time_limit=time_limit,
                                     busy_timeout=busy_timeout))
    for name, sql in assertions:
        results.append(run_assertion(path, name, sql, time_limit=time_limit, busy_timeout=busy_timeout))
    if reference_path is not None:
        results.append(schema_check(path, reference_path, accepted=accepted,
                                    time_limit=time_limit, busy_timeout=busy_timeout))
    if manifest_row_counts is not None:
        results.append(row_count_ledger(path, manifest_row_counts, declared=declared,
                                        time_limit=time_limit, busy_timeout=busy_timeout))
    indexes = list(indexes)
    if indexes:
        results.append(required_indexes(path, indexes, time_limit=time_limit,
                                        busy_timeout=busy_timeout))
    if smoke_statements:
        results.append(smoke_test(path, smoke_statements, busy_timeout=busy_timeout,
                                  time_limit=time_limit))
    return results
