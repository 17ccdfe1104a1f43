"""Full verification of a ~1 GB database against the same queries typed into the sqlite3 CLI.

Target: the migrated ~1 GB development database of bench/datagen.py, checked with the demo's
assertions and smoke test. Ours: run_checks (integrity_check, foreign keys, the assertions,
schema vs a reference, row-count ledger, required indexes, the smoke test rolled back).
Baseline: one sqlite3 invocation running the same statements. Warm cache, alternated, medians
of 3. Target ratio <= 1.2x.

    python -m bench.bench_verify [--size-mb 1024]
"""
from __future__ import annotations

import argparse
import sqlite3
import subprocess
import tomllib

from app.core.checks import run_checks
from app.core.demo import DEMO_CONFIG
from app.core.sql import quote_identifier
from bench.bench_inspect import SQLITE3, table_names
from bench.datagen import large_pair
from bench.timing import compare


def demo_settings() -> tuple[list[tuple[str, str]], list[str]]:
    config = tomllib.loads(DEMO_CONFIG)
    return list(config["checks"].items()), list(config["verification"]["smoke"])


def index_names(path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL")]
    finally:
        conn.close()


def row_counts(path) -> dict:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {quote_identifier(t)}").fetchone()[0] for t in table_names(path)}
    finally:
        conn.close()


def cli_statements(path, assertions, smoke) -> list[str]:
    statements = ["PRAGMA integrity_check;", "PRAGMA foreign_key_check;"]
    statements += [f"{sql};" for _, sql in assertions]
    statements += [".schema", "SELECT name FROM sqlite_schema WHERE type = 'index';"]
    statements += [f"SELECT COUNT(*) FROM {quote_identifier(t)};" for t in table_names(path)]
    statements += ["PRAGMA foreign_keys = ON;", "BEGIN IMMEDIATE;", *[f"{sql};" for sql in smoke], "ROLLBACK;"]
    return statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    target, _ = large_pair(args.size_mb)
    assertions, smoke = demo_settings()
    counts, indexes = row_counts(target), index_names(target)
    statements = cli_statements(target, assertions, smoke)
    print(f"database: {target.stat().st_size / 2**20:.0f} MB, {len(assertions)} assertions, {len(smoke)} smoke statements")

    def ours():
        results = run_checks(target, assertions=assertions, fk_baseline=0, reference_path=target,
                             manifest_row_counts=counts, indexes=indexes, smoke_statements=smoke, time_limit=600)
        failing = [r.name for r in results if not r.passed]
        assert not failing, failing

    def baseline():
        subprocess.run([SQLITE3, str(target), *statements], check=True, stdout=subprocess.DEVNULL)

    compare("full verification", ours, baseline)


if __name__ == "__main__":
    main()
