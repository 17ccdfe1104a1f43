"""Indexes, triggers and views a plan destroys and does not get back.

SQLite drops a table's indexes and triggers with it, and a view in the way of a rename has
to be dropped by hand, so the classic table rebuild (CREATE t_new, copy the rows, DROP t,
ALTER TABLE t_new RENAME TO t) silently loses whatever the plan forgets to re-create, and
every statement still succeeds. What counts is what holds when the plan has run, so the
schema objects before the first statement are compared with those after the last:

- an index by its definition (table, uniqueness, key columns or expressions with their
  order and collation, partial WHERE), whatever its name: a UNIQUE constraint's automatic
  index and a CREATE UNIQUE INDEX of the same columns enforce the same thing;
- a trigger by name and definition;
- a view by name.

An index or trigger whose table (or view) is gone afterwards went with it: the plan drops
that table on purpose and says so. Anything else lost must be accepted in the plan with
`-- accept-drop: KIND NAME` (part of the plan hash), or the plan is refused. The same
watch runs on reconciliation's schema copy, in the rehearsal and inside the real
migration's transaction before COMMIT.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.core.plans import Acceptance, PlanStatement
from app.core.sql import (
    ascii_lower,
    index_key_items,
    index_term_expression,
    is_plain_identifier,
    keep_possible_strings,
    normalise_definition,
    normalise_tokens,
    quote_identifier,
    significant_tokens,
)


@dataclass(frozen=True)
class SchemaObject:
    kind: str  # index | trigger | view
    name: str
    table: str  # what it belongs to (the view itself for a view)
    sql: str | None  # None for an automatic index
    identity: tuple  # what must still exist afterwards for it not to be lost

    @property
    def automatic(self) -> bool:
        return self.sql is None

    def label(self) -> str:
        if self.kind == "view":
            return f"view {self.name}"
        if self.automatic:
            return f"index {self.name} (the UNIQUE or PRIMARY KEY index of {self.table})"
        return f"{self.kind} {self.name} on {self.table}"


@dataclass(frozen=True)
class Loss:
    """An object destroyed by `statement` and not back when the plan has run."""

    object: SchemaObject
    statement: PlanStatement | None  # None when it could not be told (e.g. a trigger dropping it)
    acceptance: Acceptance | None = None
    redefined: bool = False  # an object of that name is back, with another definition

    @property
    def accepted(self) -> bool:
        return self.acceptance is not None

    @property
    def acceptance_line(self) -> str:
        return f"-- accept-drop: {self.object.kind} {_plan_name(self.object.name)}"

    def message(self) -> str:
        by = f" by {_where(self.statement)}" if self.statement else ""
        if self.redefined:
            return f"{self.object.label()} is destroyed{by} and the plan re-creates it with another definition"
        return f"{self.object.label()} is destroyed{by} and the plan does not re-create it"

    def fix(self) -> str:
        return (f"Re-create it in the plan (its definition: {self.object.sql or 'the constraint in the table'}), "
                f"or, if losing it is intended, add the line `{self.acceptance_line}` to the plan "
                "(the line is part of the plan hash, so it is reviewed and signed with the plan).")

    def to_dict(self) -> dict:
        statement = self.statement
        return {
            "kind": self.object.kind,
            "name": self.object.name,
            "table": self.object.table,
            "sql": self.object.sql,
            "statement": None if statement is None else {
                "index": statement.index, "file": statement.file, "line": statement.line,
                "description": statement.description},
            "accepted": self.accepted,
            "redefined": self.redefined,
            "acceptance": self.acceptance.to_dict() if self.acceptance else None,
            "acceptance_line": self.acceptance_line,
            "message": self.message(),
        }


def _plan_name(name: str) -> str:
    return name if is_plain_identifier(ascii_lower(name)) else quote_identifier(name)


def _where(statement: PlanStatement) -> str:
    return f"statement {statement.index + 1} ({statement.file}:{statement.line}: {statement.description})"


# --------------------------------------------------------------------------- reading


def schema_objects(connection) -> list[SchemaObject]:
    """Every index, trigger and view of the main database, with what identifies it."""
    rows = connection.execute(
        "SELECT type, name, tbl_name, sql FROM main.sqlite_schema "
        "WHERE type IN ('index', 'trigger', 'view') ORDER BY rowid").fetchall()
    objects = []
    for kind, name, table, sql in rows:
        if kind == "index":
            identity = _index_identity(connection, name, table, sql)
        elif kind == "trigger":
            identity = (ascii_lower(name), normalise_definition(sql))
        else:
            identity = (ascii_lower(name),)
        objects.append(SchemaObject(kind, name, table, sql, identity))
    return objects


def _index_identity(connection, name: str, table: str, sql: str | None) -> tuple:
    unique, partial = connection.execute(
        'SELECT "unique", partial FROM pragma_index_list(?, \'main\') WHERE name = ?',
        (table, name)).fetchone() or (0, 0)
    terms = index_key_items(sql)[0] if sql else []
    columns = []
    keys = connection.execute(
        "SELECT cid, name, \"desc\", coll FROM pragma_index_xinfo(?, 'main') WHERE key = 1 "
        "ORDER BY seqno", (name,)).fetchall()
    for position, (cid, column, descending, collation) in enumerate(keys):
        if cid == -2:  # an expression: only the CREATE INDEX text says which
            term = terms[position] if position < len(terms) else []
            column = "expr:" + index_term_expression(keep_possible_strings(term))
        else:
            column = ascii_lower(column or "rowid")
        columns.append((column, bool(descending), (collation or "BINARY").upper()))
    return (ascii_lower(table), bool(unique), tuple(columns), _partial_where(sql) if partial else None)


def _partial_where(sql: str | None) -> str | None:
    # An index's key list cannot hold a subquery, so its first WHERE is the partial one.
    tokens = significant_tokens(sql or "")
    where = next((i for i, token in enumerate(tokens) if token.is_word("WHERE")), None)
    if where is None:
        return None
    return normalise_tokens(keep_possible_strings(tokens[where + 1:])).rstrip(";").rstrip()


def object_names(connection) -> set[tuple[str, str]]:
    return {(kind, ascii_lower(name)) for kind, name in connection.execute(
        "SELECT type, name FROM main.sqlite_schema")}


# --------------------------------------------------------------------------- watching


class LossWatch:
    """Follows one plan run on a connection: which statement destroyed what, and what is lost.

    `saw(statement)` after each statement that ran notes which objects of the start have
    vanished by then (an object may come back later: only the end counts)."""

    def __init__(self, engine, connection):
        self.engine, self.connection = engine, connection
        self.before = engine.schema_objects(connection)
        self.destroyed_by: dict[tuple[str, str], PlanStatement] = {}

    def saw(self, statement: PlanStatement) -> None:
        present = self.engine.object_names(self.connection)
        for item in self.before:
            key = (item.kind, ascii_lower(item.name))
            if key not in present and key not in self.destroyed_by:
                self.destroyed_by[key] = statement

    def losses(self, acceptances: Iterable[Acceptance] = ()) -> list[Loss]:
        acceptances = list(acceptances)
        after = self.engine.schema_objects(self.connection)
        kept = {(item.kind, item.identity) for item in after}
        owners = self.engine.object_names(self.connection)
        names_after = {(item.kind, ascii_lower(item.name)) for item in after}
        losses = []
        for item in self.before:
            if (item.kind, item.identity) in kept or not _owner_remains(item, owners):
                continue
            accepted = next((a for a in acceptances if a.matches(item.kind, item.name)), None)
            key = (item.kind, ascii_lower(item.name))
            losses.append(Loss(item, self.destroyed_by.get(key), accepted, key in names_after))
        return sorted(losses, key=_in_plan_order)


def _in_plan_order(loss: Loss) -> tuple:
    position = loss.statement.index if loss.statement else float("inf")
    return position, ("index", "trigger", "view").index(loss.object.kind), ascii_lower(loss.object.name)


def _owner_remains(item: SchemaObject, names: set[tuple[str, str]]) -> bool:
    if item.kind == "view":
        return True  # a view belongs to no table: losing it is always a loss
    owner = ascii_lower(item.table)
    return ("table", owner) in names or ("view", owner) in names


def unmatched_acceptances(acceptances: Iterable[Acceptance], losses: Iterable[Loss]) -> list[Acceptance]:
    """Acceptances that name nothing the plan loses (a typo, or a plan that changed)."""
    used = {id(loss.acceptance) for loss in losses if loss.acceptance is not None}
    return [acceptance for acceptance in acceptances if id(acceptance) not in used]
