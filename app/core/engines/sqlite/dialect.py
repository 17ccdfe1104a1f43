"""SQLite's SQL dialect as the plans need it: where a statement ends."""
from __future__ import annotations

import sqlite3


def statement_is_complete(text: str) -> bool:
    """Does `text` end with a complete statement, as SQLite's own parser sees it?

    A `;` inside a trigger body, a string or a comment does not end a statement."""
    return sqlite3.complete_statement(text)
