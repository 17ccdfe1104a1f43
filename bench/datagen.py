"""Large fractal-goals-shaped databases for the benchmarks, built from the demo schema.

The demo's development and production databases are copied and their tables filled with
bulk rows by recursive CTEs (all in SQLite's C code), so a gigabyte takes about a minute.
Files are cached under bench/data/ keyed by size; delete them to rebuild.
"""
from __future__ import annotations

import argparse
import sqlite3
import tempfile
from pathlib import Path

from app.core.demo import create_demo_workspace
from app.core.sql import quote_identifier

DATA_DIR = Path(__file__).resolve().parent / "data"
# Share of the rows each table gets; metric_values dominates as in the real application.
TABLE_SHARES = {"goals": 0.02, "practice_sessions": 0.05, "activity_definitions": 0.002,
                "activity_instances": 0.30, "metric_values": 0.628}
BYTES_PER_ROW = 150  # measured on these tables with their indexes, roughly


def column_expression(name: str, declared_type: str, row_count: int, parent_rows: int | None) -> str:
    """A plausible value per column, computed from the row number x.

    A foreign key points at an existing parent row: a gigabyte of orphans would make
    the benchmark measure a case no real database is in.
    """
    kind = declared_type.upper()
    if parent_rows:
        return f"(x % {parent_rows}) + 1"
    if name.endswith("_id"):
        return f"(x % {max(row_count // 50, 1)}) + 1"
    if "INT" in kind:
        return "x % 3600"
    if "BOOL" in kind:
        return "x % 2"
    if any(word in kind for word in ("REAL", "FLOA", "DOUB", "NUMERIC")):
        return "(x % 1000) * 0.25"
    if "DATE" in kind or "TIME" in kind or name.endswith("_at"):
        return "printf('2025-%02d-%02d %02d:%02d:00', 1 + x % 12, 1 + x % 28, x % 24, x % 60)"
    return "printf('item %d of the practice log, with a short note', x)"


def fill_table(conn: sqlite3.Connection, table: str, rows: int) -> None:
    columns = [(r[1], r[2]) for r in conn.execute(f"PRAGMA table_info({quote_identifier(table)})") if r[5] == 0]
    parents = {r[3]: r[2] for r in conn.execute(f"PRAGMA foreign_key_list({quote_identifier(table)})")}
    names = ", ".join(quote_identifier(name) for name, _ in columns)
    values = ", ".join(
        column_expression(name, declared, rows, _max_id(conn, parents[name]) if name in parents else None)
        for name, declared in columns
    )
    conn.execute(
        f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {rows}) "
        f"INSERT INTO {quote_identifier(table)} ({names}) SELECT {values} FROM c"
    )


def _max_id(conn: sqlite3.Connection, table: str) -> int:
    return conn.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {quote_identifier(table)}").fetchone()[0]


def grow(path: Path, size_mb: int) -> None:
    """Fill in two rounds: a sample round measures bytes per row, the second reaches the size."""
    target = size_mb * 1024 * 1024
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")  # a throw-away build, rebuilt if interrupted
        conn.execute("PRAGMA synchronous=OFF")
        sample_rows = max(target // BYTES_PER_ROW // 20, 1000)
        before = path.stat().st_size
        _fill_round(conn, sample_rows)
        per_row = max((path.stat().st_size - before) / sample_rows, 1.0)
        _fill_round(conn, max(int((target - path.stat().st_size) / per_row), 0))
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()


def _fill_round(conn: sqlite3.Connection, rows: int) -> None:
    conn.execute("BEGIN")
    for table, share in TABLE_SHARES.items():
        fill_table(conn, table, int(rows * share))
    conn.execute("COMMIT")


def large_pair(size_mb: int = 1024) -> tuple[Path, Path]:
    """(development, production) databases of about size_mb each, built once and cached."""
    folder = DATA_DIR / f"pair-{size_mb}mb"
    dev, prod = folder / "goals_dev.db", folder / "goals.db"
    if dev.exists() and prod.exists():
        return dev, prod
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        demo = create_demo_workspace(Path(scratch) / "demo").parent
        for name in ("goals_dev.db", "goals.db"):
            partial = folder / f"{name}.partial"
            partial.write_bytes((demo / name).read_bytes())
            grow(partial, size_mb)
            partial.rename(folder / name)
    return dev, prod


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    for path in large_pair(args.size_mb):
        print(path, path.stat().st_size // (1024 * 1024), "MB")
