"""Moving a SQLite database into PostgreSQL: `cutover move --yes` against pgloader, side by side.

The source is bench/datagen.py's fractal-goals-shaped development database of about N MB; the
target schema is made from it once (what the application's own migrations would make: bigint
keys, text, timestamp, boolean, double precision, the same NOT NULL, UNIQUE and foreign keys) in
a template database, and every round starts from a fresh empty copy of it. Alternating round by
round, medians:

- Cutover: `cutover move SOURCE TARGET --yes` (the real CLI in a subprocess: every row judged by
  preflight's rules as the COPY reads it, in one transaction with foreign keys enforced,
  fingerprints read back and compared before COMMIT, counts after, the source's SHA-256 before
  and after);
- pgloader: the same file into the same pre-created schema (`data only, create no tables,
  disable triggers` so that its parallel table loads do not trip the foreign keys, `reset
  sequences`), its load alone: no preflight, no verification.

Peak memory is each child's own maximum resident set (wait4), so it does not mix the two sides.

    python -m bench.bench_move [--size-mb 1024] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

from bench.bench_postgres import remove_cluster, start_cluster
from bench.datagen import large_pair

PROJECT = Path(__file__).resolve().parent.parent
TEMPLATE = "move_template"
TYPES = (("INT", "bigint"), ("BOOL", "boolean"), ("DATETIME", "timestamp"), ("DATE", "date"),
         ("REAL", "double precision"), ("FLOA", "double precision"), ("DOUB", "double precision"))


def postgres_type(declared: str) -> str:
    return next((pg for word, pg in TYPES if word in declared.upper()), "text")


def target_schema(source: Path) -> str:
    """The source's tables as PostgreSQL DDL: columns, NOT NULL, primary and unique keys, then foreign keys."""
    statements, keys = [], []
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as connection:
        tables = [name for (name,) in connection.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        for table in tables:
            columns = [f'"{name}" {postgres_type(kind)}{" NOT NULL" if notnull else ""}{" PRIMARY KEY" if pk else ""}'
                       for _, name, kind, notnull, _, pk in connection.execute(f'PRAGMA table_info("{table}")')]
            for _, index, unique, origin, _ in connection.execute(f'PRAGMA index_list("{table}")'):
                if unique and origin == "u":
                    names = [r[2] for r in connection.execute(f'PRAGMA index_info("{index}")')]
                    columns.append(f"UNIQUE ({', '.join(names)})")
            statements.append(f'CREATE TABLE "{table}" ({", ".join(columns)});')
            for row in connection.execute(f'PRAGMA foreign_key_list("{table}")'):
                keys.append(f'ALTER TABLE "{table}" ADD FOREIGN KEY ("{row[3]}") REFERENCES "{row[2]}" ("{row[4] or "id"}");')
    return "\n".join(statements + keys)


def run_measured(command: list[str], env=None) -> tuple[float, int, str]:
    """(seconds, peak resident MB of that child, its output)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} exited {process.returncode}:\n{output[-4000:]}")
    return seconds, usage.ru_maxrss // 1024, output


def fresh_target(server, name: str) -> str:
    server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    server.psql(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    return server.url(name)


def cutover_side(server, source: Path, folder: Path):
    url = fresh_target(server, "move_cutover")
    config = folder / "cutover.toml"
    config.write_text(f'[environments.app]\ndatabase = "{source}"\nreference = true\n')
    env = {**os.environ, "CUTOVER_CONFIG": str(config), "CUTOVER_INSTANCE_DIR": str(folder / "instance"),
           "CUTOVER_ADMIN_PASSWORD": "bench-admin-password"}
    return run_measured([sys.executable, "-m", "flask", "--app", "run", "cutover", "move", "app", url, "--yes"], env)


def pgloader_side(server, source: Path, folder: Path):
    url = fresh_target(server, "move_pgloader")
    load = folder / "load.pgl"
    load.write_text(f"""LOAD DATABASE
  FROM sqlite://{source}
  INTO {url}
  WITH data only, create no tables, create no indexes, disable triggers, reset sequences
  SET work_mem to '16MB', maintenance_work_mem to '256MB';
""")
    # Its default 1 GB Lisp heap runs out on the 1 GB database ("Heap exhausted, game over").
    return run_measured(["pgloader", "--dynamic-space-size", "4096", "--quiet", str(load)])


def counts(server, name: str, tables: list[str]) -> dict:
    return {t: int(server.psql(f'SELECT count(*) FROM "{t}"', name)) for t in tables}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if shutil.which("pgloader") is None:
        sys.exit("pgloader is not installed (apt-get install pgloader)")
    source, _ = large_pair(args.size_mb)
    source = source.parent / "goals_dev.db"
    server = start_cluster()
    folder = Path(tempfile.mkdtemp(prefix="bench-move-"))
    os.chmod(folder, 0o755)
    try:
        server.psql(f'CREATE DATABASE "{TEMPLATE}"')
        server.psql(target_schema(source), TEMPLATE)
        print(f"source {source} {source.stat().st_size / 2**20:.0f} MB; server {server.psql('SHOW server_version').strip()}",
              flush=True)
        sides = {"cutover": cutover_side, "pgloader": pgloader_side}
        times = {name: [] for name in sides}
        memory = {name: [] for name in sides}
        for round_number in range(1, args.rounds + 1):
            order = list(sides) if round_number % 2 else list(reversed(sides))
            for name in order:
                seconds, peak, output = sides[name](server, source, folder)
                times[name].append(seconds)
                memory[name].append(peak)
                print(f"  round {round_number} {name:<9} {seconds:8.2f} s  peak {peak} MB", flush=True)
        tables = [t for t in server.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                                         "move_cutover").split()]
        same = counts(server, "move_cutover", tables) == counts(server, "move_pgloader", tables)
        ours, theirs = statistics.median(times["cutover"]), statistics.median(times["pgloader"])
        print(f"\nCutover move --yes {ours:.2f} s (peak {max(memory['cutover'])} MB), pgloader {theirs:.2f} s "
              f"(peak {max(memory['pgloader'])} MB): ratio {ours / theirs:.2f}x; same row counts: {same}")
    finally:
        remove_cluster(server, folder)


if __name__ == "__main__":
    main()
