"""What a PostgreSQL statement does to the schema, read from its first words: enough to
reconcile it with a database (reconciling.py) and to name the index it creates."""
from __future__ import annotations

from dataclasses import dataclass

from app.core.engines.postgresql.lexer import Token, significant, tokenize

@dataclass(frozen=True)
class PgShape:
    """What a statement does to the schema, read from its first words."""

    action: str  # create | drop | add_column | drop_column | add_constraint | other
    kind: str | None = None  # table | index | view | materialized view | sequence | type
    schema: str | None = None  # written schema of the object (None: found by search path)
    name: str | None = None  # the object's name (the column's or constraint's for ALTER)
    table: str | None = None  # the table it acts on (index, column, constraint)
    table_schema: str | None = None
    if_exists: bool = False  # IF [NOT] EXISTS was written


OTHER = PgShape("other")


def statement_shape(sql: str) -> PgShape:
    words = [t for t in significant(tokenize(sql)) if t.kind != "semicolon"]
    if not words or not words[0].is_word():
        return OTHER
    first = words[0].text.upper()
    if first == "CREATE":
        return _create_shape(words)
    if first == "DROP":
        return _drop_shape(words)
    if first == "ALTER" and len(words) > 2 and words[1].is_word("TABLE"):
        return _alter_table_shape(words)
    return OTHER


def _identifier(token: Token) -> str | None:
    if token.kind == "quoted":
        return token.text[1:-1].replace('""', '"')
    if token.is_word():
        return token.text.lower()  # an unquoted name is folded to lower case
    return None


def _name_at(words: list[Token], index: int) -> tuple[str | None, str | None, int]:
    """(schema, name, index after) of `name` or `schema.name` at `index`."""
    if index >= len(words):
        return None, None, index
    first = _identifier(words[index])
    if index + 2 < len(words) and words[index + 1].text == "." and first is not None:
        return first, _identifier(words[index + 2]), index + 3
    return None, first, index + 1


def _skip(words: list[Token], index: int, *skipped: str) -> int:
    while index < len(words) and words[index].is_word(*skipped):
        index += 1
    return index


def _create_kind(words: list[Token], index: int) -> tuple[str | None, int]:
    if index < len(words) and words[index].is_word("MATERIALIZED"):
        return ("materialized view", index + 2) if index + 1 < len(words) and words[index + 1].is_word("VIEW") \
            else (None, index)
    if index < len(words) and words[index].is_word("TABLE", "INDEX", "VIEW", "SEQUENCE", "TYPE"):
        return words[index].text.lower(), index + 1
    return None, index


def _create_shape(words: list[Token]) -> PgShape:
    if any(w.is_word("TEMP", "TEMPORARY") for w in words[1:3]) or words[1].is_word("OR"):
        return OTHER  # temporary objects are not part of the database; OR REPLACE replaces by design
    kind, index = _create_kind(words, _skip(words, 1, "UNIQUE", "UNLOGGED"))
    if kind is None:
        return OTHER
    index = _skip(words, index, "CONCURRENTLY")
    after = index
    index = _skip(words, index, "IF", "NOT", "EXISTS")
    if_exists = index > after
    if kind == "index" and index < len(words) and words[index].is_word("ON"):
        return OTHER  # an index without a name: PostgreSQL picks a new one every time
    schema, name, index = _name_at(words, index)
    if kind == "type" and not _is_enum(words, index):
        return OTHER
    table_schema = table = None
    if kind == "index":
        on = next((i for i in range(index, len(words)) if words[i].is_word("ON")), None)
        if on is None:
            return OTHER
        table_schema, table, _ = _name_at(words, _skip(words, on + 1, "ONLY"))
    return PgShape("create", kind, schema, name, table, table_schema, if_exists)


def _is_enum(words: list[Token], index: int) -> bool:
    return index + 1 < len(words) and words[index].is_word("AS") and words[index + 1].is_word("ENUM")


def _drop_shape(words: list[Token]) -> PgShape:
    kind, index = _create_kind(words, 1)
    if kind is None:
        return OTHER
    index = _skip(words, index, "CONCURRENTLY")
    after = index
    index = _skip(words, index, "IF", "EXISTS")
    if_exists = index > after
    schema, name, index = _name_at(words, index)
    if index < len(words) and words[index].text == ",":
        return OTHER  # several objects at once: PostgreSQL's own answer is clearer than ours
    return PgShape("drop", kind, schema, name, if_exists=if_exists)


def _alter_table_shape(words: list[Token]) -> PgShape:
    index = _skip(words, 2, "IF", "EXISTS", "ONLY")
    table_schema, table, index = _name_at(words, index)
    if index >= len(words) or table is None:
        return OTHER
    action = words[index].text.upper()
    rest = words[index + 1:]
    if any(t.text == "," for t in rest):
        return OTHER  # several actions in one ALTER: run as written, PostgreSQL checks each
    if action == "ADD" and rest and rest[0].is_word("CONSTRAINT"):
        _, name, _ = _name_at(rest, 1)
        return PgShape("add_constraint", "constraint", None, name, table, table_schema)
    if action in ("ADD", "DROP") and not (rest and rest[0].is_word(
            "PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "EXCLUDE", "CONSTRAINT")):
        position = _skip(rest, 0, "COLUMN")
        checked = _skip(rest, position, "IF", "NOT", "EXISTS")
        _, column, _ = _name_at(rest, checked)
        verb = "add_column" if action == "ADD" else "drop_column"
        return PgShape(verb, "column", None, column, table, table_schema, checked > position)
    return OTHER
