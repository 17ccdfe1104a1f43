"""Backup benchmark: the runbook's `cp && sha256sum` against Cutover's verified backup.

    python -m bench.bench_backup                 # ~1 GB database (built once, cached)
    python -m bench.bench_backup --size-mb 50    # a quick run

One run measures, side by side, on the same fractal-goals-shaped database
(bench/datagen.py: goals, activity_instances, metric_values, ... with their indexes):

- `cp src dst && sha256sum dst` (the runbook; nothing is fsynced), and the same plus
  `sync dst`, which is what durability costs the runbook too;
- for every method implemented (the locked byte copy and the backup API on a
  rollback-journal database, the backup API on a WAL database):
  create_backup(verify=False) followed by verify_backup, and create_backup with its
  default verify=True (what the checklist step runs: the same checks, overlapped);
- VACUUM INTO, snapshot only, as the reference for choosing the backup API in WAL mode;
- the longest commit stall of a writer process committing every ~3 ms during each
  one-call backup.

Every case runs --repeat times, round-robin, and the median is reported (this VM's disk
and CPUs are noisy). Page cache policy, the same for every case: before each timed run
the previous run's outputs are deleted, `sync` flushes dirty pages, and the source is
read once, so every method starts with the source warm in the page cache and nothing
pending. `--cold` drops the page cache instead (root only).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from app.core.backup import create_backup, verify_backup
from app.core.engines.sqlite.backup_copy import BACKUP_API, LOCKED_COPY
from bench.datagen import DATA_DIR, large_pair

WRITER = """
import json, signal, sqlite3, sys, time
stop = False
def finish(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, finish)
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=120)
connection.execute("CREATE TABLE IF NOT EXISTS bench_writer (n INTEGER, tag TEXT)")
commits, longest = 0, 0.0
print("ready", flush=True)
while not stop:
    started = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO bench_writer VALUES (?, 'a')", (commits,))
    connection.execute("INSERT INTO bench_writer VALUES (?, 'b')", (commits,))
    connection.execute("COMMIT")
    longest = max(longest, time.perf_counter() - started)
    commits += 1
    time.sleep(0.003)
print(json.dumps({"commits": commits, "longest_stall_s": longest}), flush=True)
"""


def prepare_sources(size_mb: int) -> tuple[Path, Path]:
    """(rollback-journal copy, WAL copy) of the cached production-shaped database."""
    _, production = large_pair(size_mb)
    folder = DATA_DIR / f"backup-bench-{size_mb}mb"
    folder.mkdir(parents=True, exist_ok=True)
    rollback, wal = folder / "goals.db", folder / "goals_wal.db"
    for path, mode in ((rollback, "delete"), (wal, "wal")):
        if not path.exists():
            shutil.copyfile(production, path)
            with closing(sqlite3.connect(path, isolation_level=None)) as connection:
                connection.execute(f"PRAGMA journal_mode = {mode}")
    return rollback, wal


def settle(source: Path, outputs: Path, cold: bool) -> None:
    """The same starting point for every method (see the module docstring)."""
    shutil.rmtree(outputs, ignore_errors=True)
    outputs.mkdir(parents=True)
    subprocess.run(["sync"], check=True)
    if cold:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return
    with open(source, "rb", buffering=0) as file:
        while file.read(8 * 1024 * 1024):
            pass


def run_cp(source: Path, outputs: Path, durable: bool) -> dict:
    destination = outputs / "cp-copy.db"
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(destination)], check=True)
    if durable:
        subprocess.run(["sync", str(destination)], check=True)
    subprocess.run(["sha256sum", str(destination)], check=True, stdout=subprocess.DEVNULL)
    return {"total_s": time.perf_counter() - started}


def run_ours(source: Path, outputs: Path, method: str) -> dict:
    """create_backup (snapshot only) then verify_backup: one verification, as the
    default create_backup(verify=True) does before publishing."""
    started = time.perf_counter()
    backup = create_backup(source, [outputs], method=method, verify=False)
    created = time.perf_counter()
    result = verify_backup(backup)
    finished = time.perf_counter()
    if not result.verified:
        raise SystemExit(f"backup did not verify: {result.to_dict()}")
    return {"create_s": created - started, "verify_s": finished - created,
            "total_s": finished - started, "size": backup.manifest.size_bytes}


def run_one_call(source: Path, outputs: Path, method: str) -> dict:
    """What the checklist step runs: every copy verified before it is published."""
    started = time.perf_counter()
    backup = create_backup(source, [outputs], method=method)
    if not backup.verified:
        raise SystemExit(f"backup did not verify: {backup.to_dict()}")
    return {"total_s": time.perf_counter() - started, "size": backup.manifest.size_bytes}


def run_vacuum_into(source: Path, outputs: Path) -> dict:
    started = time.perf_counter()
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as connection:
        connection.execute("VACUUM INTO ?", (str(outputs / "vacuum-into.db"),))
    return {"total_s": time.perf_counter() - started}


@dataclass
class Case:
    label: str
    source: Path
    run: Callable[[Path], dict]  # outputs folder -> timings
    method: str | None = None  # a Cutover method: also measured under a concurrent writer
    runs: list[dict] = field(default_factory=list)


def cases(rollback: Path, wal: Path) -> list[Case]:
    methods = [("locked copy, rollback db", rollback, LOCKED_COPY),
               ("backup API, rollback db", rollback, BACKUP_API),
               ("backup API, WAL db", wal, BACKUP_API)]
    plan = [
        Case("cp && sha256sum", rollback, lambda out: run_cp(rollback, out, durable=False)),
        Case("cp && sync && sha256sum", rollback, lambda out: run_cp(rollback, out, durable=True)),
    ]
    for label, source, method in methods:
        plan.append(Case(f"{label}: create + verify_backup", source,
                         lambda out, s=source, m=method: run_ours(s, out, m)))
        plan.append(Case(f"{label}: create_backup(verify=True)", source,
                         lambda out, s=source, m=method: run_one_call(s, out, m), method))
    plan.append(Case("VACUUM INTO (WAL db, snapshot only)", wal, lambda out: run_vacuum_into(wal, out)))
    return plan


def benchmark(args) -> list[dict]:
    """Round-robin over the cases `repeat` times (noise spreads evenly), then the medians."""
    rollback, wal = prepare_sources(args.size_mb)
    outputs = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=DATA_DIR))
    plan = cases(rollback, wal)
    try:
        for round_number in range(args.repeat):
            for case in plan:
                settle(case.source, outputs, args.cold)
                case.runs.append(case.run(outputs))
                print(f"  round {round_number + 1}: {case.label}: {case.runs[-1]['total_s']:.2f} s",
                      file=sys.stderr, flush=True)
        rows = [summarise(case) for case in plan]
        if args.writer:
            for case, row in zip(plan, rows):
                if case.method:
                    settle(case.source, outputs, args.cold)
                    row.update(stall_under_writer(case, outputs))
        return rows
    finally:
        shutil.rmtree(outputs, ignore_errors=True)


def summarise(case: Case) -> dict:
    row = {"method": case.label, "runs": len(case.runs)}
    for key in case.runs[0]:
        row[key] = statistics.median(run[key] for run in case.runs)
    row["all_total_s"] = [round(run["total_s"], 2) for run in case.runs]
    return row


def with_writer(source: Path, action: Callable[[], None]) -> dict:
    """Run `action` while a writer commits every ~3 ms; returns the writer's figures."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(source)],
                              stdout=subprocess.PIPE, text=True)
    writer.stdout.readline()
    time.sleep(0.2)  # let it commit a few times first
    try:
        action()
    finally:
        writer.send_signal(signal.SIGTERM)
        out, _ = writer.communicate(timeout=300)
    return json.loads(out.strip().splitlines()[-1])


def stall_under_writer(case: Case, outputs: Path) -> dict:
    """The same backup again, while the application commits every few ms."""
    stats = with_writer(case.source, lambda: case.run(outputs))
    return {"writer_longest_stall_s": stats["longest_stall_s"], "writer_commits": stats["commits"]}


def report(rows: list[dict], args) -> None:
    baseline, durable = rows[0]["total_s"], rows[1]["total_s"]
    size = next(row["size"] for row in rows if "size" in row)
    cache = "cold (page cache dropped)" if args.cold else "warm (source read once, dirty pages synced)"
    print(f"\nDatabase: {size / 2**20:,.0f} MB; page cache: {cache}; sqlite {sqlite3.sqlite_version}; "
          f"median of {args.repeat} interleaved rounds")
    print(f"{'method':52} {'create':>7} {'verify':>7} {'total':>7} {'vs cp':>7} {'vs cp+sync':>10}"
          f" {'writer stall':>13}  all totals")
    for row in rows:
        create = f"{row['create_s']:.2f}" if "create_s" in row else ""
        verify = f"{row['verify_s']:.2f}" if "verify_s" in row else ""
        stall = f"{row['writer_longest_stall_s'] * 1000:.0f} ms" if "writer_longest_stall_s" in row else ""
        print(f"{row['method']:52} {create:>7} {verify:>7} {row['total_s']:>7.2f} "
              f"{row['total_s'] / baseline:>6.2f}x {row['total_s'] / durable:>9.2f}x {stall:>13}"
              f"  {row['all_total_s']}")
    if args.json:
        print(json.dumps(rows, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each run (root)")
    parser.add_argument("--no-writer", dest="writer", action="store_false",
                        help="skip the runs with a concurrent writer")
    parser.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    args = parser.parse_args()
    report(benchmark(args), args)


if __name__ == "__main__":
    main()
