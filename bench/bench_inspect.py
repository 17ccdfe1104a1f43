"""Inspect + diff + exact row counts of two ~1 GB databases against the sqlite3 CLI, and page render time.

Baseline: `sqlite3 -readonly DB .schema "SELECT COUNT(*) FROM t" ...` for each database (what an
operator would type). Ours: inspect_database on both plus diff_schemas. Both sides run with a
warm page cache, alternated, medians of 3. Targets: ratio <= 1.5x, dashboard render < 0.5 s.

    python -m bench.bench_inspect [--size-mb 1024]
"""
from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from app.core.diff import diff_schemas
from app.core.inspect import inspect_database
from app.core.sql import quote_identifier
from bench.datagen import large_pair
from bench.timing import compare, timed

SQLITE3 = "/usr/bin/sqlite3"


def table_names(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
    finally:
        conn.close()


def cli_inspect(path: Path, deep: bool) -> None:
    statements = [f"SELECT COUNT(*) FROM {quote_identifier(name)};" for name in table_names(path)]
    if deep:
        statements += ["PRAGMA quick_check;", "PRAGMA foreign_key_check;"]
    subprocess.run([SQLITE3, "-readonly", str(path), ".schema", *statements], check=True, stdout=subprocess.DEVNULL)


def our_inspect_and_diff(dev: Path, prod: Path, deep: bool) -> None:
    left = inspect_database(dev, deep=deep)
    right = inspect_database(prod, deep=deep)
    diff_schemas(left.schema, right.schema)


def page_render_times(dev: Path, prod: Path, rounds: int = 20) -> tuple[float, float, float]:
    from app import create_app
    from config import TestConfig

    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "cutover.toml"
        config.write_text(f'[environments.development]\ndatabase = "{dev}"\nreference = true\n'
                          f'[environments.production]\ndatabase = "{prod}"\n')
        app = create_app(TestConfig, {"CUTOVER_CONFIG": str(config), "INSTANCE_DIR": Path(scratch),
                                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{scratch}/state.db"})
        client = app.test_client()
        headers = {"Authorization": f"Bearer {TestConfig.CUTOVER_API_TOKEN}"}
        login(client)
        first = timed(lambda: client.get("/"))
        warm = sorted(timed(lambda: client.get("/")) for _ in range(rounds))
        api = statistics.median(timed(lambda: client.get("/api/v1/diff?left=development&right=production", headers=headers))
                                for _ in range(rounds))
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()
        return first, statistics.median(warm), api


def login(client) -> None:
    from tests.conftest import log_in

    assert log_in(client).status_code == 302


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    dev, prod = large_pair(args.size_mb)
    print(f"databases: {dev.stat().st_size / 2**20:.0f} MB and {prod.stat().st_size / 2**20:.0f} MB, SQLite {sqlite3.sqlite_version}")
    compare("schema + exact counts + diff (both DBs)",
            lambda: our_inspect_and_diff(dev, prod, deep=False),
            lambda: (cli_inspect(dev, False), cli_inspect(prod, False)))
    compare("... plus quick_check + foreign_key_check",
            lambda: our_inspect_and_diff(dev, prod, deep=True),
            lambda: (cli_inspect(dev, True), cli_inspect(prod, True)))
    first, warm, api = page_render_times(dev, prod)
    print(f"dashboard page: first render {first:.3f} s (inspects both), cached render median {warm * 1000:.1f} ms, "
          f"API diff median {api * 1000:.1f} ms")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
