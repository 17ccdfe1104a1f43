"""Compare two PostgreSQL catalogs and say, for every difference, what removing it takes.

The left catalog is the reference (normally development); each Difference says what brings
the RIGHT side (normally production) to match it. The fixes mean, for PostgreSQL:

- "additive": a CREATE, an ADD COLUMN that PostgreSQL 11+ does without rewriting the table
  (nullable, or with a non-volatile default), a new enum value, a catalog-only ALTER;
- "rebuild": it needs a table rewrite, or a long scan or build under a lock that blocks
  writes (SET NOT NULL, a validated constraint, an index on a big table);
- "destructive": the right side has something extra; only dropping it removes it.

Column order is not compared (ADD COLUMN appends); the fingerprint covers it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from app.core.diff import Difference
from app.core.engines.postgresql.catalog import (
    Catalog,
    PgColumn,
    PgConstraint,
    PgIndex,
    PgTable,
    normalise_definition,
)

BIG_TABLE_ROWS = 100_000  # from here on, building an index without CONCURRENTLY is a lock risk
_SEVERITY = ("additive", "rebuild", "destructive")


@dataclass(frozen=True)
class _Sides:
    left: Catalog
    right: Catalog
    left_label: str
    right_label: str
    big_table_rows: int

    def where(self, what: str, only: str) -> str:
        """'X exists in left but not in right' (only="left") or the other way round."""
        here, there = (self.left_label, self.right_label) if only == "left" else (
            self.right_label, self.left_label)
        return f"{what} exists in {here} but not in {there}"

    def versus(self, what: str, ours, theirs) -> str:
        return f"{what} {ours} in {self.left_label} vs {theirs} in {self.right_label}"


def diff_catalogs(left: Catalog, right: Catalog, *, left_label: str = "left",
                  right_label: str = "right", big_table_rows: int = BIG_TABLE_ROWS) -> list[Difference]:
    """Every difference between `left` (the reference) and `right`, in a stable order: tables
    by name (the table, its columns, constraints, indexes), then sequences, views, materialized
    views, triggers, enums and extensions."""
    sides = _Sides(left, right, left_label, right_label, big_table_rows)
    differences = []
    for name in _names(left.tables, right.tables):
        differences += _diff_table(sides, left.table(name), right.table(name))
    for compare in (_diff_sequences, _diff_views, _diff_materialized_views, _diff_triggers,
                    _diff_enums, _diff_extensions):
        differences += compare(sides)
    return differences


def _names(ours, theirs) -> list[str]:
    return sorted({item.name for item in ours} | {item.name for item in theirs})


def _find(objects, name: str):
    return next((item for item in objects if item.name == name), None)


def _data(item) -> dict | None:
    return item.to_dict() if item is not None else None


def _difference(kind, table, name, fix, explanation, ours, theirs) -> Difference:
    change = "only_left" if theirs is None else "only_right" if ours is None else "changed"
    return Difference(kind, table, name, change, fix, _data(ours), _data(theirs), explanation)


def _worst(fixes) -> str:
    return max(fixes, key=_SEVERITY.index)


def _is_empty(table: PgTable | None) -> bool:
    return table is not None and table.row_count_exact and table.row_count == 0


def _is_big(sides: _Sides, table: PgTable | None) -> bool:
    """Unknown size counts as big: the cautious answer."""
    return table is not None and (table.row_count is None or table.row_count >= sides.big_table_rows)


def _rows(table: PgTable) -> str:
    if table.row_count is None:
        return "an unknown number of rows"
    about = "" if table.row_count_exact else "about "
    return f"{about}{table.row_count:,} row{'' if table.row_count == 1 else 's'}"


# --- tables and columns ----------------------------------------------------------------


def _diff_table(sides: _Sides, ours: PgTable | None, theirs: PgTable | None) -> list[Difference]:
    if theirs is None:
        where = sides.where(f"Table {ours.name}", "left")
        return [_difference("table", ours.name, ours.name, "additive",
                            f"{where}; CREATE TABLE can add it.", ours, None)]
    if ours is None:
        where = sides.where(f"Table {theirs.name}", "right")
        return [_difference("table", theirs.name, theirs.name, "destructive",
                            f"{where}; only DROP TABLE removes it, and its {_rows(theirs)} with it.",
                            None, theirs)]
    return [*_table_changes(sides, ours, theirs), *_diff_columns(sides, ours, theirs),
            *_diff_constraints(sides, ours, theirs),
            *_diff_indexes(sides, ours.name, ours.indexes, theirs.indexes, theirs)]


def _table_changes(sides: _Sides, ours: PgTable, theirs: PgTable) -> list[Difference]:
    phrases = []
    if ours.kind != theirs.kind:
        phrases.append(f"{sides.versus('kind', ours.kind, theirs.kind)}: no table becomes "
                       "partitioned (or stops being) in place; re-create it and copy its rows")
    if ours.persistence != theirs.persistence:
        phrases.append(f"{sides.versus('persistence', ours.persistence, theirs.persistence)}: "
                       "SET LOGGED / SET UNLOGGED rewrites it under an ACCESS EXCLUSIVE lock")
    if not phrases:
        return []
    explanation = f"Table {ours.name} ({_rows(theirs)}) differs: {'; '.join(phrases)}."
    return [_difference("table", ours.name, ours.name, "rebuild", explanation, ours, theirs)]


def _diff_columns(sides: _Sides, ours: PgTable, theirs: PgTable) -> list[Difference]:
    differences = []
    names = [c.name for c in ours.columns] + [c.name for c in theirs.columns if ours.column(c.name) is None]
    for name in names:
        a, b = ours.column(name), theirs.column(name)
        if b is None:
            differences.append(_column_only_left(sides, theirs, a))
        elif a is None:
            where = sides.where(f"Column {theirs.name}.{name}", "right")
            differences.append(_difference(
                "column", theirs.name, name, "destructive",
                f"{where}; only ALTER TABLE ... DROP COLUMN removes it, and its values with it.", None, b))
        elif a.comparable() != b.comparable():
            differences.append(_column_changed(sides, theirs, a, b))
    return differences


# Common volatile functions: a default calling one is evaluated per row, so ADD COLUMN
# rewrites the table. (A catalog cannot tell: built-in functions leave no pg_depend row.)
_VOLATILE_CALL = re.compile(
    r"\b(nextval|random|clock_timestamp|timeofday|gen_random_uuid|uuid_generate_v\w+)\s*\(", re.I)


def _column_only_left(sides: _Sides, table: PgTable, column: PgColumn) -> Difference:
    where = sides.where(f"Column {table.name}.{column.name}", "left")
    fix, how = _adding_column(table, column)
    return _difference("column", table.name, column.name, fix, f"{where}; {how}", column, None)


def _adding_column(table: PgTable, column: PgColumn) -> tuple[str, str]:
    if _is_empty(table):
        return "additive", "ALTER TABLE ... ADD COLUMN adds it at once (the table is empty)."
    if column.identity or column.generated:
        kind = "an identity" if column.identity else "a generated"
        return "rebuild", (f"ADD COLUMN of {kind} column fills every row, rewriting the table "
                           f"({_rows(table)}) under an ACCESS EXCLUSIVE lock.")
    if column.default and _VOLATILE_CALL.search(column.default):
        return "rebuild", (f"its default {column.default} is volatile, so ADD COLUMN rewrites the "
                           f"table ({_rows(table)}) under an ACCESS EXCLUSIVE lock.")
    if column.not_null and column.default is None:
        return "rebuild", ("ADD COLUMN ... NOT NULL without a default fails on a table with rows: "
                           "add it nullable, fill it, then SET NOT NULL (which scans the table "
                           "under an ACCESS EXCLUSIVE lock).")
    return "additive", "ALTER TABLE ... ADD COLUMN adds it without rewriting the table."


def _column_changed(sides: _Sides, table: PgTable, ours: PgColumn, theirs: PgColumn) -> Difference:
    changes = [change for check in _COLUMN_CHECKS
               if (change := check(sides, table, ours, theirs)) is not None]
    fix = _worst(fix for fix, _ in changes)
    explanation = (f"Column {table.name}.{ours.name} differs between {sides.left_label} and "
                   f"{sides.right_label}: {'; '.join(phrase for _, phrase in changes)}.")
    return _difference("column", table.name, ours.name, fix, explanation, ours, theirs)


def _type_change(sides, table, ours: PgColumn, theirs: PgColumn):
    if ours.type == theirs.type:
        return None
    shown = sides.versus("type", ours.type, theirs.type)
    if rewrites_on_type_change(theirs.type, ours.type):
        return "rebuild", (f"{shown}: ALTER COLUMN ... TYPE rewrites the table ({_rows(table)}) "
                           "and its indexes under an ACCESS EXCLUSIVE lock")
    return "additive", f"{shown}: ALTER COLUMN ... TYPE changes it without rewriting the table"


def _not_null_change(sides, table, ours: PgColumn, theirs: PgColumn):
    if ours.not_null == theirs.not_null:
        return None
    if not ours.not_null:
        return "additive", f"NOT NULL only in {sides.right_label}: DROP NOT NULL is a catalog change"
    if _is_empty(table):
        return "additive", f"NOT NULL only in {sides.left_label}: SET NOT NULL on the empty table is instant"
    return "rebuild", (f"NOT NULL only in {sides.left_label}: SET NOT NULL scans the table ({_rows(table)}) "
                       "under an ACCESS EXCLUSIVE lock (a validated CHECK (... IS NOT NULL) "
                       "added first lets it skip the scan)")


def _default_change(sides, table, ours: PgColumn, theirs: PgColumn):
    if normalise_definition(ours.default) == normalise_definition(theirs.default):
        return None
    shown = sides.versus("default", ours.default or "none", theirs.default or "none")
    return "additive", f"{shown}: SET DEFAULT / DROP DEFAULT changes only rows inserted later"


def _identity_change(sides, table, ours: PgColumn, theirs: PgColumn):
    if ours.identity == theirs.identity:
        return None
    shown = sides.versus("identity", ours.identity or "none", theirs.identity or "none")
    if ours.identity is None:
        return "destructive", f"{shown}: DROP IDENTITY drops the column's sequence"
    return "additive", f"{shown}: ADD / SET GENERATED ... AS IDENTITY is a catalog change"


def _generated_change(sides, table, ours: PgColumn, theirs: PgColumn):
    if normalise_definition(ours.generated) == normalise_definition(theirs.generated):
        return None
    shown = sides.versus("generated expression", ours.generated or "none", theirs.generated or "none")
    if ours.generated is None:
        return "additive", f"{shown}: DROP EXPRESSION keeps the stored values as ordinary ones"
    return "rebuild", (f"{shown}: the column must be dropped and added again, which rewrites "
                       f"the table ({_rows(table)})")


def _collation_change(sides, table, ours: PgColumn, theirs: PgColumn):
    if ours.collation == theirs.collation:
        return None
    shown = sides.versus("collation", ours.collation or "default", theirs.collation or "default")
    return "rebuild", f"{shown}: changing it rebuilds the indexes on the column under an ACCESS EXCLUSIVE lock"


_COLUMN_CHECKS = (_type_change, _not_null_change, _default_change, _identity_change,
                  _generated_change, _collation_change)

_VARCHAR = re.compile(r"character varying(?:\((\d+)\))?")
_NUMERIC = re.compile(r"numeric(?:\((\d+),(\d+)\))?")


def rewrites_on_type_change(old: str, new: str) -> bool:
    """Whether ALTER COLUMN ... TYPE `new` rewrites a column of type `old`.

    PostgreSQL skips the rewrite for binary-compatible changes that only loosen a limit:
    varchar(n) to a longer varchar or to text, text to varchar, numeric(p,s) to a larger
    precision with the same scale or to unconstrained numeric. Everything else rewrites.
    """
    if new == "text" or new == "character varying":
        return not (old in ("text", "character varying") or _VARCHAR.fullmatch(old))
    old_varchar, new_varchar = _VARCHAR.fullmatch(old), _VARCHAR.fullmatch(new)
    if old_varchar and new_varchar:
        return old_varchar[1] is None or int(new_varchar[1]) < int(old_varchar[1])
    old_numeric, new_numeric = _NUMERIC.fullmatch(old), _NUMERIC.fullmatch(new)
    if old_numeric and new_numeric:
        if new_numeric[1] is None:
            return False
        if old_numeric[1] is None:
            return True
        return new_numeric[2] != old_numeric[2] or int(new_numeric[1]) < int(old_numeric[1])
    return True


# --- constraints and indexes -----------------------------------------------------------


def _diff_constraints(sides: _Sides, ours: PgTable, theirs: PgTable) -> list[Difference]:
    differences = []
    for name in _names(ours.constraints, theirs.constraints):
        a, b = ours.constraint(name), theirs.constraint(name)
        if b is None:
            fix, how = _adding_constraint(theirs, a)
            where = sides.where(f"Constraint {name} on {ours.name}", "left")
            differences.append(_difference("constraint", ours.name, name, fix, f"{where}; {how}", a, None))
        elif a is None:
            where = sides.where(f"Constraint {name} on {theirs.name}", "right")
            differences.append(_difference(
                "constraint", theirs.name, name, "destructive",
                f"{where}; only ALTER TABLE ... DROP CONSTRAINT removes it (no rows are lost, "
                "but nothing enforces it any more).", None, b))
        elif a.comparable() != b.comparable():
            differences.append(_constraint_changed(sides, theirs, a, b))
    return differences


def _adding_constraint(table: PgTable, constraint: PgConstraint) -> tuple[str, str]:
    """How adding `constraint` to the right side's `table` goes."""
    statement = f"ALTER TABLE ... ADD CONSTRAINT {constraint.name}"
    if _is_empty(table):
        return "additive", f"{statement} can add it at once (the table is empty)."
    if constraint.kind in ("check", "foreign_key"):
        if not constraint.validated:
            return "additive", f"{statement} ... NOT VALID adds it without checking existing rows."
        return "rebuild", (f"{statement} checks every existing row ({_rows(table)}) while holding a "
                           "lock that blocks writes; add it NOT VALID, then VALIDATE CONSTRAINT, "
                           "which does not.")
    if constraint.kind == "exclusion":
        return "rebuild", (f"{statement} builds its index on the table ({_rows(table)}) while blocking writes, "
                           "and fails if existing rows conflict.")
    return "rebuild", (f"{statement} builds a unique index on the table ({_rows(table)}) while blocking writes "
                       "(and fails on duplicates); build it first with CREATE UNIQUE INDEX "
                       "CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX.")


def _constraint_changed(sides: _Sides, table: PgTable, ours: PgConstraint, theirs: PgConstraint) -> Difference:
    label = f"Constraint {ours.name} on {table.name}"
    if _without_not_valid(ours) == _without_not_valid(theirs):
        if ours.validated:
            fix, how = "additive", (f"it is NOT VALID in {sides.right_label}: VALIDATE CONSTRAINT "
                                    "checks the existing rows without blocking writes.")
        else:
            fix, how = "additive", (f"{sides.right_label} has already checked its existing rows; "
                                    "it already holds there.")
        explanation = f"{label} is validated on only one side; {how}"
    else:
        fix, how = _adding_constraint(table, ours)
        explanation = (f"{label} differs: {sides.versus('definition', ours.definition, theirs.definition)}; "
                       f"drop it and add it again: {how}")
    return _difference("constraint", table.name, ours.name, fix, explanation, ours, theirs)


def _without_not_valid(constraint: PgConstraint) -> str:
    return normalise_definition(constraint.definition).removesuffix(" NOT VALID")


def _diff_indexes(sides: _Sides, owner: str, ours: tuple, theirs: tuple,
                  table: PgTable | None) -> list[Difference]:
    """The indexes of `owner`, a table (the right side's is `table`) or a materialized view."""
    differences = []
    for name in _names(ours, theirs):
        a, b = _find(ours, name), _find(theirs, name)
        label = f"Index {name} on {owner}"
        if b is None:
            fix, how = _building_index(sides, table, a)
            differences.append(_difference("index", owner, name, fix,
                                           f"{sides.where(label, 'left')}; {how}", a, None))
        elif a is None:
            differences.append(_difference(
                "index", owner, name, "destructive",
                f"{sides.where(label, 'right')}; only DROP INDEX removes it (no rows are lost).", None, b))
        elif a.comparable() != b.comparable():
            fix, how = _building_index(sides, table, a)
            explanation = f"{label} differs: {_index_change(sides, a, b)}; drop it and create it again: {how}"
            differences.append(_difference("index", owner, name, fix, explanation, a, b))
    return differences


def _index_change(sides: _Sides, ours: PgIndex, theirs: PgIndex) -> str:
    if ours.definition != theirs.definition:
        return sides.versus("definition", ours.definition, theirs.definition)
    broken = sides.right_label if ours.valid else sides.left_label
    return f"it is INVALID in {broken} (left by a failed CREATE INDEX CONCURRENTLY) and answers no queries"


def _building_index(sides: _Sides, table: PgTable | None, index: PgIndex) -> tuple[str, str]:
    caveat = " It is UNIQUE: duplicates already there make it fail." if index.unique else ""
    if _is_big(sides, table):
        return "rebuild", (f"CREATE INDEX blocks writes to {table.name} ({_rows(table)}) while it "
                           f"builds: use CREATE INDEX CONCURRENTLY.{caveat}")
    return "additive", f"CREATE INDEX can add it.{caveat}"


# --- sequences, views, triggers, enums, extensions -------------------------------------


def _diff_named(sides: _Sides, kind: str, attribute: str, describe) -> list[Difference]:
    """Objects compared whole by their comparable(); `describe(ours, theirs)` → (fix, explanation)."""
    ours_all, theirs_all = getattr(sides.left, attribute), getattr(sides.right, attribute)
    differences = []
    for name in _names(ours_all, theirs_all):
        ours, theirs = _find(ours_all, name), _find(theirs_all, name)
        if ours is None or theirs is None or ours.comparable() != theirs.comparable():
            fix, explanation = describe(sides, ours, theirs)
            differences.append(_difference(kind, None, name, fix, explanation, ours, theirs))
    return differences


def _created_or_dropped(sides: _Sides, label: str, ours, theirs, create: str, drop: str,
                        dropped: str = ""):
    """(fix, explanation) when one side lacks the object; None when both have it. `dropped`
    says what goes with it ("(it holds no data)")."""
    if theirs is None:
        return "additive", f"{sides.where(f'{label} {ours.name}', 'left')}; {create} can add it."
    if ours is None:
        after = f" {dropped}" if dropped else ""
        return "destructive", f"{sides.where(f'{label} {theirs.name}', 'right')}; only {drop} removes it{after}."
    return None


def _diff_sequences(sides: _Sides) -> list[Difference]:
    return _diff_named(sides, "sequence", "sequences", _describe_sequence)


def _describe_sequence(sides, ours, theirs):
    one_side = _created_or_dropped(sides, "Sequence", ours, theirs, "CREATE SEQUENCE", "DROP SEQUENCE")
    if one_side:
        return one_side
    a, b = ours.comparable(), theirs.comparable()
    phrases = [sides.versus(fact, a[fact], b[fact]) for fact in a if a[fact] != b[fact]]
    return "additive", (f"Sequence {ours.name} differs: {'; '.join(phrases)}; ALTER SEQUENCE "
                        "changes it and keeps its current value.")


def _diff_views(sides: _Sides) -> list[Difference]:
    return _diff_named(sides, "view", "views", _describe_view)


def _describe_view(sides, ours, theirs):
    one_side = _created_or_dropped(sides, "View", ours, theirs, "CREATE VIEW", "DROP VIEW",
                                   "(it holds no data)")
    return one_side or ("rebuild", (
        f"View {ours.name} is defined differently in {sides.left_label} and {sides.right_label}; "
        "CREATE OR REPLACE VIEW can only append columns, otherwise drop and re-create it "
        "(and the views that depend on it); it holds no data."))


def _diff_materialized_views(sides: _Sides) -> list[Difference]:
    differences = []
    for name in _names(sides.left.materialized_views, sides.right.materialized_views):
        ours = _find(sides.left.materialized_views, name)
        theirs = _find(sides.right.materialized_views, name)
        definitions = [normalise_definition(view.definition) for view in (ours, theirs) if view]
        if len(definitions) < 2 or definitions[0] != definitions[1]:
            fix, explanation = _describe_materialized_view(sides, ours, theirs)
            differences.append(_difference("materialized_view", None, name, fix, explanation, ours, theirs))
        else:
            differences += _diff_indexes(sides, name, ours.indexes, theirs.indexes, None)
    return differences


def _describe_materialized_view(sides, ours, theirs):
    one_side = _created_or_dropped(
        sides, "Materialized view", ours, theirs, "CREATE MATERIALIZED VIEW (which runs its query once)",
        "DROP MATERIALIZED VIEW", "(its rows are derived from other tables, not lost)")
    return one_side or ("rebuild", (
        f"Materialized view {ours.name} is defined differently in {sides.left_label} and "
        f"{sides.right_label}; REFRESH cannot change a definition: drop and re-create it, "
        "which runs its query again, and its indexes with it."))


def _diff_triggers(sides: _Sides) -> list[Difference]:
    differences = []
    keys = sorted({(t.table, t.name) for t in (*sides.left.triggers, *sides.right.triggers)})
    for table, name in keys:
        ours, theirs = _trigger(sides.left, table, name), _trigger(sides.right, table, name)
        if ours is not None and theirs is not None and ours.comparable() == theirs.comparable():
            continue
        if _has_relation(sides.left, table) and _has_relation(sides.right, table):
            fix, explanation = _describe_trigger(sides, ours, theirs)
            differences.append(_difference("trigger", table, name, fix, explanation, ours, theirs))
    return differences


def _trigger(catalog: Catalog, table: str, name: str):
    return next((t for t in catalog.triggers if (t.table, t.name) == (table, name)), None)


def _has_relation(catalog: Catalog, name: str) -> bool:
    """The trigger's table or view is on that side; if not, that object's own row covers it."""
    return any(_find(getattr(catalog, kind), name) for kind in ("tables", "views", "materialized_views"))


def _describe_trigger(sides, ours, theirs):
    one_side = _created_or_dropped(sides, "Trigger", ours, theirs, "CREATE TRIGGER", "DROP TRIGGER",
                                   "(no rows are lost)")
    if one_side:
        return one_side[0], one_side[1].replace(" exists", f" on {(ours or theirs).table} exists", 1)
    label = f"Trigger {ours.name} on {ours.table}"
    if normalise_definition(ours.definition) == normalise_definition(theirs.definition):
        return "additive", (f"{label} is {_FIRING[ours.enabled]} in {sides.left_label} but "
                            f"{_FIRING[theirs.enabled]} in {sides.right_label}; ALTER TABLE ... "
                            "ENABLE / DISABLE TRIGGER sets it.")
    return "additive", (f"{label} is defined differently in {sides.left_label} and "
                        f"{sides.right_label}; CREATE OR REPLACE TRIGGER replaces it without touching rows.")


_FIRING = {"origin": "enabled", "disabled": "disabled", "replica": "enabled only for replication",
           "always": "enabled always (replication included)"}


def _diff_enums(sides: _Sides) -> list[Difference]:
    return _diff_named(sides, "enum", "enums", _describe_enum)


def _describe_enum(sides, ours, theirs):
    one_side = _created_or_dropped(sides, "Enum type", ours, theirs, "CREATE TYPE ... AS ENUM",
                                   "DROP TYPE", "(and every column using it with its values)")
    if one_side:
        return one_side
    extra = [label for label in theirs.labels if label not in ours.labels]
    missing = [label for label in ours.labels if label not in theirs.labels]
    if extra:
        return "destructive", (
            f"Enum type {ours.name} has values only in {sides.right_label} ({', '.join(extra)}); "
            "PostgreSQL cannot drop an enum value: re-create the type and convert every column "
            "using it, after changing the rows that hold those values.")
    if [label for label in ours.labels if label in theirs.labels] == list(theirs.labels):
        return "additive", (f"Enum type {ours.name} lacks values in {sides.right_label} "
                            f"({', '.join(missing)}); ALTER TYPE ... ADD VALUE (BEFORE / AFTER) adds them in place.")
    return "rebuild", (f"Enum type {ours.name} orders its values differently "
                       f"({sides.versus('order', ', '.join(ours.labels), ', '.join(theirs.labels))}); "
                       "re-create the type and convert every column using it, which rewrites those tables.")


def _diff_extensions(sides: _Sides) -> list[Difference]:
    return _diff_named(sides, "extension", "extensions", _describe_extension)


def _describe_extension(sides, ours, theirs):
    one_side = _created_or_dropped(sides, "Extension", ours, theirs, "CREATE EXTENSION",
                                   "DROP EXTENSION", "(and whatever uses it)")
    if one_side:
        return one_side
    phrases, statements = [], []
    if ours.version != theirs.version:
        phrases.append(sides.versus("version", ours.version, theirs.version))
        statements.append(f"ALTER EXTENSION {ours.name} UPDATE TO '{ours.version}'")
    if ours.schema != theirs.schema:
        phrases.append(sides.versus("schema", ours.schema, theirs.schema))
        statements.append(f"ALTER EXTENSION {ours.name} SET SCHEMA {ours.schema}")
    return "additive", f"Extension {ours.name} differs: {'; '.join(phrases)}; {' and '.join(statements)} changes it."
