"""Plain documents built from core results, shared by the API, the pages and the CLI."""
from __future__ import annotations

from dataclasses import dataclass

from app.core.snapshots import Inspection
from app.core.workspace import Environment


def environment_document(env: Environment, inspection: Inspection) -> dict:
    doc = env.to_dict()
    if inspection.ok:
        snapshot = inspection.snapshot
        doc.update(
            status=_status(inspection),
            facts=snapshot.facts.to_dict(),
            row_counts=snapshot.row_counts(),
            **({"estimated_row_counts": snapshot.estimated_tables()} if snapshot.engine != "sqlite" else {}),
            fingerprint=snapshot.schema.fingerprint(),
            unreadable=snapshot.schema.unreadable_tables(),
            inspected_at=snapshot.inspected_at,
            error=None,
        )
    else:
        doc.update(status="unavailable", error=inspection.error.to_dict())
    return doc


def _status(inspection: Inspection) -> str:
    if inspection.checks_pending:
        return "checking"
    if inspection.checks_not_run:
        return "not_checked"
    return "ok" if inspection.snapshot.integrity_ok() else "problem"


def comparison_document(comparison) -> dict:
    return {
        "left": comparison.left,
        "right": comparison.right,
        "summary": comparison.summary.to_dict() if comparison.summary else None,
        "differences": [d.to_dict() for d in comparison.differences or []],
        "unreadable": unreadable_notices(comparison),
        "checks": check_notices(comparison),
    }


def check_notices(comparison) -> list[dict]:
    """Each side's whole-file checks: "done" with their results, "pending" (running in the
    background; null results, as on the dashboard) or "not_run" (not asked for)."""
    notices = []
    for side, inspection in ((comparison.left, comparison.left_inspection),
                             (comparison.right, comparison.right_inspection)):
        if inspection.ok:
            facts = inspection.snapshot.facts
            notices.append({"environment": side, "state": inspection.checks_state,
                            "quick_check": getattr(facts, "quick_check", None),
                            "foreign_key_violations": getattr(facts, "foreign_key_violations", None)})
    return notices


def unreadable_notices(comparison) -> list[dict]:
    """Tables either side cannot read (see Schema.unreadable_tables), each naming its side.

    The diff compares their definitions only: what they hold cannot be seen here.
    """
    notices = []
    for side, inspection in ((comparison.left, comparison.left_inspection),
                             (comparison.right, comparison.right_inspection)):
        if inspection.ok:
            notices += [{"environment": side, **notice}
                        for notice in inspection.snapshot.schema.unreadable_tables()]
    return notices


@dataclass(frozen=True)
class PairRow:
    """One column or index as it stands on each side, with the difference if there is one."""

    name: str
    left: object | None
    right: object | None
    difference: dict | None


@dataclass(frozen=True)
class TableView:
    name: str
    left: object | None
    right: object | None
    table_differences: list
    columns: list
    indexes: list

    @property
    def state(self) -> str:
        if self.left is None:
            return "only_right"
        if self.right is None:
            return "only_left"
        if self.table_differences or any(r.difference for r in self.columns + self.indexes):
            return "changed"
        return "same"

    @property
    def difference_count(self) -> int:
        return len(self.table_differences) + sum(1 for r in self.columns + self.indexes if r.difference)


def _by_key(differences: list[dict]) -> dict:
    return {(d["object"], (d["table"] or "").lower(), d["name"].lower()): d for d in differences}


def _pair_rows(kind: str, table: str, left: list, right: list, lookup: dict) -> list[PairRow]:
    left_by = {item.name.lower(): item for item in left}
    right_by = {item.name.lower(): item for item in right}
    order = [item.name for item in left] + [item.name for item in right if item.name.lower() not in left_by]
    return [
        PairRow(name, left_by.get(name.lower()), right_by.get(name.lower()), lookup.get((kind, table.lower(), name.lower())))
        for name in order
    ]


def _visible_indexes(table) -> list:
    # Automatic indexes back UNIQUE/PRIMARY KEY constraints and are shown with the columns.
    return [index for index in (table.indexes if table else ()) if not index.name.startswith("sqlite_autoindex_")]


def table_views(comparison) -> list[TableView]:
    """Every table of either side, aligned column by column and index by index."""
    left_schema = comparison.left_inspection.snapshot.schema
    right_schema = comparison.right_inspection.snapshot.schema
    lookup = _by_key([d.to_dict() for d in comparison.differences])
    names = sorted({t.name.lower(): t.name for t in left_schema.tables + right_schema.tables}.values(), key=str.lower)
    views = []
    for name in names:
        left, right = left_schema.table(name), right_schema.table(name)
        table_diffs = [d for d in lookup.values() if d["object"] == "table" and d["name"].lower() == name.lower()]
        both = left is not None and right is not None
        views.append(TableView(
            name, left, right, table_diffs,
            _pair_rows("column", name, list(left.columns), list(right.columns), lookup) if both else [],
            _pair_rows("index", name, _visible_indexes(left), _visible_indexes(right), lookup) if both else [],
        ))
    return views


# --------------------------------------------------------------------------- differences, grouped

# How each kind of object is added where only the reference has it.
_ADDED_BY = {"table": "CREATE TABLE", "column": "ALTER TABLE … ADD COLUMN", "index": "CREATE INDEX",
             "trigger": "CREATE TRIGGER", "view": "CREATE VIEW", "sequence": "CREATE SEQUENCE",
             "enum": "CREATE TYPE", "extension": "CREATE EXTENSION", "constraint": "ALTER TABLE … ADD CONSTRAINT"}
_HOLDS_ROWS = ("table", "column")
_PLURALS = {"index": "indexes"}


def plural(noun: str, count: int) -> str:
    return noun if count == 1 else _PLURALS.get(noun, noun + "s")


def kind_meaning(kind: str, fix: str, left: str, right: str) -> str:
    """What every difference of one object kind and one fix has in common, said once."""
    rows = kind in _HOLDS_ROWS
    if fix == "additive":
        return (f"{left} has them and {right} lacks them: {_ADDED_BY.get(kind, 'a CREATE statement')} adds them; "
                f"nothing already in {right} is changed or at risk.")
    if fix == "rebuild":
        return ("They cannot be changed in place: the table is rebuilt (or rewritten under a lock), which is where "
                "rows get lost if it is done carelessly. Each one says why." if rows else
                "Defined differently: each is dropped and created again (or built under a lock); no table data is "
                "lost. Each one says how they differ.")
    return (f"{right} has them and {left} does not: only dropping them removes them"
            + (", and their data with them." if rows else "; no table data is lost."))


@dataclass(frozen=True)
class KindCount:
    """How many differences of one object kind need one fix."""

    object: str
    fix: str
    count: int

    @property
    def label(self) -> str:
        return f"{self.count} {plural(self.object, self.count)}"


def _kind_counts(differences: list[dict]) -> list[KindCount]:
    counts: dict[tuple[str, str], int] = {}
    for d in differences:
        counts[(d["object"], d["fix"])] = counts.get((d["object"], d["fix"]), 0) + 1
    return [KindCount(kind, fix, n) for (kind, fix), n in counts.items()]


@dataclass(frozen=True)
class KindGroup:
    """One kind of difference, explained once for all of its members."""

    kind: KindCount
    meaning: str


def difference_kinds(comparison) -> list[KindGroup]:
    """Each (object kind, fix) present, counted, with what it means; the riskiest last."""
    kinds = _kind_counts([d.to_dict() for d in comparison.differences or []])
    order = {"additive": 0, "rebuild": 1, "destructive": 2}
    return [KindGroup(k, kind_meaning(k.object, k.fix, comparison.left, comparison.right))
            for k in sorted(kinds, key=lambda k: (order.get(k.fix, 3), k.object))]


@dataclass(frozen=True)
class TableGroup:
    """Every difference of one table (or of no table: views and other free-standing objects)."""

    table: str | None
    differences: list[dict]

    @property
    def kinds(self) -> list[KindCount]:
        return _kind_counts(self.differences)


def differences_by_table(comparison) -> list[TableGroup]:
    """The differences in the diff's own order, gathered by the table they belong to."""
    groups: dict[str | None, list[dict]] = {}
    for d in comparison.differences or []:
        groups.setdefault(d.table.lower() if d.table else None, []).append(d.to_dict())
    return [TableGroup(items[0]["table"], items) for items in groups.values()]


# --------------------------------------------------------------------------- an environment's badge


@dataclass(frozen=True)
class Condition:
    """The environment card's badge: what matters most about it, in a few words."""

    tone: str  # "good" | "warn" | "bad" | "checking"
    text: str


def environment_condition(doc: dict, inspection: Inspection, differences: int | None) -> Condition:
    """"healthy" only when integrity is ok, no row is orphaned and the schema matches the
    reference; otherwise what is wrong ("2 orphans · drifted"). `differences` counts those from
    the reference (None: not compared, as for the reference itself)."""
    if doc["status"] == "unavailable":
        return Condition("bad", "unavailable")
    if doc["status"] == "problem":
        return Condition("bad", "integrity problem")
    if doc["status"] == "checking":
        return Condition("checking", "checking…")
    orphans = getattr(inspection.snapshot.facts, "foreign_key_violations", 0) or 0  # none on PostgreSQL yet
    worries = ([f"{orphans} {plural('orphan', orphans)}"] if orphans else []) + (["drifted"] if differences else [])
    return Condition("warn", " · ".join(worries)) if worries else Condition("good", "healthy")
