"""Applying the demo plan set to a ~1 GB production copy: Cutover against the sqlite3 CLI.

Each side gets a fresh copy of the same prepared production (the prep plan from
development already applied, so the plan set succeeds) and runs the statements Cutover
would run (reconciliation skips the ones production already has; the CLI would fail on
them):

- ours: `apply_plan` (one BEGIN IMMEDIATE transaction, every statement reconciled on the
  live schema, quick_check + foreign_key_check before and after, COMMIT);
- baseline: `/usr/bin/sqlite3 -bail` running the same SQL between BEGIN IMMEDIATE and COMMIT;
- the original script's way: Python's sqlite3, statement by statement, in autocommit;
- the rehearsal: `rehearse` (snapshot of the prepared production + apply + verification).

Copies are made before the clock starts; sides alternate round by round; medians.

    python -m bench.bench_migrate [--size-mb 1024] [--rounds 3]
"""
from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from contextlib import closing
from importlib import resources
from pathlib import Path

from app.core.inspect import inspect_database
from app.core.migrate import apply_plan, rehearse
from app.core.plans import load_plan_set
from app.core.prep import generate_prep
from app.core.reconcile import reconcile
from app.core.engines import engine_for
from bench.datagen import DATA_DIR, large_pair

SQLITE3 = "/usr/bin/sqlite3"
PLAN_FILES = ("migrate_database_improvements.sql", "hotfix_activity_instances.sql")


def demo_plan_set():
    folder = resources.files("app.core") / "demo_plans"
    return load_plan_set([Path(str(folder / name)) for name in PLAN_FILES])


def prepared_production(dev: Path, prod: Path, folder: Path, plans) -> Path:
    """A copy of production with the prep plan applied (once; every round copies this)."""
    prepared = folder / "prepared.db"
    shutil.copyfile(prod, prepared)
    engine = engine_for(prepared)
    prep = generate_prep(inspect_database(prod, deep=False).schema,
                         inspect_database(dev, deep=False).schema, engine=engine, plan_set=plans)
    with closing(engine.open_for_writing(busy_timeout=5)) as connection:
        with engine.write_transaction(connection):
            for statement in prep.plan().statements():
                connection.execute(statement.sql)
    return prepared


def statements_that_run(prepared: Path, plans) -> list[str]:
    """What Cutover executes on this production: the plan minus what reconciliation skips."""
    reconciliation = reconcile(prepared, plans)
    assert reconciliation.ready, reconciliation.summary()
    return [o.statement.sql for o in reconciliation.outcomes() if o.outcome == "will_run"]


def run_ours(copy: Path, plans) -> dict:
    started = time.perf_counter()
    result = apply_plan(copy, plans, busy_timeout=5)
    total = time.perf_counter() - started
    return {"total": total, **{name: ms / 1000 for name, ms in result.timings.items()}}


def run_cli(copy: Path, statements: list[str]) -> dict:
    script = "BEGIN IMMEDIATE;\n" + "\n".join(statements) + "\nCOMMIT;\n"
    started = time.perf_counter()
    subprocess.run([SQLITE3, "-bail", str(copy)], input=script, text=True, check=True,
                   stdout=subprocess.DEVNULL)
    return {"total": time.perf_counter() - started}


def run_autocommit(copy: Path, statements: list[str]) -> dict:
    started = time.perf_counter()
    with closing(sqlite3.connect(copy, isolation_level=None)) as connection:
        for sql in statements:
            connection.execute(sql)  # each statement its own transaction, as the script did
    return {"total": time.perf_counter() - started}


def run_rehearsal(prepared: Path, plans, folder: Path) -> dict:
    result = rehearse(prepared, plans, busy_timeout=5, workdir=folder)
    assert result.passed, result.failure
    return {name.removesuffix("_ms"): ms / 1000 for name, ms in result.timings.items()}


def measure(prepared: Path, plans, statements: list[str], folder: Path, rounds: int) -> dict:
    sides = {
        "cli": lambda copy: run_cli(copy, statements),
        "ours": lambda copy: run_ours(copy, plans),
        "autocommit": lambda copy: run_autocommit(copy, statements),
    }
    samples: dict[str, list[dict]] = {name: [] for name in (*sides, "rehearsal")}
    for round_number in range(1, rounds + 1):
        for name, side in sides.items():
            copy = folder / f"{name}.db"
            shutil.copyfile(prepared, copy)  # before the clock starts
            samples[name].append(side(copy))
            copy.unlink()
            _progress(round_number, name, samples[name][-1])
        samples["rehearsal"].append(run_rehearsal(prepared, plans, folder))
        _progress(round_number, "rehearsal", samples["rehearsal"][-1])
    return {name: _medians(runs) for name, runs in samples.items()}


def _progress(round_number: int, side: str, sample: dict) -> None:
    print(f"  round {round_number} {side:<10} {sample['total']:7.1f} s", flush=True)


def _medians(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def report(size_mb: float, statements: int, medians: dict, rounds: int) -> None:
    cli = medians["cli"]["total"]
    ours = medians["ours"]
    checks = ours["checks_before_ms"] + ours["checks_after_ms"]
    rows = [
        ("sqlite3 CLI, one transaction (baseline)", cli),
        ("Cutover apply_plan, total", ours["total"]),
        ("  of which: statements", ours["statements_ms"]),
        ("  of which: quick_check + foreign_key_check, before and after", checks),
        ("statement by statement, autocommit (the original script)",
         medians["autocommit"]["total"]),
        ("rehearsal total (snapshot + apply + verify)", medians["rehearsal"]["total"]),
    ]
    print(f"\nDemo plan set ({statements} statements run) on a {size_mb:,.0f} MB production copy, "
          f"median of {rounds}:")
    for label, seconds in rows:
        print(f"  {label:<64} {seconds:8.1f} s   {seconds / cli:5.2f}x")
    rehearsal = medians["rehearsal"]
    print(f"  rehearsal parts: snapshot {rehearsal['snapshot']:.1f} s, "
          f"apply {rehearsal['apply']:.1f} s, verify {rehearsal['verify']:.1f} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    dev, prod = large_pair(args.size_mb)
    plans = demo_plan_set()
    folder = Path(tempfile.mkdtemp(prefix="bench-migrate-", dir=DATA_DIR))
    try:
        prepared = prepared_production(dev, prod, folder, plans)
        statements = statements_that_run(prepared, plans)
        medians = measure(prepared, plans, statements, folder, args.rounds)
        report(prepared.stat().st_size / 2**20, len(statements), medians, args.rounds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
