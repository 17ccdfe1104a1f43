"""`cutover diff` on schemas of many tables, against a plain PRAGMA diff (bench/pragma_diff.py).

    python -m bench.bench_diff_scale                       # 500, 1000, 2000, 5000 tables
    python -m bench.bench_diff_scale --sizes 500 2000 --rounds 3
    python -m bench.bench_diff_scale --large bench/data/pair-1024mb   # also time the ~1 GB pair

For each size, a development and a production file are generated (empty tables: this
measures the schema, not the data) with about 10% of the tables differing: a missing table,
a missing column, a changed column type or a missing index, in turn. Both sides run as what
an operator types, in a fresh process each time, Python start-up included:

- ours: `flask --app run cutover diff development production` (exit 1: they differ);
- baseline: `python bench/pragma_diff.py dev.db prod.db`, PRAGMA table_info / index_list /
  index_info / foreign_key_list for every table, compared as tuples.

Sides alternate round by round (one warm-up each); medians. Start-up is measured the same
way on a one-table pair, so the growth per table can be read off: linear growth keeps the
time per table (above start-up) flat from the smallest size to the largest.
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

PROJECT = Path(__file__).resolve().parents[1]
DATA_DIR = PROJECT / "bench" / "data" / "diff-scale"
PRAGMA_DIFF = PROJECT / "bench" / "pragma_diff.py"
SIZES = (500, 1000, 2000, 5000)
GOAL_AT = 2000
GOAL_RATIO = 2.0
DIFFERING_KINDS = 4  # every 40th table is missing, lacks a column, changes a type, lacks an index


def table_sql(number: int, side: str) -> list[str]:
    """One table, its index, and every 50th table a view and a trigger; production drifts."""
    name = f"t{number:05d}"
    drift = number % 40 if side == "production" else None
    if drift == 1:
        return []  # only in development
    parent = f"T{number - 1:05d}" if number % 2 else f"t{number - 1:05d}"  # names are case-insensitive
    amount = "INTEGER" if drift == 3 else "REAL"
    note = "" if drift == 2 else ", note TEXT"
    statements = [
        f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, code TEXT UNIQUE, "
        f"parent_id INTEGER REFERENCES {parent}(id) ON DELETE CASCADE, amount {amount} DEFAULT 0{note}, "
        f"created_at TEXT DEFAULT CURRENT_TIMESTAMP)"
    ]
    if drift != 4:
        statements.append(f"CREATE INDEX {name}_parent ON {name} (parent_id, created_at DESC)")
    if number % 50 == 0:
        statements.append(f"CREATE VIEW {name}_named AS SELECT id, name FROM {name} WHERE name <> ''")
        statements.append(f"CREATE TRIGGER {name}_touch AFTER UPDATE ON {name} BEGIN "
                          f"UPDATE {name} SET created_at = CURRENT_TIMESTAMP WHERE id = NEW.id; END")
    return statements


def schema_sql(tables: int, side: str) -> list[str]:
    statements = [s for number in range(1, tables + 1) for s in table_sql(number, side)]
    if side == "production":  # a few tables only production has
        statements += [f"CREATE TABLE legacy_{n:03d} (id INTEGER PRIMARY KEY, payload BLOB)"
                       for n in range(max(tables // 200, 1))]
    return statements


def build(path: Path, statements: list[str]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    conn = sqlite3.connect(partial, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for statement in statements:
            conn.execute(statement)
        conn.execute("COMMIT")
    finally:
        conn.close()
    partial.rename(path)


def schema_pair(tables: int) -> tuple[Path, Path]:
    """(development, production) with `tables` tables each, built once and cached."""
    folder = DATA_DIR / f"{tables}"
    folder.mkdir(parents=True, exist_ok=True)
    pair = folder / "dev.db", folder / "prod.db"
    for path, side in zip(pair, ("development", "production")):
        if not path.exists():
            build(path, schema_sql(tables, side))
    return pair


def workspace(scratch: Path, dev: Path, prod: Path) -> dict:
    """Environment variables for a cutover process reading `dev` and `prod` (read-only)."""
    config = scratch / f"cutover-{abs(hash((dev, prod)))}.toml"
    config.write_text(f'[environments.development]\ndatabase = "{dev}"\nreference = true\n\n'
                      f'[environments.production]\ndatabase = "{prod}"\n')
    return {**python_environment(), "CUTOVER_CONFIG": str(config), "CUTOVER_INSTANCE_DIR": str(scratch / "instance"),
            "CUTOVER_ADMIN_PASSWORD": "bench-admin-password"}


def python_environment() -> dict:
    """Both sides start Python as an installation does: with .pyc files written and reused
    (an environment with PYTHONDONTWRITEBYTECODE would recompile every module of the app on
    every start, which is not what an operator's machine does)."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


class Timing(NamedTuple):
    wall: float  # seconds, as the operator waits
    cpu: float  # user + system seconds of the process: steadier on a shared, loaded machine


def run(command: list[str], env: dict | None = None) -> Timing:
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode not in (0, 1):
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} exited {process.returncode}: {errors.read().decode()}")
    return Timing(elapsed, usage.ru_utime + usage.ru_stime)


def cutover_diff(env: dict, *options: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "run", "cutover", "diff", "development", "production", *options]


def side_by_side(ours, baseline, rounds: int) -> tuple[Timing, Timing]:
    """Medians (wall and CPU apart) of alternated runs, after one warm-up each (page cache, .pyc)."""
    ours(), baseline()
    our_times, base_times = [], []
    for _ in range(rounds):
        our_times.append(ours())
        base_times.append(baseline())
    return _median(our_times), _median(base_times)


def _median(timings: list[Timing]) -> Timing:
    return Timing(statistics.median(t.wall for t in timings), statistics.median(t.cpu for t in timings))


def measure(tables: int, scratch: Path, rounds: int) -> tuple[Timing, Timing]:
    dev, prod = schema_pair(tables)
    env = workspace(scratch, dev, prod)
    return side_by_side(lambda: run(cutover_diff(env), env),
                        lambda: run([sys.executable, str(PRAGMA_DIFF), str(dev), str(prod)], python_environment()),
                        rounds)


def large_pair_times(folder: Path, scratch: Path, rounds: int) -> None:
    dev, prod = folder / "goals_dev.db", folder / "goals.db"
    env = workspace(scratch, dev, prod)
    quick, checked = side_by_side(lambda: run(cutover_diff(env), env),
                                  lambda: run(cutover_diff(env, "--check"), env), rounds)
    print(f"\n{folder.name}: {dev.stat().st_size / 2**20:.0f} MB + {prod.stat().st_size / 2**20:.0f} MB (wall / CPU)")
    print(f"  cutover diff development production          {quick.wall:8.3f} s / {quick.cpu:8.3f} s")
    print(f"  cutover diff development production --check  {checked.wall:8.3f} s / {checked.cpu:8.3f} s")


def report(sizes, times, startup) -> None:
    for clock in ("wall", "cpu"):
        _report_clock(clock, sizes, {t: (getattr(o, clock), getattr(b, clock)) for t, (o, b) in times.items()},
                      (getattr(startup[0], clock), getattr(startup[1], clock)))


def _report_clock(clock, sizes, times, startup) -> None:
    print(f"\n{clock} time: {'tables':>7} {'cutover diff':>13} {'PRAGMA diff':>12} {'ratio':>7} "
          f"{'ms/table (ours, above start-up)':>33} {'ms/table (PRAGMA)':>18}")
    for tables in sizes:
        ours, base = times[tables]
        print(f"{'':>10} {tables:>7} {ours:>11.3f} s {base:>10.3f} s {ours / base:>6.2f}x "
              f"{(ours - startup[0]) / tables * 1000:>33.3f} {(base - startup[1]) / tables * 1000:>18.3f}")
    print(f"  start-up (one-table pair): cutover {startup[0]:.3f} s, PRAGMA diff {startup[1]:.3f} s")
    if len(sizes) > 1:
        ours, base = (_growth(sizes, times, startup, side) for side in (0, 1))
        # SQLite's own per-table cost grows a little with the schema (the PRAGMA diff shows it),
        # so growth is judged against the baseline's: quadratic work would show as a multiple.
        verdict = "linear" if ours <= max(1.5, 1.25 * base) else "faster than linear"
        print(f"  time per table above start-up, {sizes[-1]} vs {sizes[0]} tables: cutover {ours:.2f}x, "
              f"PRAGMA diff {base:.2f}x -> {verdict}")
    if GOAL_AT in times:
        ours, base = times[GOAL_AT]
        above = (ours - startup[0]) / (base - startup[1])
        print(f"  {GOAL_AT} tables: {ours / base:.2f}x the PRAGMA diff (goal <= {GOAL_RATIO}x): "
              f"{'met' if ours / base <= GOAL_RATIO else 'NOT met'}; above each side's start-up: {above:.2f}x")


def _growth(sizes, times, startup, side: int) -> float:
    """Time per table (above start-up) at the largest size over the same at the smallest."""
    def per_table(tables):
        return (times[tables][side] - startup[side]) / tables
    return per_table(sizes[-1]) / per_table(sizes[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--large", type=Path, help="a folder holding goals_dev.db and goals.db (opened read-only)")
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        startup = measure(1, scratch, args.rounds)
        times = {}
        for tables in sizes:
            times[tables] = measure(tables, scratch, args.rounds)
            ours, base = times[tables]
            print(f"{tables} tables: cutover {ours.wall:.3f} s ({ours.cpu:.3f} s CPU), "
                  f"PRAGMA diff {base.wall:.3f} s ({base.cpu:.3f} s CPU)", flush=True)
        report(sizes, times, startup)
        if args.large:
            large_pair_times(args.large, scratch, args.rounds)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
