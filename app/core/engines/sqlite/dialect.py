"""SQLite's SQL dialect as the plans and checks need it: where a statement ends, what a plan
may not do, whether a read-only query compiles.

A `;` ends a statement only where `sqlite3.complete_statement` agrees, so one inside a
string or inside a trigger's BEGIN ... END body does not split one. A plan may not control
the transaction Cutover runs it in (BEGIN, COMMIT, SAVEPOINT, ...), run what cannot run inside
one (VACUUM), reach outside the backed-up file (ATTACH) or change the connection or the file
behind SQLite's back (PRAGMA).
"""
from __future__ import annotations

import sqlite3
from contextlib import closing

from app.core.engines.base import QueryProblem
from app.core.engines.sqlite.guards import read_only_authorizer
from app.core.sql import Token, significant_tokens, tokenize, unquote_identifier

# SQLite messages that mean the text itself is wrong, whatever the schema.
_SYNTAX_MARKERS = ("syntax error", "unrecognized token", "incomplete input")

_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE")
_PRAGMA_REASONS = {
    "writable_schema": "it lets SQL edit sqlite_schema directly, which can corrupt the database",
    "journal_mode": ("it cannot change inside a transaction, and would switch off crash safety "
                     "if it could"),
    "foreign_keys": "it is silently ignored inside a transaction, so it would not do what it says",
}
# Why a phase declared `(no transaction)` cannot be run on SQLite.
NO_TRANSACTION_PHASE_PROBLEM = (
    "SQLite runs a whole plan set in one transaction, so a phase cannot run outside it")


def statement_is_complete(text: str) -> bool:
    """Does `text` end with a complete statement, as SQLite's own parser sees it?

    A `;` inside a trigger body, a string or a comment does not end a statement."""
    return sqlite3.complete_statement(text)


def split_statements(text: str) -> list[tuple[str, int]]:
    """(statement, line offset) for each statement in complete text; `a; b;` gives two.

    A `;` ends a statement only where sqlite3.complete_statement agrees, so one inside a
    CREATE TRIGGER body stays in it.
    """
    pieces, current = [], []
    for token in tokenize(text):
        current.append(token)
        if token.kind == "semicolon" and statement_is_complete(_joined(current)):
            pieces.append(current)
            current = []
    pieces.append(current)
    statements, consumed = [], 0
    for piece in pieces:
        piece_text = _joined(piece)
        if any(t.kind not in ("space", "comment", "semicolon") for t in piece):
            leading = len(piece_text) - len(piece_text.lstrip())
            offset = text.count("\n", 0, consumed + leading)
            statements.append((piece_text.strip(), offset))
        consumed += len(piece_text)
    return statements


def _joined(tokens: list[Token]) -> str:
    return "".join(token.text for token in tokens)


def forbidden_reason(sql: str) -> str | None:
    """Why a statement may not be part of a plan, or None when it may."""
    tokens = significant_tokens(sql)
    first = tokens[0].text.upper() if tokens and tokens[0].kind == "word" else ""
    if first in _TRANSACTION_CONTROL:
        return (f"{first} controls transactions. Cutover runs the whole plan set in one "
                "transaction so that a failure changes nothing; a plan's own BEGIN/COMMIT/"
                "SAVEPOINT would commit or end it half-way. Remove it.")
    if first == "VACUUM":
        return ("VACUUM cannot run inside a transaction and rewrites the whole file. Run it "
                "separately, after the migration, if you need it.")
    if first in ("ATTACH", "DETACH"):
        return (f"{first} would let the plan reach another database file, which is neither "
                "backed up nor covered by the migration's transaction. Remove it.")
    if first == "PRAGMA":
        return _pragma_reason(tokens)
    return None


def _pragma_reason(tokens: list[Token]) -> str:
    name = (_pragma_name(tokens) or "").lower()
    why = _PRAGMA_REASONS.get(name, "a PRAGMA changes the connection or the file outside the "
                                    "migration's control")
    return (f"PRAGMA {name} is not allowed in a plan: {why}. Cutover refuses every PRAGMA "
            "(it runs quick_check and foreign_key_check itself); remove it.")


def _pragma_name(tokens: list[Token]) -> str | None:
    """The pragma's name in `PRAGMA name` or `PRAGMA schema.name`."""
    if len(tokens) < 2 or tokens[1].kind not in ("word", "quoted", "string"):
        return None
    if len(tokens) > 3 and tokens[2].kind == "dot":
        return _identifier(tokens[3])
    return _identifier(tokens[1])


def _identifier(token: Token) -> str:
    return unquote_identifier(token.text) if token.kind in ("quoted", "string") else token.text


def read_only_query_problem(sql: str) -> QueryProblem | None:
    """Why SQLite refuses to compile `sql` as a read-only query, or None.

    The target's tables are not at hand, so the query is prepared on an empty in-memory
    database, where "no such table/column/function" is expected (the target's schema
    decides, at run time) and only a write or a syntax error is reported."""
    with closing(sqlite3.connect(":memory:")) as connection:
        connection.set_authorizer(read_only_authorizer)
        try:
            # EXPLAIN prepares the statement without running it.
            connection.execute("EXPLAIN " + sql.strip().rstrip(";"))
        except sqlite3.Error as exc:
            message = str(exc)
            if "not authorized" in message:
                return QueryProblem(writes=True, message=f"the query does something other than read ({message})")
            if any(marker in message for marker in _SYNTAX_MARKERS):
                return QueryProblem(writes=False, message=f"SQLite cannot parse the query: {message}.")
        except sqlite3.Warning as exc:  # "You can only execute one statement at a time."
            return QueryProblem(writes=False, message=str(exc))
    return None


def created_index(sql: str) -> str | None:
    """The name in `CREATE [UNIQUE] INDEX [IF NOT EXISTS] [schema.]name ON ...`, else None
    (a TEMP schema's index is not part of the file)."""
    tokens = [t for t in significant_tokens(sql) if t.kind != "semicolon"]
    words = [t.text.upper() if t.kind == "word" else None for t in tokens]
    position = 1 + (words[1:2] == ["UNIQUE"])
    if words[:1] != ["CREATE"] or words[position:position + 1] != ["INDEX"]:
        return None
    position += 1
    if words[position:position + 3] == ["IF", "NOT", "EXISTS"]:
        position += 3
    names = tokens[position:position + 3]
    if len(names) == 3 and names[1].text == ".":
        if names[0].text.lower() == "temp":
            return None
        names = names[2:]
    return _identifier(names[0]) if names and names[0].kind in ("word", "quoted", "string") else None
