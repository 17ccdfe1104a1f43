"""Migration plans: `.sql` files split into phases and statements, checked before anything runs.

Format: a line `-- phase: TITLE` starts a phase (statements before the first one belong
to a phase named after the file); statements end where the target's dialect says they do
(app/core/engines/*/dialect.py), so a `;` inside a string or a trigger's or function's body
does not split one. The `--` lines just before a statement are kept with it for display.

Loading refuses what the dialect says a plan may not run: statements that would break the
single transaction a migration runs in (BEGIN, COMMIT, SAVEPOINT, ...), that reach outside
the backed-up database, or that cannot run inside a transaction. Where the engine can run a
phase outside that transaction, a phase declared `-- phase: TITLE (no transaction)` may hold
the last kind (PostgreSQL's CREATE INDEX CONCURRENTLY); such a phase is not atomic, and an
engine that cannot run one (SQLite) refuses the plan. A plan set's hash covers each statement
exactly as it will be executed: no normal form of SQL text is semantics-preserving in SQLite
(a double-quoted "Archived" that names no column is a string; a view's unaliased column is
named after its expression's text, spacing and case included; comments inside a CREATE are
stored in the schema), so the hash that was reviewed and rehearsed is exactly what runs.
Comments between statements and phase titles are not executed and do not count; which
statements run outside the transaction does.

A line `-- accept-drop: KIND NAME` (KIND is index, trigger or view) declares that the plan
means to destroy that object without re-creating it (e.g. a table rebuild that leaves an
old index behind). Without it the loss stops the plan (losses.py). Acceptances are part of
the hash, so a sign-off or a rehearsal covers them too.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from app.core.engines.base import DEFAULT_ENGINE, Dialect, engine_class
from app.core.errors import PlanError
from app.core.sql import (
    Token,
    ascii_lower,
    significant_tokens,
    tokenize,
    unquote_identifier,
)

HASH_VERSION = "cutover-plan-v2"
DESCRIPTION_LENGTH = 100
_PHASE_MARKER = re.compile(r"^\s*--\s*phase\s*:\s*(.+?)\s*$", re.IGNORECASE)
_ACCEPT_MARKER = re.compile(r"^\s*--\s*accept-drop\s*:(.*)$", re.IGNORECASE)
ACCEPTABLE_KINDS = ("index", "trigger", "view")

# `-- phase: TITLE (no transaction)`: the phase runs outside the migration's transaction.
_NO_TRANSACTION = re.compile(r"^(.*?)\s*\(\s*no\s+transaction\s*\)$", re.IGNORECASE)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PlanStatement:
    file: str
    line: int  # 1-based line of the statement's first word
    phase: str  # title of its phase
    sql: str  # exactly as written, comments inside it included
    comments: tuple[str, ...]  # the `--` lines just before it, without the dashes
    index: int  # 0-based position in the plan set
    phase_number: int = 1  # 1-based position of its phase in the plan set
    transactional: bool = True  # False in a phase declared `(no transaction)`

    @property
    def description(self) -> str:
        return describe(self.sql)

    @property
    def shape(self) -> StatementShape:
        return statement_shape(self.sql)

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "file": self.file,
            "line": self.line,
            "phase": self.phase,
            "phase_number": self.phase_number,
            "description": self.description,
            "sql": self.sql,
            "comments": list(self.comments),
        }


@dataclass(frozen=True)
class Phase:
    title: str
    statements: tuple[PlanStatement, ...]
    number: int = 1
    file: str = ""
    line: int = 0  # line of the `-- phase:` marker, 0 for the file's implicit first phase
    comments: tuple[str, ...] = ()
    transactional: bool = True  # False when declared `-- phase: TITLE (no transaction)`

    def to_dict(self) -> dict:
        data = {
            "number": self.number,
            "title": self.title,
            "file": self.file,
            "line": self.line,
            "comments": list(self.comments),
            "statements": [statement.to_dict() for statement in self.statements],
        }
        if not self.transactional:  # only then: plans without such phases keep their shape
            data["transactional"] = False
        return data


@dataclass(frozen=True)
class Acceptance:
    """`-- accept-drop: KIND NAME`: the plan destroys this object on purpose."""

    kind: str  # index | trigger | view
    name: str
    file: str
    line: int

    def matches(self, kind: str, name: str) -> bool:
        return self.kind == kind and ascii_lower(self.name) == ascii_lower(name)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "file": self.file, "line": self.line}


@dataclass(frozen=True)
class Plan:
    path: str
    phases: tuple[Phase, ...]
    comments: tuple[str, ...] = ()  # the file's header comments
    acceptances: tuple[Acceptance, ...] = ()

    def statements(self) -> list[PlanStatement]:
        return [statement for phase in self.phases for statement in phase.statements]

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "comments": list(self.comments),
            "acceptances": [acceptance.to_dict() for acceptance in self.acceptances],
            "phases": [phase.to_dict() for phase in self.phases],
        }


@dataclass(frozen=True)
class PlanSet:
    plans: tuple[Plan, ...]
    hash: str

    def statements(self) -> list[PlanStatement]:
        return [statement for plan in self.plans for statement in plan.statements()]

    def phases(self) -> list[Phase]:
        return [phase for plan in self.plans for phase in plan.phases]

    def acceptances(self) -> list[Acceptance]:
        return [acceptance for plan in self.plans for acceptance in plan.acceptances]

    def to_dict(self) -> dict:
        return {
            "hash": self.hash,
            "files": [plan.path for plan in self.plans],
            "phase_count": len(self.phases()),
            "statement_count": len(self.statements()),
            "plans": [plan.to_dict() for plan in self.plans],
        }


# --------------------------------------------------------------------------- loading


def default_dialect() -> Dialect:
    """The dialect of a target named by nothing but its location (SQLite's)."""
    return engine_class(DEFAULT_ENGINE).dialect


def load_plan_set(paths, *, dialect: Dialect | None = None) -> PlanSet:
    """Load plan files in order (they run in this order) as `dialect` (the target's engine's;
    by default the default engine's) splits and refuses them; raises PlanError, nothing runs."""
    dialect = dialect if dialect is not None else default_dialect()
    plans, index, phase_number = [], 0, 1
    for path in paths:
        plan = load_plan(path, first_index=index, first_phase=phase_number, dialect=dialect)
        plans.append(plan)
        index += len(plan.statements())
        phase_number += len(plan.phases)
    if not plans:
        raise PlanError("No plan files were given: name at least one .sql file.")
    if len(plans) > 1:
        # Each file was checked alone; the migration's one transaction spans them all.
        _refuse(_transaction_problems([s for plan in plans for s in plan.statements()], dialect))
    return make_plan_set(plans)


def make_plan_set(plans) -> PlanSet:
    plans = tuple(plans)
    statements = [s for plan in plans for s in plan.statements()]
    return PlanSet(plans, plan_hash(statements, [a for plan in plans for a in plan.acceptances]))


def plan_hash(statements, acceptances=()) -> str:
    """SHA-256 of the statements in order, each exactly as it is executed, of the objects
    the plan accepts to destroy and of which statements run outside the transaction."""
    statements = list(statements)
    executed = [statement.sql for statement in statements]
    accepted = [[acceptance.kind, acceptance.name] for acceptance in acceptances]
    payload = [HASH_VERSION, executed, accepted]
    outside = [position for position, statement in enumerate(statements) if not statement.transactional]
    if outside:  # only then, so that a plan without such a phase keeps the hash it always had
        payload.append({"outside_transaction": outside})
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_plan(path, *, first_index: int = 0, first_phase: int = 1, dialect: Dialect | None = None) -> Plan:
    path = Path(path)
    text = read_plan_text(path)
    plan = parse_plan_text(text, file=str(path), first_index=first_index, first_phase=first_phase,
                           dialect=dialect)
    if not plan.statements():
        raise PlanError(f"{path} contains no SQL statements: check that it is the right file.",
                        file=str(path))
    return plan


def read_plan_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PlanError(f"Plan file {path} does not exist: check the path in the configuration.",
                        file=str(path)) from None
    except IsADirectoryError:
        raise PlanError(f"Plan file {path} is a directory: name the .sql file itself.",
                        file=str(path)) from None
    except OSError as exc:
        raise PlanError(f"Plan file {path} cannot be read ({exc.strerror}): check its permissions.",
                        file=str(path)) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PlanError(
            f"{path}:{line}: the plan is not valid UTF-8 (byte 0x{raw[exc.start]:02x}); "
            "save it as UTF-8 and load it again.",
            file=str(path), line=line,
        ) from None


def parse_plan_text(text: str, *, file: str = "<plan>", first_index: int = 0,
                    first_phase: int = 1, dialect: Dialect | None = None) -> Plan:
    """Split plan text into phases and statements as `dialect` does (by default the default
    engine's); raises PlanError for what cannot run."""
    dialect = dialect if dialect is not None else default_dialect()
    parser = _PlanParser(file, first_index, first_phase, dialect)
    # Split on "\n" only: str.splitlines() also splits on characters that may sit inside a
    # string literal, and joining the lines again would change the literal.
    for number, line in enumerate(text.split("\n"), start=1):
        parser.feed(number, line)
    plan = parser.finish()
    _refuse_forbidden(plan, dialect)
    return plan


class _PlanParser:
    """Accumulates lines until the dialect says a statement is complete."""

    def __init__(self, file: str, first_index: int, first_phase: int, dialect: Dialect):
        self.file = file
        self.dialect = dialect
        self.stem = Path(file).stem
        self.next_index = first_index
        self.phase_number = first_phase
        self.phases: list[Phase] = []
        self.header: tuple[str, ...] = ()
        self.title, self.title_line, self.phase_comments = self.stem, 0, ()
        self.transactional = True
        self.statements: list[PlanStatement] = []
        self.buffer: list[str] = []
        self.buffer_line = 0
        self.comments: list[str] = []
        self.acceptances: list[Acceptance] = []

    def feed(self, number: int, line: str) -> None:
        if not self.buffer:
            marker = _PHASE_MARKER.match(line)
            if marker:
                self._start_phase(marker.group(1), number)
                return
            accept = _ACCEPT_MARKER.match(line)
            if accept:
                self.acceptances.append(parse_acceptance(accept.group(1), self.file, number))
                return
            if line.lstrip().startswith("--"):
                self.comments.append(line.lstrip()[2:].strip())
                return
            if not line.strip():
                return
            self.buffer_line = number
        self.buffer.append(line)
        if self.dialect.statement_is_complete("\n".join(self.buffer)):
            self._take_statements("\n".join(self.buffer), self.buffer_line)
            self.buffer = []

    def _start_phase(self, title: str, number: int) -> None:
        if self.statements or self.phases or self.title_line:
            self._close_phase()
        elif self.comments:
            self.header = tuple(self.comments)  # before the first marker: about the file
            self.comments = []
        self.title, self.transactional = self._phase_title(title, number)
        self.title_line = number
        self.phase_comments, self.comments = tuple(self.comments), []

    def _phase_title(self, marked: str, number: int) -> tuple[str, bool]:
        """(title, transactional) of `-- phase: TITLE` or `-- phase: TITLE (no transaction)`."""
        outside = _NO_TRANSACTION.match(marked)
        if not outside:
            return marked, True
        title = outside.group(1)
        where = f"{self.file}:{number}"
        problem = self.dialect.no_transaction_phase_problem()
        if problem:
            raise PlanError(f"{where}: `-- phase: {marked}` cannot be run: {problem}. Remove "
                            "`(no transaction)`, and any statement that needs it.",
                            file=self.file, line=number)
        if not title:
            raise PlanError(f"{where}: the phase has no title: write `-- phase: TITLE (no transaction)`.",
                            file=self.file, line=number)
        return title, False

    def _close_phase(self) -> None:
        if self.statements or self.title_line:
            self.phases.append(Phase(self.title, tuple(self.statements), self.phase_number,
                                     self.file, self.title_line, self.phase_comments,
                                     self.transactional))
            self.phase_number += 1
        self.statements = []

    def _take_statements(self, text: str, first_line: int) -> None:
        for sql, offset in self.dialect.split_statements(text):
            self.statements.append(PlanStatement(
                file=self.file, line=first_line + offset, phase=self.title, sql=sql,
                comments=tuple(self.comments), index=self.next_index,
                phase_number=self.phase_number, transactional=self.transactional))
            self.next_index += 1
            self.comments = []

    def finish(self) -> Plan:
        if self.buffer and significant_tokens("\n".join(self.buffer)):
            first = self.buffer[0].strip()
            raise PlanError(
                f"{self.file}:{self.buffer_line}: the last statement is incomplete (a missing ';', "
                f"an unclosed string or a trigger without END;): {first}",
                file=self.file, line=self.buffer_line, statement=first)
        self._close_phase()
        return Plan(self.file, tuple(self.phases), self.header, tuple(self.acceptances))


def parse_acceptance(text: str, file: str, line: int) -> Acceptance:
    """`trigger trg_name` (or a quoted name) after `-- accept-drop:`; PlanError otherwise."""
    tokens = significant_tokens(text)
    kind = tokens[0].text.lower() if tokens and tokens[0].kind == "word" else ""
    names = tokens[1:]
    if kind not in ACCEPTABLE_KINDS or len(names) != 1 or names[0].kind not in ("word", "quoted"):
        raise PlanError(
            f"{file}:{line}: `-- accept-drop:{text}` is not understood: write "
            "`-- accept-drop: KIND NAME` with KIND one of index, trigger, view and one name "
            "(quoted if it needs quotes), e.g. `-- accept-drop: trigger goals_touch`.",
            file=file, line=line)
    return Acceptance(kind, _identifier(names[0]), file, line)


# --------------------------------------------------------------------------- refusals


def refuse_unrunnable(plan: Plan, dialect: Dialect) -> None:
    """PlanError for what `dialect` cannot run in a plan built in code (as loading a file refuses it)."""
    _refuse_forbidden(plan, dialect)


def _refuse_forbidden(plan: Plan, dialect: Dialect) -> None:
    problems = []
    for statement in plan.statements():
        reason = dialect.forbidden_reason(statement.sql)
        if not reason and statement.transactional:
            reason = dialect.needs_own_transaction(statement.sql)
        if reason:
            problems.append((statement, reason))
    problems += _transaction_problems(plan.statements(), dialect)
    _refuse(sorted(problems, key=lambda problem: problem[0].index))


def _transaction_problems(statements: list[PlanStatement], dialect: Dialect) -> list[tuple[PlanStatement, str]]:
    """What fails because of an earlier statement in the migration's one transaction."""
    inside = [statement for statement in statements if statement.transactional]
    return [(inside[position], reason)
            for position, reason in dialect.transaction_problems([s.sql for s in inside])]


def _refuse(problems: list[tuple[PlanStatement, str]]) -> None:
    if not problems:
        return
    lines = [f"{s.file}:{s.line}: {first_line(s.sql)}: {reason}" for s, reason in problems]
    raise PlanError(
        "The plan was refused and nothing ran:\n" + "\n".join(lines),
        file=problems[0][0].file,
        line=problems[0][0].line,
        problems=[{"file": s.file, "line": s.line, "statement": first_line(s.sql), "reason": r}
                  for s, r in problems],
    )


def first_line(sql: str) -> str:
    for line in sql.splitlines():
        if line.strip() and not line.lstrip().startswith("--"):
            return line.strip()
    return sql.strip()


# --------------------------------------------------------------------------- describing


def describe(sql: str) -> str:
    """One line for the log: the statement without comments, spacing collapsed, shortened.

    A statement that starts with WITH shows its main verb (`WITH … UPDATE goals …`);
    IF NOT EXISTS is left out, because the runner decides about existing objects itself.
    """
    tokens = _without_if_not_exists([t for t in tokenize(sql) if t.kind != "comment"])
    while tokens and tokens[-1].kind in ("space", "semicolon"):
        tokens.pop()
    positions = [i for i, t in enumerate(tokens) if t.kind != "space"]
    significant = [tokens[i] for i in positions]
    if significant and significant[0].is_word("WITH"):
        main = _main_verb_position(significant)
        if main is not None:
            tokens = [Token("word", "WITH …"), Token("space", " ")] + tokens[positions[main]:]
    text = _compact(tokens)
    if len(text) > DESCRIPTION_LENGTH:
        text = text[: DESCRIPTION_LENGTH - 1].rstrip() + "…"
    return text


def _without_if_not_exists(tokens: list[Token]) -> list[Token]:
    words = [i for i, t in enumerate(tokens) if t.kind != "space"][:8]
    for a, b, c in zip(words, words[1:], words[2:]):
        if tokens[a].is_word("IF") and tokens[b].is_word("NOT") and tokens[c].is_word("EXISTS"):
            return tokens[:a] + tokens[c + 2 :]  # the EXISTS and the space after it
    return tokens


def _compact(tokens: list[Token]) -> str:
    parts = []
    for index, token in enumerate(tokens):
        if token.kind != "space":
            parts.append(token.text)
            continue
        before = tokens[index - 1] if index else None
        after = tokens[index + 1] if index + 1 < len(tokens) else None
        if before and after and before.kind != "lparen" and after.kind not in ("rparen", "space"):
            parts.append(" ")  # one space for a run of spaces (a dropped comment leaves two)
    return "".join(parts).strip()


# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class StatementShape:
    """What a statement does, read from its first words: enough to reconcile it."""

    verb: str  # create | alter | drop | insert | update | delete | select | other
    object: str | None = None  # table | index | view | trigger | column (for ALTER/DROP COLUMN)
    name: str | None = None  # the object's name (the column's for ADD/DROP COLUMN)
    table: str | None = None  # the table it acts on
    if_exists: bool = False  # IF NOT EXISTS / IF EXISTS was written
    temporary: bool = False  # TEMP object or temp.-qualified: not part of the file
    alter_action: str | None = None  # add_column | drop_column | rename
    column_tokens: tuple[Token, ...] = ()  # the column definition of ADD COLUMN

    @property
    def is_data(self) -> bool:
        return self.verb in ("insert", "update", "delete")


def statement_shape(sql: str) -> StatementShape:
    tokens = significant_tokens(sql)
    while tokens and tokens[-1].kind == "semicolon":
        tokens.pop()
    if not tokens or tokens[0].kind != "word":
        return StatementShape("other")
    first = tokens[0].text.upper()
    if first == "CREATE":
        return _create_shape(tokens)
    if first == "ALTER":
        return _alter_shape(tokens)
    if first == "DROP":
        return _drop_shape(tokens)
    if first == "WITH":
        main = _main_verb_position(tokens)
        return _data_shape(tokens, main) if main is not None else StatementShape("other")
    return _data_shape(tokens, 0)


def _name_at(tokens: list[Token], index: int) -> tuple[str | None, str | None, int]:
    """(schema, name, index after) for `name` or `schema.name` at `index`."""
    if index >= len(tokens) or tokens[index].kind not in ("word", "quoted", "string"):
        return None, None, index
    first = _identifier(tokens[index])
    if index + 2 < len(tokens) and tokens[index + 1].kind == "dot":
        return first, _identifier(tokens[index + 2]), index + 3
    return None, first, index + 1


def _identifier(token: Token) -> str:
    return unquote_identifier(token.text) if token.kind in ("quoted", "string") else token.text


def _skip_words(tokens: list[Token], index: int, *words: str) -> int:
    while index < len(tokens) and tokens[index].is_word(*words):
        index += 1
    return index


def _is_temp(schema: str | None, temp_word: bool) -> bool:
    return temp_word or (schema or "").lower() == "temp"


def _create_shape(tokens: list[Token]) -> StatementShape:
    index = _skip_words(tokens, 1, "TEMP", "TEMPORARY", "UNIQUE", "VIRTUAL")
    temp_word = any(t.is_word("TEMP", "TEMPORARY") for t in tokens[1:index])
    if index >= len(tokens) or not tokens[index].is_word("TABLE", "INDEX", "VIEW", "TRIGGER"):
        return StatementShape("create")
    kind = tokens[index].text.lower()
    after_kind = index + 1
    index = _skip_words(tokens, after_kind, "IF", "NOT", "EXISTS")
    if_exists = index > after_kind
    schema, name, index = _name_at(tokens, index)
    table = name if kind == "table" else _table_after_on(tokens, index) if kind != "view" else None
    return StatementShape("create", kind, name, table, if_exists, _is_temp(schema, temp_word))


def _table_after_on(tokens: list[Token], index: int) -> str | None:
    for position in range(index, len(tokens)):
        if tokens[position].is_word("ON"):
            return _name_at(tokens, position + 1)[1]
    return None


def _alter_shape(tokens: list[Token]) -> StatementShape:
    if len(tokens) < 3 or not tokens[1].is_word("TABLE"):
        return StatementShape("alter")
    schema, table, index = _name_at(tokens, 2)
    temp = _is_temp(schema, False)
    if index < len(tokens) and tokens[index].is_word("ADD"):
        index = _skip_words(tokens, index + 1, "COLUMN")
        column = _name_at(tokens, index)[1] if index < len(tokens) else None
        return StatementShape("alter", "column", column, table, temporary=temp,
                              alter_action="add_column", column_tokens=tuple(tokens[index:]))
    if index < len(tokens) and tokens[index].is_word("DROP"):
        index = _skip_words(tokens, index + 1, "COLUMN")
        column = _name_at(tokens, index)[1]
        return StatementShape("alter", "column", column, table, temporary=temp,
                              alter_action="drop_column")
    return StatementShape("alter", "table", table, table, temporary=temp, alter_action="rename")


def _drop_shape(tokens: list[Token]) -> StatementShape:
    if len(tokens) < 3 or not tokens[1].is_word("TABLE", "INDEX", "VIEW", "TRIGGER"):
        return StatementShape("drop")
    kind = tokens[1].text.lower()
    index = _skip_words(tokens, 2, "IF", "EXISTS")
    schema, name, _ = _name_at(tokens, index)
    table = name if kind == "table" else None
    return StatementShape("drop", kind, name, table, index > 2, _is_temp(schema, False))


_MAIN_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "SELECT", "VALUES")


def _main_verb_position(tokens: list[Token]) -> int | None:
    """Position of INSERT/UPDATE/DELETE/REPLACE/SELECT after a WITH clause's CTEs."""
    depth = 0
    for position, token in enumerate(tokens[1:], start=1):
        depth += {"lparen": 1, "rparen": -1}.get(token.kind, 0)
        if depth == 0 and token.is_word(*_MAIN_VERBS):
            return position
    return None


def _data_shape(tokens: list[Token], start: int) -> StatementShape:
    verb = tokens[start].text.upper()
    index = start + 1
    if verb in ("INSERT", "REPLACE"):
        index = _skip_words(tokens, index, "OR", "ROLLBACK", "ABORT", "REPLACE", "FAIL",
                            "IGNORE", "INTO")
        return StatementShape("insert", "table", table=_name_at(tokens, index)[1])
    if verb == "UPDATE":
        index = _skip_words(tokens, index, "OR", "ROLLBACK", "ABORT", "REPLACE", "FAIL", "IGNORE")
        return StatementShape("update", "table", table=_name_at(tokens, index)[1])
    if verb == "DELETE":
        index = _skip_words(tokens, index, "FROM")
        return StatementShape("delete", "table", table=_name_at(tokens, index)[1])
    if verb in ("SELECT", "VALUES"):
        return StatementShape("select")
    return StatementShape("other")

