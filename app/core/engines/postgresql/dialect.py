"""PostgreSQL's SQL dialect as plans and checks need it: where a statement ends, what a plan
may not run, what only a phase outside the migration's transaction may run, names.

Statements are split as psql splits a file (lexer.py reads them as psql's lexer does).

Refusals come in two kinds. `forbidden_reason`: never in a plan (transaction control, psql
meta-commands, COPY through psql's streams, what reaches beyond the migrated database or
resets the session). `needs_own_transaction`: what PostgreSQL refuses inside a transaction
block ("cannot run inside a transaction block"), which a phase declared
`-- phase: TITLE (no transaction)` may run. `transaction_problems`: an enum value added by
ALTER TYPE ... ADD VALUE cannot be used before its transaction commits.
"""
from __future__ import annotations

from collections.abc import Sequence

from app.core.engines.base import Dialect, QueryProblem
from app.core.engines.postgresql.ddl import PgPrepWriter
from app.core.engines.postgresql.lexer import Token, pieces, significant, string_value, tokenize
from app.core.engines.postgresql.lockrisk import LockRisk, lock_risks
from app.core.engines.postgresql.shapes import statement_shape

_NO_TRANSACTION_FIX = "put it in a phase of its own declared `-- phase: TITLE (no transaction)`"


def _is_complete(tokens: list[Token]) -> bool:
    if any(token.kind == "open" for token in tokens):
        return False
    *finished, rest = pieces(tokens)
    return bool(finished) and not significant(rest)


def _split(text: str, tokens: list[Token]) -> list[tuple[str, int]]:
    statements, consumed = [], 0
    for piece in pieces(tokens):
        piece_text = "".join(token.text for token in piece)
        if any(token.kind not in ("space", "comment", "semicolon") for token in piece):
            leading = len(piece_text) - len(piece_text.lstrip())
            statements.append((piece_text.strip(), text.count("\n", 0, consumed + leading)))
        consumed += len(piece_text)
    return statements


# --------------------------------------------------------------------------- refusals

_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE")


def _leading_words(tokens: list[Token], count: int = 4) -> list[str]:
    words = []
    for token in tokens[:count]:
        if token.kind != "word":
            break
        words.append(token.text.upper())
    return words


def _never_reason(tokens: list[Token]) -> str | None:
    meta = next((token for token in tokens if token.kind == "meta"), None)
    if meta is not None:
        return (f"{meta.text.split()[0]} is a psql meta-command, which Cutover does not run (it "
                "sends each statement to the server itself, without psql); remove it or write it in SQL.")
    words = _leading_words(tokens)
    first, second = (words + ["", ""])[:2]
    control = _transaction_control(first, second)
    if control:
        return (f"{control} controls transactions: Cutover runs the plan set in one transaction so "
                f"that a failure changes nothing, and the plan's own {control} would end it "
                "half-way; remove it.")
    if first == "COPY" and any(t.is_word("STDIN", "STDOUT") for t in _top_level(tokens)):
        return ("COPY ... FROM STDIN / TO STDOUT streams rows through psql, which Cutover does "
                "not run; write the rows as INSERT statements instead.")
    beyond = _beyond_the_database(first, second, tokens)
    if beyond:
        return (f"{beyond} reaches beyond the database the plan migrates, where neither its "
                "backup nor its transaction reach (nor can it run inside one); do it "
                "separately, before or after the migration.")
    if first == "ALTER" and second == "SYSTEM":
        return ("ALTER SYSTEM rewrites the server's configuration file, which neither the "
                "migration's transaction nor the database's backup covers; change the "
                "configuration separately.")
    if first == "DISCARD" and second == "ALL":
        return ("DISCARD ALL resets the session Cutover runs the plan on (its locks and "
                "settings) and cannot run inside a transaction; remove it.")
    if first == "SET" and any(t.is_word("STANDARD_CONFORMING_STRINGS") for t in tokens[1:3]):
        return ("SET standard_conforming_strings changes how PostgreSQL reads backslashes in the "
                "plan's later strings, so they would not mean what was reviewed; remove it and "
                "write E'...' where a string needs backslash escapes.")
    return None


def _beyond_the_database(first: str, second: str, tokens: list[Token]) -> str | None:
    if first in ("CREATE", "DROP") and second in ("DATABASE", "TABLESPACE"):
        return f"{first} {second}"
    if first == "ALTER" and second == "DATABASE" and _has_words(tokens, "SET", "TABLESPACE"):
        return "ALTER DATABASE ... SET TABLESPACE"
    return None


def _transaction_control(first: str, second: str) -> str | None:
    if first in ("START", "PREPARE") and second == "TRANSACTION":
        return f"{first} TRANSACTION"
    if first in ("COMMIT", "ROLLBACK") and second == "PREPARED":
        return f"{first} PREPARED"
    return first if first in _TRANSACTION_CONTROL else None


def _top_level(tokens: list[Token]) -> list[Token]:
    found, depth = [], 0
    for token in tokens:
        depth += {"lparen": 1, "rparen": -1}.get(token.kind, 0)
        if depth == 0:
            found.append(token)
    return found


def _has_words(tokens: list[Token], *words: str) -> bool:
    texts = [token.text.upper() for token in tokens if token.kind == "word"]
    return any(texts[i: i + len(words)] == list(words) for i in range(len(texts)))


def _own_transaction_reason(tokens: list[Token]) -> str | None:
    words = _leading_words(tokens)
    first = words[0] if words else ""
    named = _needing_own_transaction(first, words, tokens)
    if named is None:
        return None
    return f"PostgreSQL cannot run {named} inside a transaction block; {_NO_TRANSACTION_FIX}."


def _needing_own_transaction(first: str, words: list[str], tokens: list[Token]) -> str | None:
    """The name PostgreSQL gives the statement when it refuses it inside a transaction block."""
    concurrently = any(token.is_word("CONCURRENTLY") for token in tokens)
    if first == "CREATE" and concurrently and _has_words(tokens[:4], "INDEX", "CONCURRENTLY"):
        return "CREATE INDEX CONCURRENTLY"
    if first == "DROP" and words[1:3] == ["INDEX", "CONCURRENTLY"]:
        return "DROP INDEX CONCURRENTLY"
    if first == "REINDEX":
        if concurrently:
            return "REINDEX CONCURRENTLY"
        kind = next((t.text.upper() for t in _top_level(tokens[1:]) if t.kind == "word"), "")
        return f"REINDEX {kind}" if kind in ("SCHEMA", "DATABASE", "SYSTEM") else None
    if first == "VACUUM":
        return "VACUUM"
    if first == "CLUSTER" and not [t for t in _top_level(tokens[1:]) if not t.is_word("VERBOSE")
                                   and t.kind not in ("lparen", "rparen", "semicolon")]:
        return "CLUSTER without a table"
    if first == "ALTER" and concurrently and _has_words(tokens, "DETACH", "PARTITION"):
        return "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY"
    return None


def _added_enum_value(tokens: list[Token]) -> str | None:
    """The label `ALTER TYPE name ADD VALUE [IF NOT EXISTS] 'label'` adds, or None."""
    if _leading_words(tokens, 2) != ["ALTER", "TYPE"]:
        return None
    for position, token in enumerate(tokens[:-2]):
        if token.is_word("ADD") and tokens[position + 1].is_word("VALUE"):
            rest = [t for t in tokens[position + 2:] if not t.is_word("IF", "NOT", "EXISTS")]
            return string_value(rest[0]) if rest and rest[0].kind == "string" else None
    return None


# --------------------------------------------------------------------------- read-only queries

_READING_VERBS = ("SELECT", "WITH", "VALUES", "TABLE", "SHOW")
_WRITING_VERBS = ("INSERT", "UPDATE", "DELETE", "MERGE")
# Functions that act without writing a table, which a READ ONLY transaction still lets run.
_ACTING_FUNCTIONS = ("nextval", "setval", "set_config", "pg_terminate_backend", "pg_cancel_backend",
                     "pg_reload_conf", "pg_rotate_logfile", "pg_switch_wal", "pg_promote", "pg_notify",
                     "dblink_exec", "lo_import", "lo_export", "lo_unlink")
_ACTING_PREFIXES = ("pg_advisory_", "pg_try_advisory_", "pg_create_", "pg_drop_replication_slot")


def _query_problem(tokens: list[Token]) -> QueryProblem | None:
    if any(token.kind == "open" for token in tokens):
        return QueryProblem(False, "PostgreSQL cannot parse the query: a string, quoted name, "
                                   "dollar quote or comment is never closed.")
    if any(token.kind == "meta" for token in tokens):
        return QueryProblem(False, "the query holds a psql meta-command (a backslash outside a string).")
    tokens = significant(tokens)
    while tokens and tokens[-1].kind == "semicolon":
        tokens.pop()
    if any(token.kind == "semicolon" for token in tokens):
        return QueryProblem(False, "several statements found (a ';' separates them); write exactly one.")
    if _depth_problem(tokens):
        return QueryProblem(False, "PostgreSQL cannot parse the query: its parentheses do not match.")
    verb = next((token for token in tokens if token.kind != "lparen"), None)
    if verb is None:
        return QueryProblem(False, "the query is empty; write one query.")
    if not verb.is_word(*_READING_VERBS):
        return QueryProblem(True, f"the query does something other than read (it starts with {verb.text})")
    return _writing_problem(tokens)


def _depth_problem(tokens: list[Token]) -> bool:
    depth = 0
    for token in tokens:
        depth += {"lparen": 1, "rparen": -1}.get(token.kind, 0)
        if depth < 0:
            return True
    return depth != 0


def _writing_problem(tokens: list[Token]) -> QueryProblem | None:
    for position, token in enumerate(tokens):
        following = tokens[position + 1] if position + 1 < len(tokens) else Token("space", "")
        if token.is_word("FOR") and following.is_word("UPDATE", "SHARE", "NO", "KEY"):
            return QueryProblem(True, "FOR UPDATE/SHARE locks the rows it reads, as a write would")
        if token.is_word(*_WRITING_VERBS):
            return QueryProblem(True, f"the query holds {token.text.upper()} (a data-modifying WITH query writes)")
        if token.is_word("INTO"):
            return QueryProblem(True, "SELECT ... INTO creates a table")
        name = token.text.lower()
        if token.kind == "word" and following.kind == "lparen" and (
                name in _ACTING_FUNCTIONS or name.startswith(_ACTING_PREFIXES)):
            return QueryProblem(True, f"the query calls {name}(), which acts on the server")
    return None


# --------------------------------------------------------------------------- the dialect


class PostgresDialect(Dialect):
    """PostgreSQL's rules; strings are read as with standard_conforming_strings on (the default)."""

    def __init__(self, *, standard_conforming_strings: bool = True):
        self.standard_conforming_strings = standard_conforming_strings

    def tokens(self, text: str) -> list[Token]:
        return tokenize(text, standard_conforming_strings=self.standard_conforming_strings)

    def statement_is_complete(self, text: str) -> bool:
        """Does `text` end with a complete statement (its `;`, or a meta-command's line end)?"""
        return _is_complete(self.tokens(text))

    def split_statements(self, text: str) -> list[tuple[str, int]]:
        """(statement, line offset) of each statement in `text`, as psql would send them."""
        return _split(text, self.tokens(text))

    def forbidden_reason(self, sql: str) -> str | None:
        return _never_reason(significant(self.tokens(sql)))

    def needs_own_transaction(self, sql: str) -> str | None:
        return _own_transaction_reason(significant(self.tokens(sql)))

    def no_transaction_phase_problem(self) -> str | None:
        return None

    def transaction_problems(self, statements: Sequence[str]) -> list[tuple[int, str]]:
        """A value that ALTER TYPE ... ADD VALUE adds cannot be used in the same transaction
        (PostgreSQL: "unsafe use of new value"). Any later string equal to it counts as a use:
        the text alone cannot tell a cast to the enum from another string."""
        added: set[str] = set()
        problems = []
        for position, sql in enumerate(statements):
            tokens = significant(self.tokens(sql))
            label = _added_enum_value(tokens)
            if label is not None:
                added.add(label)
                continue
            used = next((value for value in map(string_value, tokens) if value in added), None)
            if used is not None:
                problems.append((position, _unsafe_use_reason(used)))
        return problems

    def read_only_query_problem(self, sql: str) -> QueryProblem | None:
        """Whether `sql` is one query that only reads, judged from its words alone: one
        SELECT, WITH, VALUES, TABLE or SHOW statement with no INSERT/UPDATE/DELETE/MERGE (a
        data-modifying WITH), no SELECT ... INTO, no FOR UPDATE/SHARE and none of a few
        functions that act on the server. No server is at hand when a configuration loads,
        and this check cannot see inside functions: the real guard is that the query runs
        in a READ ONLY transaction, under the target's role."""
        return _query_problem(self.tokens(sql))

    def lock_risks(self, sql: str) -> list[LockRisk]:
        """The locks each statement takes and whether it rewrites or scans under them."""
        return lock_risks(sql, standard_conforming_strings=self.standard_conforming_strings)

    def prep_writer(self):
        return PgPrepWriter()

    def created_index(self, sql: str) -> str | None:
        shape = statement_shape(sql)
        return shape.name if shape.action == "create" and shape.kind == "index" else None

    def quote_identifier(self, name: str) -> str:
        """A name in double quotes, a double quote inside it doubled."""
        if "\x00" in name:
            raise ValueError(f"identifier {name!r} contains a NUL character")
        return '"' + name.replace('"', '""') + '"'


def _unsafe_use_reason(label: str) -> str:
    return (f"it uses the enum value '{label}', which an earlier ALTER TYPE ... ADD VALUE adds in "
            "the same transaction, and PostgreSQL refuses a new value until that transaction "
            "commits (\"unsafe use of new value\"); move this statement to a later phase declared "
            "`-- phase: TITLE (no transaction)`.")
