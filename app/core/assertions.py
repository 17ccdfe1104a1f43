"""Operator assertions: one read-only SQL query that must find nothing.

An assertion comes from cutover.toml ([checks] name = "SELECT COUNT(*) ... WHERE root_id
IS NULL") and runs against production, so it is held to two locks:

1. when the configuration is loaded, `validate_assertion` accepts exactly one statement
   that starts with SELECT (or WITH ... SELECT, or VALUES) and that the target's dialect
   can compile as a read-only query;
2. when it runs (checks.run_assertion), the connection is read-only (`mode=ro`,
   `query_only`) and the engine's `reads_only` guard refuses anything but reading, so nothing
   can write even if a statement slipped through the first lock.

A query's tables only exist in the target, so step 1 cannot compile it fully: the dialect
judges the text alone ("no such table" is left to run time; SQLite prepares the query on
an empty in-memory database). The dialect comes from the caller, picked once per target
(`engine_for(...).dialect`, `Environment.target.dialect`).
"""

from __future__ import annotations

from collections.abc import Iterable

from app.core.engines.base import DEFAULT_ENGINE, Dialect, engine_class
from app.core.errors import ConfigError, UsageError
from app.core.sql import Token, significant_tokens

_MAIN_VERBS = {"SELECT", "VALUES", "INSERT", "UPDATE", "DELETE", "REPLACE"}


def single_statement(sql: str, what: str, dialect: Dialect) -> list[Token]:
    """The significant tokens of `sql`, which must be one complete statement.

    Raises UsageError naming `what` for empty text, several statements or an
    unterminated string or comment.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise UsageError(f"{what}: the SQL is empty; write one query.")
    tokens = significant_tokens(sql)
    while tokens and tokens[-1].kind == "semicolon":
        tokens.pop()
    if not tokens:
        raise UsageError(f"{what}: the SQL is empty; write one query.")
    if any(token.kind == "semicolon" for token in tokens):
        raise UsageError(
            f"{what}: several statements found (a ';' separates them); "
            "write exactly one statement.")
    if not dialect.statement_is_complete(sql.rstrip() + "\n;"):
        raise UsageError(
            f"{what}: the statement is incomplete (an unterminated string, quoted name "
            "or comment?).")
    return tokens


def statement_verb(tokens: list[Token]) -> str:
    """SELECT, INSERT, ... : the verb of the main statement, looking past a WITH clause."""
    if not tokens:
        return ""
    first = tokens[0].text.upper() if tokens[0].kind == "word" else ""
    if first != "WITH":
        return first
    depth = 0
    for token in tokens[1:]:
        if token.kind == "lparen":
            depth += 1
        elif token.kind == "rparen":
            depth -= 1
        elif depth == 0 and token.kind == "word" and token.text.upper() in _MAIN_VERBS:
            return token.text.upper()
    return "WITH"


def validate_assertion(name: str, sql: str, dialect: Dialect, *, label: str | None = None) -> str:
    """Check that `sql` is one read-only query in `dialect`; return it stripped of trailing ';'.

    Raises UsageError whose message starts with `label` (default: check 'NAME').
    """
    what = label or f"check {name!r}"
    single_statement(sql, what, dialect)
    tokens = significant_tokens(sql)
    verb = statement_verb(tokens)
    if verb not in ("SELECT", "VALUES"):
        shown = verb or tokens[0].text
        raise UsageError(
            f"{what}: an assertion must be one read-only query starting with SELECT or "
            f"WITH ... SELECT, not {shown}. It must return 0 or no rows when all is well.")
    problem = dialect.read_only_query_problem(sql)
    if problem is not None and problem.writes:
        raise UsageError(f"{what}: {problem.message}; an assertion may only read.")
    if problem is not None:
        raise UsageError(f"{what}: {problem.message}")
    return sql.strip().rstrip(";").strip()


def validate_checks_config(config_path, checks, dialects: Iterable[Dialect] | None = None) -> None:
    """Validate the [checks] of a configuration file in every dialect they will run in
    (by default the default engine's); raise ConfigError naming `checks.NAME`."""
    if dialects is None:
        dialects = (engine_class(DEFAULT_ENGINE).dialect,)
    dialects = tuple(dialects)
    for name, sql in checks:
        for dialect in dialects:
            try:
                validate_assertion(name, sql, dialect, label=f"checks.{name}")
            except UsageError as exc:
                raise ConfigError(f"{config_path}: {exc.message}") from None
