"""SQLite's SQL dialect as the plans and checks need it: where a statement ends, whether a
read-only query compiles."""
from __future__ import annotations

import sqlite3
from contextlib import closing

from app.core.engines.base import QueryProblem
from app.core.engines.sqlite.guards import read_only_authorizer

# SQLite messages that mean the text itself is wrong, whatever the schema.
_SYNTAX_MARKERS = ("syntax error", "unrecognized token", "incomplete input")


def statement_is_complete(text: str) -> bool:
    """Does `text` end with a complete statement, as SQLite's own parser sees it?

    A `;` inside a trigger body, a string or a comment does not end a statement."""
    return sqlite3.complete_statement(text)


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
