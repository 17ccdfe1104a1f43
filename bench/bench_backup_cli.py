"""`cutover backup` as an operator runs it, against the verified backup a careful operator scripts.

Both sides, alternated round by round on the same production database (bench/datagen.py's
fractal-goals-shaped `goals.db`, rollback journal), each a whole process:

- Cutover: `flask --app run cutover backup production --json` (start-up, the locked byte copy
  hashed as it is written and fsynced, the copy's quick_check, exact row counts and fingerprint,
  the hash read back, the manifest);
- the script: `sqlite3 SRC ".backup DST"`, then the copy's SHA-256 (`openssl dgst -sha256`, a
  fast hash: coreutils' sha256sum is several times slower here) and `PRAGMA quick_check` on it in
  parallel, then `sync DST` (the copy durable, as Cutover's is). It checks less than Cutover
  (no row counts, no fingerprint, the hash not compared with the source's) and is the baseline
  the performance issue names.

Before each run the previous outputs are deleted, `sync` flushes dirty pages and the source is read
once, so both start with the source in the page cache and nothing pending. Peak memory is the
child's own maximum resident set (wait4; the script's is its largest process).

    python -m bench.bench_backup_cli [--size-mb 1024] [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.datagen import large_pair

PROJECT = Path(__file__).resolve().parent.parent
SCRIPT = """set -e
sqlite3 "$1" ".backup '$2'"
openssl dgst -sha256 "$2" > "$2.sha256" &
hashing=$!
test "$(sqlite3 "$2" 'PRAGMA quick_check')" = ok
wait $hashing
sync "$2"
"""


def run_measured(command: list[str], env=None) -> tuple[float, int]:
    """(seconds, peak resident MB of the child and its own children)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command[:5])} failed:\n{output[-3000:]}")
    return seconds, usage.ru_maxrss // 1024


def settle(source: Path, outputs: Path) -> None:
    """The same start for every run: no outputs, nothing dirty, the source in the page cache."""
    shutil.rmtree(outputs, ignore_errors=True)
    outputs.mkdir()
    subprocess.run(["sync"], check=True)
    with open(source, "rb") as handle:
        while handle.read(1 << 20):
            pass


def cutover_side(source: Path, folder: Path) -> tuple[float, int]:
    config = folder / "cutover.toml"
    config.write_text(f'[environments.production]\ndatabase = "{source}"\nreference = true\n'
                      f'backup_dirs = ["{folder / "outputs"}"]\n')
    env = {**os.environ, "CUTOVER_CONFIG": str(config), "CUTOVER_INSTANCE_DIR": str(folder / "instance"),
           "CUTOVER_ADMIN_PASSWORD": "bench-admin-password"}
    return run_measured([sys.executable, "-m", "flask", "--app", "run", "cutover", "backup", "production", "--json"],
                        env)


def script_side(source: Path, folder: Path) -> tuple[float, int]:
    return run_measured(["sh", "-c", SCRIPT, "backup", str(source), str(folder / "outputs" / "copy.db")])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    for tool in ("sqlite3", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    _, source = large_pair(args.size_mb)
    folder = Path(tempfile.mkdtemp(prefix="bench-backup-cli-"))
    sides = {"cutover": cutover_side, "script": script_side}
    times, memory = {name: [] for name in sides}, {name: [] for name in sides}
    print(f"source {source} {source.stat().st_size / 2**20:.0f} MB; load {os.getloadavg()[0]:.2f}", flush=True)
    try:
        for round_number in range(1, args.rounds + 1):
            for name in (sides if round_number % 2 else reversed(list(sides))):
                settle(source, folder / "outputs")
                seconds, peak = sides[name](source, folder)
                times[name].append(seconds)
                memory[name].append(peak)
                print(f"  round {round_number} {name:<8} {seconds:7.2f} s  peak {peak} MB", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ratios = [ours / theirs for ours, theirs in zip(times["cutover"], times["script"])]
    print(f"\ncutover backup {statistics.median(times['cutover']):.2f} s (peak {max(memory['cutover'])} MB), "
          f"verified script {statistics.median(times['script']):.2f} s (peak {max(memory['script'])} MB): "
          f"ratio of medians {statistics.median(times['cutover']) / statistics.median(times['script']):.2f}x, "
          f"per round {', '.join(f'{r:.2f}' for r in ratios)}; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
