"""Read everything Cutover shows about a database: schema, facts, row counts, integrity.

One read transaction covers the whole inspection, so the schema and the row counts
describe the same moment even while the application keeps writing (in WAL mode the
writer is not even slowed down). The cost is the row counts: one COUNT(*) per table,
which SQLite answers from the smallest index, exactly as the sqlite3 command would.
`deep=True` adds quick_check and foreign_key_check, which read the whole file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from app.core.engines.sqlite.files import check_file, classify_sqlite_error, read_consistently
from app.core.engines.sqlite.integrity import foreign_key_summary, quick_check
from app.core.engines.sqlite.transactions import read_transaction
from app.core.schema import (
    Column,
    Facts,
    ForeignKey,
    Index,
    IndexColumn,
    Schema,
    SchemaRow,
    Snapshot,
    Table,
    Trigger,
    View,
    is_virtual_table_sql,
)
from app.core.sql import (
    ascii_lower,
    column_clauses,
    column_name,
    conflict_action,
    create_table_items,
    foreign_key_clauses,
    index_key_items,
    index_term_expression,
    is_table_constraint,
    normalise_sql,
    normalise_tokens,
    parenthesised_group,
    quote_identifier,
    strip_constraint_name,
)

_HIDDEN = {0: "", 1: "hidden", 2: "virtual", 3: "stored"}


def inspect_database(path, *, deep: bool = True, busy_timeout: float = 1.0) -> Snapshot:
    """Inspect the SQLite database at `path` without writing anything.

    Raises TargetUnavailable (see engines/sqlite/files.py) when it cannot be read.
    """
    path = Path(path)
    inspected_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def read(connection: sqlite3.Connection) -> tuple[Schema, Facts]:
        return _read_in_one_transaction(connection, path, deep, busy_timeout)

    schema, facts = read_consistently(path, read, busy_timeout=busy_timeout)
    return Snapshot(str(path), inspected_at, facts, schema, deep)


def _read_in_one_transaction(connection, path: Path, deep: bool, busy_timeout: float):
    try:
        with read_transaction(connection):
            return read_schema(connection), read_facts(connection, path, deep)
    except sqlite3.Error as exc:
        raise classify_sqlite_error(exc, path, busy_timeout=busy_timeout) from None


# --- schema ---------------------------------------------------------------------------


def read_schema(connection: sqlite3.Connection, *, count_rows: bool = True) -> Schema:
    """The main database's tables (with row counts), triggers and views, sorted by name.

    `count_rows=False` leaves every row_count None: enough for a fingerprint, and it
    takes milliseconds where counting reads every table.
    """
    rows = connection.execute("SELECT type, name, tbl_name, sql FROM main.sqlite_schema").fetchall()
    index_sql = {name: sql for kind, name, _, sql in rows if kind == "index"}
    table_sql = {name: sql for kind, name, _, sql in rows if kind == "table"}
    tables = [
        _read_table(connection, name, table_sql.get(name) or "", (strict, without_rowid),
                    index_sql, count_rows)
        for name, strict, without_rowid in _user_tables(connection)
    ]
    triggers = [Trigger(name, table, sql) for kind, name, table, sql in rows if kind == "trigger"]
    views = [View(name, sql) for kind, name, _, sql in rows if kind == "view"]
    return Schema(_sorted(tables), _sorted(triggers), _sorted(views))


def _sorted(objects) -> tuple:
    return tuple(sorted(objects, key=lambda item: (ascii_lower(item.name), item.name)))


def _user_tables(connection) -> list[tuple[str, bool, bool]]:
    """(name, strict, without_rowid) of ordinary and virtual tables.

    sqlite_* tables (sqlite_sequence, sqlite_stat1, ...) belong to SQLite, and "shadow"
    tables store a virtual table's data: neither is the application's schema.
    """
    listing = connection.execute(
        'SELECT name, type, wr, "strict" FROM pragma_table_list WHERE schema = \'main\''
    ).fetchall()
    return [
        (name, bool(strict), bool(wr))
        for name, kind, wr, strict in listing
        if kind in ("table", "virtual") and not ascii_lower(name).startswith("sqlite_")
    ]


def _read_table(connection, name, sql, flags, index_sql, count_rows: bool) -> Table:
    strict, without_rowid = flags
    items = create_table_items(sql)
    names = _column_names(items)
    definitions = [column_clauses(item, names) for item in items if not is_table_constraint(item)]
    clauses = {ascii_lower(definition.name): definition for definition in definitions}
    columns, row_count, unreadable = (), None, None
    try:
        columns = _read_columns(connection, name, clauses)
        row_count = _count_rows(connection, name) if count_rows else None
    except sqlite3.OperationalError as exc:
        if not is_virtual_table_sql(sql):
            raise
        # A virtual table fails when read if its module is missing (spellfix1 without the
        # extension) or what it reads from is gone (an FTS content table that was dropped).
        # The file is sound; the table is reported as unreadable instead of failing it all.
        unreadable = str(exc)
    return Table(
        name=name,
        columns=columns,
        indexes=_read_indexes(connection, name, index_sql, names),
        foreign_keys=_read_foreign_keys(connection, name, foreign_key_clauses(items)),
        strict=strict,
        without_rowid=without_rowid,
        sql=sql,
        constraints=_table_constraints(items, clauses.values(), names),
        row_count=row_count,
        unreadable=unreadable,
        primary_key_conflict=_primary_key_conflict(items, clauses.values()),
    )


def _column_names(items) -> frozenset[str]:
    """The names a CHECK or an index expression of this table can refer to."""
    names = {ascii_lower(column_name(item)) for item in items if not is_table_constraint(item)}
    return frozenset(names | {"rowid", "oid", "_rowid_"})


def _primary_key_conflict(items, clauses) -> str | None:
    """ON CONFLICT of the PRIMARY KEY, column-level or table-level: the same either way."""
    for column in clauses:
        if column.pk_conflict:
            return column.pk_conflict
    for item in items:
        tokens = strip_constraint_name(item)
        if len(tokens) > 2 and tokens[0].is_word("PRIMARY") and tokens[2].kind == "lparen":
            return conflict_action(tokens, parenthesised_group(tokens, 2)[1])
    return None


def _read_columns(connection, table: str, clauses: dict) -> tuple[Column, ...]:
    rows = connection.execute(
        'SELECT name, type, "notnull", dflt_value, pk, hidden '
        "FROM pragma_table_xinfo(?, 'main') ORDER BY cid",
        (table,),
    ).fetchall()
    columns = []
    for name, declared, not_null, default, pk, hidden in rows:
        parsed = clauses.get(ascii_lower(name))
        columns.append(
            Column(
                name=name,
                type=declared or "",
                not_null=bool(not_null),
                default=default,
                pk=pk,
                hidden=_HIDDEN.get(hidden, str(hidden)),
                collation=parsed.collation if parsed else None,
                generated=parsed.generated if parsed else None,
                not_null_conflict=parsed.not_null_conflict if parsed and not_null else None,
            )
        )
    return tuple(columns)


def _count_rows(connection, table: str) -> int:
    return connection.execute(f"SELECT count(*) FROM main.{quote_identifier(table)}").fetchone()[0]


def _table_constraints(items, clauses, names) -> tuple[str, ...]:
    """Table constraints, plus column CHECK / UNIQUE written the table-level way.

    `a INT UNIQUE` and `a INT, UNIQUE (a)` behave the same, so they read the same.
    """
    constraints = [
        # Only a CHECK holds an expression, where a double-quoted token may be a string.
        normalise_tokens(item, names if _is_check(item) else None)
        for item in items
        if is_table_constraint(item)
    ]
    for column in clauses:
        constraints.extend(column.checks)
        if column.unique:
            suffix = column.unique.removeprefix("UNIQUE")
            constraints.append(normalise_sql(f"UNIQUE({quote_identifier(column.name)}){suffix}"))
    return tuple(constraints)


def _is_check(item) -> bool:
    body = strip_constraint_name(item)
    return bool(body) and body[0].is_word("CHECK")


def _read_indexes(connection, table: str, index_sql: dict, names) -> tuple[Index, ...]:
    listing = connection.execute(
        "SELECT name, \"unique\", origin FROM pragma_index_list(?, 'main')", (table,)
    ).fetchall()
    indexes = [
        _read_index(connection, table, (name, bool(unique), origin), index_sql.get(name), names)
        for name, unique, origin in listing
    ]
    return _sorted(indexes)


def _read_index(connection, table, listed, sql, names) -> Index:
    name, unique, origin = listed
    rows = connection.execute(
        "SELECT seqno, cid, name, \"desc\", coll FROM pragma_index_xinfo(?, 'main') "
        "WHERE key ORDER BY seqno",
        (name,),
    ).fetchall()
    # Only an expression term (cid -2) or a WHERE needs the CREATE INDEX text parsed; most
    # indexes have neither, and parsing is most of the time a schema read takes.
    needs_text = sql and (any(row[1] == -2 for row in rows) or "WHERE" in sql.upper())
    terms, where = index_key_items(sql, names) if needs_text else ([], None)
    columns = tuple(
        IndexColumn(
            name=column if cid != -1 else "rowid",
            expression=_expression(terms, seqno, names) if cid == -2 else None,
            desc=bool(desc),
            collation=(collation or "BINARY").upper(),
        )
        for seqno, cid, column, desc, collation in rows
    )
    return Index(name, table, columns, unique, where, origin, sql)


def _expression(terms, seqno: int, names) -> str | None:
    # PRAGMA index_xinfo marks an expression (cid -2) but does not give its text;
    # only the CREATE INDEX statement has it.
    return index_term_expression(terms[seqno], names) if seqno < len(terms) else None


def _read_foreign_keys(connection, table: str, written) -> tuple[ForeignKey, ...]:
    """PRAGMA foreign_key_list, with the deferral only the CREATE TABLE text holds.

    `written`: the table's ForeignKeyClauses; each PRAGMA key takes the first unused
    clause with the same child columns, parent and (written) parent columns.
    """
    rows = connection.execute(
        'SELECT id, "table", "from", "to", on_update, on_delete, match '
        "FROM pragma_foreign_key_list(?, 'main') ORDER BY id, seq",
        (table,),
    ).fetchall()
    keys = []
    for _, group in itertools.groupby(rows, key=lambda row: row[0]):
        group = list(group)
        _, parent, _, _, on_update, on_delete, match = group[0]
        columns = tuple(row[2] for row in group)
        targets = tuple(row[3] for row in group)
        deferred = _take_deferral(written, columns, parent, targets)
        keys.append(ForeignKey(columns, parent, targets, on_update, on_delete, match, deferred))
    return tuple(keys)


def _take_deferral(written: list, columns, parent, targets) -> bool:
    wanted = (
        tuple(ascii_lower(c) for c in columns),
        ascii_lower(parent),
        tuple(ascii_lower(t) for t in targets if t is not None),
    )
    for index, clause in enumerate(written):
        if (clause.columns, clause.table, clause.to) == wanted:
            return written.pop(index).deferred
    return False


def schema_text_sha256(connection: sqlite3.Connection) -> str:
    """SHA-256 of the main database's schema exactly as SQLite stores it.

    The fingerprint compares a normal form made for reading diffs; deciding that a rehearsal
    still stands needs what the plan will really meet, so this hashes the stored text: a
    trigger whose double-quoted string changed case is another schema here."""
    rows = connection.execute(
        "SELECT type, name, tbl_name, sql FROM main.sqlite_schema ORDER BY type, name").fetchall()
    payload = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def schema_rows(connection: sqlite3.Connection) -> list[SchemaRow]:
    """The DDL of the main database's own objects, in creation order.

    sqlite_* objects belong to SQLite and shadow tables to their virtual table; both are
    re-created by SQLite itself when a copy creates their owner.
    """
    rows = connection.execute(
        "SELECT type, name, tbl_name, sql FROM main.sqlite_schema "
        "WHERE sql IS NOT NULL AND lower(substr(name, 1, 7)) <> 'sqlite_' "
        "AND name NOT IN (SELECT name FROM pragma_table_list WHERE schema = 'main' "
        "AND type = 'shadow') ORDER BY rowid"
    ).fetchall()
    return [SchemaRow(*row) for row in rows]


# --- facts ----------------------------------------------------------------------------


def read_facts(connection: sqlite3.Connection, path: Path, deep: bool) -> Facts:
    def pragma(name: str):
        return connection.execute(f"PRAGMA main.{name}").fetchone()[0]

    facts = Facts(
        path=str(path),
        size_bytes=_size_on_disk(path),
        page_size=pragma("page_size"),
        page_count=pragma("page_count"),
        freelist_count=pragma("freelist_count"),
        journal_mode=_journal_mode(path, pragma("journal_mode")),
        user_version=pragma("user_version"),
        application_id=pragma("application_id"),
        encoding=pragma("encoding"),
        sqlite_version=sqlite3.sqlite_version,
    )
    if not deep:
        return facts
    return _with_integrity(connection, facts)


def _size_on_disk(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _journal_mode(path: Path, reported: str) -> str:
    # An immutable connection (see open_readonly) reports "delete" even for a WAL
    # database; the file header knows better.
    return "wal" if check_file(path).wal else reported


def _with_integrity(connection, facts: Facts) -> Facts:
    quick_check_result = quick_check(connection)
    if quick_check_result != "ok":
        # foreign_key_check reads the same damaged pages; its answer would not be reliable.
        return replace(facts, quick_check=quick_check_result)
    count, samples = foreign_key_summary(connection)
    return replace(
        facts,
        quick_check=quick_check_result,
        foreign_key_violations=count,
        foreign_key_violation_samples=samples,
    )
