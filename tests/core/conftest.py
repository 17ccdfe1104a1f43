"""Fixtures for the pure core: real SQLite files in tmp_path, built from DDL strings."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

SQLITE_CLI = "/usr/bin/sqlite3"

# One database with every kind of object the inspector reports.
RICH_DDL = """
CREATE TABLE parent (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL COLLATE NOCASE UNIQUE,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP,
    CHECK (length(name) > 0)
);
CREATE TABLE child (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE ON UPDATE SET NULL,
    amount REAL NOT NULL DEFAULT 0.0,
    label VARCHAR(20) DEFAULT 'none',
    doubled INTEGER GENERATED ALWAYS AS (amount * 2) VIRTUAL,
    stored_label TEXT AS (upper(label)) STORED,
    UNIQUE (parent_id, label)
);
CREATE INDEX child_amount ON child (amount DESC, label COLLATE NOCASE);
CREATE INDEX child_big ON child (amount) WHERE amount > 100;
CREATE INDEX child_lower ON child (lower(label));
CREATE TABLE pairs (a INTEGER NOT NULL, b INTEGER NOT NULL, note, PRIMARY KEY (b, a)) WITHOUT ROWID;
CREATE TABLE typed (i INT, t TEXT, r REAL, x ANY) STRICT;
CREATE TABLE pair_refs (
    a INTEGER, b INTEGER,
    FOREIGN KEY (a, b) REFERENCES pairs (a, b)
);
CREATE VIEW big_children AS SELECT id, amount FROM child WHERE amount > 100;
CREATE TRIGGER child_touch AFTER UPDATE ON child BEGIN
    UPDATE parent SET name = name WHERE id = NEW.parent_id;
END;
INSERT INTO parent (name) VALUES ('alpha'), ('beta');
INSERT INTO child (parent_id, amount, label) VALUES (1, 5, 'a'), (1, 150, 'b'), (2, 7, 'c');
INSERT INTO pairs VALUES (1, 2, 'x');
PRAGMA user_version = 7;
PRAGMA application_id = 1234;
"""


def create_database(path: Path, ddl: str) -> Path:
    """Write a SQLite file at `path` from a DDL (and DML) script."""
    with closing(sqlite3.connect(path)) as connection:
        connection.executescript(ddl)
        connection.commit()
    return path


@pytest.fixture
def make_db(tmp_path):
    """make_db(ddl, name="test.db") -> Path of a new database file in tmp_path."""

    def make(ddl: str, name: str = "test.db") -> Path:
        return create_database(tmp_path / name, ddl)

    return make


@pytest.fixture
def rich_db(make_db) -> Path:
    return make_db(RICH_DDL, "rich.db")


def folder_state(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file in `folder` with its SHA-256 and mtime: proof that nothing was touched."""
    state = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_file():
            digest = hashlib.sha256(entry.read_bytes()).hexdigest()
            state[entry.name] = (digest, entry.stat().st_mtime_ns)
        else:
            state[entry.name] = ("<dir>", entry.stat().st_mtime_ns)
    return state
