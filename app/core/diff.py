"""Compare two schemas and say, for every difference, what it would take to remove it.

The left schema is the reference (normally development, fully migrated); each
Difference says what would bring the RIGHT side (normally production) to match it:

- "additive": a plain CREATE or ALTER TABLE ... ADD COLUMN on the right; no data at risk;
- "rebuild": SQLite cannot alter it in place; the table (or index, trigger, view) must be
  re-created, which is where data gets lost if done carelessly;
- "destructive": the right side has something extra; only dropping it removes it.

Column order is deliberately not compared: ADD COLUMN appends, so two databases that
received the same migrations in a different order are equally fine.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.schema import Column, Index, Schema, Table
from app.core.sql import (
    ascii_lower,
    normalise_default,
    parenthesised_group,
    significant_tokens,
)

CHANGES = ("only_left", "only_right", "changed")
FIXES = ("additive", "rebuild", "destructive")


@dataclass(frozen=True)
class Difference:
    object: str  # "table" | "column" | "index" | "trigger" | "view"
    table: str | None  # the table it belongs to (a table row names itself; views: None)
    name: str
    change: str  # "only_left" | "only_right" | "changed"
    fix: str  # "additive" | "rebuild" | "destructive"
    left: dict | None
    right: dict | None
    explanation: str

    def to_dict(self) -> dict:
        return {
            "object": self.object,
            "table": self.table,
            "name": self.name,
            "change": self.change,
            "fix": self.fix,
            "left": self.left,
            "right": self.right,
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class DriftSummary:
    total: int
    by_fix: dict[str, int]
    by_change: dict[str, int]
    status: str  # "in_sync" | "behind" | "ahead" | "diverged"

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "total": self.total,
            "by_fix": dict(self.by_fix),
            "by_change": dict(self.by_change),
        }


def _difference(
    kind, table, name, change, fix, explanation, *, left=None, right=None
) -> Difference:
    """A Difference carrying the plain data of the object on each side."""
    left_data = left.to_dict() if left is not None else None
    right_data = right.to_dict() if right is not None else None
    return Difference(kind, table, name, change, fix, left_data, right_data, explanation)


def summarise_drift(differences: list[Difference]) -> DriftSummary:
    by_fix = {fix: sum(d.fix == fix for d in differences) for fix in FIXES}
    by_change = {change: sum(d.change == change for d in differences) for change in CHANGES}
    return DriftSummary(len(differences), by_fix, by_change, _status(by_change))


def _status(by_change: dict[str, int]) -> str:
    if not any(by_change.values()):
        return "in_sync"
    if by_change["changed"] or (by_change["only_left"] and by_change["only_right"]):
        return "diverged"
    return "behind" if by_change["only_left"] else "ahead"


@dataclass(frozen=True)
class _Sides:
    """Both schemas and how to name them in explanations."""

    left: Schema
    right: Schema
    left_label: str
    right_label: str


def diff_schemas(
    left: Schema, right: Schema, *, left_label: str = "left", right_label: str = "right"
) -> list[Difference]:
    """Every difference between `left` (the reference) and `right`, in a stable order:
    tables by name (the table row, then its columns, then its indexes), then triggers,
    then views."""
    sides = _Sides(left, right, left_label, right_label)
    differences: list[Difference] = []
    for name in _names(left.tables, right.tables):
        differences += _diff_table(sides, left.table(name), right.table(name))
    differences += _diff_triggers(sides)
    differences += _diff_views(sides)
    return differences


def _names(left_objects, right_objects) -> list[str]:
    """Names on either side, once each (case-insensitively), sorted; sqlite_* excluded."""
    names: dict[str, str] = {}
    for item in (*left_objects, *right_objects):
        names.setdefault(ascii_lower(item.name), item.name)
    return [names[key] for key in sorted(names) if not key.startswith("sqlite_")]


# --- tables ---------------------------------------------------------------------------


def _diff_table(sides: _Sides, left: Table | None, right: Table | None) -> list[Difference]:
    if right is None:
        return [_table_only_left(sides, left)]
    if left is None:
        return [_table_only_right(sides, right)]
    differences = []
    facts = _table_fact_changes(sides, left, right)
    if facts:
        differences.append(_table_changed(sides, left, right, facts))
    differences += _diff_columns(sides, left, right)
    differences += _diff_indexes(sides, left, right)
    return differences


def _table_only_left(sides: _Sides, table: Table) -> Difference:
    extras = _count_phrase(
        [i for i in table.indexes if not i.is_automatic], "index", "indexes"
    ) + _count_phrase(_triggers_on(sides.left, table.name), "trigger", "triggers")
    along = f", followed by its {' and '.join(extras)}" if extras else ""
    explanation = (
        f"Table {table.name} exists in {sides.left_label} but not in {sides.right_label}; "
        f"CREATE TABLE can add it{along}."
    )
    return _difference(
        "table", table.name, table.name, "only_left", "additive", explanation, left=table
    )


def _table_only_right(sides: _Sides, table: Table) -> Difference:
    rows = "" if table.row_count is None else f", and with it its {table.row_count:,} rows"
    explanation = (
        f"Table {table.name} exists in {sides.right_label} but not in {sides.left_label}; "
        f"only DROP TABLE would remove it{rows}."
    )
    return _difference(
        "table", table.name, table.name, "only_right", "destructive", explanation, right=table
    )


def _count_phrase(objects: list, singular: str, plural: str) -> list[str]:
    if not objects:
        return []
    return [f"{len(objects)} {singular if len(objects) == 1 else plural}"]


def _triggers_on(schema: Schema, table: str) -> list:
    return [t for t in schema.triggers if ascii_lower(t.table) == ascii_lower(table)]


_TABLE_FLAGS = (
    ("strict", "it is STRICT"),
    ("without_rowid", "it is WITHOUT ROWID"),
    ("autoincrement", "it uses AUTOINCREMENT"),
)


def _table_fact_changes(sides: _Sides, left: Table, right: Table) -> list[str]:
    ours, theirs = sides.left.table_facts(left), sides.right.table_facts(right)
    phrases = []
    for fact, label in _TABLE_FLAGS:
        if ours[fact] != theirs[fact]:
            has, lacks = _labels(sides, ours[fact])
            phrases.append(f"{label} in {has} but not in {lacks}")
    if ours["constraints"] != theirs["constraints"]:
        what = "CHECK/UNIQUE constraints"
        phrases.append(_compare_lists(what, sides, ours, theirs, "constraints"))
    if ours["composite_foreign_keys"] != theirs["composite_foreign_keys"]:
        ours_fk = {"fk": [_describe_fk(key) for key in ours["composite_foreign_keys"]]}
        theirs_fk = {"fk": [_describe_fk(key) for key in theirs["composite_foreign_keys"]]}
        phrases.append(_compare_lists("multi-column foreign keys", sides, ours_fk, theirs_fk, "fk"))
    if ours["virtual"] != theirs["virtual"]:
        phrases.append(
            f"its virtual-table definition differs ({ours['virtual']} vs {theirs['virtual']})"
        )
    if left.primary_key_conflict != right.primary_key_conflict:
        phrases.append(_versus(
            "PRIMARY KEY conflict resolution", _conflict(left.primary_key_conflict),
            _conflict(right.primary_key_conflict), sides))
    if _alias_changes(left, right):
        phrases.append(_rowid_alias_phrase(sides, left, right))
    return phrases


def _conflict(action: str | None) -> str:
    return f"ON CONFLICT {action}" if action else "the default (ABORT)"


def _alias_changes(left: Table, right: Table) -> bool:
    """The same INTEGER key is the rowid on one side only (INTEGER PRIMARY KEY DESC).

    A key whose declared type differs too is explained with the column's type instead.
    """
    if (left.rowid_alias() is None) == (right.rowid_alias() is None):
        return False
    return left.integer_key_without_alias() or right.integer_key_without_alias()


def _rowid_alias_phrase(sides: _Sides, left: Table, right: Table) -> str:
    has, lacks = _labels(sides, left.rowid_alias() is not None)
    column = left.rowid_alias() or right.rowid_alias()
    return (
        f"its key {column} is the rowid in {has} but not in {lacks} (written INTEGER "
        "PRIMARY KEY DESC there, which SQLite keeps as an ordinary column with an index of "
        "its own: it accepts values that are not integers and is not renumbered like a rowid)"
    )


def _labels(sides: _Sides, left_has_it: bool) -> tuple[str, str]:
    pair = (sides.left_label, sides.right_label)
    return pair if left_has_it else pair[::-1]


def _compare_lists(what: str, sides: _Sides, ours: dict, theirs: dict, key: str) -> str:
    def listed(values) -> str:
        return ", ".join(values) or "none"

    return (
        f"its {what} differ ({sides.left_label}: {listed(ours[key])}; "
        f"{sides.right_label}: {listed(theirs[key])})"
    )


def _describe_fk(key: tuple) -> str:
    columns, parent, to, *_ = key
    target = ", ".join(name or "?" for name in to)
    return f"({', '.join(columns)}) REFERENCES {parent}({target}){_fk_tail(key[3:])}"


def _fk_tail(facts: tuple) -> str:
    """ON UPDATE / ON DELETE (when not NO ACTION) and deferral of a foreign key's facts."""
    on_update, on_delete, _match, *rest = facts
    tail = "".join(
        f" ON {verb} {action}"
        for verb, action in (("UPDATE", on_update), ("DELETE", on_delete))
        if action != "NO ACTION"
    )
    return tail + (f" {rest[0]} (checked at COMMIT)" if rest else "")


def _table_changed(sides: _Sides, left: Table, right: Table, phrases: list[str]) -> Difference:
    explanation = (
        f"Table {left.name} differs between {sides.left_label} and {sides.right_label}: "
        f"{'; '.join(phrases)}; SQLite can only change this by rebuilding the table."
    )
    return _difference(
        "table", left.name, left.name, "changed", "rebuild", explanation, left=left, right=right
    )


# --- columns --------------------------------------------------------------------------


def _diff_columns(sides: _Sides, left: Table, right: Table) -> list[Difference]:
    differences = []
    for name in _ordered_column_names(left, right):
        ours, theirs = left.column(name), right.column(name)
        if theirs is None:
            differences.append(_column_only_left(sides, left, ours))
        elif ours is None:
            differences.append(_column_only_right(sides, right, theirs))
        else:
            phrases = _column_changes(sides, left, right, ours, theirs)
            if phrases:
                differences.append(_column_changed(sides, left, ours, theirs, phrases))
    return differences


def _ordered_column_names(left: Table, right: Table) -> list[str]:
    """Left's columns in left's order, then right-only columns in right's order."""
    names = [c.name for c in left.columns]
    return names + [c.name for c in right.columns if left.column(c.name) is None]


def _column_only_left(sides: _Sides, table: Table, column: Column) -> Difference:
    where = (
        f"Column {table.name}.{column.name} exists in {sides.left_label} "
        f"but not in {sides.right_label}"
    )
    obstacles = add_column_obstacles(table, column)
    if obstacles:
        fix = "rebuild"
        explanation = (
            f"{where}; ALTER TABLE ... ADD COLUMN cannot add it because {' and '.join(obstacles)}, "
            "so the table must be rebuilt."
        )
    else:
        fix, explanation = "additive", f"{where}; ALTER TABLE ... ADD COLUMN can add it."
    return _difference(
        "column", table.name, column.name, "only_left", fix, explanation, left=column
    )


def add_column_obstacles(table: Table, column: Column) -> list[str]:
    """Why ALTER TABLE ADD COLUMN cannot add `column`.

    See https://www.sqlite.org/lang_altertable.html. SQLite 3.37+ refuses some of these
    only when the table has rows; production tables do, so they are always obstacles.
    """
    obstacles = []
    if column.pk:
        obstacles.append("it is part of the PRIMARY KEY")
    if _has_unique_constraint(table, column):
        obstacles.append("it has a UNIQUE constraint")
    default = normalise_default(column.default)
    if column.not_null and default in (None, "NULL") and column.hidden not in ("virtual", "stored"):
        obstacles.append("it is NOT NULL without a non-NULL default")
    if default is not None and not _is_constant_default(default):
        obstacles.append(f"its default {column.default} is not a constant")
    if column.hidden == "stored":
        obstacles.append("it is a STORED generated column")
    return obstacles


def _has_unique_constraint(table: Table, column: Column) -> bool:
    wanted = ascii_lower(column.name)
    return any(
        index.origin == "u"
        and len(index.columns) == 1
        and ascii_lower(index.columns[0].name or "") == wanted
        for index in table.indexes
    )


def _is_constant_default(default: str) -> bool:
    """What ADD COLUMN accepts: a literal, a signed number or CAST(literal AS type).

    CURRENT_TIMESTAMP and expressions are refused. PRAGMA table_xinfo reports
    DEFAULT (expr) without its brackets, so an expression shows as several tokens.
    """
    tokens = significant_tokens(default)
    while len(tokens) > 2 and tokens[0].kind == "lparen" and tokens[-1].kind == "rparen":
        tokens = tokens[1:-1]
    if len(tokens) > 2 and tokens[0].is_word("CAST") and tokens[1].kind == "lparen":
        inner, _ = parenthesised_group(tokens, 1)
        as_at = next((i for i, token in enumerate(inner) if token.is_word("AS")), len(inner))
        tokens = inner[:as_at]
    return _is_literal(tokens)


def _is_literal(tokens) -> bool:
    if len(tokens) == 2:
        return tokens[0].text in ("-", "+") and tokens[1].kind == "number"
    if len(tokens) != 1:
        return False
    if tokens[0].kind in ("string", "number", "blob", "quoted"):
        return True
    # NULL, TRUE, FALSE, or a bare word SQLite takes as a string.
    return tokens[0].kind == "word" and not tokens[0].is_word(
        "CURRENT_TIME", "CURRENT_DATE", "CURRENT_TIMESTAMP"
    )


def _column_only_right(sides: _Sides, table: Table, column: Column) -> Difference:
    explanation = (
        f"Column {table.name}.{column.name} exists in {sides.right_label} but not in "
        f"{sides.left_label}; only dropping it (ALTER TABLE ... DROP COLUMN or a rebuild) "
        "removes it, and its values with it."
    )
    return _difference(
        "column", table.name, column.name, "only_right", "destructive", explanation, right=column
    )


def _column_changed(sides, table: Table, ours: Column, theirs: Column, phrases) -> Difference:
    explanation = (
        f"Column {table.name}.{ours.name} differs between {sides.left_label} and "
        f"{sides.right_label}: {'; '.join(phrases)}; SQLite cannot change a column in place, "
        "so the table must be rebuilt."
    )
    return _difference(
        "column", table.name, ours.name, "changed", "rebuild", explanation, left=ours, right=theirs
    )


def _column_changes(
    sides: _Sides, left: Table, right: Table, ours: Column, theirs: Column
) -> list[str]:
    """One phrase per way the two columns differ; empty when they are equivalent."""
    a, b = ours.comparable(), theirs.comparable()
    a["references"] = sides.left.column_references(left).get(ascii_lower(ours.name), ())
    b["references"] = sides.right.column_references(right).get(ascii_lower(theirs.name), ())
    phrases = []
    if a["type"] != b["type"]:
        phrases.append(_type_phrase(ours.type, theirs.type, _is_alias(left, ours), _is_alias(right, theirs)))
    if a["not_null"] != b["not_null"]:
        has, lacks = _labels(sides, a["not_null"])
        phrases.append(f"NOT NULL in {has} but not in {lacks}")
    elif a.get("not_null_conflict") != b.get("not_null_conflict"):
        phrases.append(_versus("NOT NULL conflict resolution", _conflict(ours.not_null_conflict),
                               _conflict(theirs.not_null_conflict), sides))
    if a["default"] != b["default"]:
        phrases.append(_versus("default", ours.default or "none", theirs.default or "none", sides))
    if a["pk"] != b["pk"]:
        phrases.append(_versus("primary-key position", _pk(ours.pk), _pk(theirs.pk), sides))
    if (a["hidden"], a["generated"]) != (b["hidden"], b["generated"]):
        phrases.append(_versus("kind", _kind(ours), _kind(theirs), sides))
    if a["collation"] != b["collation"]:
        phrases.append(_versus("collation", a["collation"], b["collation"], sides))
    if a["references"] != b["references"]:
        ours_refs, theirs_refs = _references(a["references"]), _references(b["references"])
        phrases.append(_versus("foreign key", ours_refs, theirs_refs, sides))
    return phrases


def _versus(what: str, ours: str, theirs: str, sides: _Sides) -> str:
    return f"{what} {ours} in {sides.left_label} vs {theirs} in {sides.right_label}"


def _pk(position: int) -> str:
    return str(position) if position else "none"


def _kind(column: Column) -> str:
    if column.hidden in ("virtual", "stored"):
        return f"{column.hidden.upper()} generated AS ({column.generated or '?'})"
    return "hidden" if column.hidden == "hidden" else "ordinary"


def _references(keys: tuple) -> str:
    if not keys:
        return "none"
    return ", ".join(
        f"{parent}({', '.join(t or '?' for t in to)}) ON UPDATE {on_update} ON DELETE {on_delete}"
        + (f" {rest[0]} (checked at COMMIT)" if rest else "")
        for parent, to, on_update, on_delete, _match, *rest in keys
    )


def _is_alias(table: Table, column: Column) -> bool:
    alias = table.rowid_alias()
    return alias is not None and ascii_lower(alias) == ascii_lower(column.name)


def _type_phrase(ours: str, theirs: str, ours_alias: bool = False, theirs_alias: bool = False) -> str:
    shown = f"{ours or '(no type)'} vs {theirs or '(no type)'}"
    left_affinity, right_affinity = type_affinity(ours), type_affinity(theirs)
    if ours_alias != theirs_alias:
        which = ours if ours_alias else theirs
        return (
            f"{shown}: only {which} PRIMARY KEY makes the column an alias of the rowid "
            "(integers only; an INSERT of NULL gets the next number); the other is an ordinary "
            "column with a unique index of its own, which keeps NULL and non-integer values "
            "as given and numbers nothing"
        )
    if left_affinity == right_affinity:
        return (
            f"{shown}: different declared type, same {left_affinity} affinity; "
            "stored values behave the same"
        )
    return (
        f"{shown}: different type affinity ({left_affinity} vs {right_affinity}); "
        "stored values may be converted differently"
    )


def type_affinity(declared_type: str) -> str:
    """SQLite's column affinity for a declared type.

    The five rules of https://www.sqlite.org/datatype3.html §3.1, applied in order.
    """
    upper = declared_type.upper()
    if "INT" in upper:
        return "INTEGER"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in upper or not upper.strip():
        return "BLOB"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


# --- indexes, triggers, views -----------------------------------------------------------


def _diff_indexes(sides: _Sides, left: Table, right: Table) -> list[Difference]:
    # Automatic indexes follow UNIQUE / PRIMARY KEY constraints, compared with the table.
    ours = [i for i in left.indexes if not i.is_automatic]
    theirs = [i for i in right.indexes if not i.is_automatic]
    differences = []
    for name in _names(ours, theirs):
        a, b = _find(ours, name), _find(theirs, name)
        if b is None:
            differences.append(_index_only_left(sides, a))
        elif a is None:
            differences.append(_index_only_right(sides, b))
        elif a.comparable() != b.comparable():
            differences.append(_index_changed(sides, a, b))
    return differences


def _find(objects, name: str):
    return next((o for o in objects if ascii_lower(o.name) == ascii_lower(name)), None)


def _index_only_left(sides: _Sides, index: Index) -> Difference:
    caveat = (
        f" (it is UNIQUE: duplicate values already in {sides.right_label} would make it fail)"
        if index.unique
        else ""
    )
    explanation = (
        f"Index {index.name} on {index.table} exists in {sides.left_label} but not in "
        f"{sides.right_label}; CREATE INDEX can add it{caveat}."
    )
    return _difference(
        "index", index.table, index.name, "only_left", "additive", explanation, left=index
    )


def _index_only_right(sides: _Sides, index: Index) -> Difference:
    explanation = (
        f"Index {index.name} on {index.table} exists in {sides.right_label} but not in "
        f"{sides.left_label}; only DROP INDEX removes it (no table data is lost)."
    )
    return _difference(
        "index", index.table, index.name, "only_right", "destructive", explanation, right=index
    )


def _index_changed(sides: _Sides, ours: Index, theirs: Index) -> Difference:
    explanation = (
        f"Index {ours.name} on {ours.table} differs between {sides.left_label} and "
        f"{sides.right_label}: {'; '.join(_index_changes(sides, ours, theirs))}; drop and "
        "re-create the index; no table data is lost."
    )
    return _difference(
        "index", ours.table, ours.name, "changed", "rebuild", explanation, left=ours, right=theirs
    )


def _index_changes(sides: _Sides, ours: Index, theirs: Index) -> list[str]:
    a, b = ours.comparable(), theirs.comparable()
    phrases = []
    if a["table"] != b["table"]:
        phrases.append(_versus("table", ours.table, theirs.table, sides))
    if a["columns"] != b["columns"]:
        phrases.append(_versus("columns", _index_terms(ours), _index_terms(theirs), sides))
    if a["unique"] != b["unique"]:
        has, lacks = _labels(sides, a["unique"])
        phrases.append(f"UNIQUE in {has} but not in {lacks}")
    if a["where"] != b["where"]:
        phrases.append(_versus("WHERE", a["where"] or "none", b["where"] or "none", sides))
    return phrases


def _index_terms(index: Index) -> str:
    terms = []
    for column in index.columns:
        term = column.name if column.name is not None else (column.expression or "?")
        term += "" if column.collation.upper() == "BINARY" else f" COLLATE {column.collation}"
        terms.append(term + (" DESC" if column.desc else ""))
    return f"({', '.join(terms)})"


def _diff_triggers(sides: _Sides) -> list[Difference]:
    differences = []
    for name in _names(sides.left.triggers, sides.right.triggers):
        ours, theirs = sides.left.trigger(name), sides.right.trigger(name)
        if theirs is None and _has_target(sides.right, ours.table):
            differences.append(_simple(sides, "trigger", ours, None, ours.table))
        elif ours is None and _has_target(sides.left, theirs.table):
            differences.append(_simple(sides, "trigger", None, theirs, theirs.table))
        elif ours and theirs and _differ(sides, ours, theirs):
            differences.append(_simple(sides, "trigger", ours, theirs, ours.table))
    return differences


def _has_target(schema: Schema, name: str) -> bool:
    """A trigger's table (or view) is there; if not, the table's own row covers it."""
    return schema.table(name) is not None or schema.view(name) is not None


def _diff_views(sides: _Sides) -> list[Difference]:
    differences = []
    for name in _names(sides.left.views, sides.right.views):
        ours, theirs = sides.left.view(name), sides.right.view(name)
        if ours is None or theirs is None or _differ(sides, ours, theirs):
            differences.append(_simple(sides, "view", ours, theirs, None))
    return differences


def _differ(sides: _Sides, ours, theirs) -> bool:
    """A view or trigger differs; each side's "x" tokens are read against its own names."""
    return ours.comparable(sides.left.names()) != theirs.comparable(sides.right.names())


def _simple(sides: _Sides, kind: str, ours, theirs, table: str | None) -> Difference:
    """A trigger or view: created, dropped or re-created whole; never holds data."""
    name = (ours or theirs).name
    statement = "CREATE TRIGGER" if kind == "trigger" else "CREATE VIEW"
    drop = "DROP TRIGGER" if kind == "trigger" else "DROP VIEW"
    if theirs is None:
        change, fix = "only_left", "additive"
        explanation = (
            f"{kind.capitalize()} {name} exists in {sides.left_label} but not in "
            f"{sides.right_label}; {statement} can add it."
        )
    elif ours is None:
        change, fix = "only_right", "destructive"
        explanation = (
            f"{kind.capitalize()} {name} exists in {sides.right_label} but not in "
            f"{sides.left_label}; only {drop} removes it (no table data is lost)."
        )
    else:
        change, fix = "changed", "rebuild"
        explanation = (
            f"{kind.capitalize()} {name} is defined differently in {sides.left_label} and "
            f"{sides.right_label}; drop and re-create the {kind}; no table data is lost."
        )
    left = ours.to_dict() if ours else None
    right = theirs.to_dict() if theirs else None
    return Difference(kind, table, name, change, fix, left, right, explanation)
