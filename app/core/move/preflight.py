"""Preflight: every row of the source judged against the target's schema, before anything is written.

A row is rejected for the first thing the target would refuse: a value its column type cannot
hold, a NULL under NOT NULL, a foreign key naming a parent that is not in the source (an orphan)
or whose parent is itself rejected (the closure: a rejected parent rejects its children,
transitively), a duplicate under a unique key. Tables are read parents first (the target's
foreign keys in topological order), a batch of rows at a time; what is kept in memory is the
key values children are checked against and the rejected rows' places, not the rows.
Nothing is written anywhere.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from app.core.move import conversions as c
from app.core.move.keysets import KeySet
from app.core.move.ordering import order_tables
from app.core.move.stamps import VersionStamp

EXAMPLES_PER_REASON = 3


@dataclass
class RejectGroup:
    reason: str
    count: int = 0
    examples: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"reason": self.reason, "explanation": c.EXPLANATIONS[self.reason], "count": self.count,
                "examples": self.examples}


@dataclass
class TablePreflight:
    """One table: what is read, how each column converts, and which rows cannot move."""

    source: object  # the source reader's table (name, columns, key, rows)
    target: object  # the target's table (columns, keys)
    columns: tuple[str, ...]  # written to the target, in the source's order
    conversions: dict  # column -> Conversion
    rows: int = 0
    rejected: dict = field(default_factory=dict)  # place in the scan -> (reason, detail)
    groups: dict = field(default_factory=dict)  # reason -> RejectGroup
    deferred_checks: list = field(default_factory=list)  # foreign keys left to the server (tables in a cycle)

    @property
    def name(self) -> str:
        return self.source.name

    def reject(self, place: int, reason: str, detail: str, key: dict, column: str | None = None) -> None:
        self.rejected[place] = (reason, detail)
        group = self.groups.setdefault(reason, RejectGroup(reason))
        group.count += 1
        if len(group.examples) < EXAMPLES_PER_REASON:
            group.examples.append({"key": key, **({"column": column} if column else {}), "detail": detail})

    def to_dict(self) -> dict:
        return {"name": self.name, "rows": self.rows, "accepted": self.rows - len(self.rejected),
                "rejects": [group.to_dict() for group in self.groups.values()]}


@dataclass
class Preflight:
    source: str
    target: str
    tables: list  # TablePreflight, in the order they are copied
    unmapped_columns: list  # "table.column" the source has and the target lacks (their data would be dropped)
    missing_tables: list  # source tables the target lacks
    dropped: list  # what the operator decided to leave behind (--drop)
    target_not_empty: list  # target tables that already hold rows
    schema_mismatches: list  # {"table", "column", "problem"}
    cycles: list  # tables that refer to each other in a cycle: some references are left to the server
    target_only_tables: list  # target tables the source lacks (they stay empty)
    version_stamp: VersionStamp | None = None  # both sides' Alembic stamps, when the target has a version table

    @property
    def rejected_rows(self) -> int:
        return sum(len(table.rejected) for table in self.tables)

    def blocking_problems(self) -> list[str]:
        """What stops a move whatever the quarantine: each in one sentence."""
        problems = [f"target table {name} is not empty" for name in self.target_not_empty]
        problems += [f"source table {name} has no table in the target (add it, or --drop {name})"
                     for name in self.missing_tables]
        problems += [f"source column {name} has no column in the target: its data would be dropped "
                     f"(add it, or --drop {name})" for name in self.unmapped_columns]
        problems += [f"{m['table']}.{m['column']}: {m['problem']}" for m in self.schema_mismatches]
        stamp_problem = self.version_stamp.problem() if self.version_stamp else None
        return problems + ([stamp_problem] if stamp_problem else [])

    @property
    def movable(self) -> bool:
        """Every row can be moved, and nothing blocks the move."""
        return not self.blocking_problems() and not self.rejected_rows

    def conversions(self) -> list[str]:
        return [f"{table.name}.{column}: {conversion.description}"
                for table in self.tables for column, conversion in table.conversions.items()
                if conversion.family not in ("text", "integer", "other")]

    def to_dict(self) -> dict:
        return {
            "source": self.source, "target": self.target, "movable": self.movable,
            "tables": [table.to_dict() for table in self.tables],
            "rejected_rows": self.rejected_rows,
            "unmapped_columns": self.unmapped_columns, "missing_tables": self.missing_tables,
            "dropped": self.dropped, "target_not_empty": self.target_not_empty,
            "schema_mismatches": self.schema_mismatches, "cycles": self.cycles,
            "checked_by_the_server": [f"{t.name}.{name}" for t in self.tables for name in t.deferred_checks],
            "target_only_tables": self.target_only_tables, "conversions": self.conversions(),
            "version_stamp": self.version_stamp.to_dict() if self.version_stamp else None,
            "problems": self.blocking_problems(),
        }


def run_preflight(reader, target_tables: dict, *, source: str, target: str, drop=(),
                  version_stamp: VersionStamp | None = None) -> Preflight:
    """Judge every source row against `target_tables` (the target's describe()); reads only.
    The Alembic version table of `version_stamp` is a stamp on both sides, never moved."""
    drop = set(drop)
    stamp_table = version_stamp.table if version_stamp else None
    source_tables = {table.name: table for table in reader.tables() if table.name != stamp_table}
    target_tables = {name: table for name, table in target_tables.items() if name != stamp_table}
    result = Preflight(source, target, [], [], [], sorted(drop), [], [], [], [], version_stamp)
    result.target_not_empty = sorted(name for name, table in target_tables.items() if table.has_rows)
    result.target_only_tables = sorted(set(target_tables) - set(source_tables))
    plans = {}
    for name, table in source_tables.items():
        if name in drop:
            continue
        if name not in target_tables:
            result.missing_tables.append(name)
            continue
        plans[name] = _table_plan(table, target_tables[name], drop, result)
    ordered, result.cycles = order_tables(plans)
    keys = _KeyBook(plans)
    for plan in ordered:
        _judge_table(reader, plan, keys)
        result.tables.append(plan)
    return result


def _table_plan(source, target, drop: set, result: Preflight) -> TablePreflight:
    columns, conversions = [], {}
    for name in source.columns:
        column = target.column(name)
        if f"{source.name}.{name}" in drop:
            continue
        if column is None:
            result.unmapped_columns.append(f"{source.name}.{name}")
        elif column.generated:
            result.schema_mismatches.append({"table": source.name, "column": name, "problem": (
                "the target computes this column (GENERATED ... STORED), so the source's values cannot be "
                f"written (--drop {source.name}.{name} to leave them behind)")})
        else:
            columns.append(name)
            conversions[name] = c.conversion_for(column.type)
    for column in target.columns:
        if column.name not in columns and column.not_null and not column.fills_itself \
                and column.name not in source.columns:
            result.schema_mismatches.append({"table": source.name, "column": column.name, "problem": (
                f"the target requires a value ({column.type} NOT NULL, no default) and the source has no such column")})
    return TablePreflight(source, target, tuple(columns), conversions, rows=source.rows)


class _KeyBook:
    """For every (table, columns) a foreign key refers to: the keys the source has, and those rejected."""

    def __init__(self, plans: dict):
        self.moved = set(plans)
        self.wanted = defaultdict(set)
        for plan in plans.values():
            for fk in plan.target.foreign_keys:
                self.wanted[fk.parent].add(fk.parent_columns)
        self.present = defaultdict(KeySet)
        self.rejected = defaultdict(set)  # few: a set
        self.scanned = set()

    def checkable(self, fk) -> bool:
        """Is the parent's every key known before this table is read? (A table not moved stays empty.)"""
        return fk.parent in self.scanned or fk.parent not in self.moved

    def record(self, table: str, values: dict, rejected: bool) -> None:
        for columns in self.wanted.get(table, ()):
            key = key_of(values, columns)
            if key is not None:
                self.present[table, columns].add(key)
                if rejected:
                    self.rejected[table, columns].add(key)

    def parent_problem(self, fk, values: dict):
        """(reason, detail) when the row's reference to another table cannot hold, else None."""
        reference = key_of(values, fk.columns)
        if reference is None:
            return None
        if reference in self.rejected[fk.parent, fk.parent_columns]:
            return c.PARENT_REJECTED, f"{', '.join(fk.columns)} refers to {_where(fk, reference)}, which is rejected"
        if reference not in self.present[fk.parent, fk.parent_columns]:
            return c.FK_ORPHAN, f"{', '.join(fk.columns)} refers to {_where(fk, reference)}, which is not in the source"
        return None


def _where(fk, reference) -> str:
    return f"{fk.parent}({', '.join(fk.parent_columns)}) = {reference!r}"


def key_of(values: dict, columns: tuple):
    """A key's value as KeySets hold it: the value itself for one column, else a tuple; None when NULL."""
    if len(columns) == 1:
        return values.get(columns[0])
    key = tuple([values.get(column) for column in columns])
    return None if None in key else key


def _judge_table(reader, plan: TablePreflight, keys: _KeyBook) -> None:
    source = plan.source
    other_fks = [fk for fk in plan.target.foreign_keys if fk.parent != plan.name and keys.checkable(fk)]
    self_fks = [fk for fk in plan.target.foreign_keys if fk.parent == plan.name]
    plan.deferred_checks = [fk.name for fk in plan.target.foreign_keys
                            if fk.parent != plan.name and not keys.checkable(fk)]
    # For rows of a table that refers to itself, only what the closure needs is kept (a small tuple each).
    self_columns = tuple(sorted({column for fk in self_fks for column in (*fk.columns, *fk.parent_columns)}
                                | (set(source.key) if set(source.key) <= set(plan.columns) else set())))
    not_null = {column.name for column in plan.target.columns if column.not_null}
    unique = [(name, columns) for name, columns in plan.target.unique_keys
              if set(columns) <= set(plan.columns) and columns != source.rowid_alias]
    seen = {name: KeySet() for name, _ in unique}
    self_rows = []
    count = 0
    convert = _row_converter(plan, not_null)
    checks = [_parent_check(keys, fk) for fk in other_fks]
    for place, raw in enumerate(reader.rows(source, source.columns)):
        count += 1
        values, problem = convert(raw)
        if problem is None:
            for check in checks:
                if found := check(values):
                    problem = (*found, None)
                    break
        if problem is None and unique:
            problem = _duplicate(unique, seen, values)
        if problem is not None:
            plan.reject(place, problem[0], problem[1], row_key(source, dict(zip(source.columns, raw)), place),
                        problem[2])
        else:
            for name, columns in unique:
                key = key_of(values, columns)
                if key is not None:
                    seen[name].add(key)
        keys.record(plan.name, values, problem is not None)
        if self_fks:
            self_rows.append((place, tuple([values.get(column) for column in self_columns])))
    plan.rows = count
    keys.scanned.add(plan.name)
    for fk in self_fks:
        _close_self_reference(plan, fk, self_columns, self_rows, keys)


def _row_converter(plan: TablePreflight, not_null: set):
    """raw row -> (values by column, first problem or None); the common case (every value fine) fast."""
    positions = [plan.source.columns.index(column) for column in plan.columns]
    converters = [(plan.conversions[column].convert, position) for column, position in zip(plan.columns, positions)]
    required = [column for column in plan.columns if column in not_null]
    columns = plan.columns

    def convert(raw):
        try:
            values = dict(zip(columns, [function(raw[position]) for function, position in converters]))
        except c.Rejected:
            return _converted(plan, dict(zip(plan.source.columns, raw)), not_null)
        for column in required:
            if values[column] is None:
                return values, (c.NOT_NULL, f"{column} is NULL", column)
        return values, None

    return convert


def _parent_check(keys: _KeyBook, fk):
    """values -> None, or (reason, detail) for the row's reference to another table. A single
    integer key is looked up in the parent's bitmap directly: this runs for every row and key."""
    if len(fk.columns) != 1:
        return lambda values: keys.parent_problem(fk, values)
    column = fk.columns[0]
    present = keys.present[fk.parent, fk.parent_columns]
    rejected = keys.rejected[fk.parent, fk.parent_columns]
    bits, others, limit = present._bits, present._others, len(present._bits) * 8  # the parent is complete

    def check(values):
        value = values.get(column)
        if value is None:
            return None
        if not (rejected and value in rejected):
            if type(value) is int and 0 <= value < limit:
                if bits[value >> 3] & (1 << (value & 7)):
                    return None
            elif value in others:
                return None
        return keys.parent_problem(fk, values)

    return check


def _converted(plan: TablePreflight, row: dict, not_null: set):
    """(values by column converted for the target, first problem as (reason, detail, column) or None)."""
    values, problem = {}, None
    for column in plan.columns:
        value = row[column]
        try:
            values[column] = plan.conversions[column].convert(value)
        except c.Rejected as rejected:
            values[column] = value
            problem = problem or (rejected.reason, rejected.detail, column)
            continue
        if value is None and column in not_null and problem is None:
            problem = (c.NOT_NULL, f"{column} is NULL", column)
    return values, problem


def _duplicate(unique, seen, values):
    for name, columns in unique:
        key = key_of(values, columns)
        if key is not None and key in seen[name]:
            return c.DUPLICATE, f"{', '.join(columns)} = {key!r} is already taken by an earlier row ({name})", None
    return None


def row_key(source, row: dict, place: int) -> dict:
    """How an operator finds the row: its primary key, or its place in the table (from 1)."""
    if source.key:
        return {column: row[column] for column in source.key}
    return {"row": place + 1}


def _close_self_reference(plan: TablePreflight, fk, self_columns: tuple, self_rows, keys: _KeyBook) -> None:
    """Rows referring to rows of their own table: orphans and the closure. Their order does not
    matter: one COPY writes the whole table, and the server checks a foreign key that is not
    deferred at the end of the statement, so a child before its parent, or a row naming itself, is fine."""
    present = keys.present[plan.name, fk.parent_columns]
    rejected_keys = keys.rejected[plan.name, fk.parent_columns]
    place_of, own_of, parent_of = {}, {}, {}
    row_key_of = _RowKeys(plan.source, self_columns, self_rows)
    for place, kept in self_rows:
        values = dict(zip(self_columns, kept))
        own, reference = key_of(values, fk.parent_columns), key_of(values, fk.columns)
        own_of[place] = own
        if own is not None:
            place_of[own] = place
        if reference is None or place in plan.rejected:
            continue
        if reference not in present:
            _reject_own(plan, place, c.FK_ORPHAN, f"{', '.join(fk.columns)} refers to {plan.name}"
                        f"({', '.join(fk.parent_columns)}) = {reference!r}, which is not in the source",
                        row_key_of[place], own, rejected_keys)
            continue
        parent_of[place] = reference
    parent_of = {place: place_of[reference] for place, reference in parent_of.items()}
    _reject_descendants(plan, fk, parent_of, row_key_of, own_of, rejected_keys)


class _RowKeys:
    """A kept row's key for the operator, made only for the rows that are rejected."""

    def __init__(self, source, self_columns: tuple, self_rows: list):
        self.columns = source.key if source.key and set(source.key) <= set(self_columns) else ()
        self.positions = [self_columns.index(column) for column in self.columns]
        self.rows = self_rows  # self_rows[place] is the row at that place: every row is kept, in order

    def __getitem__(self, place: int) -> dict:
        if not self.columns:
            return {"row": place + 1}
        kept = self.rows[place][1]
        return {column: kept[position] for column, position in zip(self.columns, self.positions)}


def _reject_own(plan, place, reason, detail, key, own, rejected_keys) -> None:
    plan.reject(place, reason, detail, key)
    if own is not None:
        rejected_keys.add(own)


def _reject_descendants(plan, fk, parent_of, row_key_of, own_of, rejected_keys) -> None:
    children = defaultdict(list)
    for place, parent in parent_of.items():
        children[parent].append(place)
    waiting = [place for place in parent_of.values() if place in plan.rejected]
    waiting += [place for place in plan.rejected if place in children]
    while waiting:
        parent = waiting.pop()
        for place in children.pop(parent, ()):
            if place in plan.rejected:
                continue
            _reject_own(plan, place, c.PARENT_REJECTED, f"{', '.join(fk.columns)} refers to {plan.name}"
                        f"({', '.join(fk.parent_columns)}) = {own_of[parent]!r}, which is rejected",
                        row_key_of[place], own_of[place], rejected_keys)
            waiting.append(place)
