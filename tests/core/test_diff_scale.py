"""The diff of many tables: name lookups by map and remembered answers change nothing.

Schema.table(), .trigger(), .view(), .names(), .column_references() and Table.column()
answer from maps built once, and a table's CREATE text is tokenized once. These tests
compare, byte for byte, the diff and the fingerprint of a generated many-table pair
with a reference that scans and recomputes everything on every call, as the code did.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import fields

import pytest

from app.core.diff import diff_schemas
from app.core.inspect import inspect_database
from app.core.schema import Schema, Table
from app.core.sql import ascii_lower, significant_tokens

TABLES = 240


def _scan(objects, name):
    wanted = ascii_lower(name)
    return next((item for item in objects if ascii_lower(item.name) == wanted), None)


class ScanningTable(Table):
    """A Table that looks columns up by scanning and tokenizes its SQL on every question."""

    def column(self, name):
        return _scan(self.columns, name)

    @property
    def is_virtual(self):
        return [t.text.upper() for t in significant_tokens(self.sql)[:2]] == ["CREATE", "VIRTUAL"]

    @property
    def _tokens(self):
        return significant_tokens(self.sql)


class ScanningSchema(Schema):
    """A Schema that scans its tuples and recomputes every answer, remembering nothing."""

    def table(self, name):
        return _scan(self.tables, name)

    def trigger(self, name):
        return _scan(self.triggers, name)

    def view(self, name):
        return _scan(self.views, name)

    def names(self):
        names = {ascii_lower(t.name) for t in self.tables} | {ascii_lower(v.name) for v in self.views}
        names |= {ascii_lower(c.name) for t in self.tables for c in t.columns}
        return frozenset(names | {"rowid", "oid", "_rowid_", "new", "old"})

    def column_references(self, table):
        return self._compute_column_references(table)


def scanning(schema: Schema) -> ScanningSchema:
    tables = tuple(ScanningTable(**{f.name: getattr(t, f.name) for f in fields(t)}) for t in schema.tables)
    return ScanningSchema(tables, schema.triggers, schema.views)


def table_ddl(number: int, side: str) -> str:
    """One table with most of what a diff compares; production drifts on about a tenth."""
    name = f"Item_{number:04d}" if number % 3 == 0 else f"item_{number:04d}"
    previous = f"ITEM_{number - 1:04d}"  # parent named in another case: lookups fold case
    drift = number % 30 if side == "production" else None
    if drift == 1:
        return ""
    implied = "" if number % 4 == 0 else "(id)"  # REFERENCES parent: its primary key implied
    amount = "INTEGER" if drift == 2 else "REAL"
    note = "" if drift == 3 else ", note TEXT COLLATE NOCASE"
    ddl = (f"CREATE TABLE {name} (id INTEGER PRIMARY KEY{' AUTOINCREMENT' if number % 7 == 0 else ''}, "
           f"code TEXT NOT NULL UNIQUE, parent_id INTEGER REFERENCES {previous}{implied} "
           f"ON DELETE {'SET NULL' if drift == 4 else 'CASCADE'}, "
           f"amount {amount} DEFAULT {'1' if drift == 5 else '0'}{note}, "
           f"pair_a INTEGER, pair_b INTEGER, "
           f"FOREIGN KEY (pair_a, pair_b) REFERENCES pairs(a, b){' DEFERRABLE INITIALLY DEFERRED' if drift == 6 else ''}, "
           f"CHECK (amount >= {'1' if drift == 7 else '0'}));\n")
    if drift != 8:
        ddl += f"CREATE INDEX {name}_parent ON {name} (parent_id{' DESC' if drift == 9 else ''});\n"
    if number % 20 == 0:
        body = "NEW.code" if drift != 10 else "upper(NEW.code)"
        ddl += (f'CREATE TRIGGER {name}_log AFTER INSERT ON {name} BEGIN '
                f'INSERT INTO log (what) VALUES ({body}); END;\n'
                f'CREATE VIEW {name}_view AS SELECT "code" AS c, amount FROM {name} WHERE c <> "x";\n')
    return ddl


def schema_ddl(side: str) -> str:
    ddl = ("CREATE TABLE pairs (a INTEGER, b INTEGER, PRIMARY KEY (a, b));\n"
           "CREATE TABLE log (id INTEGER PRIMARY KEY, what TEXT);\n"
           "CREATE VIRTUAL TABLE search USING fts5(body);\n")
    ddl += "".join(table_ddl(number, side) for number in range(1, TABLES + 1))
    if side == "production":
        ddl += "CREATE TABLE legacy (id INTEGER PRIMARY KEY, payload BLOB);\nCREATE VIEW old_view AS SELECT 1;\n"
    return ddl


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many_tables")
    schemas = []
    for side in ("development", "production"):
        path = folder / f"{side}.db"
        with closing(sqlite3.connect(path)) as connection:
            connection.executescript(f"BEGIN;\n{schema_ddl(side)}COMMIT;")
        schemas.append(inspect_database(path, deep=False).schema)
    return schemas


def diff_text(left: Schema, right: Schema) -> str:
    differences = diff_schemas(left, right, left_label="development", right_label="production")
    return json.dumps([d.to_dict() for d in differences], indent=1, sort_keys=True)


def test_the_pair_differs_in_every_way_the_generator_drifts(pair):
    differences = diff_schemas(*pair)
    kinds = {(d.object, d.change) for d in differences}
    assert {("table", "only_left"), ("table", "only_right"), ("table", "changed"), ("column", "only_left"),
            ("column", "changed"), ("index", "only_left"), ("index", "changed"), ("trigger", "changed"),
            ("view", "only_right")} <= kinds
    assert len({d.table for d in differences if d.table}) > TABLES // 10


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_the_diff_is_byte_identical_to_a_scanning_reference(pair, direction):
    left, right = pair if direction == "forward" else pair[::-1]
    assert diff_text(left, right) == diff_text(scanning(left), scanning(right))


def test_the_fingerprint_is_identical_to_a_scanning_reference(pair):
    for schema in pair:
        assert schema.fingerprint() == scanning(schema).fingerprint()
        assert json.dumps(schema.canonical(), sort_keys=True) == json.dumps(scanning(schema).canonical(), sort_keys=True)


def test_remembered_answers_are_the_same_on_every_call(pair):
    left, _ = pair
    table = left.table("ITEM_0012")
    assert table is left.table("item_0012") and table.name == "Item_0012"
    first = left.column_references(table)
    assert left.column_references(table) is first and first == left._compute_column_references(table)
    assert table.column("PARENT_ID") is table.columns[2]
    assert left.table("no_such_table") is None and table.column("no_such_column") is None


def test_a_table_from_another_schema_is_not_answered_from_this_ones_memory(pair):
    left, right = pair
    ours, theirs = left.table("item_0004"), right.table("item_0004")  # ON DELETE differs
    assert left.column_references(ours) != left.column_references(theirs)
    assert left.column_references(theirs) == left._compute_column_references(theirs)

