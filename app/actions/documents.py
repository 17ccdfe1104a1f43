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
    return "ok" if inspection.snapshot.integrity_ok() else "problem"


def comparison_document(comparison) -> dict:
    return {
        "left": comparison.left,
        "right": comparison.right,
        "summary": comparison.summary.to_dict() if comparison.summary else None,
        "differences": [d.to_dict() for d in comparison.differences or []],
        "unreadable": unreadable_notices(comparison),
    }


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
