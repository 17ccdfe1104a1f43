"""Value objects describing one SQLite database: its schema and its facts.

Everything here is immutable plain data: tuples, not lists, so a Snapshot can be shared
between threads and cached; `to_dict()` gives JSON-ready data for the API and templates.

Each schema object also has a `comparable()` form: the facts that change how the
database behaves, normalised so that two spellings of the same schema compare equal.
The diff and the fingerprint both use it, so "no differences" and "same fingerprint"
always agree (except that the fingerprint also covers column order).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields, replace
from functools import cached_property, lru_cache
from typing import NamedTuple

from app.core.sql import (
    ascii_lower,
    normalise_default,
    normalise_sql,
    normalise_tokens,
    parenthesised_group,
    significant_tokens,
    split_top_level,
    strip_constraint_name,
    unquote_identifier,
)


DEFERRED = "DEFERRABLE INITIALLY DEFERRED"


def plain(value):
    """Tuples as JSON lists, nested value objects as their to_dict()."""
    if isinstance(value, Plain):
        return value.to_dict()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


class Plain:
    # Fields left out of to_dict() while they hold their default: facts only some schemas
    # have, so that every other schema reads exactly as it always did.
    _OMITTED_WHEN_UNSET: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            field.name: plain(getattr(self, field.name))
            for field in fields(self)
            if field.name not in self._OMITTED_WHEN_UNSET or getattr(self, field.name)
        }


@dataclass(frozen=True)
class Column(Plain):
    name: str
    type: str  # declared type verbatim, "" when none was declared
    not_null: bool
    default: str | None  # DEFAULT expression text, as PRAGMA table_xinfo reports it
    pk: int  # 0, or the 1-based position of this column in the primary key
    hidden: str = ""  # "", "hidden" (virtual-table column), "virtual" or "stored" (generated)
    collation: str | None = None  # COLLATE name when declared (upper case)
    generated: str | None = None  # normalised expression of a generated column
    # NOT NULL ON CONFLICT REPLACE / IGNORE / FAIL / ROLLBACK; None for the default ABORT.
    not_null_conflict: str | None = None

    _OMITTED_WHEN_UNSET = ("not_null_conflict",)

    def comparable(self) -> dict:
        facts = {
            "type": _normalised_type(self.type),
            "not_null": self.not_null,
            "default": _normalised_default(self.default),
            "pk": self.pk,
            "hidden": self.hidden,
            "generated": self.generated,
            # No COLLATE means BINARY: writing it out changes nothing.
            "collation": self.collation or "BINARY",
        }
        # Only when there is one, so that fingerprints recorded without it still match.
        if self.not_null_conflict:
            facts["not_null_conflict"] = self.not_null_conflict
        return facts


# Declared types and defaults repeat across a schema's columns ("INTEGER", "0",
# CURRENT_TIMESTAMP): each spelling is normalised once, not once per column compared.
_normalised_type = lru_cache(maxsize=4096)(normalise_sql)
_normalised_default = lru_cache(maxsize=4096)(normalise_default)


@dataclass(frozen=True)
class IndexColumn(Plain):
    name: str | None  # None for an expression
    expression: str | None  # normalised expression, None for a plain column
    desc: bool
    collation: str

    def comparable(self) -> tuple:
        return (ascii_lower(self.name or ""), self.expression, self.desc, self.collation.upper())


@dataclass(frozen=True)
class Index(Plain):
    name: str
    table: str
    columns: tuple[IndexColumn, ...]
    unique: bool
    where: str | None  # normalised WHERE of a partial index
    origin: str  # "c" CREATE INDEX, "u" UNIQUE constraint, "pk" PRIMARY KEY
    sql: str | None  # None for indexes SQLite creates itself

    @property
    def is_automatic(self) -> bool:
        """Indexes SQLite creates for UNIQUE / PRIMARY KEY; they follow the table's constraints."""
        return self.sql is None or ascii_lower(self.name).startswith("sqlite_autoindex_")

    def comparable(self) -> dict:
        return {
            "table": ascii_lower(self.table),
            "columns": tuple(column.comparable() for column in self.columns),
            "unique": self.unique,
            "where": self.where,
        }


@dataclass(frozen=True)
class ForeignKey(Plain):
    columns: tuple[str, ...]
    table: str  # the parent (referenced) table
    to: tuple[str | None, ...]  # parent columns; None where the parent's primary key is implied
    on_update: str
    on_delete: str
    match: str
    deferred: bool = False  # DEFERRABLE INITIALLY DEFERRED: checked at COMMIT

    _OMITTED_WHEN_UNSET = ("deferred",)


def _without_conflict(tokens, *, always: bool):
    """Tokens without their trailing ON CONFLICT X: always, or only when X is ABORT (the
    default, so writing it out changes nothing)."""
    if len(tokens) >= 3 and tokens[-3].is_word("ON") and tokens[-2].is_word("CONFLICT"):
        if always or tokens[-1].is_word("ABORT"):
            return tokens[:-3]
    return tokens


def is_virtual_table_sql(sql: str) -> bool:
    """True for CREATE VIRTUAL TABLE text."""
    return _creates_virtual_table(significant_tokens(sql))


def _creates_virtual_table(tokens) -> bool:
    return [token.text.upper() for token in tokens[:2]] == ["CREATE", "VIRTUAL"]


@dataclass(frozen=True)
class Table(Plain):
    name: str
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...]
    foreign_keys: tuple[ForeignKey, ...]
    strict: bool
    without_rowid: bool
    sql: str
    # Normalised CHECK / UNIQUE / PRIMARY KEY / FOREIGN KEY clauses of the table body;
    # column-level CHECK and UNIQUE are included, rewritten as CHECK(...) / UNIQUE(col).
    constraints: tuple[str, ...]
    row_count: int | None = None
    # What SQLite said when this virtual table could not be read here ("no such module:
    # spellfix1", "no such table: main.notes"); None when it reads fine.
    unreadable: str | None = None
    # PRIMARY KEY ... ON CONFLICT X (column- or table-level); None for the default ABORT.
    primary_key_conflict: str | None = None

    _OMITTED_WHEN_UNSET = ("unreadable", "primary_key_conflict")

    @cached_property
    def _tokens(self) -> list:
        # The CREATE TABLE text, tokenized once: the diff asks several questions of it
        # (virtual? AUTOINCREMENT?) for every table, and tokenizing is what costs.
        return significant_tokens(self.sql)

    @property
    def is_virtual(self) -> bool:
        # Without the word anywhere in its text, no token can be VIRTUAL: no need to tokenize.
        return "VIRTUAL" in self.sql.upper() and _creates_virtual_table(self._tokens)

    @property
    def module(self) -> str | None:
        """The module of a virtual table (`fts5`, `spellfix1`, ...); None for an ordinary one."""
        tokens = self._tokens
        using = next((i for i, token in enumerate(tokens) if token.is_word("USING")), None)
        if not self.is_virtual or using is None or using + 1 >= len(tokens):
            return None
        return ascii_lower(tokens[using + 1].text)

    def module_options(self) -> dict[str, str]:
        """`key=value` arguments of a virtual table (FTS's content=, content_rowid=, ...)."""
        tokens = self._tokens
        start = next((i for i, token in enumerate(tokens) if token.kind == "lparen"), None)
        if not self.is_virtual or start is None:
            return {}
        body, _ = parenthesised_group(tokens, start)
        options = {}
        for argument in split_top_level(body):
            if len(argument) == 3 and argument[1].text == "=":
                options[ascii_lower(argument[0].text)] = _bare_text(argument[2])
        return options

    def unreadable_explanation(self) -> str | None:
        """What an unreadable virtual table means and what to do about it; None when readable."""
        if self.unreadable is None:
            return None
        return explain_unreadable(self)

    @property
    def autoincrement(self) -> bool:
        """AUTOINCREMENT (never reuse a rowid) is only visible in the CREATE TABLE text."""
        return "AUTOINCREMENT" in self.sql.upper() and any(token.is_word("AUTOINCREMENT") for token in self._tokens)

    def column(self, name: str) -> Column | None:
        return self._columns_by_name.get(ascii_lower(name))

    @cached_property
    def _columns_by_name(self) -> dict[str, Column]:
        # The diff looks up every column of both sides by name.
        return _by_lower_name(self.columns)

    def primary_key(self) -> tuple[str, ...]:
        in_key = sorted((c for c in self.columns if c.pk), key=lambda c: c.pk)
        return tuple(c.name for c in in_key)

    def rowid_alias(self) -> str | None:
        """The column that IS the rowid, or None.

        Only a rowid table's single-column INTEGER PRIMARY KEY is one, and not when
        written `INTEGER PRIMARY KEY DESC`; SQLite gives every other primary key an
        index of its own (origin "pk"), which is how this tells them apart.
        """
        key = self.primary_key()
        if self.without_rowid or self.is_virtual or len(key) != 1:
            return None
        if any(index.origin == "pk" for index in self.indexes):
            return None
        return key[0]

    def integer_key_without_alias(self) -> bool:
        """A single INTEGER PRIMARY KEY that is nevertheless not the rowid (PRIMARY KEY DESC)."""
        key = self.primary_key()
        if self.without_rowid or self.is_virtual or len(key) != 1:
            return False
        column = self.column(key[0])
        return ascii_lower(column.type) == "integer" and self.rowid_alias() is None

    def checks_and_uniques(self) -> tuple[str, ...]:
        """CHECK and UNIQUE constraints, unnamed and sorted: what a rebuild must preserve.

        PRIMARY KEY and FOREIGN KEY clauses are left out: PRAGMAs report them
        structurally (column pk positions, foreign_keys), whichever way they were written.
        """
        kept = []
        for text in self.constraints:
            tokens = strip_constraint_name(significant_tokens(text))
            if tokens and tokens[0].is_word("CHECK"):
                # SQLite accepts and ignores an ON CONFLICT after a table CHECK.
                kept.append(normalise_tokens(_without_conflict(tokens, always=True)))
            elif tokens and tokens[0].is_word("UNIQUE"):
                kept.append(normalise_tokens(_without_conflict(tokens, always=False)))
        return tuple(sorted(kept))


def _bare_text(token) -> str:
    """A module argument's value without its quotes: content='notes' and content=notes agree."""
    if token.kind in ("quoted", "string"):
        return unquote_identifier(token.text)
    return token.text


def explain_unreadable(table: Table) -> str:
    """One paragraph: which table, what SQLite said, what it means, what to do.

    The file itself is sound (these tables fail only when they are read), so the
    explanation says what a backup and a plan can still do.
    """
    said = f'SQLite says "{table.unreadable}"'
    module = table.module or "?"
    if "no such module" in table.unreadable:
        return (
            f"Virtual table {table.name} uses the module {module}, which this SQLite does not "
            f"have ({said}). Cutover cannot read its columns or count its rows; the rest of the "
            "database is unaffected, backups copy it byte for byte, and migrations leave it "
            f"alone. The application that loads the {module} extension can still use it. "
            f"SQLite needs the module even to drop it: to remove it, run DROP TABLE "
            f"{table.name} from that application or from a sqlite3 shell that loads the "
            "extension (.load)."
        )
    content = table.module_options().get("content")
    if content and "no such table" in table.unreadable:
        return (
            f"Full-text table {table.name} ({module}) reads its rows from the content table "
            f"{content}, which does not exist ({said}). Searches and row counts on it fail, "
            "although the file itself is intact and can be backed up. Fix it with a plan: "
            f"CREATE TABLE {content} again with the columns {table.name} indexes (then "
            f"INSERT INTO {table.name}({table.name}) VALUES('rebuild') to re-index it), or "
            f"DROP TABLE {table.name} if the full-text index is no longer used."
        )
    return (
        f"Virtual table {table.name} ({module}) cannot be read here ({said}). Cutover "
        "cannot count its rows; backups copy it byte for byte. Check what it depends on "
        f"(its module, the tables named in its definition), or DROP TABLE {table.name} "
        "in a plan if it is no longer used."
    )


@dataclass(frozen=True)
class Trigger(Plain):
    name: str
    table: str
    sql: str

    def comparable(self, names=frozenset()) -> str:
        """`names`: the schema's names (Schema.names()), so that a double-quoted string
        keeps its case and a double-quoted name does not."""
        return normalise_sql(self.sql, names | statement_aliases(self.sql))


@dataclass(frozen=True)
class View(Plain):
    name: str
    sql: str

    def comparable(self, names=frozenset()) -> str:
        """See Trigger.comparable."""
        return normalise_sql(self.sql, names | statement_aliases(self.sql))


def statement_aliases(sql: str) -> frozenset[str]:
    """Names a statement gives itself (`AS x`): a double-quoted x later on names it."""
    tokens = significant_tokens(sql)
    return frozenset(
        ascii_lower(unquote_identifier(after.text) if after.kind == "quoted" else after.text)
        for before, after in zip(tokens, tokens[1:])
        if before.is_word("AS") and after.kind in ("word", "quoted")
    )


class SchemaRow(NamedTuple):
    """One object's definition as the database stores it: enough to create it again."""

    type: str  # table | index | view | trigger
    name: str
    table: str  # the table (or view) it belongs to; its own name for a table or view
    sql: str


@dataclass(frozen=True)
class Schema:
    tables: tuple[Table, ...]
    triggers: tuple[Trigger, ...]
    views: tuple[View, ...]

    def unreadable_tables(self) -> list[dict]:
        """Tables SQLite cannot read here, each with its explanation (see explain_unreadable)."""
        return [
            {"table": table.name, "problem": table.unreadable,
             "explanation": table.unreadable_explanation()}
            for table in self.tables
            if table.unreadable is not None
        ]

    def names(self) -> frozenset[str]:
        """Every table, view and column name, lower case: what a view or trigger can name."""
        return self._names

    @cached_property
    def _names(self) -> frozenset[str]:
        # Asked once per view and trigger compared: computed once per schema.
        names = {ascii_lower(t.name) for t in self.tables} | {ascii_lower(v.name) for v in self.views}
        names |= {ascii_lower(c.name) for t in self.tables for c in t.columns}
        return frozenset(names | {"rowid", "oid", "_rowid_", "new", "old"})

    def table(self, name: str) -> Table | None:
        """SQLite names are case-insensitive (ASCII letters only), so lookups are too."""
        return self._tables_by_name.get(ascii_lower(name))

    def trigger(self, name: str) -> Trigger | None:
        return self._triggers_by_name.get(ascii_lower(name))

    def view(self, name: str) -> View | None:
        return self._views_by_name.get(ascii_lower(name))

    # Lookups by lower-case name, built on first use. A diff looks a table up for every
    # table, column and foreign key it compares; scanning the tuple each time made a
    # diff quadratic in the number of tables. The schema is immutable, so the maps are too.
    @cached_property
    def _tables_by_name(self) -> dict[str, Table]:
        return _by_lower_name(self.tables)

    @cached_property
    def _triggers_by_name(self) -> dict[str, Trigger]:
        return _by_lower_name(self.triggers)

    @cached_property
    def _views_by_name(self) -> dict[str, View]:
        return _by_lower_name(self.views)

    def foreign_key_target(self, fk: ForeignKey) -> tuple:
        """Comparable form of a foreign key, with an implied parent key spelled out.

        `REFERENCES parent` and `REFERENCES parent(id)` mean the same when id is the
        parent's primary key; spelled out, the two compare equal.
        """
        to = fk.to
        parent = self.table(fk.table)
        if any(name is None for name in to) and parent and len(parent.primary_key()) == len(to):
            to = parent.primary_key()
        key = (
            tuple(ascii_lower(name) for name in fk.columns),
            ascii_lower(fk.table),
            tuple(ascii_lower(name) if name else None for name in to),
            fk.on_update.upper(),
            fk.on_delete.upper(),
            fk.match.upper(),
        )
        # Only when deferred, so that fingerprints recorded without it still match.
        return key + (DEFERRED,) if fk.deferred else key

    def column_references(self, table: Table) -> dict[str, tuple]:
        """Single-column foreign keys of `table`, by lower-case column name.

        Remembered per table: the diff asks for every column it compares. The answer is
        keyed by the table object itself, so a table from elsewhere is never mistaken
        for this schema's table of the same name."""
        remembered = self._column_references.get(id(table))
        if remembered is not None and remembered[0] is table:
            return remembered[1]
        references = self._compute_column_references(table)
        self._column_references[id(table)] = (table, references)
        return references

    @cached_property
    def _column_references(self) -> dict[int, tuple[Table, dict[str, tuple]]]:
        return {}

    def _compute_column_references(self, table: Table) -> dict[str, tuple]:
        references: dict[str, list] = {}
        for fk in table.foreign_keys:
            if len(fk.columns) == 1:
                key = self.foreign_key_target(fk)
                references.setdefault(ascii_lower(fk.columns[0]), []).append(key[1:])
        return {name: tuple(sorted(keys, key=repr)) for name, keys in references.items()}

    def table_facts(self, table: Table) -> dict:
        """Table-level facts a rebuild would have to change (columns and indexes aside)."""
        composite = [
            self.foreign_key_target(fk) for fk in table.foreign_keys if len(fk.columns) > 1
        ]
        return {
            "strict": table.strict,
            "without_rowid": table.without_rowid,
            "autoincrement": table.autoincrement,
            "constraints": table.checks_and_uniques(),
            "composite_foreign_keys": tuple(sorted(composite, key=repr)),
            # A virtual table's definition is its module and arguments.
            "virtual": normalise_sql(table.sql) if table.is_virtual else None,
            # These two only when set, so that fingerprints recorded without them still match.
            **({"primary_key_conflict": table.primary_key_conflict}
               if table.primary_key_conflict else {}),
            **({"integer_key_without_alias": True} if table.integer_key_without_alias() else {}),
        }

    def canonical(self) -> dict:
        """The normalised schema, as plain data: what `fingerprint()` hashes."""
        return plain(
            {
                "tables": [self._canonical_table(table) for table in _by_name(self.tables)],
                "triggers": {ascii_lower(t.name): t.comparable(self.names()) for t in self.triggers},
                "views": {ascii_lower(v.name): v.comparable(self.names()) for v in self.views},
            }
        )

    def _canonical_table(self, table: Table) -> dict:
        references = self.column_references(table)
        columns = [
            {
                "name": ascii_lower(c.name),
                **c.comparable(),
                "references": references.get(ascii_lower(c.name), ()),
            }
            for c in table.columns  # in order: the fingerprint covers column order
        ]
        indexes = {
            ascii_lower(index.name): index.comparable()
            for index in table.indexes
            if not index.is_automatic
        }
        return {
            "name": ascii_lower(table.name),
            **self.table_facts(table),
            "columns": columns,
            "indexes": indexes,
        }

    def fingerprint(self) -> str:
        """SHA-256 of the canonical schema: equal for a copy, a `.dump` rebuild, a restyle.

        Row counts are left out: the fingerprint says "same structure", not "same data".
        """
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict:
        return {
            "tables": [table.to_dict() for table in self.tables],
            "triggers": [trigger.to_dict() for trigger in self.triggers],
            "views": [view.to_dict() for view in self.views],
            "fingerprint": self.fingerprint(),
        }


def _by_lower_name(objects) -> dict:
    """Objects by lower-case name; the first wins, as a scan from the start would find."""
    found: dict = {}
    for item in objects:
        found.setdefault(ascii_lower(item.name), item)
    return found


def _by_name(objects) -> list:
    return sorted(objects, key=lambda item: ascii_lower(item.name))


@dataclass(frozen=True)
class Facts(Plain):
    path: str
    size_bytes: int  # main file plus its -wal file when there is one
    page_size: int
    page_count: int
    freelist_count: int
    journal_mode: str
    user_version: int
    application_id: int
    encoding: str
    sqlite_version: str  # of the library that read the file
    quick_check: str | None = None  # "ok" or the first problems; None when not run
    foreign_key_violations: int | None = None  # None when not checked
    # Up to 10 examples: {"table", "rowid", "parent", "fkid"}.
    foreign_key_violation_samples: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    path: str
    inspected_at: str  # ISO 8601, UTC
    facts: Facts
    schema: Schema
    deep: bool  # True when quick_check and foreign_key_check were run

    engine = "sqlite"

    def row_counts(self) -> dict[str, int | None]:
        return {table.name: table.row_count for table in self.schema.tables}

    def integrity_ok(self) -> bool:
        return self.facts.quick_check == "ok"

    def estimated_tables(self) -> list[str]:
        """Tables whose row count is an estimate: none, SQLite's are always counted."""
        return []

    def carrying_checks_from(self, previous: Snapshot) -> Snapshot:
        """This snapshot with `previous`'s whole-file check results (quick_check, foreign keys),
        for a fresh shallow read of a file whose last checks are still recent."""
        facts = replace(
            self.facts,
            quick_check=previous.facts.quick_check,
            foreign_key_violations=previous.facts.foreign_key_violations,
            foreign_key_violation_samples=previous.facts.foreign_key_violation_samples,
        )
        return replace(self, facts=facts)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "inspected_at": self.inspected_at,
            "deep": self.deep,
            "facts": self.facts.to_dict(),
            "schema": self.schema.to_dict(),
        }
