"""The one place that quotes identifiers and normalises SQL text."""

import re
from typing import NamedTuple


def quote_identifier(name: str) -> str:
    """Quote any table, column, index or trigger name for use in generated SQL.

    Names come from databases we do not control (a table may be called
    `x"; DROP TABLE y; --`), so every generated statement goes through here.
    """
    if "\x00" in name:
        raise ValueError(f"identifier {name!r} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a string literal (for generated DDL defaults and PRAGMA arguments)."""
    return "'" + value.replace("'", "''") + "'"


# ---------------------------------------------------------------------------
# Tokenizer and normaliser.
#
# Two databases that hold "the same" schema rarely hold the same SQL text: one was
# written by hand, one by a migration tool, one was renamed (SQLite then re-quotes
# the name), one was rebuilt from a `.dump`. Comparing normalised text makes those
# equal while a real difference (another CHECK, another WHERE) stays visible.
# ---------------------------------------------------------------------------

# SQLite's 147 keywords (https://www.sqlite.org/lang_keywords.html). A quoted name that
# is one of them keeps its quotes, so normalised text never reads differently.
KEYWORDS = frozenset(
    """
    ABORT ACTION ADD AFTER ALL ALTER ALWAYS ANALYZE AND AS ASC ATTACH AUTOINCREMENT
    BEFORE BEGIN BETWEEN BY CASCADE CASE CAST CHECK COLLATE COLUMN COMMIT CONFLICT
    CONSTRAINT CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP DATABASE
    DEFAULT DEFERRABLE DEFERRED DELETE DESC DETACH DISTINCT DO DROP EACH ELSE END ESCAPE
    EXCEPT EXCLUDE EXCLUSIVE EXISTS EXPLAIN FAIL FILTER FIRST FOLLOWING FOR FOREIGN FROM
    FULL GENERATED GLOB GROUP GROUPS HAVING IF IGNORE IMMEDIATE IN INDEX INDEXED
    INITIALLY INNER INSERT INSTEAD INTERSECT INTO IS ISNULL JOIN KEY LAST LEFT LIKE LIMIT
    MATCH MATERIALIZED NATURAL NO NOT NOTHING NOTNULL NULL NULLS OF OFFSET ON OR ORDER
    OTHERS OUTER OVER PARTITION PLAN PRAGMA PRECEDING PRIMARY QUERY RAISE RANGE RECURSIVE
    REFERENCES REGEXP REINDEX RELEASE RENAME REPLACE RESTRICT RETURNING RIGHT ROLLBACK
    ROW ROWS SAVEPOINT SELECT SET TABLE TEMP TEMPORARY THEN TIES TO TRANSACTION TRIGGER
    UNBOUNDED UNION UNIQUE UPDATE USING VACUUM VALUES VIEW VIRTUAL WHEN WHERE WINDOW WITH
    WITHOUT
    """.split()
)

# Order matters: the first alternative that matches at a position wins.
_TOKEN_PATTERNS = [
    ("space", r"\s+"),
    ("comment", r"--[^\n]*|/\*.*?(?:\*/|\Z)"),
    ("blob", r"[xX]'[^']*'"),
    ("string", r"'(?:[^']|'')*'"),
    ("quoted", r'"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]'),
    ("number", r"0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"),
    ("word", r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*"),
    ("param", r"\?\d*|[:@$][A-Za-z0-9_$\x80-\U0010ffff]+"),
    ("op", r"->>|->|\|\||<<|>>|<=|>=|==|!=|<>|[-+*/%<>=~&|!]"),
    ("lparen", r"\("),
    ("rparen", r"\)"),
    ("comma", r","),
    ("semicolon", r";"),
    ("dot", r"\."),
    ("other", r"."),
]
_TOKEN_RE = re.compile(
    "|".join(f"(?P<{kind}>{pattern})" for kind, pattern in _TOKEN_PATTERNS), re.DOTALL
)
_PLAIN_IDENTIFIER = re.compile(r"[a-z_\x80-\U0010ffff][a-z0-9_$\x80-\U0010ffff]*\Z")
# SQLite folds only ASCII letters when it compares names.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Spellings SQLite treats as the same operator.
_OPERATOR_SYNONYMS = {"==": "=", "<>": "!="}


class Token(NamedTuple):
    kind: str
    text: str

    def is_word(self, *words: str) -> bool:
        """True for an unquoted word, optionally one of `words` (case-insensitive)."""
        return self.kind == "word" and (not words or self.text.upper() in words)


def tokenize(sql: str) -> list[Token]:
    """Split SQL text into tokens, whitespace and comments included (nothing is lost)."""
    return [Token(match.lastgroup, match.group()) for match in _TOKEN_RE.finditer(sql)]


def significant_tokens(sql: str) -> list[Token]:
    """The tokens that carry meaning: no whitespace, no comments."""
    return [token for token in tokenize(sql) if token.kind not in ("space", "comment")]


def ascii_lower(name: str) -> str:
    return name.translate(_ASCII_LOWER)


def unquote_identifier(text: str) -> str:
    """The name inside "x", [x], `x` or 'x' (doubled quote characters undone)."""
    if text[:1] == "[":
        return text[1:-1]
    quote = text[0]
    return text[1:-1].replace(quote * 2, quote)


def is_plain_identifier(name: str) -> bool:
    """True when `name` can be written without quotes and still mean the same name."""
    return bool(_PLAIN_IDENTIFIER.match(name)) and name.upper() not in KEYWORDS


def _canonical_name(name: str) -> str:
    name = ascii_lower(name)
    return name if is_plain_identifier(name) else quote_identifier(name)


def _canonical_text(token: Token) -> str:
    if token.kind == "quoted":
        return _canonical_name(unquote_identifier(token.text))
    if token.kind == "dquoted_string":  # see "Double-quoted tokens" below
        return quote_literal(unquote_identifier(token.text))
    if token.kind == "word":
        upper = token.text.upper()
        return upper if upper in KEYWORDS else ascii_lower(token.text)
    if token.kind == "op":
        return _OPERATOR_SYNONYMS.get(token.text, token.text)
    return token.text  # strings, blobs, numbers and a "maybe string" are values: kept exactly


def _is_unary_sign(previous: Token | None, token: Token, following: Token | None) -> bool:
    # `DEFAULT -1`, `(-1)`, `= -1`: the sign belongs to the number, so it is written `-1`.
    if token.text not in ("-", "+") or following is None or following.kind != "number":
        return False
    return previous is None or previous.kind in ("op", "lparen", "comma") or (
        previous.kind == "word" and previous.text.upper() in KEYWORDS
    )


def _needs_space(previous: Token, token: Token) -> bool:
    if previous.kind in ("lparen", "dot") or token.kind in ("comma", "rparen", "dot", "semicolon"):
        return False
    # `varchar(20)`, `count(*)`, `CHECK(x)`: a bracket sticks to the word before it.
    return not (token.kind == "lparen" and previous.kind in ("word", "quoted"))


def normalise_tokens(tokens: list[Token], names=None) -> str:
    """Canonical text of tokens; whitespace and comments are ignored, then re-spaced.

    With `names` (lower-case names in scope: the table's columns for a CHECK, every
    name of the schema for a view), a double-quoted token naming none of them is
    written as the string literal SQLite takes it for, its case kept (see "Double-quoted
    tokens" below; without `names`, mark the tokens with keep_possible_strings first).
    """
    tokens = [token for token in tokens if token.kind not in ("space", "comment")]
    if names is not None:
        tokens = _strings_in_scope(tokens, names)
    parts: list[str] = []
    glue_next = False
    for index, token in enumerate(tokens):
        previous = tokens[index - 1] if index else None
        if previous is not None and not glue_next and _needs_space(previous, token):
            parts.append(" ")
        parts.append(_canonical_text(token))
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        glue_next = _is_unary_sign(previous, token, following)
    return "".join(parts)


def normalise_sql(sql: str | None, names=None) -> str:
    """One spelling for every way of writing the same statement.

    Keywords upper case; names lower case and unquoted when that is unambiguous
    ("Foo", [Foo] and `Foo` all become foo); comments dropped; one space between
    tokens except after `(` and before `,` `)`; string literals and numbers kept
    exactly, because they are data. A trailing semicolon is dropped.
    """
    return normalise_tokens(_statement_tokens(sql), names)


def _statement_tokens(sql: str | None) -> list[Token]:
    tokens = significant_tokens(sql or "")
    while tokens and tokens[-1].kind == "semicolon":
        tokens.pop()
    return tokens


def normalise_default(default: str | None) -> str | None:
    """Normalise a column DEFAULT as PRAGMA table_xinfo reports it.

    In a DEFAULT no column is in scope, so SQLite reads DEFAULT "x" as the string 'x';
    it is compared as that string instead of being lower-cased like a name.
    """
    if default is None:
        return None
    tokens = significant_tokens(default)
    if len(tokens) == 1 and tokens[0].kind == "quoted" and tokens[0].text[0] == '"':
        return quote_literal(unquote_identifier(tokens[0].text))
    if len(tokens) == 1 and _is_bare_word_default(tokens[0]):
        # DEFAULT Active stores the text 'Active': its case is data.
        return quote_literal(tokens[0].text)
    return normalise_tokens(tokens)


def _is_bare_word_default(token: Token) -> bool:
    """A word SQLite stores as text when it is a DEFAULT; TRUE, FALSE, NULL and the
    CURRENT_* keywords are values of their own."""
    return token.is_word() and token.text.upper() not in KEYWORDS | {"TRUE", "FALSE"}


# ---------------------------------------------------------------------------
# Structure of CREATE TABLE / CREATE INDEX text, for what PRAGMAs do not report
# (CHECK constraints, generated-column expressions, collations, index expressions).
# ---------------------------------------------------------------------------


def split_top_level(tokens: list[Token], separator: str = "comma") -> list[list[Token]]:
    """Split tokens on `separator` tokens that are not inside parentheses."""
    items: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.kind == separator and depth == 0:
            items.append([])
            continue
        depth += {"lparen": 1, "rparen": -1}.get(token.kind, 0)
        items[-1].append(token)
    return items


def parenthesised_group(tokens: list[Token], start: int) -> tuple[list[Token], int]:
    """Tokens inside the bracket opened at `start`, and the index after its `)`."""
    depth = 0
    for index in range(start, len(tokens)):
        depth += {"lparen": 1, "rparen": -1}.get(tokens[index].kind, 0)
        if depth == 0:
            return tokens[start + 1 : index], index + 1
    return tokens[start + 1 :], len(tokens)


def _skip_qualified_name(tokens: list[Token], index: int) -> int:
    """Index after a possibly schema-qualified name (`name` or `schema.name`)."""
    index += 1
    if index + 1 < len(tokens) and tokens[index].kind == "dot":
        index += 2
    return index


def create_table_items(sql: str) -> list[list[Token]]:
    """Column definitions and table constraints of a CREATE TABLE statement.

    Empty for CREATE TABLE ... AS SELECT and CREATE VIRTUAL TABLE, which have no body.
    """
    tokens = significant_tokens(sql)
    index = 0
    while index < len(tokens) and tokens[index].is_word(
        "CREATE", "TEMP", "TEMPORARY", "TABLE", "IF", "NOT", "EXISTS"
    ):
        index += 1
    index = _skip_qualified_name(tokens, index)
    if index >= len(tokens) or tokens[index].kind != "lparen":
        return []
    body, _ = parenthesised_group(tokens, index)
    return [item for item in split_top_level(body) if item]


_CONSTRAINT_STARTS = ("CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN")


def is_table_constraint(item: list[Token]) -> bool:
    """True for a table constraint; these words cannot start a column name unquoted."""
    return bool(item) and item[0].is_word(*_CONSTRAINT_STARTS)


def strip_constraint_name(item: list[Token]) -> list[Token]:
    """`CONSTRAINT name CHECK (...)` -> `CHECK (...)`: a name does not change behaviour."""
    if len(item) >= 2 and item[0].is_word("CONSTRAINT"):
        return item[2:]
    return item


class ColumnClauses(NamedTuple):
    """What a column definition says that PRAGMA table_xinfo does not report."""

    name: str
    collation: str | None
    generated: str | None
    checks: tuple[str, ...]
    unique: str | None  # "UNIQUE", or "UNIQUE ON CONFLICT ..." when one is given
    not_null_conflict: str | None = None  # NOT NULL ON CONFLICT X (X other than ABORT)
    pk_conflict: str | None = None  # PRIMARY KEY ... ON CONFLICT X (X other than ABORT)


def column_name(item: list[Token]) -> str:
    """The name a column definition gives its column (what column_clauses(item).name says,
    without reading the rest of the definition)."""
    first = item[0]
    # SQLite even accepts 'name' (a string) as a column name.
    return unquote_identifier(first.text) if first.kind in ("quoted", "string") else first.text


def column_clauses(item: list[Token], names=None) -> ColumnClauses:
    """Read COLLATE, GENERATED ... AS (expr), CHECK (...), UNIQUE and ON CONFLICT off a
    column definition. `names`: see normalise_tokens (the table's column names)."""
    name = column_name(item)
    collation = generated = unique = not_null_conflict = pk_conflict = None
    checks: list[str] = []
    index = 1
    while index < len(item):
        token = item[index]
        if token.kind == "lparen":  # type arguments, DEFAULT (...): not ours
            index = parenthesised_group(item, index)[1]
            continue
        # Upper-cased once per token (this runs for every column of every table read).
        word = token.text.upper() if token.kind == "word" else None
        if word is None:
            pass
        elif word == "COLLATE" and index + 1 < len(item):
            collation = _collation_name(item[index + 1])
        elif word == "AS" and index + 1 < len(item) and item[index + 1].kind == "lparen":
            inner, index = parenthesised_group(item, index + 1)
            generated = normalise_tokens(inner, names)
            continue
        elif word == "CHECK" and index + 1 < len(item):
            inner, index = parenthesised_group(item, index + 1)
            checks.append(f"CHECK({normalise_tokens(inner, names)})")
            continue
        elif word == "UNIQUE":
            unique = " ".join(["UNIQUE", *_conflict_clause(item, index + 1)])
        elif word == "NULL" and item[index - 1].is_word("NOT"):
            not_null_conflict = conflict_action(item, index + 1)
        elif word == "KEY" and item[index - 1].is_word("PRIMARY"):
            after = index + 1 + (index + 1 < len(item) and item[index + 1].is_word("ASC", "DESC"))
            pk_conflict = conflict_action(item, after)
        index += 1
    return ColumnClauses(
        name, collation, generated, tuple(checks), unique, not_null_conflict, pk_conflict
    )


def _collation_name(token: Token) -> str:
    # Collation names are case-insensitive; SQLite's own are spelled upper case.
    name = unquote_identifier(token.text) if token.kind == "quoted" else token.text
    return name.upper()


def _conflict_clause(item: list[Token], index: int) -> list[str]:
    action = conflict_action(item, index)
    return ["ON", "CONFLICT", action] if action else []


def conflict_action(item: list[Token], index: int) -> str | None:
    """X of an `ON CONFLICT X` starting at `index`; None when absent or ABORT, the default."""
    if index + 2 < len(item) and item[index].is_word("ON") and item[index + 1].is_word("CONFLICT"):
        action = item[index + 2].text.upper()
        return None if action == "ABORT" else action
    return None


class ForeignKeyClause(NamedTuple):
    """A REFERENCES clause as written: what PRAGMA foreign_key_list leaves out."""

    columns: tuple[str, ...]  # child columns, lower case
    table: str  # parent table, lower case
    to: tuple[str, ...]  # parent columns as written, lower case; () when implied
    deferred: bool  # DEFERRABLE INITIALLY DEFERRED: checked at COMMIT, not per statement


def foreign_key_clauses(items: list[list[Token]]) -> list[ForeignKeyClause]:
    """Every foreign key of a CREATE TABLE body, column-level and table-level, in order."""
    clauses = []
    for item in items:
        body = strip_constraint_name(item)
        if body and body[0].is_word("FOREIGN") and len(body) > 2 and body[2].kind == "lparen":
            columns, after = parenthesised_group(body, 2)
            clauses += _references_in(body[after:], _names_in(columns))
        elif not is_table_constraint(item):
            column = column_name(item)
            clauses += _references_in(item[1:], (ascii_lower(column),))
    return clauses


def _names_in(tokens: list[Token]) -> tuple[str, ...]:
    return tuple(
        ascii_lower(unquote_identifier(t.text) if t.kind in ("quoted", "string") else t.text)
        for t in tokens
        if t.kind in ("word", "quoted", "string")
    )


def _references_in(tokens: list[Token], columns: tuple[str, ...]) -> list[ForeignKeyClause]:
    starts = [i for i, token in enumerate(tokens) if token.is_word("REFERENCES")]
    clauses = []
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(tokens)
        part = tokens[start + 1 : end]
        if not part:
            continue
        parent = _names_in(part[:1])[0] if _names_in(part[:1]) else ""
        to = _names_in(parenthesised_group(part, 1)[0]) if len(part) > 1 and part[1].kind == "lparen" else ()
        clauses.append(ForeignKeyClause(columns, parent, to, _is_deferred(part)))
    return clauses


def _is_deferred(tokens: list[Token]) -> bool:
    """DEFERRABLE INITIALLY DEFERRED (and not NOT DEFERRABLE ...), as SQLite's grammar reads it."""
    for index, token in enumerate(tokens):
        if token.is_word("DEFERRABLE"):
            negated = index > 0 and tokens[index - 1].is_word("NOT")
            initially = [t.text.upper() for t in tokens[index + 1 : index + 3]]
            return not negated and initially == ["INITIALLY", "DEFERRED"]
    return False


def index_key_items(sql: str, names=None) -> tuple[list[list[Token]], str | None]:
    """The indexed terms of a CREATE INDEX statement and its normalised WHERE (or None).

    `names`: see normalise_tokens (the indexed table's column names)."""
    tokens = significant_tokens(sql)
    on = next((i for i, token in enumerate(tokens) if token.is_word("ON")), None)
    if on is None:
        return [], None
    index = _skip_qualified_name(tokens, on + 1)
    if index >= len(tokens) or tokens[index].kind != "lparen":
        return [], None
    body, after = parenthesised_group(tokens, index)
    rest = tokens[after:]
    where = normalise_tokens(rest[1:], names) if rest and rest[0].is_word("WHERE") else None
    return split_top_level(body), where


def index_term_expression(term: list[Token], names=None) -> str:
    """The expression of one indexed term, without its trailing COLLATE and ASC/DESC."""
    end = len(term)
    if end and term[end - 1].is_word("ASC", "DESC"):
        end -= 1
    if end >= 2 and term[end - 2].is_word("COLLATE"):
        end -= 2
    return normalise_tokens(term[:end], names)


# ---------------------------------------------------------------------------
# Double-quoted tokens: a name or a string?
#
# SQLite reads "x" as a name when something in scope has that name, and as the string 'x'
# otherwise (https://www.sqlite.org/quirks.html#dblquote): `WHEN new.status = "Archived"`
# and `"archived"` are different triggers, while `"Status"` naming a column is the column
# status. So the name-folding of normalise_tokens must not reach a double-quoted string,
# and there are two rules, because a caller either knows the names in scope or does not:
#
# * names known (_strings_in_scope, through normalise_tokens/normalise_sql with `names`):
#   a schema read from a live database, where a CHECK sees its table's columns and a view
#   or trigger the schema's names. SQLite's own rule decides, and a string is written as
#   the 'x' SQLite takes it for, so that `= "Archived"` and `= 'Archived'` compare equal
#   (two databases compared side by side show no false difference).
# * names unknown (keep_possible_strings, normalise_definition): a definition's text on
#   its own, as a plan writes it or as an object's identity before and after a migration.
#   Only a token that is a name by its position (an object after TABLE/INDEX/VIEW/TRIGGER/
#   FROM/JOIN/INTO/UPDATE/REFERENCES, the table after a CREATE INDEX's or CREATE TRIGGER's
#   ON, either side of a `.`, a collation, a column defined by CREATE TABLE or listed by a
#   key constraint) is folded; any other keeps its exact spelling "x", so two definitions
#   are the same only when they certainly behave the same.
#
# One rule cannot serve both: without the names the first would guess, and with them the
# second would call `= "Archived"` and `= 'Archived'` different. Both treat a token either
# side of a `.` as a name.
# ---------------------------------------------------------------------------

_NAME_AFTER = frozenset(
    ("TABLE", "INDEX", "VIEW", "TRIGGER", "FROM", "JOIN", "INTO", "UPDATE", "REFERENCES", "EXISTS",
     "COLLATE")
)


def _strings_in_scope(tokens: list[Token], names) -> list[Token]:
    """The tokens, each double-quoted one that names nothing in `names` (lower case) marked
    as the string SQLite reads it as."""
    return [
        Token("dquoted_string", token.text)
        if _is_double_quoted(token) and not _is_qualified(tokens, index)
        and ascii_lower(unquote_identifier(token.text)) not in names else token
        for index, token in enumerate(tokens)
    ]


def normalise_definition(sql: str | None) -> str:
    """normalise_sql, except that a double-quoted token that may be a string is kept exactly."""
    return normalise_tokens(keep_possible_strings(_statement_tokens(sql)))


def keep_possible_strings(tokens: list[Token]) -> list[Token]:
    """The tokens, each double-quoted one that is not certainly a name marked to be kept
    exactly as written (the names in scope are not known)."""
    names = _certain_name_positions(tokens)
    return [
        Token("dquoted_maybe_string", token.text)
        if _is_double_quoted(token) and index not in names else token
        for index, token in enumerate(tokens)
    ]


def _is_double_quoted(token: Token) -> bool:
    return token.kind == "quoted" and token.text[:1] == '"'


def _is_qualified(tokens: list[Token], index: int) -> bool:
    """Is the token at `index` either side of a `.` (schema.table, table.column)?"""
    return any(0 <= at < len(tokens) and tokens[at].kind == "dot" for at in (index - 1, index + 1))


def _certain_name_positions(tokens: list[Token]) -> set[int]:
    names = set()
    for index, token in enumerate(tokens):
        before = tokens[index - 1] if index else None
        if _is_qualified(tokens, index):
            names.add(index)
        elif before is not None and before.is_word(*_NAME_AFTER) and not _after_distinct(tokens, index):
            names.add(index)
    names.update(_table_after_on(tokens))
    names.update(_create_table_column_names(tokens))
    return names


def _after_distinct(tokens: list[Token], index: int) -> bool:
    # `a IS DISTINCT FROM "x"` compares with a value: FROM does not name a table there.
    return index >= 2 and tokens[index - 1].is_word("FROM") and tokens[index - 2].is_word("DISTINCT")


def _table_after_on(tokens: list[Token]) -> list[int]:
    """The table of CREATE INDEX ... ON t / CREATE TRIGGER ... ON t (the first ON, before BEGIN)."""
    if not tokens or not tokens[0].is_word("CREATE"):
        return []
    if not any(token.is_word("INDEX", "TRIGGER") for token in tokens[1:4]):
        return []
    for index, token in enumerate(tokens):
        if token.is_word("BEGIN"):
            return []
        if token.is_word("ON"):
            return [index + 1]
    return []


def _create_table_column_names(tokens: list[Token]) -> list[int]:
    """Columns defined by a CREATE TABLE, and the columns a PRIMARY KEY, UNIQUE or FOREIGN KEY
    constraint or a REFERENCES clause lists (SQLite refuses expressions there)."""
    if not tokens or not tokens[0].is_word("CREATE") or not any(t.is_word("TABLE") for t in tokens[1:4]):
        return []
    opening = next((i for i, t in enumerate(tokens) if t.kind == "lparen"), None)
    if opening is None or any(t.is_word("AS") for t in tokens[:opening]):
        return []  # CREATE TABLE ... AS SELECT defines no columns by name
    names, depth, listing = [], 0, False
    for index in range(opening, len(tokens)):
        token = tokens[index]
        previous = tokens[index - 1]
        if token.kind == "lparen":
            depth += 1
            listing = depth == 2 and (previous.is_word("KEY", "UNIQUE") or _is_referenced_table(tokens, index - 1))
        elif token.kind == "rparen":
            depth -= 1
            listing = False
        elif depth == 1 and previous.kind in ("lparen", "comma"):
            names.append(index)
        elif listing and token.kind == "quoted":
            names.append(index)
    return names


def _is_referenced_table(tokens: list[Token], index: int) -> bool:
    return index >= 1 and tokens[index - 1].is_word("REFERENCES")
