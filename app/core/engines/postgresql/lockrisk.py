"""What each statement of a PostgreSQL plan does to the application while it runs: which
lock it takes on which table, and whether it rewrites or scans the table under that lock.

The rules follow PostgreSQL 15 (the ALTER TABLE lock levels in its documentation, and
AlterTableGetLockLevel in src/backend/commands/tablecmds.c); tests run every rule on a
real server and watch the lock taken, pg_class.relfilenode (a rewrite changes it) and the
scans counted in the statement's transaction.

Levels: "high" rewrites or scans the table under a lock that blocks its reads; "medium"
blocks its writes while a scan or index build runs; "low" takes a strong lock only for a
moment, which matters only when the lock waits behind a long transaction (everything on
the table then queues behind it: the migration's lock_timeout bounds that). Inside the
migration's transaction every lock is held until its phase commits, so a brief lock taken
early lasts as long as the statements after it.

Only the text is read: a column's current type, its NOT NULL, a function's volatility or a
CHECK constraint that already proves a condition are the server's to know, so a rule that
depends on them says "may". A table that the same text creates is new to everybody else,
and statements on it carry no risk.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

from app.core.engines.postgresql.lexer import Token, pieces, significant, tokenize
from app.core.sql import parenthesised_group  # any tokens with lparen/rparen kinds

ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"

_NO_TRANSACTION = "in a phase declared `-- phase: TITLE (no transaction)`"
_VALIDATE_LATER = "ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a later phase"
_BRIEF_FIX = ("nothing to change: the migration's lock_timeout stops the wait if a long "
              "transaction holds the table; run it when none does")


@dataclass(frozen=True)
class LockRisk:
    """One thing a statement does to the application: `kind` names it, `level` rates it."""

    kind: str  # rewrite, not_null_scan, not_null_no_default, constraint_validated,
    #            index_not_concurrent, access_exclusive, blocks_writes
    level: str  # high, medium or low (see the module's docstring)
    lock: str  # the lock level on `table`, as PostgreSQL names it ("ACCESS EXCLUSIVE")
    table: str | None  # as the statement names it (lower case unless quoted); None if unnamed
    message: str  # what the application experiences, in one sentence
    fix: str | None = None  # the safer way, when there is one

    def to_dict(self) -> dict:
        return asdict(self)


def lock_risks(sql: str, *, standard_conforming_strings: bool = True) -> list[LockRisk]:
    """The lock risks of every statement in `sql`, in order, each one once."""
    found: list[LockRisk] = []
    created: set[str] = set()
    for piece in pieces(tokenize(sql, standard_conforming_strings=standard_conforming_strings)):
        tokens = [token for token in significant(piece) if token.kind != "semicolon"]
        if not tokens or any(token.kind in ("open", "meta") for token in tokens):
            continue
        for risk in _without_repeats(_statement_risks(tokens)):
            if (risk.table is None or risk.table not in created) and risk not in found:
                found.append(risk)
        new_table = _created_table(tokens)
        if new_table:
            created.add(new_table)
    return found


def _without_repeats(risks: Iterator[LockRisk]) -> list[LockRisk]:
    """A brief ACCESS EXCLUSIVE says nothing more when the same statement already holds that
    lock on the table for longer, or already said so (one statement takes its lock once)."""
    risks = list(risks)
    held_longer = {risk.table for risk in risks if risk.lock == ACCESS_EXCLUSIVE and risk.level != "low"}
    kept, briefly_held = [], set()
    for risk in risks:
        if risk.kind == "access_exclusive" and risk.level == "low":
            if risk.table in held_longer or risk.table in briefly_held:
                continue
            briefly_held.add(risk.table)
        kept.append(risk)
    return kept


# --------------------------------------------------------------------------- reading tokens


def _words(tokens: list[Token], count: int) -> list[str]:
    return [token.text.upper() if token.kind == "word" else "" for token in tokens[:count]]


def _identifier(token: Token) -> str:
    if token.kind == "quoted" and token.text.startswith('"'):
        return token.text[1:-1].replace('""', '"')
    return token.text.lower()


def _name(tokens: list[Token], position: int) -> tuple[str | None, int]:
    """A possibly schema-qualified name starting at `position`, and the position after it."""
    parts = []
    while position < len(tokens) and tokens[position].kind in ("word", "quoted"):
        parts.append(_identifier(tokens[position]))
        position += 1
        if position < len(tokens) and tokens[position].text == ".":
            position += 1
            continue
        break
    return (".".join(parts) or None), position


def _skip(tokens: list[Token], position: int, *words: str) -> int:
    """The position after any of `words` (in that order, each optional) at `position`."""
    for word in words:
        if position < len(tokens) and tokens[position].is_word(word):
            position += 1
    return position


def _skip_if_exists(tokens: list[Token], position: int) -> int:
    if _words(tokens[position:], 2) == ["IF", "EXISTS"]:
        return position + 2
    if _words(tokens[position:], 3) == ["IF", "NOT", "EXISTS"]:
        return position + 3
    return position


def _top_level(tokens: list[Token]) -> list[Token]:
    found, depth = [], 0
    for token in tokens:
        depth += {"lparen": 1, "rparen": -1}.get(token.kind, 0)
        if depth == 0 and token.kind != "rparen":
            found.append(token)
    return found


def _split_commas(tokens: list[Token]) -> list[list[Token]]:
    """Top-level comma-separated parts (ALTER TABLE's subcommands, a list of tables)."""
    parts, current, depth = [], [], 0
    for token in tokens:
        depth += {"lparen": 1, "rparen": -1}.get(token.kind, 0)
        if depth == 0 and token.text == ",":
            parts.append(current)
            current = []
        else:
            current.append(token)
    parts.append(current)
    return [part for part in parts if part]


def _has_words(tokens: list[Token], *words: str) -> bool:
    texts = [token.text.upper() if token.kind == "word" else "" for token in tokens]
    return any(texts[i: i + len(words)] == list(words) for i in range(len(texts)))


def _references(tokens: list[Token]) -> list[str]:
    """The tables that REFERENCES clauses in `tokens` name."""
    found = []
    for position, token in enumerate(tokens):
        if token.is_word("REFERENCES"):
            name, _ = _name(tokens, position + 1)
            if name:
                found.append(name)
    return found


def _created_table(tokens: list[Token]) -> str | None:
    """The table a CREATE [TEMPORARY | UNLOGGED ...] TABLE statement creates."""
    words = _words(tokens, 4)
    if words[0] != "CREATE" or "TABLE" not in words:
        return None
    return _name(tokens, _skip_if_exists(tokens, words.index("TABLE") + 1))[0]


# --------------------------------------------------------------------------- the risks


def _brief(table: str | None, what: str, *, fix: str = _BRIEF_FIX, also: str = "") -> LockRisk:
    """`also`: the tables the statement locks as well, which only the server knows."""
    where = table or "the table"
    return LockRisk(
        "access_exclusive", "low", ACCESS_EXCLUSIVE, table,
        f"{what} takes an ACCESS EXCLUSIVE lock on {where}{also} for a moment, but while it waits for a "
        f"transaction already using {where}, every later read and write of {where} queues behind it.",
        fix)


# Dropping a foreign key drops its triggers on the referenced table, under ACCESS EXCLUSIVE.
_ALSO_REFERENCED = " (and on every table its foreign keys reference)"
_ALSO_REFERENCED_BY_ONE = " (and on the table it references, if it drops a foreign key)"


def _brief_write_block(table: str | None, what: str) -> LockRisk:
    where = table or "the table"
    return LockRisk(
        "blocks_writes", "low", SHARE_ROW_EXCLUSIVE, table,
        f"{what} takes a SHARE ROW EXCLUSIVE lock on {where} for a moment: writes to {where} wait "
        "until it is granted (reads go on), and queue behind it while it waits for a long transaction.",
        _BRIEF_FIX)


def _rewrite(table: str | None, what: str, fix: str | None, *, unless: str = "",
             where: str = "") -> LockRisk:
    """`unless`: when the rewrite depends on what only the server knows, the case without it."""
    where = where or table or "the table"
    rewrites = f"may rewrite (not {unless})" if unless else "rewrites"
    return LockRisk(
        "rewrite", "high", ACCESS_EXCLUSIVE, table,
        f"{what} {rewrites} all of {where} and its indexes under an ACCESS EXCLUSIVE lock: every "
        f"read and write of {where} waits for as long as the copy takes, which grows with its size.",
        fix)


def _statement_risks(tokens: list[Token]) -> Iterator[LockRisk]:
    first, second = (_words(tokens, 2) + [""])[:2]
    if first == "ALTER" and second == "TABLE":
        yield from _alter_table(tokens)
    elif first == "CREATE":
        yield from _create(tokens)
    elif first == "DROP" and second == "TABLE":
        for name in _table_list(tokens, _skip_if_exists(tokens, 2)):
            yield _brief(name, "DROP TABLE", also=_ALSO_REFERENCED)
    elif first == "DROP" and second == "INDEX" and not _has_words(tokens[:3], "CONCURRENTLY"):
        yield _brief(None, "DROP INDEX",
                     fix=f"DROP INDEX CONCURRENTLY {_NO_TRANSACTION}, which waits for no one's lock")
    elif first == "TRUNCATE":
        for name in _table_list(tokens, _skip(tokens, 1, "TABLE")):
            yield _brief(name, "TRUNCATE")
    elif first == "VACUUM":
        yield from _vacuum(tokens)
    elif first == "CLUSTER":
        yield from _cluster(tokens)
    elif first == "REINDEX":
        yield from _reindex(tokens)
    elif first == "LOCK":
        yield from _lock_table(tokens)


def _table_list(tokens: list[Token], position: int) -> list[str]:
    """Names in `a, b, ONLY c, d *` up to the first word that is not one (CASCADE, IN ...)."""
    names = []
    for part in _split_commas(tokens[position:]):
        name, _ = _name(part, _skip(part, 0, "ONLY"))
        if name and name.upper() not in ("CASCADE", "RESTRICT", "IN", "NOWAIT"):
            names.append(name)
    return names


# --------------------------------------------------------------------------- CREATE ...


def _create(tokens: list[Token]) -> Iterator[LockRisk]:
    words = _words(tokens, 4)
    if "INDEX" in words:
        yield from _create_index(tokens, words.index("INDEX"))
    elif "TABLE" in words:
        table = _created_table(tokens)
        for referenced in _references(tokens):
            if referenced != table:
                yield _brief_write_block(referenced, f"Creating {table}'s foreign key to {referenced}")
        partition_of = next((i for i, token in enumerate(tokens[:-2]) if token.is_word("PARTITION")
                             and tokens[i + 1].is_word("OF")), None)
        if partition_of is not None:
            yield _brief(_name(tokens, partition_of + 2)[0], "CREATE TABLE ... PARTITION OF")
    elif "TRIGGER" in words:
        on = next((i for i, token in enumerate(tokens) if token.is_word("ON")), None)
        if on is not None:
            table, _ = _name(tokens, _skip(tokens, on + 1, "ONLY"))
            yield _brief_write_block(table, "CREATE TRIGGER")


def _create_index(tokens: list[Token], position: int) -> Iterator[LockRisk]:
    if tokens[position + 1: position + 2] and tokens[position + 1].is_word("CONCURRENTLY"):
        return
    on = next((i for i, token in enumerate(tokens) if token.is_word("ON")), None)
    if on is None:
        return
    table, _ = _name(tokens, _skip(tokens, on + 1, "ONLY"))
    unique = "UNIQUE " if tokens[1].is_word("UNIQUE") else ""
    yield LockRisk(
        "index_not_concurrent", "medium", SHARE, table,
        f"CREATE {unique}INDEX takes a SHARE lock on {table}: reads go on, but every write to "
        f"{table} waits until the whole index is built.",
        f"CREATE {unique}INDEX CONCURRENTLY {_NO_TRANSACTION}")


# --------------------------------------------------------------------------- ALTER TABLE


def _alter_table(tokens: list[Token]) -> Iterator[LockRisk]:
    position = _skip(tokens, _skip_if_exists(tokens, 2), "ONLY")
    table, position = _name(tokens, position)
    if position < len(tokens) and tokens[position].text == "*":
        position += 1
    for command in _split_commas(tokens[position:]):
        yield from _alter_command(table, command)


def _alter_command(table: str | None, command: list[Token]) -> Iterator[LockRisk]:
    first, second, third = (_words(command, 3) + ["", ""])[:3]
    if first == "ADD":
        yield from _add(table, command)
    elif first == "ALTER" and second == "CONSTRAINT":
        yield _brief(table, "ALTER CONSTRAINT")
    elif first == "ALTER":
        yield from _alter_column(table, command[2:] if second == "COLUMN" else command[1:])
    elif first == "VALIDATE" or (first, second) in (("SET", "STATISTICS"), ("CLUSTER", "ON"), ("SET", "WITHOUT")):
        return  # SHARE UPDATE EXCLUSIVE: reads and writes go on (VALIDATE's scan too)
    elif first in ("SET", "RESET") and command[1:2] and command[1].kind == "lparen":
        if _has_words(command, "USER_CATALOG_TABLE"):
            yield _brief(table, "ALTER TABLE ... SET (user_catalog_table)")
        # other storage parameters take SHARE UPDATE EXCLUSIVE
    elif first == "SET" and second == "TABLESPACE":
        yield LockRisk(
            "rewrite", "high", ACCESS_EXCLUSIVE, table,
            f"ALTER TABLE ... SET TABLESPACE copies all of {table}'s files (not its indexes) under "
            f"an ACCESS EXCLUSIVE lock: every read and write of {table} waits for as long as the "
            "copy takes, which grows with its size.")
    elif first == "SET" and second in ("LOGGED", "UNLOGGED", "ACCESS"):
        yield _rewrite(table, f"ALTER TABLE ... SET {second}", None)
    elif first in ("ENABLE", "DISABLE") and "TRIGGER" in (second, third):
        yield _brief_write_block(table, f"ALTER TABLE ... {first} TRIGGER")
    elif first == "ATTACH" and second == "PARTITION":
        yield from _attach_partition(command)
    elif first == "DETACH" and _has_words(command, "CONCURRENTLY"):
        return  # SHARE UPDATE EXCLUSIVE on the parent
    elif first == "DETACH" and second == "PARTITION":
        yield _brief(table, "DETACH PARTITION")
        yield _brief(_name(command, 2)[0], "DETACH PARTITION")
    elif first == "DROP":
        yield _brief(table, "DROP CONSTRAINT" if second == "CONSTRAINT" else "DROP COLUMN",
                     also=_ALSO_REFERENCED_BY_ONE)
    elif first == "RENAME":
        yield _brief(table, "RENAME")
    else:
        yield _brief(table, f"ALTER TABLE ... {first}")


def _attach_partition(command: list[Token]) -> Iterator[LockRisk]:
    partition, _ = _name(command, 2)
    yield LockRisk(
        "constraint_validated", "high", ACCESS_EXCLUSIVE, partition,
        f"ATTACH PARTITION scans all of {partition} under an ACCESS EXCLUSIVE lock to check its rows "
        "fit the partition bound (unless a valid CHECK constraint already proves it): its reads "
        "and writes wait for the scan.",
        "add a CHECK constraint matching the bound to the partition first (NOT VALID, then "
        "VALIDATE CONSTRAINT in a later phase), so that ATTACH PARTITION skips the scan")


# ADD [COLUMN] column ... | ADD [CONSTRAINT name] CHECK / FOREIGN KEY / PRIMARY KEY / UNIQUE / EXCLUDE
_TABLE_CONSTRAINTS = ("CHECK", "FOREIGN", "PRIMARY", "UNIQUE", "EXCLUDE")


def _add(table: str | None, command: list[Token]) -> Iterator[LockRisk]:
    position = 1
    if command[position:] and command[position].is_word("CONSTRAINT"):
        position += 2
    if command[position:] and command[position].is_word(*_TABLE_CONSTRAINTS):
        yield from _add_constraint(table, command[position:])
        return
    position = _skip_if_exists(command, _skip(command, 1, "COLUMN"))
    yield from _add_column(table, command[position:])


def _add_constraint(table: str | None, constraint: list[Token]) -> Iterator[LockRisk]:
    kind = constraint[0].text.upper()
    not_valid = _has_words(constraint, "NOT", "VALID")
    using_index = _has_words(constraint, "USING", "INDEX")
    if kind == "FOREIGN":
        referenced = (_references(constraint) or [None])[0]
        yield from _add_foreign_key(table, referenced, not_valid)
    elif kind == "CHECK" and not_valid:
        yield _brief(table, "ADD CONSTRAINT ... CHECK ... NOT VALID")
    elif kind == "CHECK":
        yield LockRisk(
            "constraint_validated", "high", ACCESS_EXCLUSIVE, table,
            f"ADD CONSTRAINT ... CHECK scans all of {table} under an ACCESS EXCLUSIVE lock to "
            f"check every row: reads and writes of {table} wait for the scan.",
            _VALIDATE_LATER + " (VALIDATE takes SHARE UPDATE EXCLUSIVE: reads and writes go on)")
    elif kind == "PRIMARY" and using_index:
        yield _not_null_scan(table, "ADD PRIMARY KEY ... USING INDEX", may=True)
    elif using_index:
        yield _brief(table, "ADD UNIQUE ... USING INDEX")
    else:
        yield _index_under_access_exclusive(table, kind)


def _add_foreign_key(table: str | None, referenced: str | None, not_valid: bool) -> Iterator[LockRisk]:
    tables = [table] + ([referenced] if referenced and referenced != table else [])
    if not_valid:
        for name in tables:
            yield _brief_write_block(name, "ADD FOREIGN KEY ... NOT VALID")
        return
    for name in tables:
        yield LockRisk(
            "constraint_validated", "medium", SHARE_ROW_EXCLUSIVE, name,
            f"ADD FOREIGN KEY takes a SHARE ROW EXCLUSIVE lock on {' and '.join(tables)} and checks "
            f"every row of {table}: reads go on, but writes to {name} wait for the whole check.",
            _VALIDATE_LATER + " (VALIDATE takes SHARE UPDATE EXCLUSIVE: reads and writes go on)")


def _index_under_access_exclusive(table: str | None, kind: str) -> LockRisk:
    what = {"PRIMARY": "PRIMARY KEY", "EXCLUDE": "EXCLUDE constraint"}.get(kind, kind)
    fix = ("CREATE UNIQUE INDEX CONCURRENTLY " + _NO_TRANSACTION + ", then ADD CONSTRAINT ... "
           f"{what} USING INDEX in a later phase")
    if kind == "PRIMARY":
        fix += " (with its columns already NOT NULL)"
    elif kind == "EXCLUDE":
        fix = None  # an exclusion constraint cannot be added from an existing index
    return LockRisk(
        "index_not_concurrent", "high", ACCESS_EXCLUSIVE, table,
        f"ADD {what} builds its index under an ACCESS EXCLUSIVE lock on {table}: every read and "
        f"write of {table} waits until the index is built.",
        fix)


def _not_null_scan(table: str | None, what: str, *, may: bool = False) -> LockRisk:
    scans = "may scan" if may else "scans"
    unless = (" (unless its columns are already NOT NULL)" if may else
              " (unless a valid CHECK (column IS NOT NULL) constraint already proves it, which "
              "only the server knows)")
    return LockRisk(
        "not_null_scan", "high", ACCESS_EXCLUSIVE, table,
        f"{what} {scans} all of {table} under an ACCESS EXCLUSIVE lock to check for NULLs{unless}: "
        f"reads and writes of {table} wait for the scan.",
        "ADD CONSTRAINT ... CHECK (column IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in a later "
        "phase, then SET NOT NULL (which then skips the scan) and drop the CHECK")


# --------------------------------------------------------------------------- ADD COLUMN

_SERIAL_TYPES = ("SERIAL", "BIGSERIAL", "SMALLSERIAL", "SERIAL2", "SERIAL4", "SERIAL8")
_COLUMN_CONSTRAINTS = ("CONSTRAINT", "NOT", "NULL", "DEFAULT", "CHECK", "UNIQUE", "PRIMARY",
                       "REFERENCES", "GENERATED", "COLLATE")
# Functions whose value changes from row to row (volatile): a default calling one is computed
# for every existing row, which rewrites the table.
_VOLATILE = ("random", "clock_timestamp", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc",
             "uuid_generate_v4", "nextval", "timeofday", "txid_current", "setseed")
# Functions known not to be volatile: PostgreSQL computes the default once and stores it.
_NOT_VOLATILE = ("now", "transaction_timestamp", "statement_timestamp", "current_timestamp",
                 "current_time", "localtimestamp", "localtime", "current_setting", "coalesce",
                 "nullif", "greatest", "least", "lower", "upper", "concat", "length", "abs",
                 "round", "make_date", "make_interval", "make_timestamp", "make_timestamptz",
                 "to_timestamp", "json_build_object", "jsonb_build_object", "json_build_array",
                 "jsonb_build_array", "to_json", "to_jsonb", "array", "row")


def _add_column(table: str | None, column: list[Token]) -> Iterator[LockRisk]:
    name, position = _name(column, 0)
    words = [token.text.upper() if token.kind == "word" else "" for token in _top_level(column)]
    type_word = column[position].text.upper() if column[position:] and column[position].kind == "word" else ""
    default = _default_expression(column)
    what = f"ADD COLUMN {name}"
    if type_word in _SERIAL_TYPES or "IDENTITY" in words:
        yield _rewrite(table, f"{what} (filled from a sequence for every row)", _FILL_LATER)
    elif "GENERATED" in words and "STORED" in words:
        yield _rewrite(table, f"{what} (a stored generated column, computed for every row)", None)
    elif default is not None and _volatility(default) == "volatile":
        yield _rewrite(table, f"{what} with a volatile default (computed for every row)", _FILL_LATER)
    elif default is not None and _volatility(default) == "unknown":
        yield _rewrite(table, f"{what} with a default calling a function", _FILL_LATER,
                       unless="when every function it calls is stable or immutable")
    elif default is None and _has_words(_top_level(column), "NOT", "NULL"):
        yield LockRisk(
            "not_null_no_default", "high", ACCESS_EXCLUSIVE, table,
            f"{what} ... NOT NULL without a default fails as soon as {table} has a row (its "
            "column would hold NULLs), under an ACCESS EXCLUSIVE lock.",
            "give it a constant DEFAULT (no rewrite since PostgreSQL 11), or add it nullable, "
            "backfill it, and set NOT NULL in a later phase")
    if "CHECK" in words:
        yield LockRisk(
            "constraint_validated", "high", ACCESS_EXCLUSIVE, table,
            f"{what} ... CHECK checks every row of {table} under an ACCESS EXCLUSIVE lock: reads "
            f"and writes of {table} wait for the scan.", _VALIDATE_LATER)
    if "UNIQUE" in words or "PRIMARY" in words:
        yield _index_under_access_exclusive(table, "PRIMARY" if "PRIMARY" in words else "UNIQUE")
    for referenced in _references(column):
        if referenced != table:
            yield _brief_write_block(referenced, f"{what} ... REFERENCES {referenced}")
    yield _brief(table, what)


_FILL_LATER = ("add the column without a default (or with a constant one), fill it in batches, "
               "then set the default in a later phase")


def _default_expression(column: list[Token]) -> list[Token] | None:
    """The tokens of the column's DEFAULT expression, or None when it has none."""
    expression, depth = None, 0
    for token in column:
        depth += {"lparen": 1, "rparen": -1}.get(token.kind, 0)
        at_top = depth == 0 and token.kind != "rparen"
        if expression is None:
            expression = [] if at_top and token.is_word("DEFAULT") else None
        elif at_top and expression and token.is_word(*_COLUMN_CONSTRAINTS):
            break  # the next constraint (DEFAULT NULL's NULL is the expression itself)
        else:
            expression.append(token)
    return expression


def _volatility(expression: list[Token]) -> str:
    """"volatile", "unknown" (a function the text cannot judge) or "not volatile"."""
    verdict = "not volatile"
    for position, token in enumerate(expression):
        called = position + 1 < len(expression) and expression[position + 1].kind == "lparen"
        if token.kind != "word" or not called or _is_type_name(expression, position):
            continue
        name = token.text.lower()
        if name in _VOLATILE:
            return "volatile"
        if name not in _NOT_VOLATILE:
            verdict = "unknown"
    return verdict


def _is_type_name(tokens: list[Token], position: int) -> bool:
    """Is the word at `position` a type in a cast (`::numeric(10, 2)`, `AS varchar(20)`)?"""
    before = "".join(token.text for token in tokens[max(0, position - 2): position])
    return before.endswith("::") or (position > 0 and tokens[position - 1].is_word("AS"))


# --------------------------------------------------------------------------- ALTER COLUMN

# A new type PostgreSQL may reach without a rewrite, from some old types (varchar(n) to a
# longer varchar or to text, numeric to a larger precision, cidr to inet, timestamp to
# timestamptz when the session's TimeZone is UTC).
_MAYBE_BINARY_COERCIBLE = ("TEXT", "VARCHAR", "CHARACTER", "NUMERIC", "DECIMAL", "INET", "TIMESTAMPTZ",
                           "TIMESTAMP", "VARBIT", "BIT", "CITEXT")


def _alter_column(table: str | None, command: list[Token]) -> Iterator[LockRisk]:
    column, position = _name(command, 0)
    rest = command[position:]
    words = _words(rest, 3) + ["", "", ""]
    if words[0] == "TYPE" or words[:3] == ["SET", "DATA", "TYPE"]:
        yield _alter_type(table, column, rest[1 if words[0] == "TYPE" else 3:])
    elif words[:3] == ["SET", "NOT", "NULL"]:
        yield _not_null_scan(table, f"ALTER COLUMN {column} SET NOT NULL")
    elif words[:2] == ["SET", "STATISTICS"]:
        return  # SHARE UPDATE EXCLUSIVE
    elif words[:2] == ["SET", "DEFAULT"]:
        yield _brief(table, f"ALTER COLUMN {column} SET DEFAULT")
    else:
        yield _brief(table, " ".join(["ALTER COLUMN", str(column), *filter(None, words[:3])]))


def _alter_type(table: str | None, column: str | None, new_type: list[Token]) -> LockRisk:
    type_word = new_type[0].text.upper() if new_type and new_type[0].kind == "word" else ""
    using = _has_words(_top_level(new_type), "USING")
    may = type_word in _MAYBE_BINARY_COERCIBLE and not using
    unless = ("when the change is binary-coercible, such as varchar(n) to a longer varchar or to "
              "text, which depends on the column's current type") if may else ""
    return _rewrite(table, f"ALTER COLUMN {column} TYPE", "add a new column of the new type, fill "
                    "it in batches, and switch the application to it in a later phase", unless=unless)


# --------------------------------------------------------------------------- maintenance


def _vacuum(tokens: list[Token]) -> Iterator[LockRisk]:
    position, full = 1, False
    if tokens[1:2] and tokens[1].kind == "lparen":
        options, position = parenthesised_group(tokens, 1)
        for option in _split_commas(options):
            full = full or (option[0].is_word("FULL") and not _has_words(option, "FALSE")
                            and not _has_words(option, "OFF") and not any(t.text == "0" for t in option))
    else:
        while position < len(tokens) and tokens[position].is_word("FULL", "FREEZE", "VERBOSE", "ANALYZE"):
            full = full or tokens[position].is_word("FULL")
            position += 1
    if not full:
        return  # plain VACUUM takes SHARE UPDATE EXCLUSIVE
    for table in _table_list(tokens, position) or [None]:
        yield _rewrite(table, "VACUUM FULL", where="" if table else "every table of the database", fix="plain VACUUM (no lock that blocks reads or writes), or "
                       "pg_repack, which rebuilds the table without holding its lock for the copy")


def _cluster(tokens: list[Token]) -> Iterator[LockRisk]:
    position = _skip(tokens, 1, "VERBOSE")
    if position < len(tokens) and tokens[position].kind == "lparen":
        _, position = parenthesised_group(tokens, position)
    table, _ = _name(tokens, position)
    yield _rewrite(table, "CLUSTER", where="" if table else "every table clustered before", fix="pg_repack, which reorders the table without holding its lock for the copy")


def _reindex(tokens: list[Token]) -> Iterator[LockRisk]:
    position = 1
    if tokens[1:2] and tokens[1].kind == "lparen":
        options, position = parenthesised_group(tokens, 1)
        if _has_words(options, "CONCURRENTLY"):
            return
    kind = tokens[position].text.upper() if position < len(tokens) else ""
    position += 1
    if position < len(tokens) and tokens[position].is_word("CONCURRENTLY"):
        return
    name, _ = _name(tokens, position)
    table = name if kind == "TABLE" else None
    where = table or ("the index's table" if kind == "INDEX" else "every table it reindexes")
    yield LockRisk(
        "index_not_concurrent", "high", SHARE, table,
        f"REINDEX {kind} takes a SHARE lock on {where}, which makes writes wait, and an ACCESS "
        f"EXCLUSIVE lock on each index it rebuilds, which makes any query PostgreSQL plans on "
        f"{where} wait too, until the rebuild ends.",
        f"REINDEX {kind} CONCURRENTLY {_NO_TRANSACTION}")


_LOCK_MODES = ("ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE",
               "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE")


def _lock_table(tokens: list[Token]) -> Iterator[LockRisk]:
    position = _skip(tokens, 1, "TABLE")
    top = [token.text.upper() for token in tokens]
    mode = ACCESS_EXCLUSIVE
    if "IN" in top and "MODE" in top[top.index("IN"):]:
        start = top.index("IN")
        mode = " ".join(top[start + 1: top.index("MODE", start)])
        tokens = tokens[:start]
    if mode not in _LOCK_MODES or _LOCK_MODES.index(mode) <= _LOCK_MODES.index("SHARE UPDATE EXCLUSIVE"):
        return  # reads and writes go on
    blocks_reads = mode == ACCESS_EXCLUSIVE
    for table in _table_list(tokens, position):
        yield LockRisk(
            "access_exclusive" if blocks_reads else "blocks_writes", "high" if blocks_reads else "medium",
            mode, table,
            f"LOCK TABLE {table} IN {mode} MODE makes every {'read and write' if blocks_reads else 'write'} "
            f"of {table} wait until the phase's transaction ends, however long its later statements take.",
            "lock only what the phase needs, and keep the phase short")
