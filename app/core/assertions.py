"""Operator assertions: one read-only SQL query that must find nothing.

An assertion comes from cutover.toml ([checks] name = "SELECT COUNT(*) ... WHERE root_id
IS NULL") and runs against production, so it is held to two locks:

1. when the configuration is loaded, `validate_assertion` accepts exactly one statement
   that starts with SELECT (or WITH ... SELECT, or VALUES) and that SQLite can parse;
2. when it runs (checks.run_assertion), the connection is read-only (`mode=ro`,
   `query_only`) and the engine's `reads_only` guard refuses anything but reading, so nothing
   can write even if a statement slipped through the first lock.

A query's tables only exist in the target, so step 1 cannot compile it fully: it is
prepared on an empty in-memory database, where "no such table" is expected and only a
syntax error is reported.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

from app.core.engines.sqlite.guards import read_only_authorizer
from app.core.errors import ConfigError, UsageError
from app.core.sql import Token, significant_tokens

_MAIN_VERBS = {"SELECT", "VALUES", "INSERT", "UPDATE", "DELETE", "REPLACE"}
# SQLite messages that mean the text itself is wrong, whatever the schema.
_SYNTAX_MARKERS = ("syntax error", "unrecognized token", "incomplete input")


def single_statement(sql: str, what: str) -> list[Token]:
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
    if not sqlite3.complete_statement(sql.rstrip() + "\n;"):
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


def validate_assertion(name: str, sql: str, *, label: str | None = None) -> str:
    """Check that `sql` is one read-only query; return it stripped of trailing ';'.

    Raises UsageError whose message starts with `label` (default: check 'NAME').
    """
    what = label or f"check {name!r}"
    single_statement(sql, what)
    tokens = significant_tokens(sql)
    verb = statement_verb(tokens)
    if verb not in ("SELECT", "VALUES"):
        shown = verb or tokens[0].text
        raise UsageError(
            f"{what}: an assertion must be one read-only query starting with SELECT or "
            f"WITH ... SELECT, not {shown}. It must return 0 or no rows when all is well.")
    _compile_on_empty_database(what, sql)
    return sql.strip().rstrip(";").strip()


def _compile_on_empty_database(what: str, sql: str) -> None:
    with closing(sqlite3.connect(":memory:")) as connection:
        connection.set_authorizer(read_only_authorizer)
        try:
            # EXPLAIN prepares the statement without running it.
            connection.execute("EXPLAIN " + sql.strip().rstrip(";"))
        except sqlite3.Error as exc:
            message = str(exc)
            if "not authorized" in message:
                raise UsageError(
                    f"{what}: the query does something other than read ({message}); an "
                    "assertion may only read.") from None
            if any(marker in message for marker in _SYNTAX_MARKERS):
                raise UsageError(f"{what}: SQLite cannot parse the query: {message}.") from None
            # "no such table/column/function": the target's schema decides, at run time.
        except sqlite3.Warning as exc:  # "You can only execute one statement at a time."
            raise UsageError(f"{what}: {exc}") from None


def validate_checks_config(config_path, checks) -> None:
    """Validate the [checks] of a configuration file; raise ConfigError naming `checks.NAME`."""
    for name, sql in checks:
        try:
            validate_assertion(name, sql, label=f"checks.{name}")
        except UsageError as exc:
            raise ConfigError(f"{config_path}: {exc.message}") from None
