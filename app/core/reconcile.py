"""Reconciliation: what each plan statement will do to a given database, before it runs.

The prediction runs the plan on a copy of the target's SCHEMA only: the engine's schema
scratch (for SQLite an in-memory database) built from the target's stored DDL
(milliseconds, whatever the target's size).
Each statement is first compared with what already exists:

- ADD COLUMN of an existing column, CREATE of an existing object with the same
  definition: "skip" (already applied, skipping (expected));
- the same name with a DIFFERENT definition: "conflict". SQLite would silently keep the
  old object (IF NOT EXISTS) or fail; Cutover stops instead;
- anything else is executed on the copy: "will_run", or "will_fail" with SQLite's own
  error (`no such column: group_id`). Data statements run on the copy's empty tables,
  which finds missing tables and columns but says nothing about the data.

The copy also shows what the plan destroys: every index, trigger and view it loses
without re-creating it (losses.py) is named, and blocks the plan unless the plan
accepts it with `-- accept-drop: KIND NAME`.

`decide` is also what the real run uses, inside its transaction, on the live database,
so what is skipped is decided on the real state.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from app.core.ddl import add_column_sql
from app.core.engines import Engine, engine_for
from app.core.engines.base import Decision, rebuild_schema
from app.core.losses import Loss, LossWatch, unmatched_acceptances
from app.core.plans import PlanSet, PlanStatement, StatementShape, statement_shape
from app.core.schema import Column, Schema, SchemaRow
from app.core.sql import (
    Token,
    ascii_lower,
    column_clauses,
    create_table_items,
    is_table_constraint,
    keep_possible_strings,
    normalise_tokens,
    parenthesised_group,
    quote_identifier,
    significant_tokens,
    split_top_level,
    tokenize,
    unquote_identifier,
)

OUTCOMES = ("will_run", "skip", "conflict", "will_fail")
DATA_NOTE = "data statement: runs every time; must be idempotent"
_CREATE_ORDER = ("table", "index", "view", "trigger")


# --------------------------------------------------------------------------- schema copy


def rows_from_schema(schema: Schema) -> list[SchemaRow]:
    """The same rows, from an inspected Schema (for a reference we only have as a Schema)."""
    rows = [SchemaRow("table", t.name, t.name, t.sql) for t in schema.tables if t.sql]
    rows += [
        SchemaRow("index", index.name, table.name, index.sql)
        for table in schema.tables
        for index in table.indexes
        if index.sql and not index.is_automatic
    ]
    rows += [SchemaRow("view", v.name, v.name, v.sql) for v in schema.views]
    rows += [SchemaRow("trigger", t.name, t.table, t.sql) for t in schema.triggers]
    return rows


@contextmanager
def schema_copy(engine: Engine, rows: Iterable[SchemaRow]) -> Iterator[tuple[Any, list[str]]]:
    """A connection to the engine's schema scratch holding the same schema and no rows; and
    what could not be copied. The scratch is dropped on exit."""
    with engine.schema_scratch() as connection:
        yield connection, rebuild_schema(engine, connection, rows)


def schema_fingerprint(engine: Engine, connection) -> str:
    """Schema.fingerprint() of `connection`'s database, without counting rows.

    Read from the database itself, not from a copy of its schema: a copy cannot hold a
    virtual table whose module this SQLite lacks, so its fingerprint would never match
    the one the rehearsal read from the file.
    """
    return engine.read_schema(connection, count_rows=False).fingerprint()


# --------------------------------------------------------------------------- decisions


RUN = Decision("run")


@dataclass(frozen=True)
class PlanContext:
    """Facts about the whole plan set that single statements need.

    `added_columns`: (table, column) pairs, lower case, that the set's ADD COLUMNs add.
    A table the set creates and later extends has those columns appended to its stored
    CREATE TABLE text; on a second run the CREATE must still count as the same table.
    """

    added_columns: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def of(cls, statements: Iterable[PlanStatement]) -> PlanContext:
        added = set()
        for statement in statements:
            shape = statement.shape
            if shape.alter_action == "add_column" and shape.table and shape.name:
                added.add((ascii_lower(shape.table), ascii_lower(shape.name)))
        return cls(frozenset(added))


def decide(engine: Engine, connection, sql: str, context: PlanContext) -> Decision:
    """Skip, conflict or run `sql`, judged on the database `connection` (of `engine`) is open on."""
    own = engine.decide(connection, sql)
    if own is not None:
        return own
    shape = statement_shape(sql)
    if shape.temporary:
        return RUN  # temporary objects are not part of the file
    if shape.verb == "create" and shape.object in _CREATE_ORDER and shape.name:
        return _decide_create(engine, connection, sql, shape, context)
    if shape.alter_action == "add_column" and shape.table and shape.name:
        return _decide_add_column(engine, connection, shape)
    if shape.verb == "drop" and shape.object in _CREATE_ORDER and shape.name:
        return _decide_drop(connection, shape)
    if shape.alter_action == "drop_column" and shape.table and shape.name:
        return _decide_drop_column(connection, shape)
    return RUN


def _existing_object(connection, name: str) -> tuple[str, str, str | None] | None:
    # NOCASE folds ASCII letters only, exactly like SQLite's own name lookup.
    return connection.execute(
        "SELECT type, name, sql FROM main.sqlite_schema WHERE name = ? COLLATE NOCASE",
        (name,),
    ).fetchone()


def _decide_create(engine: Engine, connection, sql: str, shape: StatementShape,
                   context: PlanContext) -> Decision:
    existing = _existing_object(connection, shape.name)
    if existing is None:
        return RUN
    kind, name, stored_sql = existing
    if kind != shape.object:
        return Decision("conflict", f"a {kind} named {name} already exists; the plan creates "
                                    f"a {shape.object} with that name")
    ours = comparable_definition(stored_sql or "", context)
    planned = comparable_definition(sql, context)
    if ours == planned and kind == "view":
        existing, wanted = _view_columns(connection, name), _planned_view_columns(engine, connection, sql)
        if wanted is not None and wanted != existing:
            return Decision("conflict", f"view {name} already exists with other column names (SQLite "
                                        "names a column without AS after its expression as written)",
                            existing=", ".join(existing), planned=", ".join(wanted))
    if ours == planned:
        return Decision("skip", f"{kind.capitalize()} already exists, skipping (expected)")
    return Decision(
        "conflict",
        f"{kind} {name} already exists with a different definition (SQLite would keep the "
        "existing one)",
        existing=ours,
        planned=planned,
    )


_VIEW_PROBE = "cutover_view_probe"


def _view_columns(connection, name: str) -> list[str]:
    return [row[0] for row in connection.execute(
        "SELECT name FROM pragma_table_info(?, 'main') ORDER BY cid", (name,))]


def _planned_view_columns(engine: Engine, connection, sql: str) -> list[str] | None:
    """The column names the plan's CREATE VIEW would give, read from a TEMP copy of it.

    Spacing and case inside `SELECT a+b` name the column "a+b": the normal form cannot tell
    `a+b` from `a + b`, SQLite's own names can. The TEMP view is dropped at once and
    never touches the database file."""
    body = _after_view_name(sql)
    if body is None:
        return None
    try:
        connection.execute(f"CREATE TEMP VIEW {_VIEW_PROBE}{body}")
        return [row[0] for row in connection.execute(
            f"SELECT name FROM pragma_table_info('{_VIEW_PROBE}', 'temp') ORDER BY cid")]
    except engine.Error:
        return None  # the statement itself will say what is wrong when it runs
    finally:
        connection.execute(f"DROP VIEW IF EXISTS temp.{_VIEW_PROBE}")


def _after_view_name(sql: str) -> str | None:
    """`(cols) AS SELECT ...` of a CREATE VIEW, exactly as written, without the `;`."""
    tokens = tokenize(sql)
    positions = [i for i, token in enumerate(tokens) if token.kind not in ("space", "comment")]
    words = [tokens[i] for i in positions]
    index = next((k for k, token in enumerate(words) if token.is_word("VIEW")), len(words)) + 1
    while index < len(words) and words[index].is_word("IF", "NOT", "EXISTS"):
        index += 1
    if index + 1 < len(words) and words[index + 1].kind == "dot":
        index += 2  # main.v
    if index >= len(words):
        return None
    return "".join(token.text for token in tokens[positions[index] + 1:]).rstrip().rstrip(";")


def comparable_definition(sql: str, context: PlanContext = PlanContext()) -> str:
    """A CREATE statement as it compares with sqlite_schema's copy of it.

    SQLite stores `CREATE TABLE IF NOT EXISTS main.t` as `CREATE TABLE t`, so both go;
    columns the plan set adds with ADD COLUMN are taken out of a table's body. A
    double-quoted token that may be a string keeps its spelling: `"Archived"` and
    `"archived"` are different definitions.
    """
    tokens = keep_possible_strings(significant_tokens(sql))
    while tokens and tokens[-1].kind == "semicolon":
        tokens.pop()
    tokens = _drop_if_not_exists(tokens)
    tokens = _drop_main_qualifier(tokens)
    if context.added_columns and any(t.is_word("TABLE") for t in tokens[1:3]):
        tokens = _without_added_columns(tokens, context)
    return normalise_tokens(tokens)


def _drop_if_not_exists(tokens: list[Token]) -> list[Token]:
    for index in range(min(len(tokens) - 2, 6)):
        if [t.text.upper() for t in tokens[index : index + 3]] == ["IF", "NOT", "EXISTS"]:
            return tokens[:index] + tokens[index + 3 :]
    return tokens


def _drop_main_qualifier(tokens: list[Token]) -> list[Token]:
    for index in range(1, min(len(tokens) - 1, 6)):
        if tokens[index].kind == "dot" and ascii_lower(_name(tokens[index - 1])) == "main":
            return tokens[: index - 1] + tokens[index + 1 :]
    return tokens


def _name(token: Token) -> str:
    return unquote_identifier(token.text) if token.kind in ("quoted", "string") else token.text


def _without_added_columns(tokens: list[Token], context: PlanContext) -> list[Token]:
    open_at = next((i for i, t in enumerate(tokens) if t.kind == "lparen"), None)
    if open_at is None:
        return tokens  # CREATE TABLE ... AS SELECT
    table = ascii_lower(_name(tokens[open_at - 1]))
    added = {column for owner, column in context.added_columns if owner == table}
    body, after = parenthesised_group(tokens, open_at)
    kept = [item for item in split_top_level(body)
            if item and (is_table_constraint(item) or _column_name(item) not in added)]
    joined: list[Token] = []
    for item in kept:
        joined += ([Token("comma", ",")] if joined else []) + item
    return tokens[: open_at + 1] + joined + tokens[after - 1 :]


def _column_name(item: list[Token]) -> str:
    return ascii_lower(column_clauses(item).name)


def _decide_add_column(engine: Engine, connection, shape: StatementShape) -> Decision:
    existing = column_definition(connection, shape.table, shape.name, resolver=connection)
    if existing is None:
        return RUN
    planned = _planned_column(engine, connection, shape)
    if planned is not None and planned.facts == existing.facts:
        return Decision("skip", "Column already exists, skipping (expected)")
    planned_text = normalise_tokens(list(shape.column_tokens))
    return Decision(
        "conflict",
        f"column {shape.table}.{shape.name} already exists with a different definition",
        existing=existing.text,
        planned=planned_text,
    )


def _decide_drop(connection, shape: StatementShape) -> Decision:
    if _existing_object(connection, shape.name) is None:
        return Decision("skip", f"{shape.object.capitalize()} already dropped, skipping (expected)")
    return RUN


def _decide_drop_column(connection, shape: StatementShape) -> Decision:
    table = _existing_object(connection, shape.table)
    if table is None or table[0] != "table":
        return RUN  # SQLite's own error says what is wrong
    if column_definition(connection, shape.table, shape.name, resolver=connection) is None:
        return Decision("skip", "Column already dropped, skipping (expected)")
    return RUN


# --------------------------------------------------------------------------- columns


class ColumnDefinition(NamedTuple):
    facts: dict  # everything that changes behaviour, normalised
    text: str  # the definition as written, normalised (for messages)


_HIDDEN = {0: "", 1: "hidden", 2: "virtual", 3: "stored"}


def column_definition(connection, table: str, column: str, *, resolver) -> ColumnDefinition | None:
    """How `table`.`column` is defined on `connection`'s database, or None if it is not there.

    `resolver` is the connection whose tables resolve `REFERENCES parent` (no column) to
    the parent's primary key.
    """
    rows = connection.execute(
        'SELECT name, type, "notnull", dflt_value, pk, hidden '
        "FROM pragma_table_xinfo(?, 'main')",
        (table,),
    ).fetchall()
    row = next((r for r in rows if ascii_lower(r[0]) == ascii_lower(column)), None)
    if row is None:
        return None
    name, declared, not_null, default, pk, hidden = row
    item = _column_item(connection, table, name)
    # The column's own name is certainly a name; a double-quoted token after it may be a string.
    clauses = column_clauses(item[:1] + keep_possible_strings(item[1:])) if item else None
    facts = Column(
        name, declared or "", bool(not_null), default, pk, _HIDDEN.get(hidden, str(hidden)),
        clauses.collation if clauses else None, clauses.generated if clauses else None,
    ).comparable()
    facts["checks"] = clauses.checks if clauses else ()
    facts["references"] = _column_references(connection, table, name, resolver)
    text = normalise_tokens(item) if item else f"{quote_identifier(name)} {declared}".strip()
    return ColumnDefinition(facts, text)


def _column_item(connection, table: str, column: str) -> list[Token] | None:
    row = connection.execute(
        "SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE",
        (table,),
    ).fetchone()
    for item in create_table_items(row[0] if row and row[0] else ""):
        if not is_table_constraint(item) and _column_name(item) == ascii_lower(column):
            return item
    return None


def _column_references(connection, table: str, column: str, resolver) -> tuple:
    rows = connection.execute(
        'SELECT id, "table", "from", "to", on_update, on_delete, match '
        "FROM pragma_foreign_key_list(?, 'main')",
        (table,),
    ).fetchall()
    sizes: dict[int, int] = {}
    for row in rows:
        sizes[row[0]] = sizes.get(row[0], 0) + 1
    keys = []
    for fk_id, parent, source, target, on_update, on_delete, match in rows:
        if sizes[fk_id] == 1 and ascii_lower(source) == ascii_lower(column):
            target = target or _single_primary_key(resolver, parent)
            keys.append((ascii_lower(parent), ascii_lower(target or ""), on_update.upper(),
                         on_delete.upper(), match.upper()))
    return tuple(sorted(keys))


def _single_primary_key(connection, table: str) -> str | None:
    keys = connection.execute(
        "SELECT name FROM pragma_table_info(?, 'main') WHERE pk > 0", (table,)
    ).fetchall()
    return keys[0][0] if len(keys) == 1 else None


def _planned_column(engine: Engine, connection, shape: StatementShape) -> ColumnDefinition | None:
    """The ADD COLUMN's definition, read back from a scratch table that has only it.

    The scratch table gets the tokens as written: a normal form would turn a double-quoted
    string into a bare word, which SQLite reads differently."""
    definition = " ".join(token.text for token in shape.column_tokens)
    with engine.schema_scratch() as scratch:
        try:
            scratch.execute(f"CREATE TABLE {quote_identifier(shape.table)} ({definition})")
        except engine.Error:
            return None  # e.g. a generated column using others: compared as a conflict
        return column_definition(scratch, shape.table, shape.name, resolver=connection)


# --------------------------------------------------------------------------- prediction


@dataclass(frozen=True)
class StatementOutcome:
    statement: PlanStatement
    outcome: str  # one of OUTCOMES
    message: str  # what the log says: skip reason, conflict, SQLite's error
    note: str | None = None  # e.g. DATA_NOTE
    existing: str | None = None  # conflicts: the definition that is there
    planned: str | None = None  # conflicts: the definition the plan asks for
    losses: tuple[Loss, ...] = ()  # what it destroys that the plan does not get back
    lock_risks: tuple = ()  # the dialect's LockRisks: what the application waits for meanwhile

    def to_dict(self) -> dict:
        return {
            **self.statement.to_dict(),
            "outcome": self.outcome,
            "message": self.message,
            "note": self.note,
            "existing": self.existing,
            "planned": self.planned,
            "losses": [loss.to_dict() for loss in self.losses],
            "lock_risks": [risk.to_dict() for risk in self.lock_risks],
        }


def predict(engine: Engine, connection, statement: PlanStatement,
            context: PlanContext) -> StatementOutcome:
    """Decide, then (when it runs) execute on the schema copy to learn whether it works."""
    decision = decide(engine, connection, statement.sql, context)
    if decision.action != "run":
        return StatementOutcome(statement, decision.action, decision.message, None,
                                decision.existing, decision.planned)
    risks = tuple(engine.dialect.lock_risks(statement.sql))
    try:
        connection.execute(statement.sql)
    except engine.Error as exc:
        return StatementOutcome(statement, "will_fail", str(exc).strip(), lock_risks=risks)
    note = statement_note(statement.shape)
    message = "will run (new)" if creates_something(statement.shape) else "will run"
    return StatementOutcome(statement, "will_run", message, note, lock_risks=risks)


def creates_something(shape: StatementShape) -> bool:
    """CREATE and ALTER TABLE: the statements whose success the log calls "(new)"."""
    return shape.verb == "create" or (shape.verb == "alter" and shape.alter_action != "drop_column")


def statement_note(shape: StatementShape) -> str | None:
    if shape.is_data:
        return DATA_NOTE
    if shape.verb == "select":
        return "query: reads only"
    if shape.temporary:
        return "temporary object: not stored in the database file"
    if shape.verb == "drop" or shape.alter_action == "drop_column":
        return f"destructive: drops {shape.object} {shape.name} and what it holds"
    return None


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class PhaseReconciliation:
    number: int
    title: str
    file: str
    status: str  # applied | partly_applied | pending | data_only | empty
    outcomes: tuple[StatementOutcome, ...]

    @property
    def blocked(self) -> bool:
        return any(o.outcome in ("will_fail", "conflict") for o in self.outcomes)

    def to_dict(self) -> dict:
        return {
            "number": self.number,
            "title": self.title,
            "file": self.file,
            "status": self.status,
            "blocked": self.blocked,
            "counts": count_outcomes(self.outcomes),
            "statements": [outcome.to_dict() for outcome in self.outcomes],
        }


@dataclass(frozen=True)
class Reconciliation:
    target: str
    plan_hash: str
    target_fingerprint: str
    phases: tuple[PhaseReconciliation, ...]
    warnings: tuple[str, ...] = ()
    losses: tuple[Loss, ...] = ()  # indexes, triggers and views destroyed and not re-created
    # The target's schema as read (for preflight and prep); not part of to_dict.
    schema: Schema | None = field(default=None, compare=False, repr=False)

    def outcomes(self) -> list[StatementOutcome]:
        return [outcome for phase in self.phases for outcome in phase.outcomes]

    def counts(self) -> dict[str, int]:
        return count_outcomes(self.outcomes())

    @property
    def unaccepted_losses(self) -> list[Loss]:
        return [loss for loss in self.losses if not loss.accepted]

    @property
    def ready(self) -> bool:
        """Nothing will fail, nothing conflicts and nothing is lost unaccepted: it can run."""
        return not any(phase.blocked for phase in self.phases) and not self.unaccepted_losses

    @property
    def state(self) -> str:
        """applied | partly_applied | pending | data_only, over the phases that have DDL."""
        statuses = {p.status for p in self.phases if p.status not in ("data_only", "empty")}
        if not statuses:
            return "data_only"
        return statuses.pop() if len(statuses) == 1 else "partly_applied"

    def summary(self) -> str:
        """One sentence for the dashboard: how far the plan got and whether it can run."""
        parts = []
        for status, words in (("applied", "applied"), ("partly_applied", "partly applied"),
                              ("pending", "not started"), ("data_only", "data only")):
            numbers = [p.number for p in self.phases if p.status == status]
            if numbers:
                parts.append(f"{_phase_list(numbers)} {words}")
        counts = count_outcomes(self.outcomes())
        blockers = [f"{counts[o]} {'statement' if counts[o] == 1 else 'statements'} {words}"
                    for o, words in (("will_fail", "will fail"), ("conflict", "conflict"))
                    if counts[o]]
        lost = len(self.unaccepted_losses)
        if lost:
            blockers.append(f"{lost} {'index, trigger or view' if lost == 1 else 'indexes, triggers or views'} "
                            "lost without acceptance")
        verdict = "blocked: " + ", ".join(blockers) if blockers else "ready to run"
        return f"{_STATE_WORDS[self.state]}: {'; '.join(parts)}; {verdict}"

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "plan_hash": self.plan_hash,
            "target_fingerprint": self.target_fingerprint,
            "state": self.state,
            "ready": self.ready,
            "summary": self.summary(),
            "counts": self.counts(),
            "warnings": list(self.warnings),
            "losses": [loss.to_dict() for loss in self.losses],
            "phases": [phase.to_dict() for phase in self.phases],
        }


_STATE_WORDS = {
    "applied": "fully migrated",
    "partly_applied": "partially migrated",
    "pending": "not migrated",
    "data_only": "data statements only",
}


def _phase_list(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> 'phases 1-3, 5'."""
    text = number_ranges(numbers)
    return f"phase {text}" if len(numbers) == 1 else f"phases {text}"


def number_ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def count_outcomes(outcomes: Iterable[StatementOutcome]) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOMES, 0)
    for outcome in outcomes:
        counts[outcome.outcome] += 1
    return counts


# Data statements and queries run every time: they are never "already applied".
_NEVER_APPLIED = ("insert", "update", "delete", "select")


def phase_status(outcomes: tuple[StatementOutcome, ...]) -> str:
    """Judged on the statements that can be "already applied" (DDL), not on data statements."""
    if not outcomes:
        return "empty"
    judged = [o for o in outcomes if o.statement.shape.verb not in _NEVER_APPLIED]
    if not judged:
        return "data_only"
    skipped = sum(o.outcome == "skip" for o in judged)
    if skipped == len(judged):
        return "applied"
    return "pending" if skipped == 0 else "partly_applied"


def reconcile(target, plan_set: PlanSet, *, busy_timeout: float = 1.0) -> Reconciliation:
    """Predict every statement of `plan_set` on `target` (its Engine, or a SQLite file's
    path); reads only its schema, which the engine copies to a private database."""
    engine = engine_for(target)
    with engine.schema_clone(busy_timeout=busy_timeout) as (copy, warnings):
        return _reconcile_on(engine, copy, list(warnings), plan_set, target=str(engine.location))


def reconcile_schema(engine: Engine, schema: Schema, plan_set: PlanSet, *,
                     target: str = "") -> Reconciliation:
    """The same prediction for a schema we only have as a Schema (e.g. from a snapshot of
    the target `engine` reaches)."""
    return reconcile_rows(engine, rows_from_schema(schema), plan_set, target=target)


def reconcile_rows(engine: Engine, rows: list[SchemaRow], plan_set: PlanSet, *,
                   target: str) -> Reconciliation:
    with schema_copy(engine, rows) as (copy, warnings):
        return _reconcile_on(engine, copy, warnings, plan_set, target=target)


def _reconcile_on(engine: Engine, copy, warnings: list[str], plan_set: PlanSet, *,
                  target: str) -> Reconciliation:
    schema = engine.read_schema(copy)
    context = PlanContext.of(plan_set.statements())
    watch = LossWatch(engine, copy)
    outcomes_by_phase = []
    for phase in plan_set.phases():
        outcomes = []
        for statement in phase.statements:
            outcomes.append(predict(engine, copy, statement, context))
            watch.saw(statement)
        outcomes_by_phase.append((phase, outcomes))
    losses = watch.losses(plan_set.acceptances())
    warnings += [f"{a.file}:{a.line}: accept-drop of {a.kind} {a.name} names nothing the plan "
                 "destroys on this target" for a in unmatched_acceptances(plan_set.acceptances(), losses)]
    phases = []
    for phase, outcomes in outcomes_by_phase:
        outcomes = tuple(_with_losses(outcome, losses) for outcome in outcomes)
        phases.append(PhaseReconciliation(phase.number, phase.title, phase.file,
                                          phase_status(outcomes), outcomes))
    return Reconciliation(target, plan_set.hash, schema.fingerprint(), tuple(phases),
                          tuple(warnings), tuple(losses), schema)


def _with_losses(outcome: StatementOutcome, losses: list[Loss]) -> StatementOutcome:
    mine = tuple(loss for loss in losses
                 if loss.statement is not None and loss.statement.index == outcome.statement.index)
    return replace(outcome, losses=mine) if mine else outcome


# --------------------------------------------------------------------------- preflight


@dataclass(frozen=True)
class PreflightProblem:
    outcome: StatementOutcome
    fix: str
    loss: Loss | None = None  # set when the problem is an object destroyed unaccepted

    @property
    def kind(self) -> str:
        """will_fail | conflict | loses_object"""
        return "loses_object" if self.loss else self.outcome.outcome

    @property
    def error(self) -> str:
        return self.loss.message() if self.loss else self.outcome.message

    def to_dict(self) -> dict:
        statement = self.outcome.statement
        return {
            "index": statement.index,
            "file": statement.file,
            "line": statement.line,
            "phase": statement.phase,
            "phase_number": statement.phase_number,
            "description": statement.description,
            "outcome": self.kind,
            "error": self.error,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Preflight:
    problems: tuple[PreflightProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "problems": [problem.to_dict() for problem in self.problems]}


def preflight(
    reconciliation: Reconciliation,
    reference_schema: Schema | None = None,
    *,
    target_label: str = "production",
    reference_label: str = "development",
) -> Preflight:
    """Every statement that would stop the run, with what to do about it.

    With the reference schema, a missing table or column the reference has is explained
    as drift, with the prep plan's statement that repairs it.
    """
    labels = (target_label, reference_label)
    problems = [
        PreflightProblem(outcome, _fix(outcome, reconciliation.schema, reference_schema, labels))
        for outcome in reconciliation.outcomes()
        if outcome.outcome in ("will_fail", "conflict")
    ]
    problems += [PreflightProblem(_loss_outcome(reconciliation, loss), loss.fix(), loss)
                 for loss in reconciliation.unaccepted_losses]
    return Preflight(tuple(problems))


def _loss_outcome(reconciliation: Reconciliation, loss: Loss) -> StatementOutcome:
    """The outcome of the statement that destroyed it (the last statement if none is known)."""
    outcomes = reconciliation.outcomes()
    index = loss.statement.index if loss.statement else outcomes[-1].statement.index
    return next(outcome for outcome in outcomes if outcome.statement.index == index)


def _fix(outcome: StatementOutcome, target: Schema | None, reference: Schema | None, labels) -> str:
    target_label, reference_label = labels
    if outcome.outcome == "conflict":
        return (
            f"{target_label}'s definition differs from the plan's ({outcome.message}): "
            f"{target_label} has `{outcome.existing}`, the plan says `{outcome.planned}`. "
            "Cutover never replaces an existing object: make the plan match, or change "
            f"{target_label} with a reviewed plan, then reconcile again."
        )
    missing_column = _missing_column(outcome.message)
    if missing_column and reference is not None:
        fix = _missing_column_fix(outcome, missing_column, target, reference, labels)
        if fix:
            return fix
    missing_table = _after_prefix(outcome.message, "no such table: ")
    if missing_table and reference is not None and reference.table(_unqualified(missing_table)):
        name = _unqualified(missing_table)
        return (f"{target_label} lacks table {name} which {reference_label} has; run the prep "
                f"plan (CREATE TABLE {name} ...) first.")
    return (f"SQLite would stop here with \"{outcome.message}\". Fix the plan, or the drift it "
            "depends on, and reconcile again.")


def _after_prefix(message: str, prefix: str) -> str | None:
    return message[len(prefix):].strip() if message.startswith(prefix) else None


def _unqualified(name: str) -> str:
    return name.split(".")[-1]


def _missing_column(message: str) -> str | None:
    name = _after_prefix(message, "no such column: ")
    return _unqualified(name) if name else None


def _missing_column_fix(outcome, column: str, target, reference: Schema, labels) -> str | None:
    target_label, reference_label = labels
    for table_name in _tables_named_in(outcome.statement):
        table = reference.table(table_name)
        column_def = table.column(column) if table else None
        if column_def is None:
            continue
        statement = add_column_sql(table, column_def).rstrip(";")
        fix = (f"{target_label} lacks {table.name}.{column_def.name} which {reference_label} has; "
               f"run the prep plan ({statement}) first.")
        return fix + _missing_parents(table, column_def, target, labels)
    return None


def _tables_named_in(statement: PlanStatement) -> list[str]:
    """The statement's own table first, then every other name it mentions."""
    names = [statement.shape.table] if statement.shape.table else []
    for token in significant_tokens(statement.sql):
        if token.kind in ("word", "quoted") and _name(token) not in names:
            names.append(_name(token))
    return names


def _missing_parents(table, column, target: Schema | None, labels) -> str:
    target_label = labels[0]
    parents = [fk.table for fk in table.foreign_keys
               if [ascii_lower(c) for c in fk.columns] == [ascii_lower(column.name)]]
    missing = [p for p in parents if target is not None and target.table(p) is None]
    if not missing:
        return ""
    return (f" It references {', '.join(missing)}, which {target_label} lacks too; the prep "
            "plan creates it first.")
