"""An application's Alembic chain on PostgreSQL: `cutover migrate` against `alembic upgrade head` alone.

The issue's target: rehearsal + apply of a 90-revision chain on a 1 GB PostgreSQL database at most
2.2x `alembic upgrade head` alone on the same database (the rehearsal's copy is the price of safety).

The database is bench_postgres.py's (same cluster settings, durability on, the fractal-goals tables
of about N MB). The application is generated into a temporary folder: an alembic.ini, an env.py that
connects wherever DATABASE_URL points (as real ones do), a baseline revision that creates the loaded
schema, and `--revisions` more, shaped like a real application's history:

- most add a nullable column or one with a constant default (metadata only in PostgreSQL 11+),
- every seventh creates a small table with a foreign key to goals,
- three build an index on a big table (metric_values, activity_instances, practice_sessions),
- two are data migrations (UPDATE of every goal and of every practice session),
- one in six of the others reads the database before it writes (13 of 90; the real application: 14) (Alembic's --sql mode cannot render those: Cutover
  captures their statements on a copy of the real data).

Each round starts both sides from a fresh copy of the loaded database stamped at the baseline (made
before the clock starts), alternating which side goes first; medians:

- alembic: `python -m alembic upgrade head` with DATABASE_URL on its copy: the statements, nothing else;
- Cutover: `cutover migrate production --yes` (the real CLI): the plan's preflight (the stamp rebuilt
  in an empty scratch database and compared, every revision rendered or captured), the verified
  backup, the rehearsal on a copy, then the apply in one transaction with its checks.

Printed: the whole `migrate`, and the same without its verified backup (the lines between
"Backing up" and "Backup ... verified"): the issue's "rehearsal + apply". The backup alone is
bench_postgres.py's row 1.

    python -m bench.bench_alembic [--size-mb 1024] [--rounds 3] [--revisions 90]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_postgres import (FOREIGN_KEYS, TABLES, TEMPLATE, cli, clear_backups, copy_database, load,
                                  remove_cluster, start_cluster, uptime)

PROJECT = Path(__file__).resolve().parent.parent
STAMPED = "alembic_stamped"  # the template, stamped at the baseline revision
TARGET = "production"
THEIRS = "alembic_target"

ALEMBIC_INI = """[alembic]
script_location = %(here)s/migrations
sqlalchemy.url = postgresql+psycopg://localhost/app

[loggers]
keys = root
[handlers]
keys = console
[formatters]
keys = generic
[logger_root]
level = WARN
handlers = console
[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic
[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""

ENV_PY = '''import os

from alembic import context
from sqlalchemy import create_engine

url = os.environ.get("DATABASE_URL") or context.config.get_main_option("sqlalchemy.url")

if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with create_engine(url).connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
'''

REVISION = '''"""{message}

Revision ID: {revision}
"""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
{body}


def downgrade():
    pass
'''

BIG_INDEXES = {  # revision number -> (table, column)
    20: ("metric_values", "created_at"),
    45: ("activity_instances", "time_start"),
    70: ("practice_sessions", "started_at"),
}
DATA_MIGRATIONS = {
    33: "UPDATE goals SET description = coalesce(description, '') || ' (reviewed)'",
    58: "UPDATE practice_sessions SET duration_minutes = coalesce(duration_minutes, 0)",
}
SMALL_TABLES = ("goals", "activity_definitions", "metric_definitions")
BIG_TABLES = ("practice_sessions", "activity_instances", "metric_values")


def baseline_body() -> str:
    """The loaded schema, statement by statement, as bench_postgres.load builds it (same names)."""
    statements = [s.strip() for s in TABLES.split(";") if s.strip()]
    statements += [f"ALTER TABLE {table} ADD PRIMARY KEY (id)" for table in
                   ("goals", "activity_definitions", "metric_definitions", "practice_sessions",
                    "activity_instances", "metric_values")]
    for table, column, parent, action in FOREIGN_KEYS:
        statements.append(f"CREATE INDEX ON {table} ({column})")
        statements.append(f"ALTER TABLE {table} ADD FOREIGN KEY ({column}) REFERENCES {parent} (id) {action}".strip())
    return "\n".join(f"    op.execute({' '.join(s.split())!r})" for s in statements)


def revision_body(number: int) -> tuple[str, str]:
    """(message, body) of revision `number` (1-based), by the mix in the module's docstring."""
    if number in BIG_INDEXES:
        table, column = BIG_INDEXES[number]
        return f"index {table}.{column}", f"    op.create_index('ix_{table}_{column}', '{table}', ['{column}'])"
    if number in DATA_MIGRATIONS:
        return "data migration", f"    op.execute({DATA_MIGRATIONS[number]!r})"
    if number % 6 == 3:  # reads the database before it writes: 14 of 90
        table = SMALL_TABLES[number % 3]
        return (f"record {table}'s size", f"    rows = op.get_bind().execute(sa.text('SELECT count(*) FROM {table}')).scalar()\n"
                f"    op.create_table('stats_{number}', sa.Column('id', sa.Integer, primary_key=True),\n"
                f"                    sa.Column('rows', sa.BigInteger, nullable=False))\n"
                f"    op.execute(f'INSERT INTO stats_{number} (id, rows) VALUES (1, {{rows}})')")
    if number % 7 == 0:
        return (f"table notes_{number}", f"    op.create_table('notes_{number}', sa.Column('id', sa.Integer, primary_key=True),\n"
                f"                    sa.Column('goal_id', sa.BigInteger, sa.ForeignKey('goals.id'), index=True),\n"
                f"                    sa.Column('body', sa.Text, nullable=False))")
    table = (SMALL_TABLES + BIG_TABLES)[number % 6]
    if number % 2:
        return (f"{table}.flag_{number}", f"    op.add_column('{table}', sa.Column('flag_{number}', sa.Boolean, "
                                          "nullable=False, server_default=sa.false()))")
    return f"{table}.note_{number}", f"    op.add_column('{table}', sa.Column('note_{number}', sa.Text))"


def write_application(folder: Path, revisions: int) -> tuple[Path, int]:
    """The application's Alembic project; returns (alembic.ini, how many revisions read the database)."""
    versions = folder / "migrations" / "versions"
    versions.mkdir(parents=True)
    (folder / "alembic.ini").write_text(ALEMBIC_INI)
    (folder / "migrations" / "env.py").write_text(ENV_PY)
    (folder / "migrations" / "script.py.mako").write_text("")
    (versions / "r000_baseline.py").write_text(REVISION.format(
        message="baseline", revision="r000", down=None, body=baseline_body()))
    reading = 0
    for number in range(1, revisions + 1):
        message, body = revision_body(number)
        reading += "get_bind" in body
        (versions / f"r{number:03d}.py").write_text(REVISION.format(
            message=message, revision=f"r{number:03d}", down=f"r{number - 1:03d}", body=body))
    return folder / "alembic.ini", reading


def sqlalchemy_url(server, database: str) -> str:
    return server.url(database).replace("postgresql://", "postgresql+psycopg://", 1)


def alembic(ini: Path, server, database: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": sqlalchemy_url(server, database)}
    done = subprocess.run([sys.executable, "-m", "alembic", "-c", str(ini), *args], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"alembic {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")


def write_config(server, folder: Path, ini: Path) -> Path:
    config = folder / "cutover.toml"
    config.write_text(f'[environments.{TARGET}]\nurl = "{server.url(TARGET)}"\n\n'
                      f'[migration]\nalembic = "{ini}"\n')
    return config


def backup_seconds(lines: list[str]) -> float:
    """The verified backup's share of a migrate, from its stamped output lines."""
    stamped = [(float(line.split()[0]), line) for line in lines if re.match(r"^\s*\d+\.\d+\s", line)]
    start = next(t for t, line in stamped if "Backing up" in line)
    end = next(t for t, line in stamped if re.search(r"Backup \S+ verified", line))
    return end - start


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--revisions", type=int, default=90)
    args = parser.parse_args(argv)
    print(f"load before: {uptime()}", flush=True)
    server = start_cluster()
    folder = Path(tempfile.mkdtemp(prefix="bench-alembic-"))
    try:
        started = time.perf_counter()
        rows = load(server, args.size_mb)
        ini, reading = write_application(folder / "app", args.revisions)
        copy_database(server, TEMPLATE, STAMPED)
        alembic(ini, server, STAMPED, "stamp", "r000")
        size = int(server.psql(f"SELECT pg_database_size('{STAMPED}')")) / 2**20
        print(f"loaded {sum(rows.values()):,} rows ({size:.0f} MB) in {time.perf_counter() - started:.0f} s; "
              f"{args.revisions} revisions after the baseline, {reading} of them read the database", flush=True)
        config = write_config(server, folder, ini)
        times: dict[str, list[float]] = {"cutover": [], "without backup": [], "alembic": []}
        for round_number in range(1, args.rounds + 1):
            order = ["cutover", "alembic"] if round_number % 2 else ["alembic", "cutover"]
            for side in order:
                if side == "alembic":
                    copy_database(server, STAMPED, THEIRS)
                    seconds = timed(lambda: alembic(ini, server, THEIRS, "upgrade", "head"))
                    times["alembic"].append(seconds)
                else:
                    copy_database(server, STAMPED, TARGET)
                    clear_backups(folder)
                    output: list[str] = []
                    seconds = timed(lambda: output.extend(cli(config, folder, "migrate", TARGET, "--yes")))
                    times["cutover"].append(seconds)
                    times["without backup"].append(seconds - backup_seconds(output))
                    last = output
                print(f"  round {round_number} {side:<8} {seconds:8.2f} s", flush=True)
        theirs = statistics.median(times["alembic"])
        print("\nmedians (s); ratio = Cutover / `alembic upgrade head`")
        for name in ("cutover", "without backup"):
            ours = statistics.median(times[name])
            per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(times[name], times["alembic"]))
            print(f"  migrate{' ' + name if name != 'cutover' else '':<16} {ours:8.2f} s   alembic {theirs:8.2f} s   "
                  f"ratio {ours / theirs:.2f}x   (per round {per_round})")
        print("\nthe last `cutover migrate`, each line at seconds since its start:")
        print("\n".join(line for line in last if not line.strip().startswith(("{", "}", '"', "]", "["))))
        print(f"load after: {uptime()}")
    finally:
        remove_cluster(server, folder)


if __name__ == "__main__":
    main()
