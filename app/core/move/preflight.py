"""Preflight: every row of the source judged against the target's schema, before anything is written.

A row is rejected for the first thing the target would refuse: a value its column type cannot
hold, a NULL under NOT NULL, a foreign key naming a parent that is not in the source (an orphan)
or whose parent is itself rejected (the closure: a rejected parent rejects its children,
transitively), a duplicate under a unique key. Tables are read parents first (the target's
foreign keys in topological order), a batch of rows at a time; what is kept in memory is the
key values children are checked against and the rejected rows' places, not the rows.
Nothing is written anywhere. A move judges its rows with the same `RowJudges`, as its COPY reads
them (copying.py), so that each value is read and converted once.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import itemgetter

from app.core.errors import MoveRefused
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
    # (name, definition) of what preflight does not evaluate and the server checks as rows are written
    server_checks: list = field(default_factory=list)

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
            "checked_by_the_server": [f"{t.name}.{name}" for t in self.tables
                                      for name in (*t.deferred_checks, *(name for name, _ in t.server_checks))],
            "target_only_tables": self.target_only_tables, "conversions": self.conversions(),
            "version_stamp": self.version_stamp.to_dict() if self.version_stamp else None,
            "problems": self.blocking_problems(),
        }


def run_preflight(reader, target_tables: dict, *, source: str, target: str, drop=(),
                  version_stamp: VersionStamp | None = None) -> Preflight:
    """Judge every source row against `target_tables` (the target's describe()); reads only.
    The Alembic version table of `version_stamp` is a stamp on both sides, never moved."""
    result = plan_move(reader, target_tables, source=source, target=target, drop=drop, version_stamp=version_stamp)
    judges = RowJudges(result)
    for table in result.tables:
        judges.judge_all(reader, table)
    return result


def rejects_refused(checked: Preflight) -> MoveRefused:
    """The refusal of a move whose rows are not all movable and that has no quarantine."""
    rejected = "; ".join(f"{table.name}: " + ", ".join(f"{group.count} {group.reason}" for group in table.groups.values())
                         for table in checked.tables if table.rejected)
    return MoveRefused(
        f"Nothing was written: {checked.rejected_rows} rows cannot be moved ({rejected}). Fix them in the "
        "source, or move with --quarantine FILE to set them aside in a new SQLite file with their reasons.",
        preflight=checked.to_dict())


def plan_move(reader, target_tables: dict, *, source: str, target: str, drop=(),
              version_stamp: VersionStamp | None = None) -> Preflight:
    """What is known before a row is read: each table's columns and conversions, parents first,
    and what blocks the move whatever the rows hold. No row is judged yet (RowJudges does that)."""
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
    result.tables, result.cycles = order_tables(plans)
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
    plan = TablePreflight(source, target, tuple(columns), conversions, rows=source.rows)
    plan.server_checks = list(target.server_checks) + [
        (name, f"UNIQUE ({', '.join(keys)}) WHERE {_conditions_text(conditions)}")
        for name, keys, conditions in target.partial_unique_keys if not _judgeable(keys, conditions, columns)]
    return plan


def _judgeable(keys: tuple, conditions: tuple, written: list) -> bool:
    """A partial unique key is judged when its columns and its predicate's are all written (a column
    left to its default in the target could make the predicate true or false)."""
    return set(keys) <= set(written) and all(column in written for column, _ in conditions)


def _conditions_text(conditions: tuple) -> str:
    return " AND ".join(f"{column} IS {'NULL' if null else 'NOT NULL'}" for column, null in conditions)


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

    def parent_problem(self, fk, reference):
        """(reason, detail) when a row's reference (its key value for `fk`) cannot hold, else None."""
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


def _predicate(conditions: tuple, position: dict):
    """values -> does a partial unique index's predicate ((column, must be NULL?), ...) hold for the row?"""
    tests = [(position[column], null) for column, null in conditions]
    return lambda values: all((values[place] is None) == null for place, null in tests)


def _key_getter(columns: tuple, position: dict):
    """values (in the plan's column order) -> the key as key_of gives it; None when a column is not written."""
    if not all(column in position for column in columns):
        return None
    if len(columns) == 1:
        return itemgetter(position[columns[0]])
    places = [position[column] for column in columns]

    def key(values):
        found = tuple([values[place] for place in places])
        return None if None in found else found

    return key


class RowJudges:
    """Rows judged table by table, parents first (the order of Preflight.tables): what each table's
    children are checked against is kept from one table to the next."""

    def __init__(self, preflight: Preflight):
        self.keys = _KeyBook({table.name: table for table in preflight.tables})

    def judge_all(self, reader, table: TablePreflight) -> None:
        for _ in self.batches(reader, table):
            pass

    def batches(self, reader, table: TablePreflight) -> Iterator[tuple[int, list, list]]:
        """(place of the first row, the raw rows, their verdicts) a batch at a time, judged as read: a
        verdict is the row's values converted for the target, or None when the row is rejected.
        Read it to its end: a table that refers to itself is closed then, and may reject rows it
        yielded as accepted (see `verdicts_as_read`)."""
        judge, first = _TableJudge(table, self.keys), 0
        for raws in reader.batches(table.source, table.source.columns):
            yield first, raws, judge.batch(first, raws)
            first += len(raws)
        judge.finish()

    @staticmethod
    def verdicts_as_read(table: TablePreflight) -> bool:
        """Is a row's verdict final when the scan yields it? Not for a table that refers to itself:
        whether a row's parent in the same table is rejected is known only once every row is read."""
        return not any(fk.parent == table.name for fk in table.target.foreign_keys)


class _TableJudge:
    """One table's rows, judged one at a time: converted by the target's types, required values
    present, parents present and accepted, unique keys unique. Values are lists in the plan's column
    order; the common case (every value fine) takes no detour."""

    def __init__(self, plan: TablePreflight, keys: _KeyBook):
        self.plan, self.keys, source = plan, keys, plan.source
        position = {column: place for place, column in enumerate(plan.columns)}
        self.converters = [(plan.conversions[column].convert, source.columns.index(column)) for column in plan.columns]
        self.not_null = {column.name for column in plan.target.columns if column.not_null}
        self.required = [(position[column], column) for column in plan.columns if column in self.not_null]
        self.self_fks = [fk for fk in plan.target.foreign_keys if fk.parent == plan.name]
        other_fks = [fk for fk in plan.target.foreign_keys if fk.parent != plan.name]
        plan.deferred_checks = [fk.name for fk in other_fks if not keys.checkable(fk)]
        self.checks = [_parent_check(keys, fk, position) for fk in other_fks if keys.checkable(fk)]
        self.unique = [(name, columns, _key_getter(columns, position), None)
                       for name, columns in plan.target.unique_keys
                       if set(columns) <= set(plan.columns) and columns != source.rowid_alias]
        self.unique += [(name, columns, _key_getter(columns, position), _predicate(conditions, position))
                        for name, columns, conditions in plan.target.partial_unique_keys
                        if _judgeable(columns, conditions, plan.columns)]
        self.seen = {name: KeySet() for name, *_ in self.unique}
        self.recorded = [(keys.present[plan.name, columns], keys.rejected[plan.name, columns], getter)
                         for columns in keys.wanted.get(plan.name, ())
                         if (getter := _key_getter(columns, position)) is not None]
        # For rows of a table that refers to itself, only what the closure needs is kept (a small tuple each).
        self.self_columns = tuple(sorted({column for fk in self.self_fks for column in (*fk.columns, *fk.parent_columns)}
                                         | (set(source.key) if set(source.key) <= set(plan.columns) else set())))
        self.self_places = [position.get(column) for column in self.self_columns]
        self.self_rows = []
        self.count = 0
        self.at_once = _BatchJudge.for_table(self, position)

    def batch(self, first: int, raws: list) -> list:
        """Verdicts for consecutive rows from place `first`: the whole batch at once when every value
        takes the common case, else row by row (the same verdicts, found the long way)."""
        verdicts = self.at_once(raws) if self.at_once is not None else None
        if verdicts is None:
            return [self(place, raw) for place, raw in enumerate(raws, first)]
        self.count += len(raws)
        return verdicts

    def __call__(self, place: int, raw: tuple) -> list | None:
        """The row's converted values, or None when it is rejected (recorded in the plan). This runs
        for every row of the source: the checks are inlined rather than methods."""
        self.count += 1
        try:
            values = [convert(raw[position]) for convert, position in self.converters]
        except c.Rejected:
            values, problem = self._converted_slowly(raw)
        else:
            problem = None
            for column_place, column in self.required:
                if values[column_place] is None:
                    problem = (c.NOT_NULL, f"{column} is NULL", column)
                    break
        if problem is None:
            for check in self.checks:
                if found := check(values):
                    problem = (*found, None)
                    break
        if problem is None and self.unique:
            problem = self._duplicate(values)
        if problem is not None:
            source = self.plan.source
            self.plan.reject(place, problem[0], problem[1], row_key(source, dict(zip(source.columns, raw)), place),
                             problem[2])
        for present, rejected, key_in in self.recorded:
            key = key_in(values)
            if key is not None:
                present.add(key)
                if problem is not None:
                    rejected.add(key)
        if self.self_fks:
            self.self_rows.append((place, tuple([None if p is None else values[p] for p in self.self_places])))
        return values if problem is None else None

    def finish(self) -> None:
        self.plan.rows = self.count
        self.keys.scanned.add(self.plan.name)
        for fk in self.self_fks:
            _close_self_reference(self.plan, fk, self.self_columns, self.self_rows, self.keys)

    def _converted_slowly(self, raw: tuple):
        """(values, first problem as (reason, detail, column) or None); a value that cannot be
        converted is kept as it was, for the keys of the rejected row."""
        row = dict(zip(self.plan.source.columns, raw))
        values, problem = [], None
        for column in self.plan.columns:
            value = row[column]
            try:
                values.append(self.plan.conversions[column].convert(value))
            except c.Rejected as rejected:
                values.append(value)
                problem = problem or (rejected.reason, rejected.detail, column)
                continue
            if value is None and column in self.not_null and problem is None:
                problem = (c.NOT_NULL, f"{column} is NULL", column)
        return values, problem

    def _duplicate(self, values: list):
        """(reason, detail, None) when a unique key is already taken; else every key is taken by this row.
        A partial unique key counts only the rows its predicate holds for."""
        keys = [(name, columns, key_in(values)) for name, columns, key_in, holds in self.unique
                if holds is None or holds(values)]
        for name, columns, key in keys:
            if key is not None and key in self.seen[name]:
                return c.DUPLICATE, f"{', '.join(columns)} = {key!r} is already taken by an earlier row ({name})", None
        for name, _, key in keys:
            if key is not None:
                self.seen[name].add(key)
        return None


class _BatchJudge:
    """A batch of rows judged column by column, for the common case of a move: every value already
    what its conversion returns, or converted without a reject, no NULL where one is required, every
    reference to a parent present and accepted. Each check is one pass in C over a column (its
    types, its NULLs, its distinct references), where the row-by-row judge calls Python for each
    value. It answers only "all accepted" (the rows, as tuples) or "not sure" (None): then the batch
    is judged row by row, which finds the rejects and their reasons. Tables with unique keys, with
    references to themselves or with keys of several columns are always judged row by row."""

    def __init__(self, judge: _TableJudge, position: dict):
        plan = judge.plan
        self.columns = [(plan.conversions[column], plan.source.columns.index(column)) for column in plan.columns]
        self.required = [place for place, _ in judge.required]
        self.parents = [_parent_batch_check(judge.keys, fk, position[fk.columns[0]])
                        for fk in plan.target.foreign_keys if fk.parent != plan.name and judge.keys.checkable(fk)
                        and fk.columns[0] in position]
        self.recorded = [(judge.keys.present[plan.name, columns], position[columns[0]])
                         for columns in judge.keys.wanted.get(plan.name, ()) if columns[0] in position]

    @classmethod
    def for_table(cls, judge: _TableJudge, position: dict):
        plan = judge.plan
        if judge.unique or judge.self_fks or not plan.columns:
            return None
        keys = [fk.columns for fk in plan.target.foreign_keys] + list(judge.keys.wanted.get(plan.name, ()))
        return cls(judge, position) if all(len(columns) == 1 for columns in keys) else None

    def __call__(self, raws: list) -> list[tuple] | None:
        by_source = list(zip(*raws))
        columns, converted = [], {}  # converted: per conversion, each text value converted once in this batch
        for conversion, position in self.columns:
            column = by_source[position]
            if conversion.unchanged is not None and conversion.unchanged(column):
                columns.append(column)
                continue
            try:
                columns.append(_converted_column(conversion.convert, column, converted))
            except c.Rejected:
                return None
        if any(None in columns[place] for place in self.required):
            return None
        if not all(check(columns) for check in self.parents):
            return None
        for present, place in self.recorded:
            present.update(columns[place])
        return list(zip(*columns))


_TEXT_OR_NULL = frozenset({str, type(None)})


def _converted_column(convert, column, converted: dict) -> list:
    """Every value of `column` converted. A column of text (and NULLs) repeats itself (timestamps
    shared by a row's created, started and updated columns, NULLs), so each distinct value is
    converted once per batch and looked up for the rest, in C. Only text: as dictionary keys 1,
    1.0 and True are one key, and a conversion may tell them apart."""
    if not set(map(type, column)) <= _TEXT_OR_NULL:
        return list(map(convert, column))
    known = converted.setdefault(convert, {})
    for value in set(column).difference(known):
        known[value] = convert(value)
    return list(map(known.__getitem__, column))


def _parent_batch_check(keys: _KeyBook, fk, place: int):
    """columns -> are all of the batch's references to `fk.parent` present and accepted?"""
    present = keys.present[fk.parent, fk.parent_columns]
    rejected = keys.rejected[fk.parent, fk.parent_columns]

    def check(columns) -> bool:
        references = set(columns[place])
        references.discard(None)
        return not (rejected and not rejected.isdisjoint(references)) and present.contains_all(references)

    return check


def _parent_check(keys: _KeyBook, fk, position: dict):
    """values -> None, or (reason, detail) for the row's reference to another table. A single
    integer key is looked up in the parent's bitmap directly: this runs for every row and key."""
    reference_of = _key_getter(fk.columns, position)
    if reference_of is None:
        return lambda values: None  # the reference is not written: always NULL in the target
    if len(fk.columns) != 1:
        return lambda values: keys.parent_problem(fk, reference_of(values))
    place = position[fk.columns[0]]
    present = keys.present[fk.parent, fk.parent_columns]
    rejected = keys.rejected[fk.parent, fk.parent_columns]
    bits, others, limit = present._bits, present._others, len(present._bits) * 8  # the parent is complete

    def check(values):
        value = values[place]
        if value is None:
            return None
        if not (rejected and value in rejected):
            if type(value) is int and 0 <= value < limit:
                if bits[value >> 3] & (1 << (value & 7)):
                    return None
            elif value in others:
                return None
        return keys.parent_problem(fk, value)

    return check


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
