"""PostgreSQL faults: a migration or a restore killed, cut off, locked out or out of disk leaves
the target exactly as it was (schema and rows), or exactly the backup's, and never half of each.

The real CLI runs as a subprocess against the suite's own PostgreSQL server (tests/pgserver.py);
faults are real: SIGKILL of the CLI's whole process group, pg_terminate_backend of its session,
a session of the application holding a lock, a file system that fills up. "Unchanged" is the
target's `pg_dump --schema-only` text plus an md5 of every row of every table, compared before
and after. No scratch database (cutover_scratch_*) outlives the next run of Cutover.

Disk full is a small tmpfs mounted on the backup folder (root, as in CI; skipped where mounting is
refused), filled up by another writer the moment Cutover's dump file appears there: the free-space
check made before a backup (against pg_database_size, larger than any dump) refuses a folder that
is simply too small, so only space taken meanwhile makes the dump itself meet ENOSPC.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from app.core.engines.postgresql.scratch import PREFIX as SCRATCH_PREFIX
from tests.faults.helpers import mount_tmpfs, unmount
from tests.test_cli import PROJECT, cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SCHEMA = """
CREATE TABLE goals (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text NOT NULL);
CREATE TABLE items (id bigint PRIMARY KEY, goal_id bigint REFERENCES goals (id), pad bytea NOT NULL);
CREATE INDEX items_goal ON items (goal_id);
INSERT INTO goals (title) SELECT 'goal ' || x FROM generate_series(1, 50) x;
"""


def fill_items(pg_server, database: str, rows: int, *, start: int = 1) -> None:
    """`rows` items of 1 KiB of random bytes each: pg_dump cannot compress them away."""
    pg_server.psql(f"""INSERT INTO items SELECT x, x % 50 + 1,
        (SELECT decode(string_agg(md5(random()::text || x || g), ''), 'hex') FROM generate_series(1, 64) g)
        FROM generate_series({start}, {start + rows - 1}) x""", database=database)


# -------------------------------------------------------------------------- what the target holds


def schema_text(pg_server, database: str) -> str:
    dumped = subprocess.run([str(pg_server.bindir / "pg_dump"), "--schema-only", "--no-owner",
                             f"--dbname={pg_server.url(database)}"],
                            capture_output=True, text=True, timeout=60)
    assert dumped.returncode == 0, dumped.stderr
    # \restrict and \unrestrict carry a random key that differs on every dump.
    return "\n".join(line for line in dumped.stdout.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def row_digest(pg_server, database: str) -> dict[str, str]:
    """Every table's row count and the md5 of all its rows, in order."""
    tables = pg_server.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
                            database=database).split()
    return {table: pg_server.psql(
        f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t",
        database=database).strip() for table in tables}


def state(pg_server, database: str) -> tuple[str, dict]:
    return schema_text(pg_server, database), row_digest(pg_server, database)


def scratch_databases(pg_server) -> list[str]:
    return [name for name in pg_server.databases() if name.startswith(SCRATCH_PREFIX)]


def leftovers(pg_server, target: str) -> list[str]:
    """Databases Cutover made beside the target: scratch copies and replaced targets."""
    return [name for name in pg_server.databases()
            if name.startswith(SCRATCH_PREFIX) or name.startswith(target + "_replaced_")]


# -------------------------------------------------------------------------- the workspace


@pytest.fixture
def target(pg_server):
    name = pg_server.create_database("shop")
    pg_server.psql(SCHEMA, database=name)
    fill_items(pg_server, name, 200)
    yield name
    pg_server.drop_database(name)
    for name in leftovers(pg_server, name):
        pg_server.drop_database(name)


def write_config(tmp_path: Path, pg_server, target: str, *, plan: str | None = None, online: bool = False,
                 lock_timeout: float = 1) -> Path:
    backups = tmp_path / "backups" / "production"
    backups.mkdir(parents=True, exist_ok=True)
    plans = ""
    if plan is not None:
        (tmp_path / "plan.sql").write_text(plan)
        plans = 'plans = ["plan.sql"]\n'
    config = tmp_path / "cutover.toml"
    config.write_text(f"""
[migration]
{plans}lock_timeout_seconds = {lock_timeout}

[environments.production]
url = "{pg_server.url(target)}"
backup_dirs = ["backups/production"]
{"online = true" if online else ""}
""")
    return config


def start_cli(tmp_path: Path, config: Path, *args: str, preexec_fn=None) -> subprocess.Popen:
    """The CLI in a process group of its own (so its pg_dump and pg_restore die with it)."""
    env = {**os.environ, "CUTOVER_CONFIG": str(config), "CUTOVER_INSTANCE_DIR": str(tmp_path / "instance"),
           "CUTOVER_ADMIN_PASSWORD": "cli-admin-password", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "run", "cutover", *args],
                            cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=preexec_fn)


def kill_group(child: subprocess.Popen) -> str:
    """kill -9 of the CLI and every program it started; what it had printed."""
    os.killpg(child.pid, signal.SIGKILL)
    said, _ = child.communicate(timeout=30)
    return said


def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"no {what} within {timeout} s")


def cutover_query_on(pg_server, database: str, query_start: str) -> int | None:
    """The pid of Cutover's session on `database` running a query that starts with `query_start`."""
    found = pg_server.psql(
        f"""SELECT pid FROM pg_stat_activity WHERE datname = '{database}' AND application_name LIKE 'cutover%'
            AND state = 'active' AND query LIKE '{query_start}%' LIMIT 1""").strip()
    return int(found) if found else None


def wait_until_gone(pg_server, pid: int, timeout: float = 15) -> None:
    wait_for(lambda: not pg_server.psql(f"SELECT 1 FROM pg_stat_activity WHERE pid = {pid}").strip(),
             timeout=timeout, what=f"end of backend {pid}", interval=0.05)


# -------------------------------------------------------------------------- 1. kill -9 of migrate

# The pause is a database-level setting of the target: the preview's and the rehearsal's copies
# do not inherit it, and the second migration runs once it is reset. It comes after the
# ALTER TABLE, so the transaction is open and holds its ACCESS EXCLUSIVE lock while it sleeps.
PAUSING_PLAN = """-- phase: Labels
ALTER TABLE goals ADD COLUMN label text;
UPDATE goals SET label = upper(title);
SELECT pg_sleep(current_setting('fault.pause_seconds', true)::float);
-- phase: Index
CREATE INDEX goals_label ON goals (label);
"""


def pause_migrations(pg_server, target: str, seconds: float | None) -> None:
    value = f"SET fault.pause_seconds = {seconds}" if seconds is not None else "RESET fault.pause_seconds"
    pg_server.psql(f'ALTER DATABASE "{target}" {value}')


def paused_migrator(pg_server, target: str) -> int:
    return wait_for(lambda: cutover_query_on(pg_server, target, "SELECT pg_sleep"), timeout=60,
                    what="migration transaction at its pause")


def migrated(pg_server, target: str) -> bool:
    return pg_server.psql("SELECT count(*) FROM pg_indexes WHERE indexname = 'goals_label'",
                          database=target).strip() == "1"


def test_kill_9_of_migrate_inside_its_transaction_changes_nothing_and_a_second_migrate_succeeds(
        tmp_path, pg_server, target):
    config = write_config(tmp_path, pg_server, target, plan=PAUSING_PLAN)
    pause_migrations(pg_server, target, 30)
    before = state(pg_server, target)
    migrating = start_cli(tmp_path, config, "migrate", "production", "--yes")
    migrator = paused_migrator(pg_server, target)
    said = kill_group(migrating)
    assert "Transaction open" in said and "committed" not in said, said
    # The server notices within a second that the client is gone and rolls back: the orphaned
    # transaction does not sleep on with its ACCESS EXCLUSIVE lock (27 s of pause were left).
    wait_until_gone(pg_server, migrator, timeout=5)
    assert state(pg_server, target) == before
    pause_migrations(pg_server, target, None)
    again = cli(tmp_path, config, "migrate", "production", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert migrated(pg_server, target)
    assert pg_server.psql("SELECT count(*) FROM goals WHERE label = upper(title)", database=target).strip() == "50"
    assert scratch_databases(pg_server) == []


# -------------------------------------------------------------------------- 3. the connection dropped


def test_the_migrators_connection_terminated_mid_transaction_changes_nothing_and_says_so(
        tmp_path, pg_server, target):
    config = write_config(tmp_path, pg_server, target, plan=PAUSING_PLAN)
    pause_migrations(pg_server, target, 30)
    before = state(pg_server, target)
    migrating = start_cli(tmp_path, config, "migrate", "production", "--yes")
    migrator = paused_migrator(pg_server, target)
    pg_server.psql(f"SELECT pg_terminate_backend({migrator})")
    said, _ = migrating.communicate(timeout=60)
    assert migrating.returncode == 1, said
    assert "Traceback" not in said
    assert "terminating connection due to administrator command" in said, said
    assert "unchanged" in said, said
    assert state(pg_server, target) == before
    assert scratch_databases(pg_server) == []


# -------------------------------------------------------------------------- 4. a lock held by the application


def test_a_lock_held_by_the_application_stops_migrate_within_lock_timeout_naming_it(tmp_path, pg_server, target):
    config = write_config(tmp_path, pg_server, target, plan=PAUSING_PLAN, online=True, lock_timeout=1)
    before = state(pg_server, target)
    with psycopg.connect(pg_server.url(target), application_name="shop-web") as shop:
        shop.execute("SELECT count(*) FROM goals")  # its transaction stays open, holding ACCESS SHARE
        migrating = start_cli(tmp_path, config, "migrate", "production", "--yes")
        wait_for(lambda: pg_server.psql(
            f"""SELECT pid FROM pg_stat_activity WHERE datname = '{target}' AND application_name LIKE 'cutover%'
                AND wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE goals%'""").strip(),
            timeout=60, what="migrator queued behind shop-web's lock")
        with psycopg.connect(pg_server.url(target), application_name="shop-web-reader") as reader:
            asked = time.monotonic()
            reader.execute("SELECT count(*) FROM goals").fetchone()
            reader_waited = time.monotonic() - asked
        said, _ = migrating.communicate(timeout=60)
        assert shop.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS  # untouched by Cutover
    assert migrating.returncode == 1, said
    assert "lock was not granted within lock_timeout (1 s)" in said and "shop-web as postgres" in said, said
    assert "Nothing was changed" in said
    # Behind the queued ALTER TABLE, a reader waits at most the migrator's lock_timeout.
    assert reader_waited < 1 + 1.5
    assert state(pg_server, target) == before
    assert scratch_databases(pg_server) == []


def test_without_online_migrate_refuses_while_the_application_is_connected_naming_it(tmp_path, pg_server, target):
    config = write_config(tmp_path, pg_server, target, plan=PAUSING_PLAN)
    before = state(pg_server, target)
    with psycopg.connect(pg_server.url(target), application_name="shop-web") as shop:
        shop.execute("SELECT count(*) FROM goals")
        refused = cli(tmp_path, config, "migrate", "production", "--yes")
    said = refused.stdout + refused.stderr
    assert refused.returncode == 1, said
    assert "The application is still running" in said and "shop-web" in said, said
    assert "Traceback" not in said
    assert state(pg_server, target) == before
    assert scratch_databases(pg_server) == []


# -------------------------------------------------------------------------- 2. kill -9 during restore


def running_programs(group: int, name: str) -> list[int]:
    """Pids of processes called `name` in process group `group`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm == name and int(fields[2]) == group:
            found.append(int(entry.name))
    return found


@pytest.fixture
def backed_up(tmp_path, pg_server, target):
    """A verified backup of the target, then more rows: (config, backup id, backup's state, current state)."""
    fill_items(pg_server, target, 1500, start=1000)
    config = write_config(tmp_path, pg_server, target)
    made = cli(tmp_path, config, "backup", "production", "--json")
    assert made.returncode == 0, made.stdout + made.stderr
    backup_state = state(pg_server, target)
    pg_server.psql("INSERT INTO goals (title) VALUES ('after the backup'); DELETE FROM items WHERE id < 100",
                   database=target)
    return config, json.loads(made.stdout)["id"], backup_state, state(pg_server, target)


def kill_restore(tmp_path, config, backup_id: str, at_line: str, *, also=lambda child: True,
                 cli_alone: bool = False) -> str:
    """Start `cutover restore`, kill -9 its process group (or the CLI alone, leaving its
    pg_restore running) once it prints `at_line` and `also` holds."""
    restoring = start_cli(tmp_path, config, "restore", "production", backup_id, "--yes")
    said = []
    for line in restoring.stdout:
        said.append(line)
        if at_line in line:
            wait_for(lambda: also(restoring), timeout=30, what="kill point", interval=0.002)
            break
    else:
        raise AssertionError("the restore ended before the kill point:\n" + "".join(said))
    if not cli_alone:
        return "".join(said) + kill_group(restoring)
    os.kill(restoring.pid, signal.SIGKILL)
    restoring.wait(timeout=30)
    restoring.stdout.close()
    return "".join(said)


def _kill_leftover_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.parametrize("kill_point", ["pg_restore into the replacement", "the CLI alone, its pg_restore running",
                                        "just before the swap", "just after the swap"])
def test_kill_9_of_restore_leaves_the_old_database_or_the_backup_never_half(
        tmp_path, pg_server, target, backed_up, kill_point, request):
    config, backup_id, backup_state, old_state = backed_up
    if kill_point == "pg_restore into the replacement":
        said = kill_restore(tmp_path, config, backup_id, "Safety backup of the current database",
                            also=lambda child: running_programs(child.pid, "pg_restore"))
        expected = [old_state]
    elif kill_point == "the CLI alone, its pg_restore running":
        # The orphaned pg_restore may go on filling the scratch database: its maker is dead, so
        # the next run's sweep drops it anyway (WITH (FORCE), ending any session still in it).
        group = []
        said = kill_restore(tmp_path, config, backup_id, "Safety backup of the current database",
                            also=lambda child: group.append(child.pid) or running_programs(child.pid, "pg_restore"),
                            cli_alone=True)
        request.addfinalizer(lambda: _kill_leftover_group(group[0]))
        expected = [old_state]
    elif kill_point == "just before the swap":
        said = kill_restore(tmp_path, config, backup_id, "beside the target and checked against its manifest")
        expected = [old_state, backup_state]  # the swap's one transaction may have committed meanwhile
    else:
        said = kill_restore(tmp_path, config, backup_id, "is now the restored database")
        expected = [backup_state]
    assert "Traceback" not in said
    assert target in pg_server.databases()
    assert state(pg_server, target) in expected
    # Killed between the swap and the drop, the replaced database outlives the run, whole.
    for replaced in [name for name in leftovers(pg_server, target) if not name.startswith(SCRATCH_PREFIX)]:
        assert kill_point == "just after the swap"
        assert state(pg_server, replaced) == old_state
    # Cutover runs again: the killed run's scratch databases are swept, and the restore goes through.
    restored = cli(tmp_path, config, "restore", "production", backup_id, "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert state(pg_server, target) == backup_state
    assert scratch_databases(pg_server) == []


# -------------------------------------------------------------------------- 5. disk full


@pytest.fixture
def small_backup_folder(tmp_path):
    folder = tmp_path / "backups" / "production"
    mounted = []

    def mount(size: int) -> Path:
        if not mount_tmpfs(folder, f"size={size}", "mode=0755"):
            pytest.skip("these tests put the backup folder on a small tmpfs, which needs root (CAP_SYS_ADMIN) "
                        "and a kernel that allows mounting here; `mount -t tmpfs` was refused")
        mounted.append(folder)
        return folder

    yield mount
    for path in mounted:
        unmount(path)


def dump_size(pg_server, target: str, tmp_path: Path) -> int:
    archive = tmp_path / "measure.dump"
    subprocess.run([str(pg_server.bindir / "pg_dump"), "-Fc", f"--file={archive}", f"--dbname={pg_server.url(target)}"],
                   check=True, capture_output=True, timeout=60)
    size = archive.stat().st_size
    archive.unlink()
    return size


class DiskFiller:
    """Fills the rest of a file system the moment a path matching `pattern` appears in `folder`,
    as another program writing there would: the write in progress then meets ENOSPC."""

    def __init__(self, folder: Path, pattern: str):
        self.folder, self.pattern, self.filled = folder, pattern, 0
        self.filler = folder / "zz-filler"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            if list(self.folder.glob(self.pattern)):
                self._fill()
                return

    def _fill(self) -> None:
        descriptor = os.open(self.filler, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            free = os.statvfs(self.folder).f_bavail * os.statvfs(self.folder).f_frsize
            while free > 0:
                try:
                    os.posix_fallocate(descriptor, 0, free)
                    self.filled = free
                    return
                except OSError:
                    free -= 64 * 1024  # the dump wrote meanwhile: leave it that much less
        finally:
            os.close(descriptor)

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(timeout=5)
        self.filler.unlink(missing_ok=True)


def test_a_disk_that_fills_during_the_backups_dump_keeps_no_backup_and_changes_nothing(
        tmp_path, pg_server, target, small_backup_folder):
    fill_items(pg_server, target, 3000, start=1000)
    folder = small_backup_folder(64 * 1024 * 1024)  # passes the free-space check made before the dump
    config = write_config(tmp_path, pg_server, target)
    before = state(pg_server, target)
    with DiskFiller(folder, ".*.partial-*") as filler:
        made = cli(tmp_path, config, "backup", "production")
        assert filler.filled, "the dump never appeared in the backup folder"
        said = made.stdout + made.stderr
        assert made.returncode == 1, said
        assert "No space left on device" in said and "No backup was kept" in said, said
        assert "Traceback" not in said
        assert [path.name for path in folder.iterdir() if path != filler.filler] == []
    listed = json.loads(cli(tmp_path, config, "backups", "production", "--json").stdout)["backups"]
    assert [b for b in listed if b["status"] == "verified"] == []
    assert state(pg_server, target) == before
    assert scratch_databases(pg_server) == []


def test_a_disk_that_fills_during_the_rehearsals_copy_stops_migrate_and_changes_nothing(
        tmp_path, pg_server, target, small_backup_folder):
    fill_items(pg_server, target, 3000, start=1000)
    folder = small_backup_folder(64 * 1024 * 1024)
    config = write_config(tmp_path, pg_server, target, plan=PAUSING_PLAN, online=True)
    before = state(pg_server, target)
    # Someone connected: the server cannot copy the target as a template, so the rehearsal's
    # copy is a pg_dump into a folder beside the backups, restored into a scratch database.
    with psycopg.connect(pg_server.url(target), application_name="shop-web", autocommit=True), \
            DiskFiller(folder, "cutover-pg-copy-*/*") as filler:
        migrating = cli(tmp_path, config, "migrate", "production", "--yes")
        assert filler.filled, "the rehearsal's dump never appeared beside the backups"
    said = migrating.stdout + migrating.stderr
    assert migrating.returncode == 1, said
    assert "dumping and restoring it instead" in said
    assert "No space left on device" in said and "Traceback" not in said, said
    assert state(pg_server, target) == before
    assert [path.name for path in folder.iterdir() if path.name.startswith("cutover-pg-copy-")] == []
    listed = json.loads(cli(tmp_path, config, "backups", "production", "--json").stdout)["backups"]
    assert [b["status"] for b in listed] == ["verified"]  # the migration's own backup, whole
    assert scratch_databases(pg_server) == []
