"""The prep plan: additive statements that bring a drifted target up to the reference.

Production had drifted from development (no activity_groups, no
activity_definitions.group_id), so the migration, written against development, failed
half-way. The prep plan closes that gap first, in the ordinary plan format so it is
reviewed, saved, rehearsed and run like any other plan:

- CREATE TABLE for tables only the reference has (the reference's own stored SQL), then
  ADD COLUMN for columns only the reference has (its declared type, NOT NULL, default,
  collation, CHECK and REFERENCES), then CREATE INDEX (the reference's SQL);
- nothing destructive, ever: differences that need a rebuild or a DROP, and columns
  ADD COLUMN cannot add, are listed as comments for a human to decide;
- what the migration plan set creates itself is left to it, so that the migration's
  log still shows its own work;
- every statement is tried on a copy of the target's schema first; one that would fail
  becomes a comment saying why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.core.diff import Difference
from app.core.engines import Dialect, Engine
from app.core.errors import UsageError, said_by
from app.core.fsutil import write_file_atomically
from app.core.plans import Plan, PlanSet, parse_plan_text
from app.core.reconcile import rows_from_schema, schema_copy
from app.core.schema import Column, Schema, Table
from app.core.sql import ascii_lower

PHASES = (("sequence", "Prep: sequences"), ("table", "Prep: tables"), ("column", "Prep: columns"), ("constraint", "Prep: constraints"),
          ("index", "Prep: indexes"))


@dataclass(frozen=True)
class PrepItem:
    kind: str  # "sequence" | "table" | "column" | "constraint" | "index"
    table: str
    name: str
    sql: str  # one complete statement, ending with ';'
    reason: str  # one line: what the reference has that the target lacks

    def to_dict(self) -> dict:
        return {"kind": self.kind, "table": self.table, "name": self.name,
                "sql": self.sql, "reason": self.reason}


@dataclass(frozen=True)
class PrepPlan:
    text: str  # the plan file, ready to save
    items: tuple[PrepItem, ...]
    not_added: tuple[str, ...]  # differences prep does not fix, and why
    left_to_plan: tuple[str, ...]  # what the migration plan set adds itself
    target_label: str
    reference_label: str
    dialect: Dialect | None = field(default=None, repr=False, compare=False)  # the target's

    @property
    def empty(self) -> bool:
        return not self.items

    def plan(self, file: str = "prep.sql") -> Plan:
        return parse_plan_text(self.text, file=file, dialect=self.dialect)

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write the plan file atomically (never a half-written plan); refuses to overwrite."""
        path = Path(path)
        try:
            write_file_atomically(path, self.text.encode("utf-8"), overwrite=overwrite, mode=0o644)
        except FileExistsError:
            raise UsageError(f"{path} already exists; Cutover never overwrites a file: "
                             "remove it or choose another path for the plan") from None
        except OSError as exc:
            raise UsageError(f"Cannot write the plan to {path}: {exc.strerror or exc}; "
                             "choose a path in a folder that exists and is writable") from None
        return path

    def to_dict(self) -> dict:
        return {
            "target": self.target_label,
            "reference": self.reference_label,
            "empty": self.empty,
            "items": [item.to_dict() for item in self.items],
            "not_added": list(self.not_added),
            "left_to_plan": list(self.left_to_plan),
            "text": self.text,
        }


def generate_prep(
    target_schema: Schema,
    reference_schema: Schema,
    *,
    engine: Engine,
    plan_set: PlanSet | None = None,
    target_label: str = "production",
    reference_label: str = "development",
) -> PrepPlan:
    """The additive statements that bring `target_schema` to `reference_schema`; `engine`
    is the target's (its dialect writes the plan, its schema scratch tries it)."""
    planned = _planned_objects(plan_set)
    differences = engine.compare(reference_schema, target_schema,
                                 left_label=reference_label, right_label=target_label)
    collector = _Collector(reference_schema, planned, target_label, reference_label, engine.dialect)
    for difference in differences:
        collector.add(difference)
    items, failed = _keep_what_works(engine, target_schema, collector.ordered_items())
    not_added = tuple(collector.not_added + failed)
    text = render_prep(items, not_added, tuple(collector.left_to_plan),
                       target_label, reference_label)
    return PrepPlan(text, tuple(items), not_added, tuple(collector.left_to_plan),
                    target_label, reference_label, engine.dialect)


def left_to_prep(differences: list[Difference], plan_set: PlanSet | None) -> list[Difference]:
    """The differences a prep plan would add a statement for: tables, columns and indexes only
    the reference has, that ADD COLUMN or CREATE can add and the plan set does not create
    itself. Without trying them on a copy: cheap enough for every view of the dashboard."""
    planned = _planned_objects(plan_set)
    wanted = []
    for d in differences:
        if d.change != "only_left" or d.fix != "additive" or d.object not in ("table", "column", "index"):
            continue
        key = ("column", ascii_lower(d.table), ascii_lower(d.name)) if d.object == "column" else \
            (d.object, ascii_lower(d.name))
        if key not in planned:
            wanted.append(d)
    return wanted


def _planned_objects(plan_set: PlanSet | None) -> set[tuple]:
    """("table", t) / ("index", i) / ("column", t, c), lower case, that the plan set creates."""
    planned: set[tuple] = set()
    for statement in plan_set.statements() if plan_set else ():
        shape = statement.shape
        if shape.verb == "create" and shape.object in ("table", "index") and shape.name:
            planned.add((shape.object, ascii_lower(shape.name)))
        elif shape.alter_action == "add_column" and shape.table and shape.name:
            planned.add(("column", ascii_lower(shape.table), ascii_lower(shape.name)))
    return planned


class _Collector:
    """Sorts each difference into an item, "left to the plan" or "not added"."""

    def __init__(self, reference: Schema, planned: set, target_label: str, reference_label: str,
                 dialect: Dialect):
        self.reference = reference
        self.dialect = dialect
        self.writer = dialect.prep_writer()
        self.planned = planned
        self.target_label = target_label
        self.reference_label = reference_label
        self.items: list[PrepItem] = []
        self.not_added: list[str] = []
        self.left_to_plan: list[str] = []

    def add(self, difference: Difference) -> None:
        additive = difference.change == "only_left" and difference.fix == "additive"
        if additive and difference.object == "table":
            self._table(self.reference.table(difference.name))
        elif additive and difference.object == "column":
            self._column(self.reference.table(difference.table), difference.name)
        elif additive and difference.object == "index":
            self._index(self.reference.table(difference.table), difference.name)
        elif additive and difference.object == "sequence":
            self._sequence(difference.name)
        elif additive and difference.object == "constraint":
            self._constraint(self.reference.table(difference.table), difference.name)
        else:
            self.not_added.append(_not_added_reason(difference))

    def _is_planned(self, kind: str, *names: str, label: str) -> bool:
        """True (and noted) when the plan set creates this object itself."""
        if (kind, *map(ascii_lower, names)) in self.planned:
            self.left_to_plan.append(label)
            return True
        return False

    def _has(self, what: str) -> str:
        return f"{self.reference_label} has {what}; {self.target_label} does not"

    def _table(self, table: Table) -> None:
        if self._is_planned("table", table.name, label=f"table {table.name}"):
            return
        sql = self.writer.table_sql(table, self._terminated)
        self.items.append(PrepItem("table", table.name, table.name, sql,
                                   self._has(f"table {table.name}")))
        for index in self.writer.table_indexes(table):
            self._index(table, index)

    def _column(self, table: Table, name: str) -> None:
        label = f"{table.name}.{name}"
        if self._is_planned("column", table.name, name, label=f"column {label}"):
            return
        sql, obstacles = self.writer.column_sql(table, name)
        if obstacles:
            self.not_added.append(
                f"column {label}: ADD COLUMN cannot add it because {' and '.join(obstacles)}; "
                "the table needs a rebuild, which prep never does")
            return
        self.items.append(PrepItem("column", table.name, name, sql, self._has(f"column {label}")))

    def _sequence(self, name: str) -> None:
        sql = self.writer.sequence_sql(self.reference, name)
        if sql is not None:  # None: a serial column's own, which its column's statement brings
            self.items.append(PrepItem("sequence", name, name, sql, self._has(f"sequence {name}")))

    def _constraint(self, table: Table, name: str) -> None:
        label = f"{table.name}.{name}"
        sql, obstacles = self.writer.constraint_sql(table, name)
        if obstacles:
            self.not_added.append(f"constraint {label}: {' and '.join(obstacles)}; prep never does")
            return
        self.items.append(PrepItem("constraint", table.name, name, sql, self._has(f"constraint {label}")))

    def _index(self, table: Table, name: str) -> None:
        name, sql = self.writer.index_sql(table, name, self._terminated)
        if self._is_planned("index", name, label=f"index {name}"):
            return
        self.items.append(PrepItem("index", table.name, name, sql, self._has(f"index {name} on {table.name}")))

    def _terminated(self, sql: str) -> str:
        return _terminated(sql, self.dialect)

    def ordered_items(self) -> list[PrepItem]:
        """Sequences, tables (parents before the tables that reference them), columns, constraints, indexes."""
        sequences = [i for i in self.items if i.kind == "sequence"]
        tables = _parents_first([i for i in self.items if i.kind == "table"], self.reference, self.writer)
        rest = [i for kind in ("column", "constraint", "index") for i in self.items if i.kind == kind]
        return sequences + tables + rest


def _not_added_reason(difference: Difference) -> str:
    name = difference.name
    if difference.object == "column":
        name = f"{difference.table}.{name}"
    label = f"{difference.object} {name}: {difference.explanation}"
    if difference.change == "only_left" and difference.object in ("trigger", "view"):
        label += " Prep only adds tables, columns and indexes; add it in a reviewed plan if needed."
    return label


def _foreign_key_obstacles(table: Table, column: Column) -> list[str]:
    name = ascii_lower(column.name)
    composite = [fk for fk in table.foreign_keys
                 if len(fk.columns) > 1 and name in map(ascii_lower, fk.columns)]
    return ["it is part of a multi-column FOREIGN KEY"] if composite else []


def _terminated(sql: str, dialect: Dialect) -> str:
    """A stored CREATE statement with its ';' (on its own line if the last line is a comment)."""
    sql = sql.rstrip()
    return sql + ";" if dialect.statement_is_complete(sql + ";") else sql + "\n;"


def _parents_first(items: list[PrepItem], reference: Schema, writer) -> list[PrepItem]:
    """Order new tables so a table comes after the new tables it references (cycles: by name)."""
    remaining = sorted(items, key=lambda item: ascii_lower(item.name))
    ordered: list[PrepItem] = []
    while remaining:
        names = {ascii_lower(item.name) for item in remaining}
        ready = [item for item in remaining
                 if not (_parents(reference, item.name, writer) & (names - {ascii_lower(item.name)}))]
        chosen = ready[0] if ready else remaining[0]
        ordered.append(chosen)
        remaining.remove(chosen)
    return ordered


def _parents(reference: Schema, table_name: str, writer) -> set[str]:
    table = reference.table(table_name)
    return writer.parents(table) if table else set()


# --------------------------------------------------------------------------- checking and text


def _keep_what_works(engine: Engine, target: Schema,
                     items: list[PrepItem]) -> tuple[list[PrepItem], list[str]]:
    """Run the items in order on a copy of the target's schema; failures become notes."""
    kept, failed = [], []
    # A server's copy is of the live schema (its catalog cannot be replayed row by row).
    copying = (engine.schema_clone(busy_timeout=1.0) if engine.clones_live_schema
               else schema_copy(engine, rows_from_schema(target)))
    with copying as (copy, _):
        for item in items:
            try:
                copy.execute(item.sql)
            except engine.Error as exc:
                said = said_by(exc)
                failed.append(f"{item.kind} {item.name}: cannot be added before the migration "
                              f"plan runs ({engine.title} says: {said})")
                continue
            kept.append(item)
    return kept, failed


def render_prep(items, not_added, left_to_plan, target_label: str, reference_label: str) -> str:
    lines = [
        f"-- Prep plan: bring {target_label}'s tables, columns and indexes up to "
        f"{reference_label}.",
        "-- Generated by Cutover. It only adds: nothing is dropped, renamed or rebuilt, and it is",
        "-- safe to run again (what already exists is skipped). Review it, rehearse it, run it",
        "-- before the migration plan.",
    ]
    lines += _comment_block("Left to the migration plan (it adds these itself):", left_to_plan)
    lines += _comment_block("Not added (decide by hand, in a reviewed plan):", not_added)
    for kind, title in PHASES:
        chosen = [item for item in items if item.kind == kind]
        if chosen:
            lines += ["", f"-- phase: {title}"]
            for item in chosen:
                lines += [f"-- {comment_safe(item.reason)}.", item.sql]
    return "\n".join(lines) + "\n"


def _comment_block(title: str, entries) -> list[str]:
    if not entries:
        return []
    return ["--", f"-- {title}"] + [f"--   {comment_safe(entry)}" for entry in entries]


# A name may contain a newline; inside a `--` comment it would end the comment and turn the
# rest of the name into a statement of the plan.
_LINE_BREAKS = {ord(c): f"\\x{ord(c):02x}" for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def comment_safe(text: str) -> str:
    """`text` on one line, line breaks shown as escapes, fit for a `--` comment."""
    return text.translate(_LINE_BREAKS)
